"""The friendly REPL edits lines as MicroPython's shared/readline/readline.c does on an
ESP32, byte for byte on the wire: continuation and auto-indent, history, Tab completion,
Emacs-style keys, VT100 cursor keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.emulator import EmulatedBoard
from harness.emulator.fixtures import board_factory, emulated_board
from tests.unit.test_emulator_serial import Port, open_repl

pytestmark = pytest.mark.unit
__all__ = ["board_factory", "emulated_board"]


@pytest.fixture
def repl(emulated_board: EmulatedBoard) -> Iterator[Port]:
    port = open_repl(emulated_board)
    yield port
    port.close()


def test_one_line_compound_statement_continues(repl: Port) -> None:
    repl.write(b"if 1: print(5)\r")
    assert repl.expect(b"... ") == b"if 1: print(5)\r\n... "
    repl.write(b"\r")
    assert repl.expect(b">>> ") == b"\r\n5\r\n>>> "


def test_auto_indent_and_backspace_undoes_a_level(repl: Port) -> None:
    repl.write(b"for i in range(2):\r")
    assert repl.expect(b"...     ") == b"for i in range(2):\r\n...     "
    repl.write(b"if i:\r")
    assert repl.expect(b"...         ") == b"if i:\r\n...         "
    repl.write(b"print('one')\r\x08")  # BACKSPACE takes the 4 auto-indent spaces at once
    assert repl.expect(b"\x08\x08\x08\x08") == b"print('one')\r\n...         \x08\x08\x08\x08"
    repl.write(b"print(i)\r\x08\r")
    assert repl.expect(b">>> ") == (b"\x1b[Kprint(i)\r\n...     \x08\x08\x08\x08\x1b[K\r\n"
                                    b"0\r\none\r\n1\r\n>>> ")


def test_history_on_the_arrow_keys_and_ctrl_p_n(repl: Port) -> None:
    repl.write(b"6 * 7\r")
    repl.expect(b"42\r\n>>> ")
    repl.write(b"\x1b[A")  # Up: the last line again
    assert repl.expect(b"6 * 7") == b"6 * 7"
    repl.write(b"\x1b[A")  # Up again: the line before
    assert repl.expect(b"print('ready')") == b"\x1b[5Dprint('ready')"  # back 5, redraw
    repl.write(b"\x0e")  # Ctrl-N: forward in history
    assert repl.expect(b"6 * 7") == b"\x1b[14D\x1b[K6 * 7"
    repl.write(b"\r")
    assert repl.expect(b">>> ") == b"\r\n42\r\n>>> "


def test_tab_completes_a_unique_name_and_lists_many(repl: Port) -> None:
    repl.write(b"alpha_one = 1; alpha_two = 2; beta = 3\r")
    repl.expect(b">>> ")
    repl.write(b"be\t")
    assert repl.expect(b"ta") == b"beta"
    repl.write(b"\x15al\t")  # Ctrl-U clears the line; "al" completes to the common prefix
    assert repl.expect(b"pha_") == b"\x08\x08\x08\x08\x1b[Kalpha_"
    repl.write(b"\t")  # two candidates: listed in 16-column slots, then the line again
    assert repl.expect(b">>> alpha_") == (b"\r\nalpha_one       alpha_two\r\n>>> alpha_")
    repl.write(b"\x03")
    repl.expect(b">>> ")
    repl.write(b"im\t")  # nothing in __main__ starts with "im": the keyword completes
    assert repl.expect(b"port ") == b"import "


def test_emacs_keys_move_kill_and_delete(repl: Port) -> None:
    repl.write(b"print(12)")
    repl.expect(b"print(12)")
    repl.write(b"\x01")  # Ctrl-A: home
    assert repl.expect(b"\x1b[9D") == b"\x1b[9D"
    repl.write(b"\x06\x06\x06\x06\x06\x06")  # Ctrl-F x6: over "print("
    assert repl.expect(b"(") == b"print("
    repl.write(b"\x0b")  # Ctrl-K: kill to the end
    assert repl.expect(b"\x1b[K") == b"\x1b[K"
    repl.write(b"3)\x02\x02\x04")  # type, Ctrl-B twice, Ctrl-D deletes at the cursor
    assert repl.expect(b"\x08") == b"3)\x08"
    repl.expect(b"\x08")
    repl.write(b"4\x05\r")  # the "3" was deleted: now "print(4)"; Ctrl-E: end
    out = repl.expect(b">>> ")
    assert out.endswith(b"\r\n4\r\n>>> ")


def test_ctrl_c_cancels_a_continuation(repl: Port) -> None:
    repl.write(b"def f():\rreturn 1\r\x03")
    assert repl.expect(b">>> ").endswith(b"...     \r\n>>> ")
    repl.write(b"f\r")
    assert b"NameError: name 'f' isn't defined" in repl.expect(b">>> ")
