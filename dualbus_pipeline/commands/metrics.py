"""`dualbus metrics` (a run's figures as OpenMetrics text, for node_exporter's textfile
collector) and `dualbus serve-metrics --port P` (the latest run's, on /metrics)."""

from __future__ import annotations

import argparse
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dualbus_pipeline.errors import DualbusError

# A scrape waits this long for a run that holds the warehouse, then serves the last figures.
SCRAPE_LOCK_WAIT_S = 2.0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "metrics", parents=[common], help="a stored run's figures as OpenMetrics text",
        description="Write a stored run's figures (per target p50/p90/p99, success ratio, up; "
        "per SLO value, objective, pass, grade, error budget, burn rate) in the OpenMetrics "
        "text format, for Prometheus' node_exporter textfile collector. Nothing is probed.")
    p.add_argument("--run", metavar="ID", default="latest",
                   help="run id or a unique prefix of one, or 'latest' (default)")
    p.add_argument("-o", "--output", metavar="FILE", default=None,
                   help="write FILE atomically (a textfile collector reads *.prom)")
    p.set_defaults(func=run_metrics)
    s = sub.add_parser(
        "serve-metrics", parents=[common], help="serve the latest run's metrics on /metrics",
        description="Serve the latest stored run's figures on http://HOST:PORT/metrics "
        "(read-only: a scrape reads the warehouse, it never probes). Ctrl-C stops it.")
    s.add_argument("--port", type=int, default=9464, help="port (default 9464)")
    s.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    s.set_defaults(func=run_serve)


def exposition(warehouse: Path, wanted: str = "latest", lock_timeout_s: float = 30.0) -> str:
    from dualbus_pipeline.commands.report import resolve_run
    from dualbus_pipeline.report.metrics import openmetrics
    from dualbus_pipeline.report.results import build_results
    from dualbus_pipeline.store import Warehouse
    from dualbus_pipeline.store.queries import run_bundle

    if not warehouse.exists():
        raise DualbusError(f"warehouse {warehouse} does not exist: no run has been stored yet")
    with Warehouse(warehouse, lock_timeout_s=lock_timeout_s).connect() as con:
        run_id = resolve_run(con, wanted, warehouse)
        return openmetrics(build_results(run_bundle(con, run_id)))


def run_metrics(args: argparse.Namespace) -> int:
    from dualbus_pipeline.config import load_config
    from dualbus_pipeline.report.render import atomic_write

    text = exposition(load_config(args.config).warehouse_path(args.warehouse), args.run)
    if args.output is None:
        sys.stdout.write(text)
    else:
        print(atomic_write(Path(args.output), text))
    return 0


def make_server(warehouse: Path, host: str, port: int) -> ThreadingHTTPServer:
    from dualbus_pipeline.report.metrics import CONTENT_TYPE

    last: list[bytes] = []  # the last exposition read, served while a run holds the file

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served")
                return
            try:
                last[:] = [exposition(warehouse, lock_timeout_s=SCRAPE_LOCK_WAIT_S).encode()]
            except DualbusError as exc:
                if not last:  # nothing read yet: say why, in one line
                    body = f"{exc}\n".encode()
                    self.send_response(503)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(last[0])))
            self.end_headers()
            self.wfile.write(last[0])

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every 15 s is not news

    return ThreadingHTTPServer((host, port), Handler)


def run_serve(args: argparse.Namespace) -> int:
    from dualbus_pipeline.config import load_config

    path = load_config(args.config).warehouse_path(args.warehouse)
    try:
        server = make_server(path, args.host, args.port)
    except OSError as exc:
        raise DualbusError(f"serve-metrics: cannot listen on {args.host}:{args.port}: "
                           f"{exc.strerror}") from None
    print(f"serving {path} on http://{args.host}:{args.port}/metrics (Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
