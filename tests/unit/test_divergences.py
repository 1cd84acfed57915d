"""README's known-divergences table stays true: every row has a check here that shows the
emulated board still behaves as the row says, and every check has its row. A divergence
that gets fixed makes its check fail, and the row (with the check) must go."""

from __future__ import annotations

import errno
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.emulator import EmulatedBoard
from harness.emulator.clock import tls_clock_patch
from harness.emulator.fixtures import BoardFactory, board_factory, mpremote
from harness.emulator.umqtt_source import ROBUST_VERSION

pytestmark = pytest.mark.unit
__all__ = ["board_factory"]

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- divergences: one row per id; tests/unit/test_divergences.py checks each -->"
JOIN = ("import network\nw = network.WLAN(network.STA_IF)\nw.active(True)\n"
        "w.connect('hil-ap', 'hil-password')\n")


def readme_rows() -> list[str]:
    text = README.read_text(encoding="utf-8")
    table = text.split(MARKER, 1)[1].strip().split("\n\n", 1)[0]
    return re.findall(r"^\| `([a-z0-9.-]+)` \|", table, flags=re.M)


def run(board: EmulatedBoard, code: str) -> str:
    result = mpremote(board.port, "exec", code)
    return result.stdout + result.stderr


def heap_buffers(make: BoardFactory) -> None:
    out = run(make(), "b = [bytearray(1000) for _ in range(112)]\n"
              "print('fits', sum(len(x) for x in b))")
    assert "fits 112000" in out, out


def errno_numbers(make: BoardFactory) -> None:
    out = run(make(), "import errno\nprint(errno.ETIMEDOUT)")
    assert out.strip() == str(errno.ETIMEDOUT) == "110", out


def no_hostname_v121(make: BoardFactory) -> None:
    out = run(make(profile="v1.21"), JOIN + """
import socket, ssl
s = socket.socket()
try:
    ssl.wrap_socket(s, cert_reqs=ssl.CERT_REQUIRED)
except ValueError as exc:
    print('refused:', exc)
""")
    assert "refused: CERT_REQUIRED requires server_hostname" in out, out


def c_stack(make: BoardFactory) -> None:
    out = run(make(), "import micropython\nmicropython.mem_info()")
    assert "out of 80000" in out, out


def board_frames(make: BoardFactory) -> None:
    out = run(make(), JOIN + "import socket\nsocket.getaddrinfo('nowhere.invalid', 1)")
    assert 'File "socket.py"' in out and "OSError: -202" in out, out


def umqtt_robust_1_0(make: BoardFactory) -> None:
    out = run(make(), "import umqtt.robust\nprint(umqtt.robust.MQTTClient.DELAY)")
    assert ROBUST_VERSION == "1.0" and out.strip() == "2", out


def host_clock_elsewhere(make: BoardFactory, tmp_path: Path) -> None:
    macho = tmp_path / "micropython_run.cpython-311-darwin.so"
    macho.write_bytes(bytes.fromhex("cffaedfe") + bytes(64))  # a Mach-O header
    assert tls_clock_patch(macho) is None


CHECKS: dict[str, Callable[..., None]] = {
    "heap-buffers": heap_buffers,
    "errno-numbers": errno_numbers,
    "no-hostname-v1.21": no_hostname_v121,
    "c-stack": c_stack,
    "board-frames": board_frames,
    "umqtt-robust-1.0": umqtt_robust_1_0,
    "host-clock-elsewhere": host_clock_elsewhere,
}


def test_every_row_has_a_check_and_every_check_a_row() -> None:
    rows = readme_rows()
    assert rows, f"no divergences table after {MARKER!r} in README"
    assert len(rows) == len(set(rows)), f"duplicate rows: {rows}"
    assert set(rows) == set(CHECKS), (
        f"rows without a check: {sorted(set(rows) - set(CHECKS))}; "
        f"checks without a row: {sorted(set(CHECKS) - set(rows))}")


@pytest.mark.parametrize("row", sorted(CHECKS))
def test_divergence_row_is_still_true(row: str, board_factory: BoardFactory,
                                      tmp_path: Path) -> None:
    check = CHECKS[row]
    if check is host_clock_elsewhere:
        check(board_factory, tmp_path)
    else:
        check(board_factory)
