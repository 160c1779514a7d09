"""`dualbus discover` without a bus: names inferred, YAML scalars, masking, bad arguments."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dualbus_pipeline.cli import main
from dualbus_pipeline.discover.infer import Consumed, infer_engines, name_for
from dualbus_pipeline.discover.render import scalar
from dualbus_pipeline.discover.scan import (
    BusScan,
    BusTarget,
    GroupSeen,
    StreamSeen,
    masked_url,
    replace_password,
)


def reads(group: str, *consumers: str, stream: str = "s") -> list[Consumed]:
    return [Consumed("b", stream, GroupSeen(group, consumers, len(consumers), 0))]


@pytest.mark.parametrize(("group", "consumers", "stream", "expected"), [
    ("risk-group", ("risk-1", "risk-2"), "s", ("risk", "sure")),
    ("Risk_Group", ("risk-engine-a", "risk-engine-b"), "s", ("risk", "sure")),
    ("pricing.consumers", ("px-1",), "s", ("pricing", "likely")),
    ("hedger-cg", (), "s", ("hedger", "likely")),
    ("workers", ("settle-7f9c2",), "s", ("settle", "check")),
    ("default", (), "nautilus-fills-streams", ("nautilus_fills", "check")),
    ("cg", ("1", "2"), "orders.in", ("orders", "check")),
])
def test_engine_name_and_how_sure(group: str, consumers: tuple[str, ...], stream: str,
                                  expected: tuple[str, str]) -> None:
    name, how, sureness = name_for(group, reads(group, *consumers, stream=stream))
    assert (name, sureness) == expected
    assert repr(group) in how


def test_names_are_unique_and_valid_and_the_own_stream_is_the_named_one() -> None:
    def groups(*names: str) -> tuple[GroupSeen, ...]:
        return tuple(GroupSeen(n, (), 0, 0) for n in names)

    scan = BusScan(target=BusTarget("b", "redis://h:1/0"), streams=[
        StreamSeen("audit", 1, groups("fills-group")),
        StreamSeen("fills.in", 1, groups("fills-group", "Fills_Group", "7x-group"))])
    engines = infer_engines([scan])
    assert [(e.name, e.group, e.sureness) for e in engines] == [
        ("7x", "7x-group", "likely"), ("fills", "Fills_Group", "likely"),
        ("fills_2", "fills-group", "check")]
    assert "renamed 'fills_2'" in engines[2].how
    assert [r.stream for r in engines[2].reads] == ["fills.in", "audit"]


@pytest.mark.parametrize("value", ["orders.in", "weird: #name", "yes", "123", "null", " pad",
                                   "a,b{c}", "line\nbreak", "${X}", "@at", "ünïcode", ""])
def test_scalars_read_back_as_themselves(value: str) -> None:
    assert yaml.safe_load(f"k: {scalar(value)}") == {"k": value}
    assert yaml.safe_load(f"k: {{v: {scalar(value, flow=True)}}}") == {"k": {"v": value}}
    if value == "orders.in":
        assert scalar(value) == "orders.in"  # plain when that is safe


def test_passwords_are_masked_even_in_urls_too_malformed_to_parse() -> None:
    assert masked_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert masked_url("rediss://user:p/w@h:1/0?ssl_cert_reqs=none") == \
        "rediss://user:***@h:1/0?ssl_cert_reqs=none"
    assert masked_url("redis://h:1/0") == "redis://h:1/0"
    assert replace_password("redis://u:x@h/0", "${P}") == ("redis://u:${P}@h/0", True)
    assert BusTarget("b", "redis://:p%40ss@h:1/0").scrub("AUTH p@ss p%40ss") == "AUTH *** ***"


def test_bad_arguments_exit_2_one_line_each_password_masked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "dualbus.yaml"
    existing.write_text("keep me\n")
    rc = main(["discover", "redis://:hunter2@h:99999/0", "redis://:hun/ter2@h:1/0",
               "--bus-names", "md", "--health-url-template", "http://{name}/{host}",
               "--max-streams", "0", "--platform", " ", "-o", str(existing)])
    err = capsys.readouterr().err.splitlines()
    assert rc == 2
    assert err == [
        "bus URL 'redis://:***@h:99999/0': URL port must be a number between 1 and 65535",
        "bus URL 'redis://:***@h:1/0': URL has no host (a password holding '/', '@', ':' or "
        "'%' must be URL-encoded)",
        "--bus-names: 1 name(s) for 2 URL(s) (got 'md')",
        "--health-url-template: unknown field {host} (allowed: {name}, {port}) "
        "(got 'http://{name}/{host}')",
        "--max-streams: must be greater than 0 (got 0)",
        "--platform: must not be empty",
        f"{existing}: already exists (use --force to overwrite it)"]
    assert existing.read_text() == "keep me\n"
    assert main(["discover", "redis://h:1/0", "--health-url-template",
                 "http://{name}/health"]) == 2
    assert capsys.readouterr().err.strip() == (
        "--health-url-template: URL needs an explicit port (for example "
        "http://localhost:8200) (got 'http://{name}/health')")
