"""Capacity burst: pipelined XADD producer here, XREADGROUP+XACK consumer in a child process.

With producer and consumer in one Python process the GIL caps delivery near 75k msgs/s on
the development machine (facts.md); with the consumer in its own process the bus is the
bottleneck (~160k msgs/s). The child is this module run as ``python -m``; it receives its
settings (URL with password included) on stdin, never on the command line, prints ``ready``
once connected and a JSON line with what it delivered at the end.

Both sides time with ``time.monotonic_ns`` (CLOCK_MONOTONIC, system-wide on Linux/macOS).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dualbus_pipeline.probes.resp import RespConnection, connect_error_text, pack

CHUNK = 1000          # XADDs per pipelined write
READ_COUNT = 2000     # entries per XREADGROUP
CHILD_START_TIMEOUT_S = 10.0
# The child must import this package even when it is not installed (a source checkout).
_IMPORT_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class BurstResult:
    sent: int
    delivered: int
    msgs_per_s: float | None
    seconds: float
    error: str | None = None


def _consume(cfg: dict[str, Any]) -> dict[str, Any]:
    key, group, want = cfg["key"], cfg["group"], int(cfg["messages"])
    timeout_s = float(cfg["timeout_s"])
    conn = RespConnection.open(cfg["url"], timeout_s + 1.0)
    read_cmd = pack("XREADGROUP", "GROUP", group, "dualbus-burst", "COUNT",
                    int(cfg.get("read_count", READ_COUNT)), "BLOCK", 100, "STREAMS", key, ">")
    ack_head = (b"XACK", key.encode(), group.encode())
    print("ready", flush=True)
    delivered = 0
    first_ns = last_ns = 0
    idle_since = time.monotonic()
    while delivered < want:
        reply = conn.call_packed(read_cmd)
        if not reply:
            if time.monotonic() - idle_since > timeout_s:
                break
            continue
        t = time.monotonic_ns()
        entries = reply[0][1]
        if not first_ns:
            first_ns = t
        last_ns = t
        delivered += len(entries)
        idle_since = time.monotonic()
        conn.call_packed(pack(*ack_head, *[e[0] for e in entries]))
    conn.close()
    return {"delivered": delivered, "first_ns": first_ns, "last_ns": last_ns}


def child_main() -> int:
    cfg = json.loads(sys.stdin.readline())
    try:
        out = _consume(cfg)
    except Exception as exc:  # reported to the parent as a line
        out = {"error": connect_error_text(exc)}
    print(json.dumps(out), flush=True)
    return 0


def run_burst(url: str, key: str, group: str, messages: int, maxlen: int,
              timeout_s: float) -> BurstResult:
    """Blocking: push ``messages`` through ``key``/``group`` and measure delivered msgs/s.

    The stream and group must exist. Costs at most about ``timeout_s`` beyond the burst itself
    when the bus dies or the child cannot start.
    """
    if messages <= 0:
        return BurstResult(0, 0, None, 0.0, "capacity burst disabled (0 messages)")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_IMPORT_ROOT, env.get("PYTHONPATH")) if p)
    child = subprocess.Popen(
        [sys.executable, "-m", "dualbus_pipeline.probes.burst"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write(json.dumps({"url": url, "key": key, "group": group,
                                      "messages": messages, "timeout_s": timeout_s,
                                      "read_count": READ_COUNT}) + "\n")
        child.stdin.flush()
        line = _readline(child, CHILD_START_TIMEOUT_S + timeout_s)
        if line.strip() != "ready":
            err = _parse(line).get("error") if line else None
            return BurstResult(0, 0, None, 0.0,
                               f"capacity consumer did not start: {err or 'no answer'}")
        sent, t0, send_err = _produce(url, key, messages, maxlen, timeout_s)
        final = _parse(_readline(child, timeout_s * 2 + 5))
    finally:
        with contextlib.suppress(OSError):
            child.stdin.close()
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        with contextlib.suppress(OSError):
            child.stdout.close()
    delivered = int(final.get("delivered", 0))
    last_ns = int(final.get("last_ns", 0))
    seconds = (last_ns - t0) / 1e9 if last_ns > t0 else 0.0
    rate = delivered / seconds if delivered and seconds > 0 else None
    error = send_err or final.get("error")
    if error is None and delivered < messages:
        error = f"only {delivered} of {messages} burst messages were delivered"
    return BurstResult(sent, delivered, rate, seconds, error)


def _produce(url: str, key: str, messages: int, maxlen: int,
             timeout_s: float) -> tuple[int, int, str | None]:
    one = pack("XADD", key, "MAXLEN", "~", maxlen, "*", "f", "v")
    chunk = one * CHUNK
    sent = 0
    t0 = time.monotonic_ns()
    try:
        conn = RespConnection.open(url, timeout_s)
    except Exception as exc:  # a failed measurement
        return 0, t0, connect_error_text(exc)
    errors = 0
    outstanding: list[int] = []
    try:
        t0 = time.monotonic_ns()
        while sent < messages:
            n = min(CHUNK, messages - sent)
            conn.send(chunk if n == CHUNK else one * n)
            sent += n
            outstanding.append(n)
            # Keep two chunks in flight: the bus always has work while we parse replies.
            if len(outstanding) > 1:
                errors += conn.read_many(outstanding.pop(0))
        while outstanding:
            errors += conn.read_many(outstanding.pop(0))
    except Exception as exc:  # a failed measurement
        return sent, t0, connect_error_text(exc)
    finally:
        conn.close()
    return sent, t0, (f"{errors} XADD error replies" if errors else None)


def _readline(child: subprocess.Popen[str], timeout_s: float) -> str:
    assert child.stdout is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(child.stdout.readline()  # type: ignore[union-attr]
                                                        ), daemon=True)
    reader.start()
    reader.join(timeout_s)
    if reader.is_alive():
        child.kill()
        reader.join(2)
    return box[0] if box else ""


def _parse(line: str) -> dict[str, Any]:
    try:
        out = json.loads(line)
    except ValueError:
        return {"error": "capacity consumer gave no result"}
    return out if isinstance(out, dict) else {"error": "capacity consumer gave no result"}


if __name__ == "__main__":
    raise SystemExit(child_main())
