"""The topology file (``dualbus.yaml``) → frozen pydantic models.

Owns: the schema of dualbus.yaml, `${VAR}` expansion, cross-checks between sections, and where
the config/warehouse/SLO/template paths resolve to. Nothing here touches the network.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dualbus_pipeline.errors import ConfigError

# The tunable sections live in settings.py; re-exported here, the one place users import from.
from dualbus_pipeline.settings import (
    NAME_RE,
    Alerting,
    AlertSink,
    Baseline,
    EngineCapacity,
    Fault,
    HealthCheck,
    Name,
    ProbeSettings,
    Scoring,
    Severity,
    StackSettings,
    _Model,
    parse_duration_s,
)
from dualbus_pipeline.sharding import Vantage, vantage_problems
from dualbus_pipeline.yamlsrc import dotted, load_yaml, mask_secrets, validation_problems

__all__ = [
    "NAME_RE", "AlertSink", "Alerting", "Baseline", "Bus", "Engine", "EngineCapacity", "Fault",
    "HealthCheck",
    "LoadedConfig", "Name", "Pair", "ProbeSettings", "Scoring", "Severity", "StackSettings",
    "Topology", "default_config_path", "load_config", "mask_secrets", "parse_duration_s",
    "shipped_dir",
]

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_DIR = PACKAGE_DIR / "_shipped"  # present in a wheel install (pyproject force-include)
SOURCE_ROOT = PACKAGE_DIR.parent  # the repository root in an editable/source checkout


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ValueError(f"must be a {' or '.join(s + '://' for s in schemes)} URL")
    if not parts.hostname:
        raise ValueError("URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("URL port must be a number between 1 and 65535") from None
    if port is None and parts.scheme in ("http", "https"):
        raise ValueError("URL needs an explicit port (for example http://localhost:8200)")
    return value


class Bus(_Model):
    name: Name
    title: str = ""
    url: str
    vantage: Name | None = None  # the vantage whose shard probes it (sharding.py)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        from dualbus_pipeline.probes.resp import TlsOptions

        parts = urlsplit(_check_url(v, ("redis", "rediss")))
        if parts.query:
            if parts.scheme != "rediss":
                raise ValueError("TLS parameters (ssl_*) need a rediss:// URL")
            opts = TlsOptions.from_query(parts.query)
            for name, path in (("ssl_ca_certs", opts.ca_certs),
                               ("ssl_certfile", opts.certfile), ("ssl_keyfile", opts.keyfile)):
                if path is not None and not Path(path).is_file():
                    raise ValueError(f"{name}: file not found: {path}")
        return v

    @property
    def display(self) -> str:
        return self.title or self.name

    @property
    def safe_url(self) -> str:
        return mask_secrets(self.url)

    @property
    def tls(self) -> bool:
        return self.url.startswith("rediss://")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "localhost"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 6379


def _not_probe_key(v: str) -> str:
    if v.startswith("dualbus:probe:"):
        raise ValueError("the dualbus:probe: namespace is reserved for probe keys")
    return v


class StreamRef(_Model):
    """A stream and consumer group an engine reads, on one bus (consumer health, §4.1)."""

    bus: Name
    stream: str = Field(min_length=1)
    group: str = Field(min_length=1)

    @field_validator("stream", "group")
    @classmethod
    def _not_probe_namespace(cls, v: str) -> str:
        return _not_probe_key(v)


class Engine(_Model):
    """An engine: its health endpoint, its own stream (`bus`/`stream`/`group`: where pair
    round trips reach it) and the streams it consumes (`streams:`, default: its own)."""

    name: Name
    title: str = ""
    url: str
    health_path: str = "/health"
    bus: Name
    stream: str = Field(min_length=1)
    group: str = Field(min_length=1)
    streams: list[StreamRef] | None = Field(None, min_length=1)
    # what its health response means (the top-level `health:` merged under the engine's own)
    health: HealthCheck = HealthCheck()
    vantage: Name | None = None  # the vantage whose shard probes it (sharding.py)

    @model_validator(mode="before")
    @classmethod
    def _own_stream_from_streams(cls, data: Any) -> Any:
        """`streams:` alone: the first one is the engine's own stream."""
        if isinstance(data, dict) and isinstance(data.get("streams"), list) and \
                data["streams"] and isinstance(data["streams"][0], dict):
            first = data["streams"][0]
            data = {**data}
            for key in ("bus", "stream", "group"):
                if key not in data and key in first:
                    data[key] = first[key]
        return data

    @property
    def consumed(self) -> list[StreamRef]:
        """The streams whose consumer health is read for this engine."""
        if self.streams:
            return list(self.streams)
        return [StreamRef(bus=self.bus, stream=self.stream, group=self.group)]

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v.rstrip("/"), ("http", "https"))

    @field_validator("health_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must start with '/'")
        return v

    @field_validator("stream", "group")
    @classmethod
    def _not_probe_namespace(cls, v: str) -> str:
        return _not_probe_key(v)

    @property
    def display(self) -> str:
        return self.title or self.name

    @property
    def health_url(self) -> str:
        return self.url + self.health_path

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "localhost"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80


