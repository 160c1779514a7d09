"""`dualbus discover`: read the buses, write a starting `dualbus.yaml`.

`scan.py` reads each bus (read-only, bounded), `infer.py` turns consumer groups into engines,
`render.py` writes the topology with comments. No Dagster, no warehouse: the CLI wiring is
`commands/discover.py`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from string import Formatter
from urllib.parse import urlsplit

from pydantic import ValidationError

from dualbus_pipeline.config import Bus, Engine
from dualbus_pipeline.discover.infer import InferredEngine, infer_engines, normalise, unconsumed
from dualbus_pipeline.discover.render import render_topology
from dualbus_pipeline.discover.scan import (
    BusScan,
    BusTarget,
    BusUnreachable,
    StreamSeen,
    masked_url,
    scan_bus,
)
from dualbus_pipeline.errors import InputError

__all__ = ["BusTarget", "BusUnreachable", "Discovery", "check_template", "discover",
           "parse_targets", "render_topology"]

TEMPLATE_FIELDS = ("name", "port")


@dataclass(frozen=True)
class Discovery:
    scans: list[BusScan]
    engines: list[InferredEngine]
    lonely: list[tuple[str, StreamSeen]]

    def render(self, platform: str, health_url_template: str | None = None) -> str:
        return render_topology(platform, self.scans, self.engines, self.lonely,
                               health_url_template=health_url_template)


def _url_problem(url: str) -> str | None:
    try:
        Bus.model_validate({"name": "bus", "url": url})
    except ValidationError as exc:
        msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        if "@" in urlsplit(url).path:
            msg += " (a password holding '/', '@', ':' or '%' must be URL-encoded)"
        return f"bus URL {masked_url(url)!r}: {msg}"
    return None


def _names_from_hosts(urls: list[str]) -> list[str]:
    """``bus1``, ``bus2``… unless every URL has a distinct DNS host (``redis-md.prod`` →
    ``redis_md``)."""
    names = []
    for url in urls:
        host = urlsplit(url).hostname or ""
        try:
            ipaddress.ip_address(host)
            names.append("")
        except ValueError:
            names.append("" if host == "localhost" else normalise(host.split(".")[0]))
    if all(names) and len(set(names)) == len(names):
        return names
    return [f"bus{i}" for i in range(1, len(urls) + 1)]


def parse_targets(urls: list[str], bus_names: str | None = None) -> list[BusTarget]:
    """The buses to read; InputError (one line per problem, passwords masked) if any is bad."""
    problems = [p for p in (_url_problem(u) for u in urls) if p]
    if bus_names is not None:
        names = [n.strip() for n in bus_names.split(",")]
        if len(names) != len(urls):
            problems.append(f"--bus-names: {len(names)} name(s) for {len(urls)} URL(s) "
                            f"(got {bus_names!r})")
        for n in names:
            if not re.fullmatch(r"[a-z0-9_]{1,64}", n):
                problems.append(f"--bus-names: {n!r} is not a name: use [a-z0-9_]+")
        if len(set(names)) != len(names):
            problems.append(f"--bus-names: names must be unique (got {bus_names!r})")
    else:
        names = _names_from_hosts(urls)
    if problems:
        raise InputError(problems)
    return [BusTarget(name=n, url=u) for n, u in zip(names, urls, strict=True)]


def check_template(template: str) -> str | None:
    """A problem with ``--health-url-template``, or None."""
    fields = {f for _, f, _, _ in Formatter().parse(template) if f is not None}
    unknown = sorted(fields - set(TEMPLATE_FIELDS))
    if unknown:
        return (f"--health-url-template: unknown field {{{unknown[0]}}} "
                f"(allowed: {{name}}, {{port}}) (got {template!r})")
    sample = template.replace("{name}", "engine").replace("{port}", "8000")
    parts = urlsplit(sample)
    try:
        Engine.model_validate({"name": "e", "url": f"{parts.scheme}://{parts.netloc}",
                               "health_path": parts.path or "/health", "bus": "b",
                               "stream": "s", "group": "g"})
    except ValidationError as exc:
        msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        return f"--health-url-template: {msg} (got {template!r})"
    return None


def discover(targets: list[BusTarget], *, timeout_s: float = 2.0, max_streams: int = 500,
             max_keys: int = 1_000_000) -> Discovery:
    """Read every bus (raise BusUnreachable at the first that cannot be read), then infer."""
    scans = [scan_bus(t, timeout_s=timeout_s, max_streams=max_streams, max_keys=max_keys)
             for t in targets]
    return Discovery(scans=scans, engines=infer_engines(scans), lonely=unconsumed(scans))
