"""The first moment of every child of :mod:`harness.lifetime` (run as a script).

    python -I -S lifetime_exec.py OWNER_PID DEATHSIG PROGRAM ARGV0 [ARGS...]

It asks the kernel to kill it when its parent dies (Linux ``PR_SET_PDEATHSIG``, kept across
exec; DEATHSIG 1), gives up at once if the owner is already gone, restores the default
SIGINT (an ignored one survives exec: the child of a script's background job would never
see the Ctrl-C the harness sends it), then becomes PROGRAM. Doing this here rather than in
a ``preexec_fn`` keeps the owner's fork plain: no Python code, and no other library's
at-fork handlers (gRPC's abort), run in a half-copied process.
"""

from __future__ import annotations

import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main() -> None:
    owner, deathsig, program, *argv = sys.argv[1:]
    if deathsig == "1" and sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(owner):  # the owner died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        os.execv(program, argv)
    except OSError as exc:
        sys.stderr.write(f"cannot run {program}: {exc.strerror}\n")
        os._exit(127)


if __name__ == "__main__":
    main()
