"""The ``fedge`` command line: discovery of subcommands, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fedge.broker import RunningBroker
from fedge.cli import build_parser, load_commands, main


def _fedge(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedge.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_registered_commands_are_discovered() -> None:
    """Subcommands come from the fedge.commands entry points, each with help text."""
    commands = load_commands()

    assert {"broker", "check", "bench"} <= set(commands)
    assert all(c.help for c in commands.values())


def test_loading_every_command_imports_neither_torch_nor_matplotlib() -> None:
    """The CLI loads every command at start-up: `fedge edge` on a device without torch must
    neither pay for torch nor fail on it, and no entry may be unavailable."""
    probe = (
        "import json, sys; from fedge.cli import load_commands; "
        "print(json.dumps({'names': sorted(load_commands()), "
        "'heavy': [m for m in ('torch', 'matplotlib') if m in sys.modules]}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(done.stdout)
    assert loaded["heavy"] == []
    assert {"aggregator", "edge", "evaluate", "demo"} <= set(loaded["names"])
    assert "unavailable" not in done.stderr, done.stderr


def test_every_command_takes_broker_and_config() -> None:
    """--broker and --config are accepted by every subcommand."""
    commands = load_commands()
    parser = build_parser(commands)

    positionals = {"bench": ["codec"], "evaluate": ["skab", "data/"]}
    for name in commands:
        extra = positionals.get(name, [])
        args = parser.parse_args([name, "--broker", "mqtt://h:1", "--config", "x.toml", *extra])
        assert args.broker == "mqtt://h:1"
        assert args.config == "x.toml"


def test_user_mistake_is_one_line_and_nonzero(tmp_path: Path) -> None:
    """A bad broker URL or config file ends in one stderr line, exit 2, no traceback."""
    bad_url = _fedge("check", "--broker", "http://example")
    missing = _fedge(
        "check", "--broker", "mqtt://127.0.0.1:1", "--config", str(tmp_path / "no.toml")
    )

    for result in (bad_url, missing):
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert "scheme must be mqtt:// or mqtts://" in bad_url.stderr
    assert "does not exist" in missing.stderr


def test_unreachable_broker_is_a_clear_error() -> None:
    """Pointing at a port with no broker fails in one line saying why."""
    result = _fedge("check", "--broker", "mqtt://127.0.0.1:1", "--timeout", "1")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "could not connect to mqtt://127.0.0.1:1" in result.stderr


def test_check_passes_against_a_real_broker(broker: RunningBroker) -> None:
    """`fedge check` round-trips frames through a running Mosquitto and rejects the hostile one."""
    result = _fedge("check", "--broker", str(broker.url))

    assert result.returncode == 0, result.stderr
    assert "100/100 frames" in result.stdout
    assert "hostile payloads rejected: 1" in result.stdout


def test_bench_codec_writes_json(tmp_path: Path) -> None:
    """`fedge bench codec --json` writes the envelope and the overhead figure."""
    out = tmp_path / "codec.json"

    assert main(["bench", "codec", "--json", str(out), "--params", "100000"]) == 0
    data = json.loads(out.read_text())
    assert data["benchmark"] == "codec"
    assert data["results"]["update_layered"]["overhead_percent"] < 1.0
