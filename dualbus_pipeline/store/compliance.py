"""Monthly SLO compliance: per SLO and calendar month (UTC), attainment and error budget used.

For an SLO with a budget (slospec/budget.py) attainment is good events over total events of
the month's stored, non-excluded runs, and budget used = bad fraction / (1 - SLI target); for
the others it is the share of judged verdicts that passed (pending-baseline and inconclusive
results are not verdicts). Silenced events are in no count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from dualbus_pipeline.store.warehouse import STORED


def monthly_compliance(con: duckdb.DuckDBPyConnection, *, until: datetime | None = None,
                       months: int = 12) -> list[dict[str, Any]]:
    """Rows oldest month first, SLOs by name: slo, month ('YYYY-MM'), runs, basis ('events'
    or 'verdicts'), attainment, sli_target, budget_used (None without a budget)."""
    rows = con.execute(
        "WITH m AS (SELECT r.slo, strftime(u.started_at AT TIME ZONE 'UTC', '%Y-%m') AS month,"
        " count(DISTINCT r.run_id) AS runs,"
        " count(*) FILTER (WHERE r.outcome IN ('pass', 'breach', 'no_data')) AS judged,"
        " count(*) FILTER (WHERE r.outcome = 'pass') AS passed,"
        " sum(r.good) AS good, sum(r.total) AS total, max(r.sli_target) AS sli_target"
        " FROM slo_results r JOIN runs u ON u.run_id = r.run_id"
        f" WHERE u.{STORED} AND NOT u.excluded AND (? IS NULL OR u.started_at <= ?)"
        " GROUP BY ALL),"
        " recent AS (SELECT DISTINCT month FROM m ORDER BY month DESC LIMIT ?)"
        " SELECT slo, month, runs, judged, passed, good, total, sli_target FROM m"
        " WHERE month IN (SELECT month FROM recent) ORDER BY month, slo",
        [until, until, months]).fetchall()
    out = []
    for slo, month, runs, judged, passed, good, total, target in rows:
        if total:
            attainment = good / total
            used = (1 - attainment) / (1 - target) if target is not None and target < 1 \
                else None
            basis = "events"
        else:
            attainment = passed / judged if judged else None
            used, basis = None, "verdicts"
        out.append({"slo": slo, "month": month, "runs": runs, "basis": basis,
                    "attainment": attainment, "sli_target": target if total else None,
                    "budget_used": used, "good": good, "total": total, "judged": judged,
                    "passed": passed})
    return out
