"""The reaper process of :mod:`harness.lifetime` (run as a script, imports nothing of ours).

It reads its owner's registrations from stdin, one per line, until end-of-file, which
comes when the owner ends in any way:

    +p PID START GROUP   a child (START: its /proc start time or "-"; GROUP 1: kill its group)
    -p PID               that child was waited for
    +d HEXPATH           a temporary folder (the path's bytes in hex)
    -d HEXPATH           that folder was removed

Then it kills what is still registered (skipping a pid that now names another process)
and removes the folders.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:  # noqa: PTH123 (no pathlib: fast start)
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the owner
    children: dict[int, tuple[str, bool]] = {}
    folders: set[bytes] = set()
    for line in sys.stdin.buffer:
        op, _, rest = line.strip().partition(b" ")
        if op == b"+p":
            pid, start, group = rest.split()
            children[int(pid)] = (start.decode(), group == b"1")
        elif op == b"-p":
            children.pop(int(rest), None)
        elif op == b"+d":
            folders.add(bytes.fromhex(rest.decode()))
        elif op == b"-d":
            folders.discard(bytes.fromhex(rest.decode()))
    for pid, (start, group) in children.items():
        now = start_time(pid)
        if start != "-" and now is not None and now != start:
            continue  # that pid is another process now
        try:
            if group:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
