"""Every option a message or the README names is one pytest accepts, and a path option
that points nowhere is a usage error (one line), not a run of skips."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.emulator.umqtt_source import MicropythonLibMissing, umqtt_from_checkout

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
HIL_FLAG = re.compile(r"--hil-[a-z][a-z0-9-]*[a-z0-9]")
PLACEHOLDERS = {"--hil-xxx"}  # "a --hil-xxx VALUE pair" in a docstring
HIL_TEST = "import pytest\npytestmark = pytest.mark.hil\n\ndef test_s1_x(rig):\n    pass\n"


def test_every_hil_option_named_anywhere_exists(pytester: pytest.Pytester) -> None:
    accepted = set(HIL_FLAG.findall(pytester.runpytest("--help").stdout.str()))
    named: dict[str, set[str]] = {}
    for path in [*sorted((REPO / "harness").rglob("*.py")), REPO / "README.md"]:
        for flag in HIL_FLAG.findall(path.read_text(encoding="utf-8")):
            named.setdefault(flag, set()).add(str(path.relative_to(REPO)))
    unknown = {flag: sorted(where) for flag, where in named.items()
               if flag not in accepted | PLACEHOLDERS}
    assert not unknown, f"options pytest does not accept: {unknown}"


def test_the_missing_micropython_lib_message_names_the_pytest_option(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIL_MICROPYTHON_LIB", raising=False)
    with pytest.raises(MicropythonLibMissing) as caught:
        umqtt_from_checkout(None, "1.4.0")
    assert "pytest --hil-micropython-lib DIR" in str(caught.value)


@pytest.mark.parametrize("option", ["--hil-micropython-lib", "--hil-device-src"])
def test_a_path_option_pointing_nowhere_is_a_usage_error(pytester: pytest.Pytester,
                                                         option: str) -> None:
    pytester.makepyfile(HIL_TEST)
    result = pytester.runpytest(f"{option}=/no/such/folder")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert f"{option} /no/such/folder: /no/such/folder does not exist" in text, text
    assert "Traceback" not in text
