"""Fetching an sdist into the package cache, as boards started at once in several processes
of a fresh machine do (the sharpness suites start together): every fetcher gets the module,
none trips over another's partial download or unpacking, and nothing half-written stays."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness import env as hil_env
from harness.emulator.umqtt_source import PackageSources, Sdist, sdist_dir
from harness.errors import PackageFetchError

pytestmark = pytest.mark.unit
MODULE = b"def hello():\n    return 'from the index'\n"


def make_sdist() -> bytes:
    """The same bytes on every call (gzip stamps the time otherwise): its sha256 is pinned."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w") as tar:
        info = tarfile.TarInfo("micropython-fake-1.0/fake/mod.py")
        info.size = len(MODULE)
        tar.addfile(info, io.BytesIO(MODULE))
    return buffer.getvalue()


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sdist, list[str]]]:
    """A simple (JSON) index on loopback serving one sdist; yields it and the paths asked."""
    tarball = make_sdist()
    sdist = Sdist("micropython-fake", "1.0", hashlib.sha256(tarball).hexdigest(),
                  "HIL_FAKE_SDIST", "fake/mod.py")
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            if self.path.endswith("/micropython-fake/"):
                body = json.dumps({"files": [{"filename": sdist.filename,
                                              "url": f"/files/{sdist.filename}"}]}).encode()
            else:
                body = tarball
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/simple")
    yield sdist, asked
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_fetchers_at_once_each_get_the_module_and_leave_nothing_half_written(
        index: tuple[Sdist, list[str]], tmp_path: Path) -> None:
    sdist, asked = index
    cache = tmp_path / "cache"
    sources = PackageSources(cache_dir=cache)
    with ThreadPoolExecutor(12) as pool:
        folders = list(pool.map(lambda _: sdist_dir(sdist, sources), range(12)))
    assert len(set(folders)) == 1
    assert (folders[0] / "fake" / "mod.py").read_bytes() == MODULE
    assert any(path.endswith(".tar.gz") for path in asked), asked
    assert sorted(p.name for p in cache.iterdir()) == ["fake-1.0", sdist.filename]


@pytest.mark.parametrize("offline", [False, True], ids=["download", "offline-sdist"])
def test_a_cache_directory_that_cannot_be_written_is_one_line_naming_the_variable(
        index: tuple[Sdist, list[str]], tmp_path: Path, offline: bool) -> None:
    sdist, _ = index
    tarball = tmp_path / sdist.filename
    tarball.write_bytes(make_sdist())
    # /proc/self exists and takes no new files, for root too (a chmod would not stop root).
    sources = PackageSources(cache_dir=Path("/proc/self"),
                             offline={sdist.project: tarball} if offline else {})
    with pytest.raises(PackageFetchError) as raised:
        sdist_dir(sdist, sources)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("cannot write to the cache directory /proc/self")
    assert f"set {hil_env.CACHE_DIR} to a writable directory" in message
