"""harness.lifetime: children and temp folders end with their owner, however it ends
(dropped objects, a worker thread that finished, SIGKILL); run() fails in one message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness import lifetime
from harness.deadline import Deadline
from harness.errors import ProcessFailed

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(sys.platform != "linux", reason="reads process state from /proc"),
]
REPO = Path(__file__).resolve().parents[2]

# The owner: spawns a sleeper from a worker thread that then ends, a process group (a shell
# with a child of its own) and a temp folder, reports them, and waits to be killed.
OWNER = """
import json, subprocess, sys, threading, time
from harness import lifetime
how = sys.argv[1]
spawn = subprocess.Popen if how == "plain" else lifetime.spawn
if how == "pdeathsig-only":
    lifetime._reaper._failed = True  # no reaper: only the kernel's parent-death signal
elif how == "reaper-only":
    lifetime._use_deathsig = False  # no parent-death signal (as on macOS): only the reaper
found = {}
def worker():
    found["thread_child"] = spawn([sys.executable, "-c", "import time; time.sleep(120)"]).pid
thread = threading.Thread(target=worker)
thread.start()
thread.join()
group = spawn(["sh", "-c", "sleep 120 & echo $!; wait"], stdout=subprocess.PIPE,
              start_new_session=True)
found["group_leader"] = group.pid
found["group_member"] = int(group.stdout.readline())
found["folder"] = str(lifetime.temp_dir("hil-lifetime-test-"))
print(json.dumps(found), flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended


def start_owner(how: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, how], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    found = json.loads(owner.stdout.readline())
    return owner, found


@pytest.mark.parametrize("kill_with", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.parametrize("how", ["lifetime", "reaper-only"])
def test_children_and_folders_end_with_a_killed_owner(how: str, kill_with: signal.Signals) -> None:
    owner, found = start_owner(how)
    pids = [int(found[key]) for key in ("thread_child", "group_leader", "group_member")]
    folder = Path(str(found["folder"]))
    # The worker thread that forked the first child has ended: the child must still run.
    assert all(alive(pid) for pid in pids) and folder.is_dir()
    owner.send_signal(kill_with)
    owner.wait(timeout=10)
    Deadline(10, "the owner's children and folder to go").poll(
        lambda: True if not any(alive(pid) for pid in pids) and not folder.exists() else None,
        interval=0.05)


def test_the_parent_death_signal_alone_ends_direct_children() -> None:
    owner, found = start_owner("pdeathsig-only")
    member, folder = int(str(found["group_member"])), Path(str(found["folder"]))
    try:
        owner.kill()
        owner.wait(timeout=10)
        Deadline(10, "the owner's direct children to go").poll(
            lambda: True if not alive(int(str(found["thread_child"])))
            and not alive(int(str(found["group_leader"]))) else None, interval=0.05)
        assert folder.is_dir()  # without the reaper nobody removes it
    finally:
        if alive(member):
            os.kill(member, signal.SIGKILL)
        lifetime.remove_dir(folder)


def test_without_lifetime_the_same_children_would_survive() -> None:
    """The control: plain Popen children outlive a SIGKILLed owner (so the test above
    measures the mechanism, not something else that happens to clean up)."""
    owner, found = start_owner("plain")
    pids = [int(found[key]) for key in ("thread_child", "group_leader", "group_member")]
    try:
        owner.kill()
        owner.wait(timeout=10)
        Deadline(10, "the folder to go").poll(
            lambda: True if not Path(str(found["folder"])).exists() else None, interval=0.05)
        assert all(alive(pid) for pid in pids)
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_child_spawned_from_a_finished_thread_dies_with_its_owner_only() -> None:
    children: list[lifetime.OwnedProcess] = []
    thread = threading.Thread(target=lambda: children.append(
        lifetime.spawn([sys.executable, "-c", "import time; time.sleep(60)"])))
    thread.start()
    thread.join()
    child = children[0]
    try:
        assert child.poll() is None  # the thread that asked for it is gone; it runs on
    finally:
        lifetime.stop(child)
    assert child.returncode == -signal.SIGTERM


def test_run_failure_is_one_error_with_command_code_and_tail() -> None:
    script = "import sys\nfor n in range(40): print('line', n)\nsys.exit(3)"
    with pytest.raises(ProcessFailed) as info:
        lifetime.run([sys.executable, "-c", script], timeout=30)
    message = str(info.value)
    assert message.startswith(f"`{sys.executable} -c ")
    assert "exited with 3" in message
    assert "line 39" in message and "line 20" not in message  # the tail, not everything
    assert "Traceback" not in message


def test_run_timeout_names_the_wait_and_leaves_nothing_running() -> None:
    script = "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(60)"
    with pytest.raises(ProcessFailed, match=r"did not finish in 0\.5 s") as info:
        lifetime.run([sys.executable, "-c", script], timeout=0.5)
    pid = int(str(info.value).rsplit("\n", 1)[-1].strip())
    assert not alive(pid)


def test_temp_dir_is_removed_by_its_owner_and_forgotten(tmp_path: Path) -> None:
    folder = lifetime.temp_dir("hil-lifetime-test-")
    (folder / "file").write_text("x")
    lifetime.remove_dir(folder)
    lifetime.remove_dir(folder)  # idempotent
    assert not folder.exists()


def test_a_failing_program_under_a_test_reads_as_one_message(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((REPO / "conftest.py").read_text())
    pytester.makepyfile(test_tool="""
        import sys
        from harness import lifetime

        def test_tool():
            lifetime.run([sys.executable, "-c", "import sys; print('boom'); sys.exit(7)"],
                         timeout=30)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "test_tool.py:5: `" in output and "exited with 7" in output and "boom" in output
    assert "subprocess.py" not in output and "lifetime.py" not in output


def test_a_child_reacts_to_sigint_even_when_its_owner_ignores_it() -> None:
    """A script's background job ignores SIGINT, and an ignored signal survives exec: the
    harness's children must still stop on the Ctrl-C it sends them (plain Popen: they don't)."""
    script = (
        "import signal, subprocess, sys\n"
        "from harness import lifetime\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "probe = [sys.executable, '-c', 'import signal; print(signal.getsignal(signal.SIGINT))']\n"
        "for start in (lifetime.spawn, subprocess.Popen):\n"
        "    child = start(probe, stdout=subprocess.PIPE, text=True)\n"
        "    print(child.communicate()[0].strip())\n")
    done = lifetime.run([sys.executable, "-c", script], cwd=REPO, timeout=60, text=True)
    through_lifetime, plain = done.stdout.splitlines()
    assert "default_int_handler" in through_lifetime
    assert plain in ("Handlers.SIG_IGN", "1")  # SIG_IGN
