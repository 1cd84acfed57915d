"""A guard the plugin runs before a session starts: pytest settings that were silently
dropped by the command line's form. It is a pytest-side concern that no fixture can see,
so it lives here and the plugin calls it from ``pytest_configure`` (as it installs
:class:`harness.lifetime.SigtermAsInterrupt`).
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Sequence
from configparser import ConfigParser
from configparser import Error as ConfigParserError
from pathlib import Path

import pytest

# pytest's own ini search order (docs: "Finding the rootdir").
_INI_NAMES = ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini", "pyproject.toml",
              "tox.ini", "setup.cfg")


def expected_inifile(start: Path) -> Path | None:
    """The configuration file pytest reads when run from ``start`` with no path arguments."""
    for folder in (start, *start.parents):
        for name in _INI_NAMES:
            candidate = folder / name
            if candidate.is_file() and _holds_pytest_section(candidate):
                return candidate
    return None


def _holds_pytest_section(path: Path) -> bool:
    if path.name in ("pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml"):
        return True
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return False
        tool = data.get("tool", {})
        return isinstance(tool, dict) and ("pytest" in tool)
    parser = ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError, ConfigParserError):
        return False
    section = "tool:pytest" if path.name == "setup.cfg" else "pytest"
    return parser.has_section(section)


def hijacking_value(args: Sequence[str], prefix: str = "--hil-") -> tuple[str, str] | None:
    """A ``--hil-xxx VALUE`` pair (space form) whose VALUE is an existing path.

    pytest picks its rootdir and ini file before plugins register their options, so at that
    moment such a VALUE looks like a test path and moves the rootdir to it."""
    for flag, value in itertools.pairwise(args):
        if flag.startswith(prefix) and "=" not in flag and not value.startswith("-") \
                and Path(value).expanduser().exists():
            return flag, value
    return None


def check_settings_loaded(config: pytest.Config) -> None:
    """Refuse a run whose project settings were dropped by a space-form path option."""
    params = config.invocation_params
    if any(arg in ("-c", "--config-file", "--rootdir") or arg.startswith(
            ("-c", "--config-file=", "--rootdir=")) for arg in params.args):
        return  # the user chose the ini file / rootdir explicitly
    pair = hijacking_value(params.args)
    if pair is None:
        return
    expected = expected_inifile(params.dir)
    if expected is None or config.inipath == expected:
        return
    flag, value = pair
    raise pytest.UsageError(
        f"pytest took {value!r} (the value of {flag}) for a test path, so it did not read "
        f"{expected} (the per-test timeout, markers and warning filters are off); write "
        f"{flag}={value} instead")
