"""Where the board's frozen umqtt.simple comes from.

* 1.3.4 (profiles v1.20-v1.22): the sdist ``micropython-umqtt.simple==1.3.4`` from the
  package index pip is configured for (``pip config list``: ``PIP_INDEX_URL``, pip.conf),
  found through the PEP 691 JSON simple API, checked against a pinned sha256 and cached.
  pip cannot install or download it (no setup.py: pip fails preparing its metadata), so it
  is fetched by name and version. Offline: ``HIL_UMQTT_SDIST=/path/to/the.tar.gz``.
* ``umqtt.robust`` (frozen beside it in every profile's firmware): the index has only 1.0
  (``micropython-umqtt.robust``), fetched the same way (offline: ``HIL_UMQTT_ROBUST_SDIST``);
  the firmware freezes micropython-lib's 1.0.1/1.0.2, whose reconnect logic is the same.
* newer (v1.23+): ``micropython/umqtt.simple`` in a user-given micropython-lib checkout
  (``micropython_lib=``, env ``HIL_MICROPYTHON_LIB``, CLI ``--micropython-lib``).

The environment is read at the edges (:mod:`harness.env`); here it arrives as
:class:`PackageSources`.

Nothing here copies umqtt's code into the repository; it only lands in the cache.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness import env as hil_env
from harness import lifetime
from harness.env import HarnessEnv
from harness.errors import PackageFetchError, ProcessFailed

SDIST_PROJECT = "micropython-umqtt.simple"
SDIST_VERSION = "1.3.4"
SDIST_SHA256 = "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f"
OFFLINE_ENV = hil_env.UMQTT_SDIST
ROBUST_PROJECT = "micropython-umqtt.robust"
ROBUST_VERSION = "1.0"
ROBUST_SHA256 = "22a1b8c8e1128281efb13b3020927d07e33c5b747869da2cd77d37983a9ea002"
ROBUST_OFFLINE_ENV = hil_env.UMQTT_ROBUST_SDIST
LIB_ENV = hil_env.MICROPYTHON_LIB
DEFAULT_INDEX_URL = "https://pypi.org/simple"  # pip's own default index
_JSON_SIMPLE = "application/vnd.pypi.simple.v1+json"
_PIP_CONFIG_TIMEOUT_S = 30.0
# pip's precedence for a download's index: its environment, then [download], then [global].
_INDEX_KEYS = (":env:.index-url", "download.index-url", "global.index-url")


class MicropythonLibMissing(PackageFetchError):
    """A profile needs a micropython-lib checkout and none was given (tests skip on it)."""


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "esp32-mqtt-hil"


@dataclass(frozen=True)
class PackageSources:
    """Where packages come from: the cache folder, and sdists already on disk (offline),
    by project name."""

    cache_dir: Path = field(default_factory=default_cache_dir)
    offline: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: HarnessEnv) -> PackageSources:
        offline = {project: path for project, path in ((SDIST_PROJECT, env.umqtt_sdist),
                                                       (ROBUST_PROJECT, env.umqtt_robust_sdist))
                   if path is not None}
        return cls(cache_dir=env.cache_dir or default_cache_dir(), offline=offline)


def index_url() -> str:
    """The simple index pip is configured for (what ``pip config list`` says: PIP_INDEX_URL,
    a pip.conf), else pip's default. Asked of pip itself, so its own rules apply."""
    try:
        done = lifetime.run([sys.executable, "-m", "pip", "config", "list"],
                            timeout=_PIP_CONFIG_TIMEOUT_S, check=False, capture_output=True,
                            text=True)
    except (ProcessFailed, OSError):
        return DEFAULT_INDEX_URL  # no pip to ask (or it hangs): its default is the answer
    configured = _pip_config(done.stdout) if done.returncode == 0 else {}
    for key in _INDEX_KEYS:
        if configured.get(key):
            return configured[key].rstrip("/")
    return DEFAULT_INDEX_URL


def _pip_config(listing: str) -> dict[str, str]:
    """``pip config list`` lines (``global.index-url='https://…'``) as a mapping."""
    values: dict[str, str] = {}
    for line in listing.splitlines():
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw.strip("'\"")
        values[key.strip()] = str(value)
    return values


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Sdist:
    """One sdist on the index, pinned by sha256, and the module file it carries."""

    project: str
    version: str
    sha256: str
    offline_env: str
    module: str  # path inside the package folder, e.g. "umqtt/simple.py"

    @property
    def filename(self) -> str:
        return f"{self.project}-{self.version}.tar.gz"


SIMPLE = Sdist(SDIST_PROJECT, SDIST_VERSION, SDIST_SHA256, OFFLINE_ENV, "umqtt/simple.py")
ROBUST = Sdist(ROBUST_PROJECT, ROBUST_VERSION, ROBUST_SHA256, ROBUST_OFFLINE_ENV,
               "umqtt/robust.py")


