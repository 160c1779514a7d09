"""The dualbus probe protocol (product.md §4.3) for an engine's own consumer loop.

Public API, standard library only (redis types under TYPE_CHECKING): an engine imports this
module without Dagster, DuckDB, pydantic or the rest of dualbus, and calls one function on
every message its consumer group reads::

    for msg_id, fields in entries:                      # redis-py, sync
        if handle_probe(r, stream, group, msg_id, fields, engine="risk"):
            continue                                    # a probe message: handled and acked
        ...                                             # the engine's own message

    if await handle_probe_async(r, stream, group, msg_id, fields, engine="risk"):  # redis.asyncio
        continue

A message whose ``message_type`` is ``dualbus.probe`` is a probe message: with ``forward_to``
its fields minus ``forward_to`` are XADDed to that stream; without, ``{correlation_id,
sent_ns, replied_by=engine}`` is XADDed to ``reply_to``. Then it is XACKed in ``group`` and the
call returns True. Any other message returns False and is left alone (not acked): the engine
handles it as before. Fields may be bytes or str (``decode_responses`` either way).

Safety: the only writes are that forward and that reply. ``reply_to`` must be a key under
``dualbus:probe:`` (checked at both hops), so a probe message can never make an engine write
anywhere else; the reply uses NOMKSTREAM (the probe creates its reply stream, with a TTL,
before sending: a reply that comes after the probe deleted it recreates nothing). A malformed
probe message (no correlation id, a reply_to outside the prefix, a key of the wrong type) is
acked, logged at debug and returns True: it never raises into the engine's loop. Connection
errors do propagate, so the loop's own reconnect logic sees them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["PROBE_TYPE", "REPLY_PREFIX", "handle_probe", "handle_probe_async", "is_probe"]

log = logging.getLogger("dualbus.responder")

PROBE_TYPE = "dualbus.probe"
REPLY_PREFIX = "dualbus:probe:"

Value = bytes | str | int | float


@dataclass(frozen=True)
class _Write:
    """The one XADD a probe message asks for."""

    key: Value
    fields: dict[str, Value]
    nomkstream: bool


def _text(v: Any) -> str:
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)


def _fields(fields: Mapping[Any, Any]) -> dict[str, Any]:
    return {_text(k): v for k, v in fields.items()}


def is_probe(fields: Mapping[Any, Any]) -> bool:
    """True when the message is a dualbus probe message (bytes or str fields)."""
    f = _fields(fields)
    return "message_type" in f and _text(f["message_type"]) == PROBE_TYPE


def _plan(f: dict[str, Any], engine: str) -> _Write | str:
    """The write a probe message asks for, or why it is refused."""
    cid, reply_to = f.get("correlation_id"), f.get("reply_to")
    if cid is None or _text(cid) == "":
        return "no correlation_id"
    if reply_to is None or not _text(reply_to).startswith(REPLY_PREFIX):
        return f"reply_to {_text(reply_to) if reply_to is not None else None!r} is not " \
               f"under {REPLY_PREFIX!r}"
    forward_to = f.get("forward_to")
    if forward_to is not None and _text(forward_to) != "":
        return _Write(forward_to, {k: v for k, v in f.items() if k != "forward_to"}, False)
    return _Write(reply_to, {"correlation_id": cid, "sent_ns": f.get("sent_ns", ""),
                             "replied_by": engine}, True)


def _is_refusal(exc: Exception) -> bool:
    """The server refused the write (e.g. WRONGTYPE: the key is not a stream): a property of
    the message, not of the connection. redis-py's ResponseError, matched by name so this
    module imports no redis at run time."""
    return any(c.__name__ == "ResponseError" for c in type(exc).__mro__)


def handle_probe(r: redis.Redis, stream: Value, group: Value, msg_id: Value,
                 fields: Mapping[Any, Any], *, engine: str,
                 maxlen: int | None = None) -> bool:
    """Handle one message read by ``group`` on ``stream`` if it is a probe message (module
    docstring); True when it was one (then it is acked), False otherwise (left alone).

    ``engine`` is this engine's name as the probe's configuration knows it (``replied_by``).
    ``maxlen`` caps the written stream approximately (default: no trimming, so a forward
    never trims another engine's production stream)."""
    if not is_probe(fields):
        return False
    plan = _plan(_fields(fields), engine)
    if isinstance(plan, str):
        log.debug("dualbus probe %r on %r refused: %s", msg_id, stream, plan)
    else:
        try:
            r.xadd(plan.key, plan.fields, maxlen=maxlen,  # type: ignore[arg-type]
                   approximate=True, nomkstream=plan.nomkstream)
        except Exception as exc:
            if not _is_refusal(exc):
                raise
            log.debug("dualbus probe %r on %r: write to %r refused: %s", msg_id, stream,
                      plan.key, exc)
    r.xack(stream, group, msg_id)  # type: ignore[arg-type]
    return True


async def handle_probe_async(r: redis.asyncio.Redis, stream: Value, group: Value,
                             msg_id: Value, fields: Mapping[Any, Any], *, engine: str,
                             maxlen: int | None = None) -> bool:
    """`handle_probe` for ``redis.asyncio``."""
    if not is_probe(fields):
        return False
    plan = _plan(_fields(fields), engine)
    if isinstance(plan, str):
        log.debug("dualbus probe %r on %r refused: %s", msg_id, stream, plan)
    else:
        try:
            await r.xadd(plan.key, plan.fields, maxlen=maxlen,  # type: ignore[arg-type]
                         approximate=True, nomkstream=plan.nomkstream)
        except Exception as exc:
            if not _is_refusal(exc):
                raise
            log.debug("dualbus probe %r on %r: write to %r refused: %s", msg_id, stream,
                      plan.key, exc)
    await r.xack(stream, group, msg_id)  # type: ignore[arg-type]
    return True
