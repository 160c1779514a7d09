"""One run's probes in a child process, handed over phase by phase (buses, engines, pairs).

Why a child process
* Timing isolation. Probes time microseconds; inside the Dagster process they shared the GIL,
  the garbage collector and the CPU with the framework (one full collection there measured
  110 ms of probe lateness). The child holds nothing but the probes.
* Order. `dualbus run` opens a session first, so the child imports while the inputs are
  validated, and starts Dagster only once every phase is measured (commands/run.py); the
  probe assets then take the measured phases. Under the Dagster UI or daemon nobody opens a
  session first and each probe asset runs its phase in a session of its own: one code path
  for the measurement either way.

Protocol (parent ⇄ ``python -m dualbus_pipeline.probes.session``)
* The child starts importing at once, then blocks on stdin for one frame (8-byte big-endian
  length + pickle) of ``(topology, run_id, phases)``, so a session can be opened before the
  inputs are validated and discarded (closed) if they are not: it has touched nothing until
  it is started.
* It runs the phases in the order given, with the rules of probes/runner.py (one phase at a
  time: a capacity burst never overlaps an engine's latency measurement), and writes one
  frame per phase to stdout: 8-byte big-endian length + pickle of ``PhaseResult``. Pickle is
  safe here: both ends are this package, over a private pipe. Secrets (bus passwords) travel
  only through that pipe, never in arguments or the environment.
* The child exits when its parent dies (Linux ``PR_SET_PDEATHSIG``) or is closed (SIGTERM),
  like the probes did when they ran in the killed process: probe keys it had no time to delete
  expire on their own (every probe key is written with an expiry, probes/bus.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import resource
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal

from dualbus_pipeline.errors import ProbeError

if TYPE_CHECKING:  # imported lazily: `dualbus run` opens a session before it imports pydantic
    from dualbus_pipeline.config import Topology

Phase = Literal["buses", "engines", "pairs"]
PHASES: tuple[Phase, ...] = ("buses", "engines", "pairs")
_HEADER = struct.Struct(">Q")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class PhaseResult:
    """One phase as measured in the child: its results (a list of Bus/Engine/PairResult),
    the seconds the probes took (child-side wall clock), the CPU seconds the probe process
    and the processes it started spent on it, or the error that stopped it."""

    phase: Phase
    results: list[Any]
    seconds: float
    error: str | None = None
    cpu_s: float = 0.0


class ProbeSession:
    """A child process that probes one run's phases. Use as a context manager, or ``close()``.

    ``start()`` sends the work; ``result(phase)`` blocks until that phase is measured and
    raises ProbeError if the child failed or died before delivering it.
    """

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "dualbus_pipeline.probes.session"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._done: dict[str, PhaseResult] = {}
        self._cond = threading.Condition()
        self._eof = False
        self._broken: str | None = None
        self._reader: threading.Thread | None = None
        self.run_id: str | None = None
        self.phases: tuple[Phase, ...] = ()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def __enter__(self) -> ProbeSession:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(self, topology: Topology | Mapping[str, Topology], run_id: str,
              phases: Sequence[Phase] = PHASES) -> None:
        """Send the work: one topology for every phase, or one per phase (a shard probes its
        own targets on a topology that still knows every engine: sharding.py)."""
        if self._reader is not None:
            raise ProbeError("a probe session runs once")
        self.run_id, self.phases = run_id, tuple(phases)
        stdin = self._proc.stdin
        if stdin is None:
            raise ProbeError("the probe process has no input pipe")
        work = dict(topology) if isinstance(topology, Mapping) else topology
        body = pickle.dumps((work, run_id, self.phases))
        try:
            stdin.write(_HEADER.pack(len(body)) + body)
            stdin.flush()
            stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the child is gone; the reader reports it for every phase
        self._reader = threading.Thread(target=self._read, name="dualbus-probe-session",
                                        daemon=True)
        self._reader.start()

    def result(self, phase: Phase) -> PhaseResult:
        if phase not in self.phases:
            raise ProbeError(f"probe session of run {self.run_id} does not measure {phase}")
        with self._cond:
            self._cond.wait_for(lambda: phase in self._done or self._eof)
            got = self._done.get(phase)
        if got is None and self._broken is not None:
            raise ProbeError(f"unreadable answer from the probe process: {self._broken}")
        if got is None:
            code = self._proc.wait()
            raise ProbeError(f"the probe process exited (code {code}) before measuring "
                             f"{phase}; see its messages above")
        if got.error is not None:
            raise ProbeError(f"{phase} probes failed: {got.error}")
        return got

    def measured(self, phase: Phase) -> bool:
        """Whether ``phase`` has been delivered (never blocks)."""
        with self._cond:
            return phase in self._done

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every phase was delivered or the child is gone (errors are raised by
        ``result()``, for the phase they belong to); False if ``timeout`` s passed first."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._eof or all(p in self._done for p in self.phases), timeout)

    def close(self) -> None:
        """Stop the child if it is still running (SIGTERM; probe keys it had no time to delete
        expire) and reap it."""
        proc = self._proc
        if proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()

    def _read(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            while True:
                frame = _read_frame(stdout)
                if frame is None:
                    break
                with self._cond:
                    self._done[frame.phase] = frame
                    self._cond.notify_all()
        except Exception as exc:  # a torn or foreign frame: every waiting phase fails with it
            self._broken = f"{type(exc).__name__}: {exc}"
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()


def _read_frame(stream: IO[bytes]) -> PhaseResult | None:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    frame = pickle.loads(body)
    assert isinstance(frame, PhaseResult)
    return frame


# -- sessions opened ahead of the Dagster run (dualbus run) ----------------------------------

_opened: dict[str, ProbeSession] = {}
_opened_lock = threading.Lock()


@contextlib.contextmanager
def opened_for_run(session: ProbeSession) -> Iterator[ProbeSession]:
    """Make a started session the source of its run's probe assets while the block runs."""
    assert session.run_id is not None, "start the session first"
    with _opened_lock:
        _opened[session.run_id] = session
    try:
        yield session
    finally:
        with _opened_lock:
            _opened.pop(session.run_id, None)