def _is_our_sdist(filename: str, sdist: Sdist = SIMPLE) -> bool:
    if not filename.endswith(".tar.gz"):
        return False
    name, _, version = filename.removesuffix(".tar.gz").rpartition("-")
    return _normalized(name) == _normalized(sdist.project) and version == sdist.version


def _download_sdist(target: Path, sdist: Sdist = SIMPLE) -> None:
    url = f"{index_url()}/{_normalized(sdist.project)}/"
    hint = f"or set {sdist.offline_env}=/path/to/{sdist.project}-{sdist.version}.tar.gz"
    try:
        request = urllib.request.Request(url, headers={"Accept": _JSON_SIMPLE})
        with urllib.request.urlopen(request, timeout=30) as response:
            listing = json.load(response)
        files = [f for f in listing.get("files", []) if _is_our_sdist(f["filename"], sdist)]
        if not files:
            raise PackageFetchError(f"{sdist.project} {sdist.version} is not listed at {url}; "
                                    + hint)
        file_url = urllib.parse.urljoin(url, files[0]["url"])
        with urllib.request.urlopen(file_url, timeout=60) as response:
            data = response.read()
    except PackageFetchError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise PackageFetchError(f"cannot download {sdist.project} {sdist.version} ({exc}); "
                                + hint) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != sdist.sha256:
        raise PackageFetchError(f"{sdist.project} {sdist.version} from {file_url} has sha256 "
                                f"{digest}, expected {sdist.sha256}; " + hint)
    # Boards start at once in several processes on a fresh machine, each fetching into the
    # same cache: every writer has its own partial file, and the rename is atomic.
    try:
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".partial", delete=False) as partial:
            try:
                partial.write(data)
            except OSError:
                Path(partial.name).unlink(missing_ok=True)
                raise
        Path(partial.name).replace(target)
    except OSError as exc:
        raise _unwritable(target.parent, exc) from exc


def _unwritable(root: Path, exc: OSError) -> PackageFetchError:
    return PackageFetchError(f"cannot write to the cache directory {root} "
                             f"({exc.strerror or exc}); set {hil_env.CACHE_DIR} to a writable "
                             "directory")


def umqtt_134_dir(sources: PackageSources | None = None) -> Path:
    """A directory holding ``umqtt/simple.py`` 1.3.4 (fetched and cached on first use)."""
    return sdist_dir(SIMPLE, sources or PackageSources())


def umqtt_robust_dir(sources: PackageSources | None = None) -> Path:
    """A directory holding ``umqtt/robust.py`` 1.0 (fetched and cached on first use)."""
    return sdist_dir(ROBUST, sources or PackageSources())


def sdist_dir(sdist: Sdist, sources: PackageSources) -> Path:
    """A directory holding ``sdist.module``, fetched by name, version and sha256 and
    cached on first use."""
    root = sources.cache_dir
    module_dir = root / f"{sdist.project.removeprefix('micropython-')}-{sdist.version}"
    if (module_dir / sdist.module).is_file():
        return module_dir
    offline = sources.offline.get(sdist.project)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PackageFetchError(f"cannot create the cache directory {root} ({exc}); "
                                f"set {hil_env.CACHE_DIR} to a writable directory") from exc
    if offline:
        tarball = offline
        if not tarball.is_file():
            raise PackageFetchError(f"{sdist.offline_env}={offline} is not a file")
        if _sha256(tarball) != sdist.sha256:
            raise PackageFetchError(f"{sdist.offline_env}={offline} does not have the sha256 of "
                                    f"{sdist.project} {sdist.version} ({sdist.sha256})")
    else:
        tarball = root / sdist.filename
        if not tarball.is_file() or _sha256(tarball) != sdist.sha256:
            _download_sdist(tarball, sdist)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{sdist.project}-", dir=root))
    except OSError as exc:
        raise _unwritable(root, exc) from exc
    try:
        with tarfile.open(tarball) as tar:
            member = next((m for m in tar.getmembers()
                           if m.isfile() and m.name.endswith("/" + sdist.module)), None)
            source = tar.extractfile(member) if member else None
            if source is None:
                raise PackageFetchError(f"{tarball} has no {sdist.module}")
            (staging / sdist.module).parent.mkdir(parents=True)
            (staging / sdist.module).write_bytes(source.read())
        try:
            staging.replace(module_dir)
        except OSError:
            if not (module_dir / sdist.module).is_file():  # else another process won
                raise
    except (OSError, tarfile.TarError) as exc:
        raise PackageFetchError(f"cannot unpack {tarball} ({exc}); delete it and retry") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return module_dir


def umqtt_from_checkout(checkout: Path | None, version: str) -> Path:
    """The ``umqtt.simple`` package dir of a micropython-lib checkout, of ``version``'s
    minor release (1.4.x for 1.4.0); ``checkout`` comes from the caller's options
    (--hil-micropython-lib, or HIL_MICROPYTHON_LIB read at the edge)."""
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
