"""The registry: content-addressed versions, idempotent updates, atomic commits, crash recovery."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cloud_aggregator.registry import (
    Registry,
    RegistryError,
    SchemaVersionError,
    StrategyState,
)
from fedge.models import ModelSpec
from fedge.wire import GlobalModel, ModelUpdate

ROOT = Path(__file__).resolve().parents[2]
MODEL = "pump"
SPEC = ModelSpec("dense_ae", window=16, channels=8)
# Deliberately not in sorted order: a version must come back in its own order.
SHAPES = {"enc.0.weight": (32, 8), "enc.0.bias": (32,), "dec.weight": (8, 32)}


class StepClock:
    """A clock that advances one second per reading, so every row gets its own time."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _arrays(scale: float) -> dict[str, np.ndarray]:
    return {
        name: np.linspace(0.0, scale, int(np.prod(shape)), dtype=np.float32).reshape(shape)
        for name, shape in SHAPES.items()
    }


def _global(version: int, parent: int | None, scale: float = 1.0) -> GlobalModel:
    return GlobalModel(
        model=MODEL,
        version=version,
        arrays=_arrays(scale),
        onnx=b"\x08\x07onnx-graph\x00",
        architecture=SPEC.to_plain(),
        parent_version=parent,
        metrics={"loss": 0.5 / (version + 1)},
        created_at=100.0 + version,
    )


def _update(
    update_id: str, node: str = "n1", round_id: int | None = None, samples: int = 10
) -> ModelUpdate:
    return ModelUpdate(
        node=node,
        model=MODEL,
        base_version=0,
        update_id=update_id,
        num_samples=samples,
        arrays=_arrays(0.01),
        metrics={"loss": 0.25},
        round_id=round_id,
        created_at=50.0,
    )


