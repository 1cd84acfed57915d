"""Child processes and temporary folders that end with the process that made them.

Every program the harness starts (MicroPython, mosquitto, esptool, pytest for the nightly
matrix, ...) goes through :func:`spawn` or :func:`run`, and every temporary folder through
:func:`temp_dir`. Two mechanisms keep them from outliving their owner; neither relies on
Python finalizers, so they hold when the owner crashes or is killed with SIGKILL:

* **Linux:** each child starts as ``lifetime_exec.py``, which asks the kernel for SIGKILL
  when its parent goes away (``prctl(PR_SET_PDEATHSIG)``) and then execs the program.
  The kernel sends it when the *thread* that forked the child ends, so children are
  forked by the main thread or by one long-lived spawner thread, never by a worker thread
  that may finish first.
* **Everywhere (this is what holds on macOS):** a small reaper process, started on first
  use in a session of its own, reads a pipe whose write end only the owner holds. When
  the owner ends in any way the pipe reaches end-of-file, and the reaper kills the
  process groups the owner registered and still had running, and removes the folders it
  registered and had not removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from harness.errors import ProcessFailed

_TAIL_LINES = 12
# Every child starts as this script, which sets up its lifetime and then becomes the program.
_EXEC = Path(__file__).with_name("lifetime_exec.py")
_use_deathsig = sys.platform == "linux"  # a test turns it off to check the reaper alone


def _wrapped(argv: list[str], options: dict[str, Any]) -> list[str]:
    """``argv`` behind the start-up script, the program resolved as Popen would (the
    child's PATH), so a missing program is still FileNotFoundError here, in the owner."""
    program = options.pop("executable", None) or argv[0]
    if os.sep not in str(program):
        env = options.get("env")
        found = shutil.which(str(program), path=os.pathsep.join(os.get_exec_path(env)))
        if found is None:
            raise FileNotFoundError(errno.ENOENT, f"No such file or directory: {program!r}",
                                    str(program))
        program = found
    return [sys.executable, "-I", "-S", str(_EXEC), str(os.getpid()), "1" if _use_deathsig
            else "0", str(program), *argv]


# --- the reaper ------------------------------------------------------------------------
_REAPER = Path(__file__).with_name("lifetime_reaper.py")


def _start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (to tell a reused pid apart), or "-"."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        return stat.rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "-"


class _Reaper:
    """This process's link to its reaper (started on first use)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._failed = False

    def ensure_started(self) -> None:
        with self._lock:
            if self._fd is None and not self._failed:
                self._start()

    def _send(self, line: str) -> None:
        with self._lock:
            if self._fd is None and not self._failed:
                self._start()
            if self._fd is None:
                return
            try:
                os.write(self._fd, line.encode() + b"\n")  # one write: lines never interleave
            except OSError:
                self._failed = True

    def _start(self) -> None:
        read_end, write_end = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_REAPER)], stdin=read_end,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                start_new_session=True)  # a terminal's Ctrl-C or a group kill misses it
        except OSError:
            self._failed = True
            os.close(write_end)
            return
        finally:
            os.close(read_end)
        self._fd = write_end
        # It outlives us by design: mark it done so Popen neither waits for it nor warns.
        process.returncode = 0

    def add_process(self, pid: int, *, group: bool) -> None:
        self._send(f"+p {pid} {_start_time(pid)} {int(group)}")

    def remove_process(self, pid: int) -> None:
        self._send(f"-p {pid}")

    def add_dir(self, path: Path) -> None:
        self._send(f"+d {os.fsencode(path).hex()}")

    def remove_dir(self, path: Path) -> None:
        self._send(f"-d {os.fsencode(path).hex()}")

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's pipe is the parent's; start a reaper of its own."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._reset()


# --- the spawner thread ------------------------------------------------------------------
class _Spawner:
    """Forks children from one thread that lives as long as the process (see module doc)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], list[Any], threading.Event]] = (
            queue.SimpleQueue())

    def call(self, job: Callable[[], Any]) -> Any:
        current = threading.current_thread()
        if current is threading.main_thread() or current is self._thread:
            return job()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="hil-spawner",
                                                daemon=True)
                self._thread.start()
        outcome: list[Any] = []
        done = threading.Event()
        self._jobs.put((job, outcome, done))
        done.wait()
        ok, value = outcome
        if not ok:
            raise value
        return value

    def _serve(self) -> None:
        while True:
            job, outcome, done = self._jobs.get()
            try:
                outcome[:] = [True, job()]
            except BaseException as exc:
                outcome[:] = [False, exc]
            done.set()

    def forget_after_fork(self) -> None:
        self._reset()


_reaper = _Reaper()
_spawner = _Spawner()


