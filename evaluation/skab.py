"""The SKAB layout: sub-folders of ``;``-separated CSV runs with an ``anomaly`` label column.

Each labelled file is one experiment (one edge node in the federated mode). Files without an
``anomaly`` column (SKAB's ``anomaly-free/``) hold no test labels and are listed as skipped,
not silently ignored. Files are read with the replay's own reader, so the evaluation sees the
values and timestamps ``fedge replay`` would publish.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from device_sim.csvio import read_recording
from device_sim.recording import Recording
from fedge.errors import FedgeError

LABEL = "anomaly"
_ILLEGAL = re.compile(r"[^A-Za-z0-9_.:-]")


class EvaluationError(FedgeError):
    """The data or the options cannot be evaluated; the message names what is wrong."""


@dataclass(frozen=True)
class Experiment:
    """One labelled run: ``name`` is its path under the data folder without ``.csv``."""

    name: str
    node: str  # its edge node's id (``valve1/0`` -> ``valve1-0``)
    recording: Recording
    anomaly: NDArray[np.bool_]  # (rows,), the ground truth per reading

    @property
    def rows(self) -> int:
        return self.recording.rows


@dataclass(frozen=True)
class Dataset:
    root: Path
    experiments: tuple[Experiment, ...]
    skipped: tuple[str, ...]  # files without an anomaly column, by name


def load(root: Path, min_rows: int) -> Dataset:
    """Every labelled run under ``root`` (sorted naturally: ``valve1/2`` before ``valve1/10``).

    ``min_rows``: a run shorter than this cannot give both a training and a test part.
    """
    if not root.is_dir():
        raise EvaluationError(f"{root} is not a directory (expected the SKAB data folder)")
    files = sorted(
        (
            p
            for p in root.rglob("*.csv")
            if not any(part.startswith(".") for part in p.relative_to(root).parts)
        ),
        key=lambda p: _natural(p.relative_to(root)),
    )
    if not files:
        raise EvaluationError(f"{root} holds no .csv files (expected SKAB's valve1/, valve2/ ...)")
    experiments: list[Experiment] = []
    skipped: list[str] = []
    for path in files:
        name = path.relative_to(root).with_suffix("").as_posix()
        recording = read_recording(path)
        if recording.labels is None or LABEL not in recording.label_names:
            skipped.append(name)
            continue
        if recording.rows < min_rows:
            raise EvaluationError(
                f"{path}: {recording.rows} rows, the protocol needs at least {min_rows}"
            )
        labels = recording.labels[:, recording.label_names.index(LABEL)]
        if labels.max(initial=0) > 1:
            raise EvaluationError(f"{path}: the {LABEL} column holds values other than 0 and 1")
        experiments.append(
            Experiment(name, _ILLEGAL.sub("_", name.replace("/", "-")), recording, labels == 1)
        )
    if not experiments:
        raise EvaluationError(f"no file under {root} has an {LABEL!r} column")
    return Dataset(root, tuple(experiments), tuple(skipped))


def _natural(path: Path) -> list[tuple[int, str]]:
    return [(int(t), "") if t.isdigit() else (0, t) for t in re.split(r"(\d+)", path.as_posix())]