def _blob_count(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM blobs").fetchone()
    return int(count)


def _prepare_round(path: Path) -> tuple[int, list[str]]:
    """A registry with version 0, an open round and two accepted updates for it."""
    with Registry(path) as registry:
        registry.put_version(_global(0, None))
        round_id = registry.open_round(MODEL, 0, selected=["n1", "n2"], deadline=2_000.0).round_id
        ids = ["u1", "u2"]
        for update_id, node in zip(ids, ("n1", "n2"), strict=True):
            registry.record_update(_update(update_id, node, round_id), status="accepted")
    return round_id, ids


def _run_child(function: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; from tests.cloud_aggregator.test_registry import {function} as run; "
            "run(*sys.argv[1:])",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )


def _commit_then_die(path: str, moment: str) -> None:
    """Child process: commit round 1's aggregation and SIGKILL itself ``moment`` (``inside``:
    as the statement closing the round starts, after the version and the applied marks were
    written; ``after``: once the commit returned)."""
    registry = Registry(Path(path))
    if moment == "inside":

        def die_at_round_close(statement: str) -> None:
            if statement.lstrip().startswith("UPDATE rounds"):
                os.kill(os.getpid(), signal.SIGKILL)

        registry._db.set_trace_callback(die_at_round_close)
    registry.commit_aggregation(_global(1, 0, scale=2.0), ["u1", "u2"], round_id=1)
    os.kill(os.getpid(), signal.SIGKILL)


def _write_then_die(path: str) -> None:
    """Child process: bootstrap, open a round, take updates, then SIGKILL itself (no close)."""
    _prepare_round(Path(path))
    registry = Registry(Path(path))
    registry.record_update(_update("u3", "n3", 1), status="rejected", reason="bad", reason_code="x")
    registry.node_seen("n1", online=True, status={"software_version": "0.1.0"})
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_version_comes_back_as_the_global_model_to_republish(tmp_path: Path) -> None:
    """After close and reopen, the current version is the stored GlobalModel, array order kept."""
    path = tmp_path / "registry.sqlite"
    model = _global(0, None)
    with Registry(path) as registry:
        registry.put_version(model)

    with Registry(path) as registry:
        current = registry.current_version(MODEL)
        listed = registry.versions(MODEL)
        models = registry.models()

    assert current is not None
    assert current.global_model == model
    assert list(current.arrays) == list(SHAPES)
    assert current.spec() == SPEC
    assert [(v.version, v.origin) for v in listed] == [(0, "bootstrap")]
    assert models == [MODEL]


def test_identical_weights_are_stored_once(tmp_path: Path) -> None:
    """Two versions with the same weights and graph share their blobs; new weights add one."""
    path = tmp_path / "registry.sqlite"
    with Registry(path) as registry:
        first = registry.put_version(_global(0, None))
        second = registry.put_version(_global(1, 0))
        before_new = _blob_count(path)
        third = registry.put_version(_global(2, 1, scale=3.0))

    assert second.arrays_sha256 == first.arrays_sha256
    assert second.onnx_sha256 == first.onnx_sha256
    assert third.arrays_sha256 != first.arrays_sha256
    assert before_new == 2  # one weights blob, one ONNX blob
    assert _blob_count(path) == 3


def test_putting_a_version_again_is_idempotent_and_versions_are_immutable(tmp_path: Path) -> None:
    """The same content under the same number is a no-op; other content under it is refused."""
    with Registry(tmp_path / "registry.sqlite") as registry:
        first = registry.put_version(_global(0, None))

        again = registry.put_version(_global(0, None))
        with pytest.raises(RegistryError, match="already exists with other content"):
            registry.put_version(_global(0, None, scale=9.0))
        versions = registry.versions(MODEL)

    assert again == first
    assert len(versions) == 1


def test_a_new_version_must_extend_the_current_one(tmp_path: Path) -> None:
    """A version whose parent is not the current version is refused: history is a chain."""
    with Registry(tmp_path / "registry.sqlite") as registry:
        registry.put_version(_global(0, None))
        registry.put_version(_global(1, 0, scale=2.0))

        with pytest.raises(RegistryError, match="the current version is 1"):
            registry.put_version(_global(2, 0, scale=3.0))
        current = registry.current_version(MODEL)

    assert current is not None
    assert current.version == 1


def test_an_update_delivered_twice_is_recorded_and_applied_once(tmp_path: Path) -> None:
    """A redelivered id is refused before and after its aggregation, and never folded again."""
    path = tmp_path / "registry.sqlite"
    round_id, _ = _prepare_round(path)
    with Registry(path) as registry:
        before = registry.record_update(_update("u1", "n1", round_id), status="accepted")
        registry.commit_aggregation(_global(1, 0, 2.0), ["u1", "u2"], round_id=round_id)

        after = registry.record_update(_update("u1", "n1", round_id), status="accepted")
        with pytest.raises(RegistryError, match="already applied to version 1"):
            registry.mark_applied(["u1"], 1)
        left = registry.round_updates(round_id)
        record = registry.get_update("u1")

    assert (before, after) == (False, False)
    assert left == []
    assert record is not None
    assert (record.status, record.applied_version) == ("applied", 1)


def test_commit_aggregation_writes_the_version_applies_updates_and_closes_the_round(
    tmp_path: Path,
) -> None:
    """One commit: new version of origin 'round', updates applied, round closed, arrays freed."""
    path = tmp_path / "registry.sqlite"
    round_id, ids = _prepare_round(path)
    with Registry(path) as registry:
        info = registry.commit_aggregation(_global(1, 0, 2.0), ids, round_id=round_id)
        closed = registry.get_round(round_id)
        open_now = registry.open_round_for(MODEL)

    assert (info.version, info.origin, info.round_id) == (1, "round", round_id)
    assert closed is not None
    assert (closed.state, closed.result_version) == ("closed", 1)
    assert open_now is None
    assert _blob_count(path) == 3  # two weight sets and the graph; the update deltas are gone


def test_a_commit_failing_inside_its_transaction_writes_nothing(tmp_path: Path) -> None:
    """A failure after the version and applied marks were written rolls all of them back."""
    path = tmp_path / "registry.sqlite"
    round_id, ids = _prepare_round(path)
    unstorable = StrategyState("fedadam", {"m": np.zeros(3, np.int64)})  # int64: not storable
    with Registry(path) as registry:
        with pytest.raises(RegistryError, match="registry stores"):
            registry.commit_aggregation(
                _global(1, 0, 2.0), ids, round_id=round_id, strategy_state=unstorable
            )
        with pytest.raises(RegistryError, match="never recorded"):
            registry.commit_aggregation(_global(1, 0, 2.0), [*ids, "u9"], round_id=round_id)

        versions = registry.versions(MODEL)
        still_open = registry.open_round_for(MODEL)
        pending = registry.round_updates(round_id)

    assert [v.version for v in versions] == [0]
    assert still_open is not None
    assert still_open.round_id == round_id
    assert [u.update_id for u in pending] == ids


@pytest.mark.parametrize(
    ("moment", "versions", "round_state", "pending"),
    [("inside", [0], "open", ["u1", "u2"]), ("after", [0, 1], "closed", [])],
)
def test_a_sigkilled_commit_leaves_all_or_nothing(
    tmp_path: Path, moment: str, versions: list[int], round_state: str, pending: list[str]
) -> None:
    """A writer SIGKILLed mid-commit leaves nothing of it; killed after the commit, all of it."""
    path = tmp_path / "registry.sqlite"
    round_id, _ = _prepare_round(path)

    child = _run_child("_commit_then_die", str(path), moment)

    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    with Registry(path) as registry:
        found = registry.get_round(round_id)
        assert [v.version for v in registry.versions(MODEL)] == versions
        assert [u.update_id for u in registry.round_updates(round_id)] == pending
    assert found is not None
    assert found.state == round_state


def test_a_sigkilled_writer_leaves_its_open_round_and_accepted_updates(tmp_path: Path) -> None:
    """After SIGKILL, WAL recovery restores the open round and its updates, arrays included."""
    path = tmp_path / "registry.sqlite"
    wal = tmp_path / "registry.sqlite-wal"

    child = _run_child("_write_then_die", str(path))

    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert wal.exists()
    assert wal.stat().st_size > 0  # the committed transactions live only in the WAL
    with Registry(path) as registry:
        current = registry.current_version(MODEL)
        resumed = registry.open_round_for(MODEL)
        assert resumed is not None
        pending = registry.round_updates(resumed.round_id)
        redelivered = registry.record_update(_update("u1", "n1", 1), status="accepted")
        rejected = registry.rejections()
        nodes = registry.nodes(online_only=True)
    assert current is not None
    assert current.global_model == _global(0, None)
    assert (resumed.state, resumed.selected) == ("open", ("n1", "n2"))
    assert pending == [_update("u1", "n1", 1), _update("u2", "n2", 1)]
    assert not redelivered
    assert [(r.update_id, r.reason) for r in rejected] == [("u3", "bad")]
    assert [(n.node, n.status) for n in nodes] == [("n1", {"software_version": "0.1.0"})]


def test_a_round_in_progress_resumes_after_a_clean_reopen(tmp_path: Path) -> None:
    """An aggregating round is found again after close and reopen, still aggregating."""
    path = tmp_path / "registry.sqlite"
    round_id, _ = _prepare_round(path)
    with Registry(path) as registry:
        registry.start_aggregation(round_id)

    with Registry(path) as registry:
        resumed = registry.open_round_for(MODEL)
        late = _update("u7", "n1", round_id)
        with pytest.raises(RegistryError, match="takes updates only while open"):
            registry.record_update(late, status="accepted")
        as_async = registry.record_update(
            dataclasses.replace(late, round_id=None), status="accepted"
        )
        asynchronous = registry.pending_updates(MODEL)

    assert resumed is not None
    assert (resumed.round_id, resumed.state, resumed.deadline) == (round_id, "aggregating", 2_000.0)
    assert as_async
    assert [u.update_id for u in asynchronous] == ["u7"]


def test_only_one_round_per_model_is_in_progress(tmp_path: Path) -> None:
    """A second round is refused until the first is aborted; its updates can then be discarded."""
    path = tmp_path / "registry.sqlite"
    round_id, ids = _prepare_round(path)
    with Registry(path) as registry:
        with pytest.raises(RegistryError, match=f"already has round {round_id} in progress"):
            registry.open_round(MODEL, 0, selected=["n1"], deadline=None)
        aborted = registry.abort_round(round_id, "2 of 3 nodes answered, 3 required")
        leftover = [u.update_id for u in registry.round_updates(round_id)]
        registry.discard_updates(ids, "its round was aborted")
        next_round = registry.open_round(MODEL, 0, selected=["n1"], deadline=None)
        contributions = registry.contributions()

    assert (aborted.state, aborted.reason) == ("aborted", "2 of 3 nodes answered, 3 required")
    assert leftover == ids
    assert next_round.round_id == round_id + 1
    assert [dict(c.rejected_by_code) for c in contributions] == [{"discarded": 1}] * 2
    assert _blob_count(path) == 2  # the discarded deltas were released


def test_strategy_state_commits_with_its_version_and_replaces_the_old_one(tmp_path: Path) -> None:
    """Optimizer state saved by a commit reloads equal; replacing it frees the old blob."""
    path = tmp_path / "registry.sqlite"
    round_id, ids = _prepare_round(path)
    moments = {"m.enc.0.weight": np.full((32, 8), 0.5, np.float32)}
    with Registry(path) as registry:
        registry.commit_aggregation(
            _global(1, 0, 2.0),
            ids,
            round_id=round_id,
            strategy_state=StrategyState("fedadam", moments, {"step": 1}),
        )
        saved = registry.load_strategy_state(MODEL, "fedadam")
        blobs_with_first = _blob_count(path)
        registry.save_strategy_state(
            MODEL, StrategyState("fedadam", {"m.enc.0.weight": np.ones((32, 8), np.float32)})
        )

    assert saved is not None
    assert saved.meta == {"step": 1}
    assert np.array_equal(saved.arrays["m.enc.0.weight"], moments["m.enc.0.weight"])
    assert _blob_count(path) == blobs_with_first


def test_contributions_count_samples_rounds_and_rejections_per_node(tmp_path: Path) -> None:
    """Samples and rounds count applied updates only; rejections are counted by reason class."""
    path = tmp_path / "registry.sqlite"
    round_id, ids = _prepare_round(path)
    clock = StepClock()
    with Registry(path, clock=clock) as registry:
        registry.commit_aggregation(_global(1, 0, 2.0), ids, round_id=round_id)
        second = registry.open_round(MODEL, 1, selected=["n1"], deadline=None).round_id
        registry.record_update(_update("u3", "n1", second, samples=5), status="accepted")
        registry.commit_aggregation(_global(2, 1, 3.0), ["u3"], round_id=second)
        registry.record_update(_update("u4", "n1", samples=7), status="accepted")
        for update_id, code in (("u5", "shape"), ("u6", "stale"), ("u7", "shape")):
            registry.record_update(
                _update(update_id, "n2"),
                status="rejected",
                reason=f"{code} {update_id}",
                reason_code=code,
            )
        registry.node_seen("n3", online=True)
        contributions = {c.node: c for c in registry.contributions()}

    n1, n2, n3 = contributions["n1"], contributions["n2"], contributions["n3"]
    assert (n1.samples, n1.rounds, n1.accepted, n1.applied, n1.rejected) == (15, 2, 3, 2, 0)
    assert (n2.samples, n2.rounds, n2.accepted, n2.applied, n2.rejected) == (10, 1, 1, 1, 3)
    assert dict(n2.rejected_by_code) == {"shape": 2, "stale": 1}
    assert n2.last_rejection == "shape u7"
    assert (n3.accepted, n3.rejected, n3.last_rejection) == (0, 0, None)


def test_a_registry_from_a_newer_fedge_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A schema version above ours raises SchemaVersionError and does not modify the file."""
    path = tmp_path / "registry.sqlite"
    Registry(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    with pytest.raises(SchemaVersionError, match="schema version 99") as refused:
        Registry(path)

    assert (refused.value.found, refused.value.supported) == (99, 1)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("content", ["foreign", "garbage"])
def test_a_file_that_is_not_a_registry_is_refused(tmp_path: Path, content: str) -> None:
    """Another application's SQLite file or a non-database file is refused, never reset."""
    path = tmp_path / "registry.sqlite"
    if content == "foreign":
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE readings (t REAL)")
    else:
        path.write_bytes(b"not a database at all " * 100)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    with pytest.raises(RegistryError, match="not a"):
        Registry(path)

    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_node_presence_and_status_are_remembered(tmp_path: Path) -> None:
    """A node's last status survives going offline; first and last seen times are kept."""
    clock = StepClock()
    with Registry(tmp_path / "registry.sqlite", clock=clock) as registry:
        registry.node_seen("n1", online=True, status={"model_version": 3})
        registry.node_seen("n1", online=False)
        registry.node_seen("n2", online=True)
        everyone = registry.nodes()
        online = registry.nodes(online_only=True)

    n1 = everyone[0]
    assert (n1.node, n1.online, n1.status) == ("n1", False, {"model_version": 3})
    assert (n1.first_seen, n1.last_seen) == (1_001.0, 1_002.0)
    assert [n.node for n in online] == ["n2"]
