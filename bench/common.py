"""Shared helpers for `python -m bench`: result rows, the printed table, CSV/JSON output,
timing of a child process (wall time and its own peak RSS via wait4), machine load."""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(os.environ.get("DUALBUS_BENCH_RESULTS")
               or Path(__file__).resolve().parent / "results")
ROOT = Path(__file__).resolve().parent.parent


def row(group: str, metric: str, value: float | None, unit: str, *, target: float | None = None,
        better: str = "lower", peer: float | None = None, peer_tool: str = "",
        note: str = "", raw: dict[str, Any] | None = None,
        ratio: float | None = None) -> dict[str, Any]:
    """One figure. With ``peer`` the checked number is the ratio value/peer, else the value.
    ``ratio`` overrides value/peer (e.g. the median of paired per-round ratios). ``better``:
    lower, higher, or within (1/target ≤ checked ≤ target: neither side may drift)."""
    if ratio is None:
        ratio = (value / peer) if (value is not None and peer) else None
    checked = ratio if peer is not None else value
    met = None
    if target is not None and checked is not None:
        met = (checked <= target if better == "lower" else checked >= target
               if better == "higher" else 1 / target <= checked <= target)
    return {"group": group, "metric": metric, "value": value, "unit": unit, "peer": peer,
            "ratio": None if ratio is None else round(ratio, 3), "target": target,
            "better": better, "met": met, "peer_tool": peer_tool, "note": note,
            "raw": raw or {}}


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'group':<10} {'metric':<52} {'value':>12} {'unit':<7} {'peer':>10} "
            f"{'ratio':>7} {'target':>9}  ")
    lines = [head, "-" * (len(head) + 6)]
    for r in rows:
        sign = {"lower": "<=", "higher": ">=", "within": "±"}[r["better"]]
        tgt = "-" if r["target"] is None else sign + f"{r['target']:g}"
        mark = "" if r["met"] is None else ("ok" if r["met"] else "MISSED")
        val = "-" if r["value"] is None else f"{r['value']:,.4g}"
        peer = "-" if r["peer"] is None else f"{r['peer']:,.4g}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
        lines.append(f"{r['group']:<10} {r['metric'][:52]:<52} {val:>12} {r['unit']:<7} "
                     f"{peer:>10} {ratio:>7} {tgt:>9}  {mark:<6} {r['note']}".rstrip())
    return "\n".join(lines)


def write_results(name: str, rows: list[dict[str, Any]], extra: dict[str, Any]) -> list[Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    meta = {"at": stamp, "host": platform.node(), "python": platform.python_version(),
            "cpus": os.cpu_count(), **extra}
    js = RESULTS / f"{name}-{stamp}.json"
    js.write_text(json.dumps({**meta, "rows": rows}, indent=2, default=str))
    cs = RESULTS / f"{name}-{stamp}.csv"
    with cs.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "metric", "value", "unit", "peer", "ratio", "target", "better",
                    "met", "peer_tool", "note"])
        for r in rows:
            w.writerow([r[k] for k in ("group", "metric", "value", "unit", "peer", "ratio",
                                       "target", "better", "met", "peer_tool", "note")])
    return [js, cs]


