"""Where the board's frozen umqtt.simple comes from.

* 1.3.4 (profile v1.22): the sdist ``micropython-umqtt.simple==1.3.4`` from the package
  index pip is configured for, found through the PEP 691 JSON simple API, checked against
  a pinned sha256 and cached. pip cannot install it (no setup.py), so it is fetched by
  name and version. Offline: ``HIL_UMQTT_SDIST=/path/to/the.tar.gz``.
* newer (v1.23+): ``micropython/umqtt.simple`` in a user-given micropython-lib checkout
  (``micropython_lib=``, env ``HIL_MICROPYTHON_LIB``, CLI ``--micropython-lib``).

Nothing here copies umqtt's code into the repository; it only lands in the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

from harness.errors import PackageFetchError

SDIST_PROJECT = "micropython-umqtt.simple"
SDIST_VERSION = "1.3.4"
SDIST_SHA256 = "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f"
OFFLINE_ENV = "HIL_UMQTT_SDIST"
LIB_ENV = "HIL_MICROPYTHON_LIB"
_JSON_SIMPLE = "application/vnd.pypi.simple.v1+json"


class MicropythonLibMissing(PackageFetchError):
    """A profile needs a micropython-lib checkout and none was given (tests skip on it)."""


def cache_dir() -> Path:
    base = os.environ.get("HIL_CACHE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "esp32-mqtt-hil"


def index_url() -> str:
    """The simple index pip would use: PIP_INDEX_URL, else pip's own default."""
    configured = os.environ.get("PIP_INDEX_URL")
    if configured:
        return configured.rstrip("/")
    try:
        from pip._internal.models.index import PyPI
    except ImportError as exc:
        raise PackageFetchError(
            "cannot find a package index: set PIP_INDEX_URL, or HIL_UMQTT_SDIST to a local "
            f"{SDIST_PROJECT}-{SDIST_VERSION}.tar.gz") from exc
    return str(PyPI.simple_url).rstrip("/")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_our_sdist(filename: str) -> bool:
    if not filename.endswith(".tar.gz"):
        return False
    name, _, version = filename.removesuffix(".tar.gz").rpartition("-")
    return _normalized(name) == _normalized(SDIST_PROJECT) and version == SDIST_VERSION


def _download_sdist(target: Path) -> None:
    url = f"{index_url()}/{_normalized(SDIST_PROJECT)}/"
    hint = f"or set {OFFLINE_ENV}=/path/to/{SDIST_PROJECT}-{SDIST_VERSION}.tar.gz"
    try:
        request = urllib.request.Request(url, headers={"Accept": _JSON_SIMPLE})
        with urllib.request.urlopen(request, timeout=30) as response:
            listing = json.load(response)
        files = [f for f in listing.get("files", []) if _is_our_sdist(f["filename"])]
        if not files:
            raise PackageFetchError(f"{SDIST_PROJECT} {SDIST_VERSION} is not listed at {url}; "
                                    + hint)
        file_url = urllib.parse.urljoin(url, files[0]["url"])
        with urllib.request.urlopen(file_url, timeout=60) as response:
            data = response.read()
    except PackageFetchError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise PackageFetchError(f"cannot download {SDIST_PROJECT} {SDIST_VERSION} ({exc}); "
                                + hint) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != SDIST_SHA256:
        raise PackageFetchError(f"{SDIST_PROJECT} {SDIST_VERSION} from {file_url} has sha256 "
                                f"{digest}, expected {SDIST_SHA256}; " + hint)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)


def umqtt_134_dir() -> Path:
    """A directory holding ``umqtt/simple.py`` 1.3.4 (fetched and cached on first use)."""
    root = cache_dir()
    module_dir = root / f"umqtt.simple-{SDIST_VERSION}"
    if (module_dir / "umqtt" / "simple.py").is_file():
        return module_dir
    offline = os.environ.get(OFFLINE_ENV)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PackageFetchError(f"cannot create the cache directory {root} ({exc}); "
                                "set HIL_CACHE_DIR to a writable directory") from exc
    if offline:
        sdist = Path(offline)
        if not sdist.is_file():
            raise PackageFetchError(f"{OFFLINE_ENV}={offline} is not a file")
        if _sha256(sdist) != SDIST_SHA256:
            raise PackageFetchError(f"{OFFLINE_ENV}={offline} does not have the sha256 of "
                                    f"{SDIST_PROJECT} {SDIST_VERSION} ({SDIST_SHA256})")
    else:
        sdist = root / f"{SDIST_PROJECT}-{SDIST_VERSION}.tar.gz"
        if not sdist.is_file() or _sha256(sdist) != SDIST_SHA256:
            _download_sdist(sdist)
    staging = root / f".umqtt-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(sdist) as tar:
            member = next((m for m in tar.getmembers()
                           if m.isfile() and m.name.endswith("/umqtt/simple.py")), None)
            source = tar.extractfile(member) if member else None
            if source is None:
                raise PackageFetchError(f"{sdist} has no umqtt/simple.py")
            (staging / "umqtt").mkdir(parents=True)
            (staging / "umqtt" / "simple.py").write_bytes(source.read())
        if not module_dir.exists():
            staging.replace(module_dir)
    except (OSError, tarfile.TarError) as exc:
        raise PackageFetchError(f"cannot unpack {sdist} ({exc}); delete it and retry") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return module_dir


def umqtt_from_checkout(checkout: Path | None, version: str) -> Path:
    """The ``umqtt.simple`` package dir of a micropython-lib checkout, of ``version``'s
    minor release (1.4.x for 1.4.0)."""
    if checkout is None:
        env = os.environ.get(LIB_ENV)
        checkout = Path(env) if env else None
    if checkout is None:
        raise MicropythonLibMissing(
            f"umqtt.simple {version} is not on the package index; give a micropython-lib "
            f"checkout: pytest --hil-micropython-lib DIR, python -m harness emulate "
            f"--micropython-lib DIR, or {LIB_ENV}=DIR")
    package = Path(checkout) / "micropython" / "umqtt.simple"
    manifest = package / "manifest.py"
    if not (package / "umqtt" / "simple.py").is_file() or not manifest.is_file():
        raise MicropythonLibMissing(f"{checkout} is not a micropython-lib checkout "
                                    "(no micropython/umqtt.simple/umqtt/simple.py)")
    found = re.search(r'version\s*=\s*"([^"]+)"', manifest.read_text(encoding="utf-8"))
    have = found.group(1) if found else "unknown"
    if have.split(".")[:2] != version.split(".")[:2]:
        raise MicropythonLibMissing(
            f"{checkout} has umqtt.simple {have}, this profile needs {version}; check out "
            "the micropython-lib commit of that firmware release")
    return package
