"""The peers the bench compares `dualbus run` with (bench/verdict_bench.py) measure what they
claim: a control client against a real server, and the seed scenario's expected verdicts.
Benchmarks are not tests; these check the instruments, not figures."""

from __future__ import annotations

import socket
import threading
import time

from bench.common import row
from bench.probe_fidelity import blocking_ping_p50
from bench.verdict_bench import control_p50, seed_unexpected
from tests.probe_targets import health_server


def test_control_client_times_each_answer_from_its_send() -> None:
    with health_server(delay_ms=3.0) as slow:
        p50 = control_p50("127.0.0.1", slow.port, "/health", 10, 50.0)
    assert p50 >= 3.0


def test_blocking_ping_client_times_each_reply_from_its_send() -> None:
    """A server that answers every PING 3 ms late, one reply per request."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            buf = b""
            while chunk := conn.recv(64):
                buf += chunk
                while b"PING\r\n" in buf:
                    _, _, buf = buf.partition(b"PING\r\n")
                    time.sleep(0.003)
                    conn.sendall(b"+PONG\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        assert blocking_ping_p50(srv.getsockname()[1], 10) >= 3.0
    finally:
        srv.close()
        t.join(5)


def test_seed_expectations_name_only_unexpected_failures() -> None:
    failed = {("engine_operational", "websocket"), ("system_availability", "system"),
              ("engine_latency_p50_optimization", "strategy"),
              ("pair_roundtrip_p90", "analytics->risk"), ("engine_latency_p99", "risk")}
    assert seed_unexpected(failed) == {("pair_roundtrip_p90", "analytics->risk"),
                                       ("engine_latency_p99", "risk")}


def test_within_targets_hold_both_ways() -> None:
    assert row("g", "m", 1.2, "ms", peer=1.0, target=1.3, better="within")["met"] is True
    assert row("g", "m", 0.7, "ms", peer=1.0, target=1.3, better="within")["met"] is False
    assert row("g", "m", 1.4, "ms", peer=1.0, target=1.3, better="within")["met"] is False