class Pair(_Model):
    from_: Name = Field(alias="from")
    to: Name
    vantage: Name | None = None  # default: its `from` engine's (sharding.py)

    @property
    def key(self) -> str:
        return f"{self.from_}->{self.to}"


class Topology(_Model):
    platform: str = Field(min_length=1)
    health: HealthCheck = HealthCheck()  # every engine's default (probes/health.py)
    buses: list[Bus] = Field(min_length=1)
    engines: list[Engine] = Field(default_factory=list)
    pairs: list[Pair] = Field(default_factory=list)
    probe: ProbeSettings = ProbeSettings()
    schedule: str = "*/15 * * * *"
    timezone: str = "UTC"
    alerts: list[AlertSink] = Field(default_factory=list)
    alerting: Alerting = Alerting()
    baseline: Baseline = Baseline()
    scoring: Scoring = Scoring()
    warehouse: str = "warehouse/dualbus.duckdb"
    stack: StackSettings = StackSettings()
    vantages: list[Vantage] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _engine_health(cls, data: Any) -> Any:
        """Each engine's `health:` keys override the top-level `health:` default."""
        if not isinstance(data, dict) or not isinstance(data.get("health"), dict) or \
                not isinstance(data.get("engines"), list):
            return data
        try:
            HealthCheck.model_validate(data["health"])
        except ValidationError:
            return data  # reported once, at `health`, not again under every engine
        engines = [({**e, "health": {**data["health"], **(e.get("health") or {})}}
                    if isinstance(e, dict) and isinstance(e.get("health") or {}, dict) else e)
                   for e in data["engines"]]
        return {**data, "engines": engines}

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError("must be a 5-field cron expression like '*/15 * * * *'")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Topology:
        problems: list[str] = []
        _unique(problems, "buses", [b.name for b in self.buses])
        _unique(problems, "engines", [e.name for e in self.engines])
        bus_names = {b.name for b in self.buses}
        engine_names = {e.name for e in self.engines}
        for i, e in enumerate(self.engines):
            if e.bus not in bus_names:
                problems.append(
                    f"engines[{i}].bus: unknown bus {e.bus!r} "
                    f"(declared buses: {', '.join(sorted(bus_names))})"
                )
            for j, ref in enumerate(e.streams or []):
                if ref.bus not in bus_names:
                    problems.append(
                        f"engines[{i}].streams[{j}].bus: unknown bus {ref.bus!r} "
                        f"(declared buses: {', '.join(sorted(bus_names))})")
        seen_ports: dict[tuple[str, int], str] = {}
        for i, e in enumerate(self.engines):
            key = (e.host, e.port)
            if key in seen_ports:
                problems.append(
                    f"engines[{i}].url: {e.host}:{e.port} is already used by engine "
                    f"{seen_ports[key]!r}"
                )
            seen_ports[key] = e.name
        for i, p in enumerate(self.pairs):
            for side, name in (("from", p.from_), ("to", p.to)):
                if name not in engine_names:
                    problems.append(f"pairs[{i}].{side}: unknown engine {name!r}")
            if p.from_ == p.to:
                problems.append(f"pairs[{i}]: an engine cannot be paired with itself")
            elif p.from_ in engine_names and p.to in engine_names:
                a, b = self.engine(p.from_), self.engine(p.to)
                if a.bus != b.bus:
                    problems.append(
                        f"pairs[{i}]: {a.name!r} is on bus {a.bus!r} but {b.name!r} is on "
                        f"{b.bus!r}; a round trip forwards over one bus, so both engines "
                        "must consume from the same bus")
        for name in self.stack.faults:
            if name not in engine_names:
                problems.append(f"stack.faults.{name}: unknown engine {name!r}")
        problems += vantage_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def engine(self, name: str) -> Engine:
        for e in self.engines:
            if e.name == name:
                return e
        raise KeyError(name)

    def bus(self, name: str) -> Bus:
        for b in self.buses:
            if b.name == name:
                return b
        raise KeyError(name)


