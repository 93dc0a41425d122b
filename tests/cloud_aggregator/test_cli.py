"""``fedge aggregator`` on the command line: a bad [aggregator] table is a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedge.cli import EXIT_USAGE, main


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ('strategy = "fedmagic"', "unknown strategy 'fedmagic'"),
        ("min_nodes = 0", "aggregator.min_nodes"),
        ("colour = 1", "colour"),
    ],
)
def test_a_bad_aggregator_table_is_refused_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, named: str
) -> None:
    """The command exits with the usage code and names the bad key; no broker is needed."""
    config = tmp_path / "fedge.toml"
    config.write_text(f"[aggregator]\n{table}\n", encoding="utf-8")
    code = main(["aggregator", "--config", str(config), "--broker", "mqtt://127.0.0.1:9"])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("fedge aggregator: error:")
    assert named in err
