"""A tiny 5-field cron reader: just enough to know how often the schedule is meant to run.

The dead-man switch needs "the schedule interval" without importing Dagster (this package is
pure). Supported: ``*``, ``N``, ``A-B``, ``*/S``, ``A-B/S``, ``A/S``, lists, month and weekday
names, weekday 7 = Sunday, and the classic rule that when both day-of-month and day-of-week
are restricted a day matching either one fires. Anything else (``L``, ``W``, ``#``, macros)
raises ValueError naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS), ("day-of-week", 0, 7, _DAYS))
# Far enough back to find two ticks of any real schedule (yearly crons included).
_SEARCH_DAYS = 2 * 366 + 31


@dataclass(frozen=True)
class Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    dom_any: bool
    dow_any: bool

    def day_matches(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self.dom_any and self.dow_any:
            return True
        if self.dom_any:
            return dow
        if self.dow_any:
            return dom
        return dom or dow


def _value(text: str, name: str, lo: int, hi: int, names: dict[str, int]) -> int:
    key = text.lower()
    if key in names:
        return names[key]
    if not text.isdigit():
        raise ValueError(f"cron {name} field: {text!r} is not a number in {lo}-{hi}")
    v = int(text)
    if not lo <= v <= hi:
        raise ValueError(f"cron {name} field: {v} is out of range {lo}-{hi}")
    return v


def _field(text: str, name: str, lo: int, hi: int, names: dict[str, int]) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"cron {name} field: bad step {step_text!r}")
            step = int(step_text)
        if rng in ("*", "?"):
            start, end = lo, hi
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start, end = _value(a, name, lo, hi, names), _value(b, name, lo, hi, names)
            if start > end:
                raise ValueError(f"cron {name} field: range {rng!r} runs backwards")
        else:
            start = _value(rng, name, lo, hi, names)
            end = hi if step_text else start
        out.update(range(start, end + 1, step))
    return out


def parse_cron(expr: str) -> Cron:
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"cron {expr!r}: needs 5 fields (minute hour day month weekday)")
    sets = [_field(p, n, lo, hi, names) for p, (n, lo, hi, names) in zip(parts, _FIELDS,
                                                                        strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Cron(minutes=tuple(sorted(sets[0])), hours=tuple(sorted(sets[1])),
                days=frozenset(sets[2]), months=frozenset(sets[3]), weekdays=weekdays,
                dom_any=parts[2] in ("*", "?"), dow_any=parts[4] in ("*", "?"))


def ticks_before(expr: str, tz: str, now: datetime) -> Iterator[datetime]:
    """Scheduled times at or before `now`, newest first, as aware UTC datetimes."""
    cron = parse_cron(expr)
    zone = ZoneInfo(tz)
    local_now = now.astimezone(zone).replace(tzinfo=None)
    day = local_now.date()
    last: datetime | None = None
    for _ in range(_SEARCH_DAYS):
        if cron.day_matches(day):
            for h in reversed(cron.hours):
                for m in reversed(cron.minutes):
                    local = datetime.combine(day, time(h, m))
                    if local > local_now:
                        continue
                    tick = _resolve_dst(local, zone)
                    if tick != last and tick <= now:
                        last = tick
                        yield tick
        day -= timedelta(days=1)


def _resolve_dst(local: datetime, zone: ZoneInfo) -> datetime:
    """Wall time → UTC the way Dagster's scheduler does it: a time skipped by a DST jump runs
    at the end of the gap; a repeated time runs at its later occurrence."""
    aware = local.replace(tzinfo=zone, fold=1)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
        start = local.replace(minute=0)
        gap = (start + timedelta(hours=1)).replace(tzinfo=zone).dst() or timedelta(hours=1)
        aware = (start + gap).replace(tzinfo=zone)
    return aware.astimezone(UTC)


def interval_s(expr: str, tz: str, now: datetime) -> float:
    """The gap between the two most recent scheduled times before `now` (seconds).

    For irregular schedules (weekdays only, business hours) this is the gap the schedule is
    in right now, so a weekend does not count as a missed run but a missed Tuesday does.
    """
    it = ticks_before(expr, tz, now)
    try:
        last = next(it)
        before = next(it)
    except StopIteration:
        raise ValueError(f"cron {expr!r}: no two scheduled times in the last two years") from None
    return (last - before).total_seconds()
