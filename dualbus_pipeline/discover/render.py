"""The starting `dualbus.yaml` that `dualbus discover` writes: YAML by hand, with comments.

PyYAML cannot write comments, and the comments are the point (what was inferred, how sure,
what to fill in), so lines are written here and every scalar goes through `scalar`, which
keeps a value plain only when YAML reads it back as the same string, else double-quotes it
(JSON string syntax is YAML). Placeholders are `${VAR}` texts: `dualbus validate` names each
one still unset ("environment variable 'ENGINE_RISK_URL' is not set"), one line each.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import yaml

from dualbus_pipeline.discover.infer import InferredEngine
from dualbus_pipeline.discover.scan import BusScan, BusTarget, StreamSeen, replace_password

HEADER = """\
# dualbus.yaml written by `dualbus discover` from {buses} (read-only: SCAN, XINFO GROUPS,
# XINFO CONSUMERS; nothing was written to the buses). One engine per consumer group.
# Beside each inference, how sure it is:
#   sure   - the group's name and its consumers' names agree
#   likely - from the group's name alone
#   check  - guessed from consumer or stream names: rename as you see fit
# Before `dualbus validate --config THIS_FILE`: export every ${{VAR}} below (engine health
# URLs{passwords}) or write the value in its place; add pairs (docs/probes.md).
# Reference: docs/configuration.md.
"""


def scalar(value: str, *, flow: bool = False) -> str:
    """``value`` as a YAML scalar: plain when it reads back as itself, else double-quoted."""
    if value and value == value.strip() and not (flow and any(c in value for c in ",[]{}")):
        try:
            if yaml.safe_load(value) == value and "#" not in value:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value, ensure_ascii=False)


def comment(text: str) -> str:
    return re.sub(r"[\r\n]+", " ", text)


def env_name(prefix: str, name: str, what: str) -> str:
    return f"{prefix}_{name.upper()}_{what}"


def bus_url(target: BusTarget) -> tuple[str, str | None]:
    """The bus URL for the file (password → ``${BUS_<NAME>_PASSWORD}``) and that variable."""
    var = env_name("BUS", target.name, "PASSWORD")
    url, had = replace_password(target.url, f"${{{var}}}")
    return url, var if had else None


def engine_url(name: str, template: str | None) -> tuple[str, str, str]:
    """(url, health_path, comment) for an engine: a ``${ENGINE_<NAME>_URL}`` placeholder, or
    the template with ``{name}`` filled and ``{port}`` left as ``${ENGINE_<NAME>_PORT}``."""
    if template is None:
        var = env_name("ENGINE", name, "URL")
        return (f"${{{var}}}", "/health",
                f"fill in: export {var}=http://host:port or write it")
    port_var = env_name("ENGINE", name, "PORT")
    filled = template.replace("{name}", name).replace("{port}", f"${{{port_var}}}")
    parts = urlsplit(filled)
    path = (parts.path or "/health") + (f"?{parts.query}" if parts.query else "")
    note = "from --health-url-template"
    if "{port}" in template:
        note += f"; the port is unknown: export {port_var} or write it here"
    return f"{parts.scheme}://{parts.netloc}", path, note


def render_topology(platform: str, scans: list[BusScan], engines: list[InferredEngine],
                    lonely: list[tuple[str, StreamSeen]], *,
                    health_url_template: str | None = None) -> str:
    lines: list[str] = []
    urls = [bus_url(s.target) for s in scans]
    passwords = [var for _, var in urls if var]
    lines += HEADER.format(
        buses=f"{len(scans)} bus{'es' if len(scans) != 1 else ''}",
        passwords=", bus passwords" if passwords else "").splitlines()
    lines += [f"platform: {scalar(platform)}", "", "buses:"]
    for scan, (url, var) in zip(scans, urls, strict=True):
        lines += [f"  # {comment(_bus_summary(scan))}"]
        if scan.capped:
            lines += [f"  # INCOMPLETE: {comment(scan.capped)}"]
        if var:
            lines += [f"  # the password is not written here: export {var}"]
        lines += [f"  - name: {scan.target.name}", f"    url: {scalar(url)}"]
    lines += [""]
    lines += _engines(engines, health_url_template)
    lines += [""]
    lines += _lonely(lonely)
    lines += _pairs(engines)
    return "\n".join(lines) + "\n"


def _bus_summary(scan: BusScan) -> str:
    t = scan.target
    host = urlsplit(t.url)
    where = f"{host.hostname}:{host.port or 6379}" if host.hostname else t.shown
    groups = sum(len(s.groups) for s in scan.streams)
    out = (f"{where}: {len(scan.streams)} stream{'s' if len(scan.streams) != 1 else ''}, "
           f"{groups} consumer group{'s' if groups != 1 else ''}")
    skipped = []
    if scan.skipped_probe:
        skipped.append(f"{scan.skipped_probe} dualbus:probe:* key(s)")
    if scan.skipped_undecodable:
        skipped.append(f"{scan.skipped_undecodable} name(s) not UTF-8")
    if scan.vanished:
        skipped.append(f"{scan.vanished} stream(s) deleted while read")
    return out + (f"; skipped {', '.join(skipped)}" if skipped else "")


def _engines(engines: list[InferredEngine], template: str | None) -> list[str]:
    if not engines:
        return ["# No consumer group on any bus: no engine could be inferred. Add engines by",
                "# hand (docs/configuration.md).", "engines: []"]
    out = ["engines:"]
    for e in engines:
        url, path, note = engine_url(e.name, template)
        own = e.own
        out += [f"  # {comment(e.how)}; {e.sureness}"]
        if len(e.reads) > 1:
            out += [f"  # reads {len(e.reads)} streams on {', '.join(e.buses)}; its own (where "
                    "pair round trips reach it) is a guess: the first"]
        out += [f"  - name: {e.name}",
                f"    title: {scalar(e.name.replace('_', ' ').title())}",
                f"    url: {scalar(url)}  # {comment(note)}",
                f"    health_path: {scalar(path)}"
                + ("  # the default; change it if the engine serves health elsewhere"
                   if template is None else ""),
                f"    bus: {own.bus}",
                f"    stream: {scalar(own.stream)}",
                f"    group: {scalar(e.group)}"]
        if len(e.reads) > 1:
            out += ["    streams:"]
            out += [f"      - {{bus: {r.bus}, stream: {scalar(r.stream, flow=True)}, "
                    f"group: {scalar(e.group, flow=True)}}}" for r in e.reads]
    return out


def _lonely(lonely: list[tuple[str, StreamSeen]]) -> list[str]:
    if not lonely:
        return []
    out = ["# Streams nobody consumes as a group (no consumer group: read with XREAD or XRANGE,",
           "# or by nobody). If an engine reads one through a group, add it to its streams:"]
    for bus, s in lonely:
        size = f" ({s.length} entr{'y' if s.length == 1 else 'ies'})" \
            if s.length is not None else ""
        out.append(f"#   {bus}: {comment(json.dumps(s.name, ensure_ascii=False))}{size}")
    return [*out, ""]


def _pairs(engines: list[InferredEngine]) -> list[str]:
    out = ["# Cross-engine round trips: only between engines that speak the dualbus probe",
           "# protocol (docs/probes.md), on one bus, for example:"]
    by_bus: dict[str, list[str]] = {}
    for e in engines:
        by_bus.setdefault(e.own.bus, []).append(e.name)
    example = next((names[:2] for names in by_bus.values() if len(names) > 1), None)
    out.append(f"#   - {{from: {example[0]}, to: {example[1]}}}" if example
               else "#   - {from: engine_a, to: engine_b}")
    return [*out, "pairs: []"]
