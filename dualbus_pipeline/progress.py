"""A tiny in-process progress channel: assets report, the CLI prints.

Dagster's console logger is too noisy for `dualbus run`; the in-process executor runs assets
in the CLI's own process, so a plain callback list is enough. Under `dagster dev` nobody
listens and `emit` costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Listener = Callable[[str, str], None]
_listeners: list[Listener] = []


def emit(step: str, message: str) -> None:
    for listener in list(_listeners):
        listener(step, message)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
