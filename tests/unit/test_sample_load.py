"""Samples go to the warehouse as typed-array columns: every value must arrive unchanged."""

from array import array
from pathlib import Path

from dualbus_pipeline.probes.model import EngineResult, SampleBatch
from dualbus_pipeline.probes.stats import summarize
from dualbus_pipeline.store.runs import begin_run, store_measurements
from dualbus_pipeline.store.warehouse import Warehouse


def _engine(name: str, batch: SampleBatch) -> EngineResult:
    return EngineResult(name=name, title=name, url=f"http://h/{name}", status="operational",
                        status_reason="ok", summary=summarize(batch, 100.0, 1), samples=batch)


def test_columns_are_typed_arrays_even_when_built_from_lists() -> None:
    b = SampleBatch("t", "engine_http", intended_ns=[1, 2], sent_ns=[1, 2], done_ns=[3, 4],
                    ok=[True, False], status=[200, 500], error=[None, "http 500"])
    assert isinstance(b.intended_ns, array) and b.intended_ns.typecode == "q"
    assert b.ok.typecode == "b" and b.status.typecode == "i" and b.start_ns.typecode == "q"
    assert list(b.start_ns) == [1, 2] and list(b.replaced) == [0, 0]  # start = intended
    b.add(5, 6, 7, True, 200, start_ns=5, replaced=True)
    assert list(b.done_ns) == [3, 4, 7] and list(b.ok) == [1, 0, 1] and len(b) == 3
    assert list(b.replaced) == [0, 0, 1]


def test_every_sample_value_round_trips_through_duckdb(tmp_path: Path) -> None:
    big = 1 << 62  # nanosecond values beyond 32 bits must not be truncated
    a = SampleBatch("alpha", "engine_http")
    a.add(big, big + 10, big + 1_500_000, True, 200, start_ns=big + 7, stall_us=250)
    a.add(big + 5_000_000, big + 5_000_100, big + 5_250_000, False, 503, "http 503")
    a.add(big + 10_000_000, big + 10_000_000, big + 10_000_000, False, 0, "timeout",
          replaced=True)
    b = SampleBatch("beta", "engine_http")  # a different length: seq restarts at 0
    for i in range(5):
        b.add(i * 1000, i * 1000 + 1, i * 1000 + 2_001, True, 204)
    empty = SampleBatch("gamma", "engine_http")

    wh = Warehouse(tmp_path / "w.duckdb")
    wh.migrate()
    begin_run(wh, "r1", "p")
    with wh.transaction() as con:
        n = store_measurements(con, "r1", [], [_engine("alpha", a), _engine("beta", b),
                                               _engine("gamma", empty)], [])
    assert n == 8
    with wh.connect() as con:
        rows = con.execute(
            "SELECT target, kind, seq, intended_ns, start_ns, sent_ns, done_ns, latency_ms, "
            "service_ms, ok, status, error, replaced, stall_us FROM engine_samples "
            "WHERE run_id = 'r1' "
            "ORDER BY target, seq").fetchall()
    expected = []
    for batch in (a, b):
        for i in range(len(batch)):
            expected.append((
                batch.target, "engine_http", i, batch.intended_ns[i], batch.start_ns[i],
                batch.sent_ns[i], batch.done_ns[i],
                (batch.done_ns[i] - batch.start_ns[i]) / 1e6,  # charged from start
                (batch.done_ns[i] - batch.sent_ns[i]) / 1e6, bool(batch.ok[i]),
                batch.status[i], batch.error[i], bool(batch.replaced[i]),
                None if batch.stall_us[i] == -1 else batch.stall_us[i]))
    assert rows == expected