def _after_fork_in_child() -> None:
    _reaper.forget_after_fork()
    _spawner.forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class OwnedProcess(subprocess.Popen[Any]):
    """A ``Popen`` that tells the reaper once it has been waited for."""

    _released = False

    def _release(self) -> None:
        if not self._released:
            self._released = True
            _reaper.remove_process(self.pid)

    def poll(self) -> int | None:
        code = super().poll()
        if code is not None:
            self._release()
        return code

    def wait(self, timeout: float | None = None) -> int:
        code = super().wait(timeout)
        self._release()
        return code


def spawn(argv: Sequence[str | os.PathLike[str]], **options: Any) -> OwnedProcess:
    """``subprocess.Popen(argv, **options)`` for a child that dies with this process."""
    if options.get("shell"):
        raise ValueError("spawn() takes an argv list, not a shell command")
    command = [os.fspath(arg) for arg in argv]
    if os.name == "posix":
        command = _wrapped(command, options)
    _reaper.ensure_started()  # first, so an interrupt cannot fall between child and record
    process: OwnedProcess = _spawner.call(lambda: OwnedProcess(command, **options))
    group = bool(options.get("start_new_session")) or options.get("process_group") == 0
    _reaper.add_process(process.pid, group=group)
    return process


def stop(process: subprocess.Popen[Any], *, grace: float = 5.0, group: bool = False) -> None:
    """SIGTERM (to its process group with ``group``), SIGKILL after ``grace`` seconds;
    returns once it has been reaped. Idempotent."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signal.SIGTERM)
            else:
                process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def run(argv: Sequence[str | os.PathLike[str]], *, timeout: float, check: bool = True,
        input: str | bytes | None = None, **options: Any) -> subprocess.CompletedProcess[Any]:
    """Run a program to its end (output captured unless redirected) within ``timeout``.

    With ``check`` a non-zero exit raises :class:`ProcessFailed`; a timeout always does.
    Either way the message is one: the command, the exit code and the tail of the output.
    """
    if options.pop("capture_output", False):
        options.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elif "stdout" not in options and "stderr" not in options:
        options.update(stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if input is not None:
        options["stdin"] = subprocess.PIPE
    process = spawn(argv, start_new_session=True, **options)
    try:
        out, err = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise ProcessFailed(describe(argv, None, out, err, timeout=timeout)) from None
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    done = subprocess.CompletedProcess(list(argv), process.returncode, out, err)
    if check and done.returncode != 0:
        raise ProcessFailed(describe(argv, done.returncode, out, err))
    return done


def describe(argv: Sequence[str | os.PathLike[str]], code: int | None, out: Any, err: Any,
             *, timeout: float | None = None) -> str:
    """``command`` exited with N (or: did not finish in T s); last lines: ..."""
    text = "".join(part.decode("utf-8", "replace") if isinstance(part, bytes) else part
                   for part in (out, err) if part)
    tail = [line.rstrip() for line in text.strip().splitlines()[-_TAIL_LINES:]]
    command = shlex.join(str(arg) for arg in argv)
    if len(command) > 200:
        command = command[:197] + "..."
    what = (f"did not finish in {timeout:g} s" if code is None
            else f"was killed by signal {-code}" if code < 0 else f"exited with {code}")
    output = "\n    ".join(tail) if tail else "(no output)"
    return f"`{command}` {what}; last lines of its output:\n    {output}"


def temp_dir(prefix: str) -> Path:
    """A new temporary folder that is removed when this process ends, however it ends,
    unless :func:`remove_dir` removed it first."""
    _reaper.ensure_started()  # before the folder exists: a Ctrl-C here leaves nothing
    path: Path | None = None
    try:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        _reaper.add_dir(path)
    except BaseException:  # interrupted before the caller could own it: undo
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def remove_dir(path: Path) -> None:
    """Remove a folder made by :func:`temp_dir` (idempotent)."""
    shutil.rmtree(path, ignore_errors=True)
    _reaper.remove_dir(path)


# --- SIGTERM as an interrupt ------------------------------------------------------------
class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interrupt (see :class:`SigtermAsInterrupt`). Unlike Ctrl-C
    at a terminal, it reached only this process: forward it to children that must end too."""


class SigtermAsInterrupt:
    """While installed, SIGTERM raises :class:`Terminated` in the main thread, so a run that
    a CI runner or a supervisor terminates tears down its fixtures, writes its JUnit XML and
    leaves no board, broker or temp folder behind — exactly as Ctrl-C does."""

    def __init__(self) -> None:
        self._previous: signal.Handlers | int | None = None
        self._installed = False

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if previous not in (signal.SIG_DFL, None):
            return  # someone (xdist, a wrapper) already decided what SIGTERM means
        self._previous = previous
        signal.signal(signal.SIGTERM, self._handle)
        self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous or signal.SIG_DFL)
            self._installed = False

    @staticmethod
    def _handle(signum: int, frame: FrameType | None) -> None:
        # A second SIGTERM during teardown should still end the process, not be swallowed.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated(f"terminated by signal {signum} (pid {os.getpid()})")
