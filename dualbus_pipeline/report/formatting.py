"""How numbers look in the report (shared by the templates and the findings text)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def fmt_ms(v: Any) -> str:
    if v is None:
        return "n/a"
    v = float(v)
    if abs(v) < 10:
        return f"{v:.3f} ms"
    if abs(v) < 1000:
        return f"{v:.1f} ms"
    return f"{v:,.0f} ms"


def fmt_num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    v = float(v)
    if v.is_integer():
        return f"{v:,.0f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:,.1f}"
    return f"{v:.{digits}f}"


def fmt_pct(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{float(v) * 100:.2f} %".replace(".00 %", " %")


def fmt_rate(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{float(v):,.0f} msgs/s"


def fmt_factor(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{float(v):.2f}×"


def fmt_value(v: Any, indicator: str | None) -> str:
    """An SLO value in its indicator's unit."""
    ind = indicator or ""
    if v is None:
        return "no data"
    if ind.endswith("_ms"):
        return fmt_ms(v)
    if "ratio" in ind or "availability" in ind:
        return fmt_pct(v)
    if "throughput" in ind:
        return fmt_rate(v)
    return fmt_num(v)


def fmt_setting(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return fmt_num(v)


def fmt_unit(v: Any, unit: str | None) -> str:
    """A trend value in its series' unit."""
    if v is None:
        return "n/a"
    if unit == "ms":
        return fmt_ms(v)
    if unit == "ratio":
        return fmt_pct(v)
    if unit == "msgs/s":
        return fmt_rate(v)
    return f"{fmt_num(v)} {unit}".strip() if unit else fmt_num(v)


def fmt_when(v: Any) -> str:
    """ISO timestamps as 'YYYY-MM-DD HH:MM:SS UTC' (input is UTC from the warehouse)."""
    if v is None:
        return "n/a"
    try:
        dt = datetime.fromisoformat(str(v))
    except ValueError:
        return str(v)
    return dt.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if dt.utcoffset() is not None
                                                 and not dt.utcoffset() else "")


def fmt_info(v: Any, key: str) -> str:
    """INFO figures: memory in MiB, the rest as numbers."""
    if v is not None and "memory" in key and "ratio" not in key and "human" not in key \
            and float(v) >= 1024 * 1024:
        return f"{float(v) / (1024 * 1024):,.1f} MiB"
    return fmt_num(v)
