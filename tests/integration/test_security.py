"""Security (issue 9 item 5), against real servers: Redis AUTH (password and a least-privilege
ACL user), TLS with a CA generated here, secrets that never leave the environment, safe YAML
loading, HTML escaping and report paths. docs/security.md describes what these prove."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
import redis

from dualbus_pipeline.cli import main
from dualbus_pipeline.config import Bus, Engine, ProbeSettings, Topology
from dualbus_pipeline.probes.bus import probe_bus
from dualbus_pipeline.probes.model import BusResult
from dualbus_pipeline.probes.pair import probe_pair
from dualbus_pipeline.probes.streams import watched_on
from dualbus_pipeline.stack.manager import StackManager
from dualbus_pipeline.stack.redis_server import RedisProcess, free_port, start_redis
from tests.integration.alerts.support import CaptureSink
from tests.probe_targets import Responder, closed_port
from tests.stack_fixtures import make_topology
from tests.tls_certs import CertFiles, LocalCA, make_ca

REPO = Path(__file__).resolve().parents[2]
PW = "Pw" + uuid.uuid4().hex          # distinctive: any occurrence anywhere is a leak
SETTINGS = ProbeSettings(bus_ping_count=40, bus_delivery_count=60, bus_delivery_rate_per_s=600,
                         bus_capacity_messages=2000, bus_timeout_s=0.5, pair_count=20,
                         pair_rate_per_s=200, pair_timeout_s=0.5)
# The least-privilege ACL of docs/security.md for a bus whose engines consume alpha-stream and
# beta-stream, with pairs starting at alpha: everything on its own keys, read-only on engine
# streams, and a selector that allows XADD (nothing else) to a pair's first engine.
PROBE_ACL = ["on", f">{PW}", "resetkeys", "resetchannels", "-@all",
             "+ping", "+info", "+multi", "+exec", "+scan", "+ttl", "+del", "+expire",
             "+xadd", "+xgroup|create", "+xreadgroup", "+xread", "+xack",
             "+xinfo|stream", "+xinfo|groups", "+xinfo|consumers", "+xpending", "+xrange",
             "+time",
             "~dualbus:probe:*", "%R~alpha-stream", "%R~beta-stream",
             "(+xadd %W~alpha-stream)"]


def eng(name: str) -> Engine:
    return Engine(name=name, url=f"http://127.0.0.1:{closed_port()}", bus="b",
                  stream=f"{name}-stream", group=f"{name}-group")


def probe(url: str, engines: list[Engine] | None = None,
          settings: ProbeSettings = SETTINGS) -> BusResult:
    return asyncio.run(probe_bus(Bus(name="b", url=url), watched_on(engines or [], "b"),
                                 settings, "sec"))


def pair_topology(url: str) -> Topology:
    return Topology.model_validate({
        "platform": "T", "buses": [{"name": "b", "url": url}],
        "engines": [e.model_dump(by_alias=True) for e in (eng("alpha"), eng("beta"))],
        "pairs": [{"from": "alpha", "to": "beta"}], "probe": SETTINGS.model_dump()})


# -- AUTH -------------------------------------------------------------------------------------

def test_password_auth_works_and_a_wrong_one_is_a_clear_unreachable(
        redis_factory: Callable[..., RedisProcess]) -> None:
    srv = redis_factory(password=PW)
    ok = probe(f"redis://:{PW}@127.0.0.1:{srv.port}/0")
    assert ok.status == "operational", ok.status_reason
    assert ok.throughput_msgs_per_s  # the burst child authenticated too (URL on its stdin)
    assert PW not in ok.url and "***" in ok.url
    for url, why in ((f"redis://:wrong-{PW[:6]}@127.0.0.1:{srv.port}/0", "WRONGPASS"),
                     (f"redis://127.0.0.1:{srv.port}/0", "NOAUTH")):
        t0 = time.monotonic()
        bad = probe(url)
        assert time.monotonic() - t0 < 3
        assert bad.status == "unreachable"
        assert "auth failed" in bad.status_reason and why in bad.status_reason
        assert all(e and "auth failed" in e for e in bad.samples[0].error)
        assert "wrong-" not in bad.status_reason


def test_least_privilege_acl_user_runs_every_probe(
        redis_factory: Callable[..., RedisProcess]) -> None:
    srv = redis_factory(password="admin-" + PW)
    admin_url = f"redis://:admin-{PW}@127.0.0.1:{srv.port}/0"
    admin = redis.Redis.from_url(admin_url)
    admin.execute_command("ACL", "SETUSER", "probe", *PROBE_ACL)
    responders = [Responder(admin_url, f"{n}-stream", f"{n}-group", n).start()
                  for n in ("alpha", "beta")]
    try:
        admin.execute_command("ACL", "LOG", "RESET")
        url = f"redis://probe:{PW}@127.0.0.1:{srv.port}/0"
        bus = probe(url, [eng("alpha"), eng("beta")])
        topo = pair_topology(url)
        pair = asyncio.run(probe_pair(topo.pairs[0], topo, topo.probe, "sec"))
    finally:
        for r in responders:
            r.stop()
    assert bus.status == "operational", bus.status_reason
    assert [s.exists and s.error is None for s in bus.streams] == [True, True]
    assert pair.status == "operational", pair.status_reason
    # nothing the probe sent was refused (a swallowed NOPERM would show here) ...
    assert admin.execute_command("ACL", "LOG") == []
    # ... and the user really is that narrow
    user = redis.Redis.from_url(url)
    for denied in (("SET", "app:key", "1"), ("XADD", "beta-stream", "*", "f", "v"),
                   ("DEL", "alpha-stream"), ("XTRIM", "alpha-stream", "MAXLEN", "0"),
                   ("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            user.execute_command(*denied)
    assert list(admin.scan_iter(match="dualbus:probe:*")) == []


def test_acl_denial_is_reported_not_raised(redis_factory: Callable[..., RedisProcess]) -> None:
    srv = redis_factory(password="admin-" + PW)
    admin = redis.Redis.from_url(f"redis://:admin-{PW}@127.0.0.1:{srv.port}/0")
    admin.execute_command("ACL", "SETUSER", "ro", "on", f">{PW}", "~*", "-@all", "+ping",
                          "+info")
    res = probe(f"redis://ro:{PW}@127.0.0.1:{srv.port}/0")
    assert res.status == "degraded"
    assert "permission denied (ACL)" in res.status_reason


# -- TLS --------------------------------------------------------------------------------------

class TlsBus:
    def __init__(self, base: Path) -> None:
        self.ca: LocalCA = make_ca(base / "ca")
        self.other_ca: LocalCA = make_ca(base / "other-ca", name="some other CA")
        self.cert: CertFiles = self.ca.issue(base / "server", ["127.0.0.1"])
        self.tls_port = free_port()
        self.plain_port = free_port()
        self.tls: RedisProcess = start_redis(self.tls_port, base / "tls", password=PW, extra_args=[
            "--port", "0", "--tls-port", str(self.tls_port),
            "--tls-cert-file", str(self.cert.cert_path),
            "--tls-key-file", str(self.cert.key_path),
            "--tls-ca-cert-file", str(self.ca.cert_path), "--tls-auth-clients", "no"])
        self.plain: RedisProcess = start_redis(self.plain_port, base / "plain")

    def url(self, port: int | None = None, ca: Path | None = None, scheme: str = "rediss") -> str:
        query = f"?ssl_ca_certs={ca or self.ca.cert_path}" if scheme == "rediss" else ""
        return f"{scheme}://:{PW}@127.0.0.1:{port or self.tls_port}/0{query}"


@pytest.fixture(scope="module")
def tls_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBus]:
    b = TlsBus(tmp_path_factory.mktemp("tls"))
    yield b
    b.tls.stop()
    b.plain.stop()


def test_tls_with_ca_verification_runs_every_probe(tls_bus: TlsBus) -> None:
    url = tls_bus.url()
    responders = [Responder(url, f"{n}-stream", f"{n}-group", n).start()
                  for n in ("alpha", "beta")]
    try:
        bus = probe(url, [eng("alpha")])
        topo = pair_topology(url)
        pair = asyncio.run(probe_pair(topo.pairs[0], topo, topo.probe, "tls"))
    finally:
        for r in responders:
            r.stop()
    assert bus.status == "operational", bus.status_reason
    assert bus.throughput_msgs_per_s  # the burst child process spoke TLS too
    assert pair.status == "operational", pair.status_reason
    assert PW not in bus.url


@pytest.mark.parametrize(("case", "expected"), [
    ("wrong_ca", "tls: certificate verification failed"),
    ("no_ca", "tls: certificate verification failed"),
    ("tls_to_plain_port", "tls handshake timed out (is TLS enabled on that port?"),
    ("plain_to_tls_port", "before any reply (bus going down, or a TLS-only port? then use "
                          "rediss://)"),
])
def test_tls_mismatches_fail_clearly_in_bounded_time(tls_bus: TlsBus, case: str,
                                                     expected: str) -> None:
    url = {"wrong_ca": tls_bus.url(ca=tls_bus.other_ca.cert_path),
           "no_ca": tls_bus.url().split("?")[0],  # the system store does not know our CA
           "tls_to_plain_port": tls_bus.url(port=tls_bus.plain_port),
           "plain_to_tls_port": tls_bus.url(scheme="redis")}[case]
    settings = SETTINGS.model_copy(update={"bus_timeout_s": 0.3})
    t0 = time.monotonic()
    res = probe(url, [eng("alpha")], settings)
    elapsed = time.monotonic() - t0
    assert res.status == "unreachable"
    assert expected in res.status_reason, res.status_reason
    # a handful of connection attempts, each bounded by the timeout, never the whole schedule
    assert elapsed < 8 * settings.bus_timeout_s + 1, elapsed


def test_tls_parameters_are_validated(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "dualbus.yaml"
    cfg.write_text("platform: P\nbuses:\n"
                   "  - {name: a, url: 'rediss://h:1/0?ssl_ca_certs=/nonexistent/ca.pem'}\n"
                   "  - {name: b, url: 'redis://h:2/0?ssl_cert_reqs=none'}\n"
                   "  - {name: c, url: 'rediss://h:3/0?sslmode=require'}\n")
    assert main(["validate", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "buses[0].url: ssl_ca_certs: file not found: /nonexistent/ca.pem" in err
    assert "buses[1].url: TLS parameters (ssl_*) need a rediss:// URL" in err
    assert "buses[2].url: unknown URL parameter 'sslmode'" in err


# -- secrets, escaping, paths: one real run -----------------------------------------------------

TOKEN = "Tk" + uuid.uuid4().hex
SCRIPT = '<script>alert("dualbus")</script>'


def _all_varchar_text(wh: Path) -> str:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        cols = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                           "WHERE data_type = 'VARCHAR' OR data_type LIKE '%JSON%' "
                           "OR data_type LIKE '%[]' OR data_type LIKE 'STRUCT%' "
                           "OR data_type LIKE 'MAP%'").fetchall()
        assert len(cols) > 20
        parts = []
        for table, col in cols:
            rows = con.execute(f'SELECT CAST("{col}" AS VARCHAR) FROM "{table}"').fetchall()
            parts += [r[0] for r in rows if r[0] is not None]
        return "\n".join(parts)
    finally:
        con.close()


def _files(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.is_file())


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    env = {"BUS_PASSWORD": PW, "SINK_TOKEN": TOKEN}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    return env


def test_secrets_never_leave_the_environment(
        tmp_path: Path, secret_env: dict[str, str], capsys: pytest.CaptureFixture[str],
        stack_factory: Callable[..., StackManager]) -> None:
    sink = CaptureSink(free_port()).start()
    try:
        base = tmp_path / "platform"
        path = make_topology(base, [{"name": "alpha", "title": SCRIPT}, "beta", "gamma"],
                             pairs=[("alpha", "beta")], faults={"gamma": {"down": True}},
                             extra={"probe": {"engine_requests": 30, "bus_ping_count": 30,
                                              "bus_delivery_count": 40,
                                              "bus_capacity_messages": 1000, "pair_count": 10}})
        text = path.read_text()
        text = re.sub(r"url: redis://127\.0\.0\.1:", "url: redis://:${BUS_PASSWORD}@127.0.0.1:",
                      text)
        text += ("alerts:\n"
                 f"- url: json://ops:${{SINK_TOKEN}}@127.0.0.1:{sink.port}/hook?token=${{SINK_TOKEN}}\n"
                 f"- url: json://127.0.0.1:{closed_port()}/hook/${{SINK_TOKEN}}\n")
        path.write_text(text)
        assert PW not in path.read_text() and TOKEN not in path.read_text()
        stack = stack_factory(path)
        assert redis.Redis.from_url(stack.topology.bus("bus").url).ping()  # auth required...
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=stack.topology.bus("bus").port).ping()  # ...and enforced

        wh = base / "warehouse" / "dualbus.duckdb"
        assert main(["run", "--config", str(path)]) == 0
        assert main(["check", "--config", str(path)]) in (0, 1)
        assert main(["alerts", "--config", str(path), "--state", "all"]) == 0
        assert main(["report", "--config", str(path), "--format", "md,html,json",
                     "-o", str(tmp_path / "export")]) == 0
        assert main(["probe", "--config", str(path), "--json"]) == 0
        assert main(["validate", "--config", str(path)]) == 0
    finally:
        sink.stop()
    out, err = capsys.readouterr()
    assert sink.posts, "the breach alert reached the sink"  # the token worked where it belongs
    texts: dict[str, str] = {"stdout": out, "stderr": err, "warehouse columns":
                             _all_varchar_text(wh)}
    roots = [base / "warehouse", tmp_path / "dagster_home", tmp_path / "export"]
    stack_dir = stack.state_dir
    for root in [*roots, stack_dir]:
        for f in _files(root):
            if f.is_relative_to(stack_dir) and f.name.endswith(".spec.json"):
                continue  # the reference engines' own connection settings (docs/security.md)
            texts[str(f)] = f.read_bytes().decode("latin-1")
    assert any(str(f).endswith("results.json") for f in texts)
    assert any("dagster_home" in f and f.endswith(".db") for f in texts), sorted(texts)
    assert any(str(f).endswith(".log") for f in texts)
    for where, content in texts.items():
        for secret in (PW, TOKEN):
            assert secret not in content, f"secret found in {where}"
    # Dagster metadata through Dagster's own API as well (not only the raw sqlite bytes)
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        records = instance.get_runs()
        assert records
        for run in records:
            blob = json.dumps([str(e) for e in instance.all_logs(run.run_id)])
            assert PW not in blob and TOKEN not in blob
            assert PW not in json.dumps(run.run_config, default=str)

    # HTML escaping: the engine title is text in the report, never markup
    html = next(Path(f).read_text() for f in texts if f.endswith("report.html"))
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(&#34;dualbus&#34;)&lt;/script&gt;" in html or \
        "&lt;script&gt;alert(&quot;dualbus&quot;)&lt;/script&gt;" in html


def test_no_process_carries_a_secret_on_its_command_line(
        tmp_path: Path, secret_env: dict[str, str],
        stack_factory: Callable[..., StackManager]) -> None:
    """ps shows every user's command lines: the stack's servers and engines must not leak."""
    path = make_topology(tmp_path, ["alpha"])
    path.write_text(re.sub(r"url: redis://127\.0\.0\.1:",
                           "url: redis://:${BUS_PASSWORD}@127.0.0.1:", path.read_text()))
    stack_factory(path)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if PW.encode() in cmd:
            found.append((proc.name, cmd[:80]))
    assert found == []


# -- YAML and paths ----------------------------------------------------------------------------

def test_yaml_is_only_ever_loaded_with_the_safe_loader() -> None:
    unsafe = re.compile(r"yaml\.(unsafe_load|full_load|load_all)\(|Loader=yaml\.(Loader|"
                        r"FullLoader|UnsafeLoader)\b|yaml\.load\((?![^)]*SafeLoader)")
    hits = []
    for f in (REPO / "dualbus_pipeline").rglob("*.py"):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if unsafe.search(line):
                hits.append(f"{f.relative_to(REPO)}:{n}: {line.strip()}")
    assert hits == []


PAYLOAD = "!!python/object/apply:os.system ['touch {marker}']"


def test_python_tags_are_rejected_in_the_topology(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    cfg = tmp_path / "dualbus.yaml"
    cfg.write_text(f"platform: {PAYLOAD.format(marker=marker)}\n"
                   "buses: [{name: a, url: 'redis://h:1/0'}]\n")
    assert main(["validate", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "invalid YAML" in err and "python/object" in err
    assert not marker.exists()


def test_python_tags_are_rejected_in_slo_files(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    cfg = tmp_path / "dualbus.yaml"
    cfg.write_text("platform: P\nbuses: [{name: a, url: 'redis://h:1/0'}]\n")
    slo = tmp_path / "slo"
    slo.mkdir()
    (slo / "evil.yaml").write_text(f"slos:\n  - name: {PAYLOAD.format(marker=marker)}\n")
    assert main(["validate", "--config", str(cfg), "--slo", str(slo)]) == 2
    err = capsys.readouterr().err
    assert "evil.yaml" in err and "python/object" in err
    assert not marker.exists()


@pytest.mark.parametrize("run_id", ["../../escape", "../x", "/etc", "a/../../b"])
def test_stored_reports_cannot_escape_the_reports_folder(tmp_path: Path, run_id: str) -> None:
    from dualbus_pipeline.errors import DualbusError
    from dualbus_pipeline.report.render import write_report_files

    reports = tmp_path / "wh" / "reports"
    with pytest.raises(DualbusError, match="refusing run id"):
        write_report_files(run_id, {"md": "x"}, reports)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []

