"""`fedge demo` options: flags over the [demo] table over the defaults; broker options refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.options import DemoOptions, demo_options
from fedge.cli import build_parser, load_commands
from fedge.errors import ConfigError


def _options(*argv: str, config: str | None = None, tmp_path: Path | None = None) -> DemoOptions:
    extra: list[str] = []
    if config is not None:
        assert tmp_path is not None
        path = tmp_path / "fedge.toml"
        path.write_text(config, encoding="utf-8")
        extra = ["--config", str(path)]
    return demo_options(build_parser(load_commands()).parse_args(["demo", *argv, *extra]))


def test_defaults_without_flags_or_file() -> None:
    """Nothing given: three nodes, two pumps each, three rounds, 30x, the default report."""
    options = _options()

    settings = options.settings
    assert (settings.nodes, settings.devices, settings.rounds, settings.speed) == (3, 2, 3, 30.0)
    assert options.report == Path("fedge-demo-report")
    assert (options.run_dir, options.keep, options.embedded_broker) == (None, False, False)
    assert (options.topic_prefix, options.protocol) == (None, None)


def test_flags_win_over_the_demo_table(tmp_path: Path) -> None:
    """The [demo] table fills what the flags leave out; [mqtt] may set the prefix."""
    config = """
[demo]
nodes = 4
rounds = 2
speed = 50
timeout = "2m"
report = "out"
keep = true
[mqtt]
topic_prefix = "site-a/fedge/v1"
"""
    options = _options("--nodes", "2", config=config, tmp_path=tmp_path)

    settings = options.settings
    assert (settings.nodes, settings.rounds, settings.speed, settings.timeout_s) == (
        2, 2, 50.0, 120.0,
    )  # fmt: skip
    assert (options.report, options.keep) == (Path("out"), True)
    assert options.topic_prefix == "site-a/fedge/v1"


@pytest.mark.parametrize(
    ("argv", "config", "message"),
    [
        (("--broker", "mqtt://h:1"), None, "config --broker: fedge demo runs its own"),
        (("--username", "u"), None, "config --username: fedge demo runs its own"),
        ((), '[mqtt]\nbroker = "mqtt://h:1"\n', "config mqtt.broker: fedge demo runs its own"),
        ((), "[demo]\nnode = 3\n", "config demo.node: unknown key"),
        ((), '[demo]\nnodes = "3"\n', "config nodes: '3' is not an integer"),
        ((), "[demo]\nspeed = true\n", "config speed: True is not a number"),
        (("--embedded-broker", "--mqtt-protocol", "5"), None, "speaks MQTT 3.1.1 only"),
        (("--topic-prefix", "a/+/b"), None, "config topic-prefix: topic prefix"),
        (("--rounds", "21"), None, "config rounds: 21 is outside 1-20"),
    ],
)
def test_bad_options_are_config_errors(
    argv: tuple[str, ...], config: str | None, message: str, tmp_path: Path
) -> None:
    """Every bad flag or table value is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        _options(*argv, config=config, tmp_path=tmp_path)
