"""The notification contract, routing to sinks, secret masking, and one Apprise send.

Contract (docs/alerts.md): the title starts with ``FIRING``, ``FIRING (reminder)`` or
``RESOLVED``, then ``<severity>: <slo> on <target>``; the body carries value, objective,
grade, run id and report path, one ``Key: value`` per line. Apprise notify type is
``failure`` for an error-severity alert, ``warning`` for a warning one, ``success`` for a
resolve. An inconclusive alert is titled ``INCONCLUSIVE warning: <slo> on <target>`` and
resolves as ``RESOLVED (conclusive again) warning: ...``: always warning severity and type
(dualbus could not tell, which is not the platform failing), the SLO's own severity in the
body. Pipeline failures and the dead-man switch follow the same shape with their own
subject; they reach every sink (a sink's slos/targets filters are for SLO alerts).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from dualbus_pipeline.config import AlertSink
from dualbus_pipeline.yamlsrc import mask_secrets

Kind = Literal["firing", "reminder", "resolved", "inconclusive", "inconclusive_resolved",
               "nodata", "nodata_reminder", "nodata_resolved", "pipeline", "deadman", "test",
               "group"]
AlertKind = Literal["firing", "reminder", "resolved", "inconclusive", "inconclusive_resolved",
                    "nodata", "nodata_reminder", "nodata_resolved"]
NotifyType = Literal["info", "success", "warning", "failure"]

SEVERITY_RANK = {"warning": 1, "error": 2}
# Short: a sink that hangs must not hold a Dagster run or sensor tick for long.
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Notification:
    kind: Kind
    severity: str
    title: str
    body: str
    notify_type: NotifyType
    slo: str | None = None
    target: str | None = None
    run_id: str | None = None
    summary: str = ""  # an alert's value and objective, its line in a grouped message


@dataclass(frozen=True)
class AlertFacts:
    """What a notification about one (slo, target) says."""

    slo: str
    target: str
    severity: str
    value: float | None
    objective_text: str
    grade: str | None
    scope: str = ""
    indicator: str = ""
    reason: str | None = None
    fired_at: datetime | None = None
    in_a_row: int | None = None  # inconclusive runs in a row (inconclusive alerts)


def format_value(v: float | None) -> str:
    if v is None:
        return "no data"
    return f"{v:.4g}"


_HEADS = {"firing": "FIRING", "reminder": "FIRING (reminder)", "resolved": "RESOLVED",
          "inconclusive": "INCONCLUSIVE", "inconclusive_resolved": "RESOLVED (conclusive again)",
          "nodata": "NO DATA", "nodata_reminder": "NO DATA (reminder)",
          "nodata_resolved": "RESOLVED (data again)"}
_RESOLVES = ("resolved", "inconclusive_resolved", "nodata_resolved")


def alert_notification(kind: AlertKind, a: AlertFacts, *, run_id: str,
                       report_path: str | None, platform: str) -> Notification:
    if kind in ("inconclusive", "inconclusive_resolved"):
        return _inconclusive_notification(kind, a, run_id=run_id, report_path=report_path,
                                          platform=platform)
    title = f"{_HEADS[kind]} {a.severity}: {a.slo} on {a.target}"
    value = format_value(a.value) + (f" [{a.indicator}]" if a.indicator else "")
    lines = [
        f"SLO: {a.slo} ({a.severity})",
        f"Target: {a.target}" + (f" ({a.scope})" if a.scope else ""),
        f"Value: {value}",
        f"Objective: {a.objective_text}",
        f"Grade: {a.grade or '-'}",
        f"Run: {run_id}",
        f"Report: {report_path or '-'}",
        f"Platform: {platform}",
    ]
    if a.fired_at is not None and kind not in ("firing", "nodata"):
        lines.append(f"Firing since: {a.fired_at.isoformat(timespec='seconds')}")
    if a.reason:  # a resolve says why too: passing again, or no longer evaluated
        lines.append(f"Reason: {a.reason}")
    ntype: NotifyType = ("success" if kind in _RESOLVES
                         else "failure" if a.severity == "error" else "warning")
    return Notification(kind=kind, severity=a.severity, title=title, body="\n".join(lines),
                        notify_type=ntype, slo=a.slo, target=a.target, run_id=run_id,
                        summary=f"value {value}, objective {a.objective_text}")


def _inconclusive_notification(kind: AlertKind, a: AlertFacts, *, run_id: str,
                               report_path: str | None, platform: str) -> Notification:
    resolved = kind == "inconclusive_resolved"
    title = f"{_HEADS[kind]} warning: {a.slo} on {a.target}"
    first = ("dualbus measures this SLO again: this run's verdict is conclusive."
             if resolved else
             f"dualbus could not judge this SLO in {a.in_a_row or 'several'} runs in a row: "
             "the probe host could not measure without disturbing (docs/probes.md).")
    lines = [first,
             f"SLO: {a.slo} ({a.severity})",
             f"Target: {a.target}" + (f" ({a.scope})" if a.scope else ""),
             f"Objective: {a.objective_text}",
             f"Run: {run_id}",
             f"Report: {report_path or '-'}",
             f"Platform: {platform}"]
    if resolved and a.fired_at is not None:
        lines.append(f"Inconclusive since: {a.fired_at.isoformat(timespec='seconds')}")
    if a.reason and not resolved:
        lines.append(f"Reason: {a.reason}")
    return Notification(kind=kind, severity="warning", title=title, body="\n".join(lines),
                        notify_type="success" if resolved else "warning", slo=a.slo,
                        target=a.target, run_id=run_id,
                        summary=f"objective {a.objective_text}")


def grouped_notification(members: Sequence[Notification], *, platform: str, run_id: str,
                         report_path: str | None) -> Notification:
    """One message for what one run changed for one sink (Alertmanager-style grouping): the
    title counts what fires and what resolved, the body has one line per alert (its own
    title and value), then the run and the report."""
    firing = [n for n in members if n.kind not in _RESOLVES]
    resolved = [n for n in members if n not in firing]
    worst = "error" if any(n.severity == "error" for n in firing) else "warning"
    if firing:
        title = (f"FIRING {worst}: {len(firing)} alert{'s' * (len(firing) != 1)} on "
                 f"{platform}" + (f", {len(resolved)} resolved" if resolved else ""))
        ntype: NotifyType = "failure" if worst == "error" else "warning"
    else:
        title = f"RESOLVED: {len(resolved)} alerts on {platform}"
        ntype = "success"
    lines = []
    for n in [*firing, *resolved]:
        lines.append(f"- {n.title}" + (f" ({n.summary})" if n.summary else ""))
    lines += [f"Run: {run_id}", f"Report: {report_path or '-'}", f"Platform: {platform}"]
    return Notification(kind="group", severity=worst if firing else "warning", title=title,
                        body="\n".join(lines), notify_type=ntype, run_id=run_id)


def pipeline_failure_notification(platform: str, run_id: str, error: str, *,
                                  transition: str = "fired") -> Notification:
    """The pipeline-failure alert: `fired` (a run failed), `reminded` (runs still fail) or
    `resolved` (a run completed again; `error` is then the failure it ends)."""
    if transition == "resolved":
        return Notification(
            kind="pipeline", severity="error",
            title=f"RESOLVED error: pipeline run failed on {platform}",
            body="\n".join(["A dualbus run completed again: verdicts, report and alerts.",
                            f"Last failure: {error}", f"Run: {run_id}",
                            f"Platform: {platform}"]),
            notify_type="success", slo=PIPELINE_SLO, target=platform, run_id=run_id)
    head = "FIRING (reminder)" if transition == "reminded" else "FIRING"
    body = "\n".join([
        "The dualbus pipeline itself failed: this run's verdicts, report or alerts are "
        "missing.",
        f"Error: {error}",
        f"Run: {run_id}",
        f"Platform: {platform}",
    ])
    return Notification(kind="pipeline", severity="error",
                        title=f"{head} error: pipeline run failed on {platform}", body=body,
                        notify_type="failure", slo=PIPELINE_SLO, target=platform,
                        run_id=run_id)


def deadman_notification(resolved: bool, platform: str, *, last_success: datetime | None,
                         allowed_s: float, schedule: str,
                         reminder: bool = False) -> Notification:
    last = last_success.isoformat(timespec="seconds") if last_success else "never"
    if resolved:
        title = f"RESOLVED error: {DEADMAN_SLO} on {platform}"
        first = "Runs are completing again."
    else:
        head = "FIRING (reminder)" if reminder else "FIRING"
        title = f"{head} error: {DEADMAN_SLO} on {platform}"
        first = (f"No dualbus run has completed successfully within {_human(allowed_s)} "
                 f"(2x the schedule interval).")
    body = "\n".join([first, f"Last successful run: {last}", f"Schedule: {schedule}",
                      f"Platform: {platform}"])
    return Notification(kind="deadman", severity="error", title=title, body=body,
                        notify_type="success" if resolved else "failure", slo=DEADMAN_SLO,
                        target=platform)


def test_notification(platform: str) -> Notification:
    return Notification(kind="test", severity="warning",
                        title=f"TEST dualbus notification from {platform}",
                        body="This is a test from `dualbus alerts test`. If you can read it, "
                        "this sink receives dualbus alerts.", notify_type="info")


PIPELINE_SLO = "dualbus.pipeline"
DEADMAN_SLO = "dualbus.deadman"


def _human(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def sink_accepts(sink: AlertSink, n: Notification) -> bool:
    """min_severity always applies; slos/targets globs apply to SLO alerts only."""
    if SEVERITY_RANK.get(n.severity, 2) < SEVERITY_RANK[sink.min_severity]:
        return False
    if n.kind in ("pipeline", "deadman", "test", "group"):
        return True  # a group is built per sink from notifications it accepted
    if sink.slos is not None and not any(fnmatchcase(n.slo or "", g) for g in sink.slos):
        return False
    return sink.targets is None or any(fnmatchcase(n.target or "", g) for g in sink.targets)


def route(sinks: Sequence[AlertSink], n: Notification) -> list[tuple[int, AlertSink]]:
    return [(i, s) for i, s in enumerate(sinks) if sink_accepts(s, n)]


# Path segments that look like tokens (webhook ids, API keys) rather than words.
_TOKENISH = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_\-.~]{12,}$")


# Schemes whose host part is a real host name (everything else may carry a token there).
_HOST_SCHEMES = {"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos",
                 "ntfy", "ntfys", "apprise", "apprises", "gotify", "gotifys"}


def safe_sink_url(url: str) -> str:
    """The sink URL as shown and stored: password, query values and token-like path parts
    masked. Plugin-specific tokens (slack://T.../B.../...) are masked by Apprise's own
    privacy mode; if Apprise cannot say, everything but the scheme of a non-web URL is
    masked. dualbus never stores or prints the raw URL."""
    orig = urlsplit(url)
    private = _apprise_private(url)
    parts = urlsplit(private or url)
    # Raw split (not parse_qsl): Apprise header keys start with '+', which must stay visible.
    query = "&".join(f"{k}=***" if v else k
                     for k, _, v in (p.partition("=") for p in orig.query.split("&") if p))
    opaque = private is None and orig.scheme.lower() not in _HOST_SCHEMES
    path = "/".join("***" if seg and (opaque or _TOKENISH.match(seg)) else seg
                    for seg in parts.path.split("/"))
    netloc = parts.netloc
    if opaque:
        netloc = "***"
    elif "@" in netloc:
        user, _, host = netloc.rpartition("@")
        name = user.split(":", 1)[0]
        netloc = f"{name}:***@{host}" if ":" in user else f"{_mask_user(name)}@{host}"
    # Keep the scheme the user wrote (Apprise may normalise mailto:// to mailtos://).
    return mask_secrets(urlunsplit((orig.scheme, netloc, path.rstrip("/"), query, "")))


def _mask_user(user: str) -> str:
    # Some plugins carry the token in the user part (e.g. tgram://bottoken@...).
    return "***" if _TOKENISH.match(user) else user


_apprise_module: Any = None


def _apprise() -> Any:
    """Apprise, imported once with its plugins loaded. Its plugin loading imports the
    deprecated stdlib `imghdr`; under `-W error` (or pytest filterwarnings=error) that
    warning would break every send, so it is silenced for that one import."""
    global _apprise_module
    if _apprise_module is None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            import apprise

            apprise.Apprise.instantiate("json://localhost", suppress_exceptions=True)
        _apprise_module = apprise
    return _apprise_module


def _apprise_private(url: str) -> str | None:
    try:
        plugin = _apprise().Apprise.instantiate(url, suppress_exceptions=True)
        if not plugin:
            return None
        text = plugin.url(privacy=True)
    except Exception:  # masking must never fail: fall back to our own rules
        return None
    # Drop the defaults Apprise appends; keep only what the user wrote (masked above).
    return str(text).split("?", 1)[0]


def secret_parts(url: str) -> list[str]:
    """Every piece of `url` that its masked form hides (to scrub from error messages)."""
    safe = safe_sink_url(url)
    parts = urlsplit(url)
    pieces: list[str] = []
    if parts.password:
        pieces.append(parts.password)
    if parts.username:
        pieces.append(parts.username)
    pieces += [v for _, _, v in (p.partition("=") for p in parts.query.split("&"))]
    pieces += [v for _, v in parse_qsl(parts.query)]
    pieces += [seg for seg in parts.path.split("/")]
    pieces.append(parts.netloc.rpartition("@")[2].split(":")[0])  # .hostname lowercases
    return sorted({p for p in pieces if len(p) >= 4 and p not in safe}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """Remove every secret of `url` from `text` (an error message may quote the URL)."""
    text = text.replace(url, safe_sink_url(url))
    for piece in secret_parts(url):
        text = text.replace(piece, "***")
    return mask_secrets(text)


@dataclass(frozen=True)
class SendResult:
    ok: bool
    error: str | None = None


def send(url: str, n: Notification) -> SendResult:
    """One delivery attempt through Apprise, with short timeouts. Never raises."""
    apprise = _apprise()
    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    except Exception as exc:  # a broken URL is a delivery failure, not a crash
        return SendResult(False, scrub(f"not a usable Apprise URL: {exc}", url))
    if not plugin:
        return SendResult(False, f"not a supported Apprise URL: {safe_sink_url(url)}")
    query = dict(parse_qsl(urlsplit(url).query))
    if "cto" not in query and hasattr(plugin, "socket_connect_timeout"):
        plugin.socket_connect_timeout = CONNECT_TIMEOUT_S
    if "rto" not in query and hasattr(plugin, "socket_read_timeout"):
        plugin.socket_read_timeout = READ_TIMEOUT_S
    ap = apprise.Apprise()
    ap.add(plugin)
    try:
        with apprise.LogCapture(level=logging.WARNING) as logs:
            ok = bool(ap.notify(title=n.title, body=n.body, notify_type=n.notify_type,
                                body_format=apprise.NotifyFormat.TEXT))
            captured = logs.getvalue()
    except Exception as exc:  # a plugin bug must not fail the run
        return SendResult(False, scrub(f"{type(exc).__name__}: {exc}", url))
    if ok:
        return SendResult(True)
    lines = [ln.split(" - ", 2)[-1] for ln in captured.strip().splitlines() if ln.strip()]
    error = "; ".join(lines[-3:]) or "the sink did not accept the notification"
    return SendResult(False, scrub(error, url)[:500])