def steal_s() -> float:
    """CPU seconds the hypervisor has taken from this VM's vCPUs since boot (Linux /proc/stat
    ``steal``; 0 elsewhere). A difference over a measurement says how much of it the host
    took: latency figures from such a stretch are the host's as much as ours."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


@contextmanager
def cpus_never_halt() -> Iterator[None]:
    """Hold a PM QoS request of 0 µs wake-up latency (``/dev/cpu_dma_latency``, root) while
    the block runs: idle vCPUs poll instead of halting, so a wake-up costs no trip through the
    hypervisor — the fast-loopback VMs of this kind, reproduced (docs/benchmarks.md). Raises
    OSError when the request cannot be made; it ends when the descriptor closes."""
    fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
    try:
        os.write(fd, struct.pack("i", 0))
        yield
    finally:
        os.close(fd)


def loadavg() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


@dataclass
class ChildRun:
    returncode: int
    wall_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    load_before: float
    load_after: float
    steps: dict[str, float] = field(default_factory=dict)
    tree_peak_rss_mb: float = 0.0  # the process and its children together, polled
    cpu_s: float = 0.0  # user + system CPU of the process and the children it reaped (wait4)
    steal_s: float = 0.0  # CPU seconds the hypervisor took from this VM meanwhile (steal_s())


def _status_mb(pid: int, key: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def _descendants(pid: int, *, forks: bool = True) -> list[int]:
    """Every descendant of ``pid``; with ``forks=False`` not those caught between fork and
    exec (same command line as their parent): such a child runs on its parent's pages (vfork
    shares them outright), so its VmRSS is the parent's memory counted a second time."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        mine = None if forks else _cmdline(p)
        for task in tasks:
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            todo += kids
            if not forks:
                kids = [k for k in kids if _cmdline(k) != mine]
            out += kids
    return out


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants right now (Linux), MiB; a child
    not yet exec'd is not counted (see ``_descendants``)."""
    return sum(_status_mb(p, "VmRSS:") or 0.0
               for p in [pid, *_descendants(pid, forks=False)])


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds used so far by the given live processes (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in set(pids):
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()  # comm may hold spaces: split after it
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _vm_hwm_mb(pid: int) -> float | None:
    """Peak RSS of a live process so far (Linux VmHWM), in MiB."""
    return _status_mb(pid, "VmHWM:")


def run_child(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout_s: float = 600, watch_memory: bool = True) -> ChildRun:
    """Run a command; wall time and the peak RSS of that process itself.

    Peak RSS is the process's VmHWM polled every 5 ms until it exits (the last poll is at
    most 5 ms before the end). Not ``wait4``'s ru_maxrss: Linux carries the *parent's* high
    water mark into a child across fork/vfork + exec, so a bench process that had grown to
    1 GB would report every child as >= 1 GB. Children of the child (the capacity-burst
    consumer) are not included.

    ``watch_memory=False``: no polling (RSS figures NaN). The poll walks the child's process
    tree in /proc 200 times a second, a CPU-time and wake-up load the peers measured beside
    the run do not have: where the run's latencies are compared with them (`inrun`,
    `verdicts`), the bench must not be what differs."""
    if not watch_memory:
        return _run_unwatched(cmd, env=env, cwd=cwd, timeout_s=timeout_s)
    load0, steal0 = loadavg(), steal_s()
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{os.getpid()}-{time.time_ns()}"
    peak = 0.0
    with open(f"{out_path}.out", "w+") as out, open(f"{out_path}.err", "w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        deadline = t0 + timeout_s
        tree = 0.0
        while True:
            hwm = _vm_hwm_mb(proc.pid)
            tree = max(tree, tree_rss_mb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if hwm is not None:
                peak = max(peak, hwm)
            if time.perf_counter() > deadline:
                proc.kill()
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    for suffix in (".out", ".err"):
        Path(f"{out_path}{suffix}").unlink(missing_ok=True)
    if not peak:  # not Linux: best effort
        peak = usage.ru_maxrss / 1024
    return ChildRun(proc.returncode, wall, peak, stdout, stderr, load0, loadavg(),
                    tree_peak_rss_mb=max(tree, peak), cpu_s=usage.ru_utime + usage.ru_stime,
                    steal_s=steal_s() - steal0)


def _run_unwatched(cmd: list[str], *, env: dict[str, str] | None, cwd: Path | None,
                   timeout_s: float) -> ChildRun:
    """`run_child` without the memory poll: the bench blocks on the child's output pipes,
    then in ``waitpid``, until it exits (a timer kills it at ``timeout_s``); CPU seconds from
    ``RUSAGE_CHILDREN`` before and after."""
    load0, steal0 = loadavg(), steal_s()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=cwd, text=True)
    killer = threading.Timer(timeout_s, proc.kill)
    killer.start()
    try:
        stdout, stderr = proc.communicate()  # blocks in poll(2) on the pipes, then waitpid
    finally:
        killer.cancel()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # what the reaped children used
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    nan = float("nan")
    return ChildRun(proc.returncode, wall, nan, stdout, stderr, load0, loadavg(),
                    tree_peak_rss_mb=nan, cpu_s=cpu, steal_s=steal_s() - steal0)


def need(tool: str, hint: str) -> bool:
    if shutil.which(tool):
        return True
    print(f"note: {tool} not found — {hint}", flush=True)
    return False
