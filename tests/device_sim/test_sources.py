"""Which files replay plays, and as which node and device (the documented directory rule)."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_sim.csvio import read_recording
from device_sim.sources import NodeRule, assign, find_files
from fedge.errors import ConfigError, FedgeError
from tests.device_sim.recordings import write

SKAB_ROW = "datetime;a\n2020-03-09 10:14:33;1\n"
FEDGE_ROW = "timestamp,a\n1,1\n"


def _tree(root: Path, text: str = SKAB_ROW) -> Path:
    for rel in ("valve1/0.csv", "valve1/1.csv", "valve2/0.csv", "top.csv", ".hidden/x.csv"):
        write(root / rel, text)
    write(root / "notes.txt", "not a recording")
    return root


def _ids(paths: list[Path], rule: str) -> list[tuple[str, str, str]]:
    files = find_files(paths)
    sources = assign(files, [read_recording(f.path) for f in files], NodeRule.parse(rule))
    return [(s.node, s.device, s.recording.path.name) for s in sources]


def test_per_file_makes_each_file_a_node_named_by_its_relative_path(tmp_path: Path) -> None:
    """per-file (auto for SKAB): valve1/0.csv -> node and device valve1-0; hidden skipped."""
    root = _tree(tmp_path / "skab")

    ids = _ids([root], "auto")

    assert ids == [
        ("top", "top", "top.csv"),
        ("valve1-0", "valve1-0", "0.csv"),
        ("valve1-1", "valve1-1", "1.csv"),
        ("valve2-0", "valve2-0", "0.csv"),
    ]


def test_per_folder_makes_each_folder_a_node(tmp_path: Path) -> None:
    """per-folder: node = folder under PATH (PATH's own name at the top), device = file name."""
    root = _tree(tmp_path / "skab")

    ids = _ids([root], "per-folder")

    assert ids == [
        ("skab", "top", "top.csv"),
        ("valve1", "0", "0.csv"),
        ("valve1", "1", "1.csv"),
        ("valve2", "0", "0.csv"),
    ]


def test_single_puts_every_file_on_one_node(tmp_path: Path) -> None:
    """single:NAME: one node for all, devices named by relative path."""
    root = _tree(tmp_path / "skab")

    ids = _ids([root], "single:edge-1")

    assert {node for node, _, _ in ids} == {"edge-1"}
    assert [device for _, device, _ in ids] == ["top", "valve1-0", "valve1-1", "valve2-0"]


def test_auto_uses_folders_for_a_fedge_recording(tmp_path: Path) -> None:
    """A tree of fedge CSV files (what `fedge record` writes) replays as node/device again."""
    write(tmp_path / "rec" / "n1" / "pump-1.csv", FEDGE_ROW)
    write(tmp_path / "rec" / "n2" / "fan.csv", FEDGE_ROW)

    ids = _ids([tmp_path / "rec"], "auto")

    assert ids == [("n1", "pump-1", "pump-1.csv"), ("n2", "fan", "fan.csv")]


def test_a_file_given_directly_is_named_by_its_name(tmp_path: Path) -> None:
    """A file PATH is its own root: device = file name; per-folder node = its folder's name."""
    path = write(tmp_path / "valve1" / "0.csv", SKAB_ROW)

    assert _ids([path], "auto") == [("0", "0", "0.csv")]
    assert _ids([path], "per-folder") == [("valve1", "0", "0.csv")]


def test_illegal_characters_become_underscores(tmp_path: Path) -> None:
    """Spaces, '+' and '#' cannot be in a topic level, so they are replaced."""
    write(tmp_path / "d" / "run 1+2#x.csv", SKAB_ROW)

    assert _ids([tmp_path / "d"], "auto") == [("run_1_2_x", "run_1_2_x", "run 1+2#x.csv")]


def test_two_files_with_one_identity_are_an_error(tmp_path: Path) -> None:
    """Two files that would play as the same device on the same node name both files."""
    a = write(tmp_path / "valve1" / "0.csv", SKAB_ROW)
    b = write(tmp_path / "valve2" / "0.csv", SKAB_ROW)

    with pytest.raises(FedgeError, match=r"0\.csv: would play as device '0' on node '0', like"):
        _ids([a, b], "auto")


def test_path_problems_are_clear(tmp_path: Path) -> None:
    """No PATH, a missing PATH, a folder without CSV files and a bad rule are one-line errors."""
    (tmp_path / "empty").mkdir()

    with pytest.raises(FedgeError, match="give at least one CSV file or directory"):
        find_files([])
    with pytest.raises(FedgeError, match="nope: no such file or directory"):
        find_files([tmp_path / "nope"])
    with pytest.raises(FedgeError, match=r"empty: is a directory without any \.csv file"):
        find_files([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="--nodes"):
        NodeRule.parse("per-day")
    with pytest.raises(ConfigError, match="--nodes"):
        NodeRule.parse("single:a/b")
