"""The probe host's CPU pressure: how long runnable tasks waited for a CPU (Linux PSI).

``/proc/pressure/cpu`` keeps ``some total=`` — microseconds during which at least one runnable
task waited for a CPU, on the whole host. Read when a sample starts and again when it ends,
the difference says whether the host was short of CPU while that sample was in flight: time
the probe (and anything on its path) may have spent waiting for a core rather than for the
target. 4 µs per read here (one ``pread`` on a descriptor kept open). Where PSI is missing (not
Linux, a kernel without it) every reading is ``UNKNOWN`` and only the probe's own lateness is
judged.
"""

from __future__ import annotations

import contextlib
import os

UNKNOWN = -1
_PATH = "/proc/pressure/cpu"


class CpuPressure:
    def __init__(self, path: str = _PATH) -> None:
        self._fd: int | None = None
        with contextlib.suppress(OSError):
            self._fd = os.open(path, os.O_RDONLY)
        if self._fd is not None and self.stall_us() == UNKNOWN:
            self.close()

    def stall_us(self) -> int:
        """Cumulative µs some task waited for a CPU, or ``UNKNOWN``."""
        if self._fd is None:
            return UNKNOWN
        try:
            raw = os.pread(self._fd, 256, 0)
            i = raw.index(b"total=") + 6
            return int(raw[i:raw.index(b"\n", i)])
        except (OSError, ValueError):
            return UNKNOWN

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_shared: CpuPressure | None = None


def cpu_pressure() -> CpuPressure:
    """One reader per process (threads may share it: pread has no file position)."""
    global _shared
    if _shared is None:
        _shared = CpuPressure()
    return _shared
