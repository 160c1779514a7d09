"""is_alive collects a child that exits between its two checks (the race behind a zombie that
outlived `stack down`: its PID still answered kill 0)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dualbus_pipeline.stack import procs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_a_child_that_became_a_zombie_after_the_first_check_is_reaped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    procs.adopt(proc)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    real_reap = procs._reap
    calls: list[int] = []

    def late_reap(pid: int) -> bool:  # the first check ran while the child was still alive
        calls.append(pid)
        return False if len(calls) == 1 else real_reap(pid)

    monkeypatch.setattr(procs, "_reap", late_reap)
    assert procs.is_alive(proc.pid) is False
    assert len(calls) == 2  # checked again once seen as a zombie
    assert proc.returncode == 0  # reaped through its Popen: no "still running" warning
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)


CHILD_WITH_A_LIVE_THREAD = """
import ctypes, threading, time
threading.Thread(target=time.sleep, args=(5,)).start()
ctypes.CDLL(None).pthread_exit(None)  # the main thread ends; the process shows Z meanwhile
"""


def test_a_zombie_leader_with_live_threads_is_alive_until_it_can_be_reaped() -> None:
    """redis-server or a uvicorn engine on its way out: its main thread is a zombie while
    other threads still exit, and it cannot be reaped yet. Reported dead at that point, it
    was never reaped (a zombie after `stack down`); it must count as alive until reaped."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD_WITH_A_LIVE_THREAD])
    procs.adopt(proc)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert procs.is_alive(proc.pid) is True  # a zombie leader, its thread still sleeping
    procs.terminate([proc.pid])
    assert proc.returncode is not None  # reaped by terminate, not left behind
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
