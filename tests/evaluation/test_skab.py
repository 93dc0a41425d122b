"""Loading the SKAB layout: which files are runs, how they are named, what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.skab import EvaluationError, load
from tests.device_sim.recordings import skab_dir
from tests.evaluation.skab_support import write_dataset, write_run


def test_runs_are_labelled_files_in_natural_order_and_unlabelled_ones_are_listed(
    tmp_path: Path,
) -> None:
    write_dataset(tmp_path, runs=3)
    write_run(tmp_path / "valve1" / "10.csv", seed=10)
    dataset = load(tmp_path, min_rows=430)
    assert [e.name for e in dataset.experiments] == [
        "valve1/0", "valve1/1", "valve1/2", "valve1/10",
    ]  # fmt: skip
    assert [e.node for e in dataset.experiments][-1] == "valve1-10"
    assert dataset.skipped == ("anomaly-free/anomaly-free",)
    first = dataset.experiments[0]
    assert first.anomaly.sum() == 100
    assert first.anomaly[520]
    assert not first.anomaly[519]


def test_the_shared_skab_folder_has_twenty_runs() -> None:
    dataset = load(skab_dir(), min_rows=430)
    assert len(dataset.experiments) == 20
    assert dataset.skipped == ("anomaly-free/anomaly-free",)
    assert all(e.recording.channels[0] == "Accelerometer1RMS" for e in dataset.experiments)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "holds no .csv files"),
        (lambda root: write_run(root / "a" / "0.csv", labels=False), "no file .* has an 'anomaly'"),
        (lambda root: write_run(root / "a" / "0.csv", rows=300), "300 rows, the protocol needs"),
    ],
)
def test_unusable_folders_are_refused_with_a_reason(
    tmp_path: Path, setup: object, message: str
) -> None:
    setup(tmp_path)  # type: ignore[operator]
    with pytest.raises(EvaluationError, match=message):
        load(tmp_path, min_rows=430)


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="is not a directory"):
        load(tmp_path / "nope", min_rows=430)


def test_labels_other_than_zero_and_one_are_refused(tmp_path: Path) -> None:
    path = write_run(tmp_path / "a" / "0.csv")
    path.write_bytes(path.read_bytes().replace(b";1.0;0.0\r\n", b";2.0;0.0\r\n", 1))
    with pytest.raises(EvaluationError, match="values other than 0 and 1"):
        load(tmp_path, min_rows=430)
