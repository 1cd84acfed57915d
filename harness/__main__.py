"""Command line: ``python -m harness <command>``.

Each command lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``;
this file only dispatches, so a newcomer finds a command's code by its name below.
Errors the user can fix (:class:`~harness.errors.HarnessError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from harness.errors import HarnessError
from harness.lifetime import SigtermAsInterrupt

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "emulate": ("harness.emulator.cli", "run one emulated ESP32 on a pseudo-terminal"),
    "broker": ("harness.broker.cli", "run a broker with TLS/SNI front and MQTT wire tap"),
    "ports": ("harness.hardware.cli", "list attached ESP32 boards"),
    "flash": ("harness.hardware.flash_cli", "flash a MicroPython firmware image onto a board"),
    "report": ("harness.report.cli", "render the nightly regression report from a history"),
    "timeline": ("harness.report.timeline_cli", "write the timeline page of one run folder"),
    "run": ("harness.mainjob", "the main job: the HIL suite on an emulated ESP32, with report"),
    "farm": ("harness.farm.cli", "run a labgrid farm (coordinator + exporter) of emulated "
             "ESP32s on this machine"),
    "nightly": ("harness.report.nightly", "run the HIL matrix (profiles x brokers x boards), "
                "record it and write the regression report"),
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported, so one command's heavy
    dependencies never slow down (or break) another."""
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.configure(command_parser)
            command_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    SigtermAsInterrupt().install()  # a command's own handler, installed later, wins
    try:
        return int(args._module.run(args))
    except HarnessError as exc:
        print(f"harness {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
