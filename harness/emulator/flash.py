"""The board's flash filesystem on the host: a directory the device sees as "/"."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from harness.errors import ConfigError


def prepare_flash(flash_dir: Path, *, erase: bool = False) -> None:
    """Create (or, with ``erase``, wipe) the flash directory and prove it is writable."""
    if flash_dir.exists() and not flash_dir.is_dir():
        raise ConfigError(f"flash directory {flash_dir} is a file; give a directory")
    try:
        if erase and flash_dir.exists():
            for entry in flash_dir.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        flash_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=flash_dir)
        os.close(fd)
        Path(probe).unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"flash directory {flash_dir} cannot be written ({reason}); "
                          "give a writable directory with --flash") from exc