def measure(topology: Topology, run_id: str, phase: Phase) -> PhaseResult:
    """The phase of a run: from the session opened for it, else from a session of its own."""
    with _opened_lock:
        session = _opened.get(run_id)
    if session is not None and phase in session.phases:
        return session.result(phase)
    with ProbeSession() as own:
        own.start(topology, run_id, (phase,))
        return own.result(phase)


# -- the child --------------------------------------------------------------------------------

def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads) and of the children it reaped (the
    capacity burst's producer)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _run_phase(topology: Topology, run_id: str, phase: Phase) -> list[Any]:
    from dualbus_pipeline.probes.runner import run_buses, run_engines, run_pairs

    if phase == "buses":
        return list(run_buses(topology, run_id))
    if phase == "engines":
        return list(run_engines(topology))
    return list(run_pairs(topology, run_id))


def child_main(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    _die_with_parent()
    if os.getppid() == 1:  # the parent died before we could ask to follow it
        return 143
    import dualbus_pipeline.probes.runner  # noqa: F401 - import while the parent validates

    head = stdin.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return 0  # closed without work: the parent's inputs were rejected
    topology, run_id, phases = pickle.loads(stdin.read(_HEADER.unpack(head)[0]))
    for phase in phases:
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        try:
            topo = topology[phase] if isinstance(topology, dict) else topology
            results = _run_phase(topo, run_id, phase)
            frame = PhaseResult(phase, results, time.perf_counter() - t0,
                                cpu_s=cpu_seconds() - cpu0)
        except Exception as exc:  # reported to the parent, which fails the asset
            frame = PhaseResult(phase, [], time.perf_counter() - t0,
                                error=f"{type(exc).__name__}: {exc}".splitlines()[0],
                                cpu_s=cpu_seconds() - cpu0)
        body = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.write(_HEADER.pack(len(body)) + body)
        stdout.flush()
    return 0


if __name__ == "__main__":
    # Through the package module, not __main__: frames must unpickle as
    # dualbus_pipeline.probes.session.PhaseResult in the parent.
    from dualbus_pipeline.probes import session as _session

    raise SystemExit(_session.child_main(sys.stdin.buffer, sys.stdout.buffer))
