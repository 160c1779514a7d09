"""`HttpConnection.wait_here`: the answer of the only request in flight is read off the socket
in the probe's thread (engine_prober.py, `fire`); what has not come by the deadline is the
event loop's to read, and the request count in flight stays exact. Real servers in their own
process (tests/fault_servers.py)."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dualbus_pipeline.probes.http import HttpConnection, build_get, in_flight
from dualbus_pipeline.probes.timing import now_ns
from dualbus_pipeline.stack.redis_server import free_port
from tests.integration.test_probes_engine import FAST, probe
from tests.tls_certs import make_ca


async def _connect(port: int) -> HttpConnection:
    _, conn = await asyncio.get_running_loop().create_connection(
        lambda: HttpConnection(now_ns), "127.0.0.1", port)
    return conn


@pytest.mark.parametrize("fault_server", [{"kind": "ok"}], indirect=True)
def test_the_answer_is_read_in_thread_before_the_loop_runs_again(fault_server: int) -> None:
    async def go() -> None:
        conn = await _connect(fault_server)
        for _ in range(5):
            fut = conn.arm()
            conn.write(build_get("127.0.0.1", fault_server, "/health"))
            assert in_flight() == 1
            conn.wait_here(now_ns() + 5_000_000_000)
            # no await since the write: only the in-thread read can have finished it
            assert fut.done() and in_flight() == 0
            _, status, body, keep_alive = fut.result()
            assert status == 200 and b"healthy" in body and keep_alive
        conn.abort()

    asyncio.run(go())


@pytest.mark.parametrize("fault_server", [{"kind": "split", "gap_s": 0.3}], indirect=True)
def test_an_answer_not_complete_by_the_deadline_is_finished_by_the_loop(fault_server: int) -> None:
    async def go() -> None:
        conn = await _connect(fault_server)
        fut = conn.arm()
        t0 = now_ns()
        conn.write(build_get("127.0.0.1", fault_server, "/health"))
        conn.wait_here(t0 + 100_000_000)  # the first half comes at once, the rest 0.3 s later
        assert not fut.done() and in_flight() == 1
        done, status, body, _ = await asyncio.wait_for(fut, 5)
        assert status == 200 and body == b'{"status": "healthy"}'
        assert done - t0 >= 300_000_000  # stamped when the rest arrived, by the loop
        assert in_flight() == 0
        conn.abort()

    asyncio.run(go())


@pytest.mark.parametrize("fault_server", [{"kind": "midclose"}], indirect=True)
def test_a_close_mid_answer_is_left_to_the_loop_and_counted_out(fault_server: int) -> None:
    async def go() -> None:
        conn = await _connect(fault_server)
        fut = conn.arm()
        conn.write(build_get("127.0.0.1", fault_server, "/health"))
        conn.wait_here(now_ns() + 5_000_000_000)  # returns at the end of the stream
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(fut, 5)
        assert in_flight() == 0

    asyncio.run(go())


@pytest.mark.parametrize("fault_server", [{"kind": "split", "gap_s": 0.03}], indirect=True)
@pytest.mark.parametrize("rate", [10, 100])
def test_split_answers_are_whole_samples_whoever_reads_the_rest(fault_server: int,
                                                                rate: int) -> None:
    """At 10/s the 30 ms gap is inside the in-thread wait (half a period, 50 ms); at 100/s it
    is not (5 ms), and the loop reads the rest: every sample is whole either way, and charged
    the gap."""
    settings = FAST.model_copy(update={"engine_requests": 12, "engine_rate_per_s": rate,
                                       "min_samples": 10})
    t0 = time.monotonic()
    r = probe(f"http://127.0.0.1:{fault_server}", settings)
    assert r.status == "operational", r.status_reason
    counted = [lat for lat, rep in zip(r.samples.latency_ms(), r.samples.replaced, strict=True)
               if not rep]
    assert len(counted) == 12 and min(counted) >= 30, counted
    assert time.monotonic() - t0 < 30
    assert in_flight() == 0


@pytest.mark.parametrize("fault_server", [{"kind": "ok"}], indirect=True)
def test_a_descriptor_select_cannot_watch_is_left_to_the_loop(fault_server: int) -> None:
    """A process with over 1024 descriptors open (a large topology): a connection numbered
    beyond select(2)'s limit is not waited on in-thread, and its answer still arrives."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"descriptor limit {hard} < 2048")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    spare: list[int] = []
    try:
        while not spare or spare[-1] < 1100:
            spare.append(os.open(os.devnull, os.O_RDONLY))

        async def go() -> None:
            conn = await _connect(fault_server)
            assert conn.transport is not None
            assert conn.transport.get_extra_info("socket").fileno() >= 1024
            fut = conn.arm()
            conn.write(build_get("127.0.0.1", fault_server, "/health"))
            conn.wait_here(now_ns() + 5_000_000_000)  # returns at once: not select's to watch
            _, status, _, _ = await asyncio.wait_for(fut, 5)
            assert status == 200 and in_flight() == 0
            conn.abort()

        asyncio.run(go())
    finally:
        for fd in spare:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


_HTTPS_SERVER = r"""
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b'{"status": "healthy"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"""


def test_tls_answers_are_read_by_the_loop(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An https engine: the socket carries TLS records, which only asyncio's SSL transport can
    read; the in-thread wait leaves them alone and every sample is a whole answer."""
    ca = make_ca(tmp_path / "ca")
    cert = ca.issue(tmp_path / "srv", hosts=["127.0.0.1"])
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.files.cert_path))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _HTTPS_SERVER, str(port),
                             str(cert.cert_path), str(cert.key_path)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        r = probe(f"https://127.0.0.1:{port}",
                  FAST.model_copy(update={"engine_requests": 20, "min_samples": 10}))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # it once outlived SIGTERM by 10 s in a full run
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert r.status == "operational", r.status_reason
    assert set(r.samples.error) == {None} and r.summary.ok == r.summary.count