def _unique(problems: list[str], section: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            problems.append(f"{section}[{i}].name: duplicate name {n!r} (names must be unique)")
        seen.add(n)


class LoadedConfig(BaseModel):
    """A validated topology plus where it came from (paths resolve relative to the file)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    path: Path
    topology: Topology

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def warehouse_path(self, override: str | Path | None = None) -> Path:
        raw = Path(override) if override is not None else Path(self.topology.warehouse)
        return raw if raw.is_absolute() else (
            Path.cwd() / raw if override is not None else self.base_dir / raw)


def default_config_path() -> Path:
    env = os.environ.get("DUALBUS_CONFIG")
    if env:
        return Path(env)
    local = Path("dualbus.yaml")
    if local.exists():
        return local
    for candidate in (SOURCE_ROOT / "dualbus.yaml", SHIPPED_DIR / "dualbus.yaml"):
        if candidate.exists():
            return candidate
    return local


def shipped_dir(name: str) -> Path:
    """Where the shipped `slo/` or `templates/` live: source checkout first, then the wheel."""
    for candidate in (SOURCE_ROOT / name, SHIPPED_DIR / name):
        if candidate.is_dir():
            return candidate
    return SOURCE_ROOT / name


def load_config(path: str | Path | None = None) -> LoadedConfig:
    """Load and validate a topology file; raise ConfigError listing every problem."""
    p = Path(path) if path is not None else default_config_path()
    shown = str(path) if path is not None else str(p)
    doc = load_yaml(p, shown_as=shown)
    if doc.problems and doc.data is None:
        raise ConfigError(doc.problems)
    if not isinstance(doc.data, dict):
        raise ConfigError([*doc.problems, f"{shown}: (top level): must be a mapping of keys "
                                          "(platform, buses, engines, ...)"])
    problems = list(doc.problems)
    try:
        topo = Topology.model_validate(doc.data)
    except ValidationError as exc:
        problems += _config_problems(exc, doc, shown)
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(path=p.resolve(), topology=topo)


def _config_problems(exc: ValidationError, doc: object, shown: str) -> list[str]:
    from dualbus_pipeline.yamlsrc import YamlDoc

    assert isinstance(doc, YamlDoc)
    out: list[str] = []
    # A value whose variable is unset was already named; its validation error says no more.
    said = tuple(f"{shown}: {dotted(loc)}: " for loc in doc.unset)
    for line in validation_problems(exc, doc, Topology, shown_as=shown, with_line=False):
        if said and line.startswith(said):
            continue
        # Cross-checks raise one ValueError holding several "path: message" lines.
        head, _, rest = line.partition(": (top level): ")
        if rest:
            for sub in rest.split("\n"):
                sub = re.sub(r" \(got .*\)$", "", sub) if sub.count("(got") else sub
                out.append(f"{head}: {sub}")
        else:
            out.append(line)
    return out
