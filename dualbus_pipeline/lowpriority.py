"""Run start-up work in a background thread at the lowest CPU priority (that thread only).

`dualbus run` starts Dagster while its probes measure (commands/run.py). Linux schedules
threads, and ``setpriority(PRIO_PROCESS, <thread id>, 19)`` lowers one thread; any thread may
lower itself. At nice 19 the start-up gets ~1.5 % of a CPU that a normal-priority task (the
probe process, the platform being measured) wants, and all of a CPU nobody wants. The thread
ends with the work, so nothing that runs later in the process is slowed. Elsewhere than Linux
the work simply runs at normal priority.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
LOWEST = 19


def lower_this_thread() -> bool:
    """Drop the calling thread to nice 19; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST)
        return True
    return False


def run_at_low_priority(fn: Callable[[], T]) -> T:
    """Call ``fn`` in a fresh thread at the lowest priority, wait, return or re-raise."""
    box: dict[str, Any] = {}

    def body() -> None:
        lower_this_thread()
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=body, name="dualbus-startup", daemon=True)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value
