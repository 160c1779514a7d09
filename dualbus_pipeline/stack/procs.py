"""Process bookkeeping for the reference stack: identity checks, spawning and stopping.

A PID file alone is not proof: PIDs are reused. A process is "ours" only if it is alive, its
start time matches the one recorded when we spawned it, and its command line carries the
marker we recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

# Children spawned by this interpreter, kept so they are reaped (no zombies, no
# "subprocess still running" ResourceWarning) whoever stops them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def adopt(proc: subprocess.Popen[bytes]) -> None:
    _CHILDREN[proc.pid] = proc


def _reap(pid: int) -> bool:
    """True if `pid` was our child and has exited (it is reaped now)."""
    proc = _CHILDREN.get(pid)
    if proc is not None:
        if proc.poll() is None:
            return False
        del _CHILDREN[pid]
        return True
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return waited == pid


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2:].split()


def _ps(pid: int, field: str) -> str | None:
    try:
        out = subprocess.run(["ps", "-o", f"{field}=", "-p", str(pid)], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def start_token(pid: int) -> str | None:
    """An opaque token identifying this incarnation of `pid` (its start time)."""
    if sys.platform.startswith("linux"):
        stat = _proc_stat(pid)
        return stat[19] if stat and len(stat) > 19 else None
    return _ps(pid, "lstart")


def cmdline(pid: int) -> str | None:
    if sys.platform.startswith("linux"):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return _ps(pid, "command")


def is_alive(pid: int) -> bool:
    if pid <= 0 or _reap(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if sys.platform.startswith("linux"):
        stat = _proc_stat(pid)
        if stat is not None and stat[0] == "Z":
            # It exited after the check above: collect it now if it is our child, or it stays
            # a zombie (its PID still answers kill 0, its Popen warns "still running"). A
            # multi-threaded child (redis-server, a uvicorn engine) shows Z while its other
            # threads are still exiting and cannot be reaped yet: it stays "alive" until it
            # can, so `terminate` waits for it instead of leaving a zombie behind.
            return not _reap(pid) and pid in _CHILDREN
        return stat is not None
    return True


def is_ours(pid: int, token: str, marker: str) -> bool:
    if not is_alive(pid):
        return False
    line = cmdline(pid)
    return start_token(pid) == token and line is not None and marker in line


def spawn(args: list[str], log_path: Path, cwd: Path,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a detached process (own session) logging to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                start_new_session=True)
    adopt(proc)
    return proc


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        # Our processes lead their own session/group: signal the group so nothing survives.
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def terminate(pids: Iterable[int], timeout: float = 5.0) -> None:
    """SIGTERM all, wait up to `timeout`, SIGKILL what is left, reap our children."""
    pending = [p for p in pids if is_alive(p)]
    for pid in pending:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        time.sleep(0.02)
        pending = [p for p in pending if is_alive(p)]
    for pid in pending:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while pending and time.monotonic() < deadline:
        time.sleep(0.02)
        pending = [p for p in pending if is_alive(p)]


def log_tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(t.strip() for t in text[-lines:])
