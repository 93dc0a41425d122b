"""The registry's SQLite schema, its version, and opening a database without harming it.

The schema version lives in the ``meta`` table. A registry written by a newer fedge is refused
(``SchemaVersionError``) before anything touches the file, and so is an SQLite file that is not
a fedge registry: the registry is the aggregator's memory, so it is never moved aside, reset or
rewritten by guesswork. See docs/registry.md for the tables and what they guarantee.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from fedge.errors import FedgeError

SCHEMA_VERSION: Final = 1
JOURNAL_SIZE_LIMIT: Final = 64 * 2**20
BUSY_TIMEOUT_S: Final = 30.0

_TABLES: Final = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # Content-addressed storage: the key is the SHA-256 of the bytes, so equal content is
    # stored once however many versions, updates or optimizer states refer to it.
    """CREATE TABLE blobs (
        sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, data BLOB NOT NULL)""",
    """CREATE TABLE versions (
        model TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 0),
        parent_version INTEGER,
        spec TEXT NOT NULL,
        array_names TEXT NOT NULL,
        arrays_sha256 TEXT NOT NULL REFERENCES blobs (sha256),
        onnx_sha256 TEXT NOT NULL REFERENCES blobs (sha256),
        metrics TEXT NOT NULL,
        created_at REAL NOT NULL,
        committed_at REAL NOT NULL,
        origin TEXT NOT NULL CHECK (origin IN ('bootstrap', 'round', 'async')),
        round_id INTEGER REFERENCES rounds (round_id),
        PRIMARY KEY (model, version),
        FOREIGN KEY (model, parent_version) REFERENCES versions (model, version),
        CHECK (parent_version IS NULL OR parent_version < version),
        CHECK ((origin = 'round') = (round_id IS NOT NULL)))""",
    """CREATE TABLE rounds (
        round_id INTEGER PRIMARY KEY AUTOINCREMENT,
        model TEXT NOT NULL,
        base_version INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'aggregating', 'closed', 'aborted')),
        config TEXT NOT NULL,
        selected TEXT NOT NULL,
        started_at REAL NOT NULL,
        deadline REAL,
        closed_at REAL,
        result_version INTEGER,
        reason TEXT,
        FOREIGN KEY (model, base_version) REFERENCES versions (model, version),
        FOREIGN KEY (model, result_version) REFERENCES versions (model, version),
        CHECK ((state = 'closed') = (result_version IS NOT NULL)),
        CHECK ((state = 'aborted') = (reason IS NOT NULL)))""",
    """CREATE TABLE nodes (
        node TEXT PRIMARY KEY,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        online INTEGER NOT NULL DEFAULT 0,
        status TEXT)""",
    # One row per update id ever received: the idempotency ledger and the contribution record.
    # ``arrays_sha256`` holds an accepted update's delta until it is applied or discarded, so a
    # restart can fold it again; applied and rejected rows keep no arrays.
    """CREATE TABLE updates (
        update_id TEXT PRIMARY KEY,
        node TEXT NOT NULL REFERENCES nodes (node),
        model TEXT NOT NULL,
        base_version INTEGER NOT NULL,
        round_id INTEGER,
        received_at REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('accepted', 'rejected', 'applied')),
        reason TEXT,
        reason_code TEXT,
        num_samples INTEGER NOT NULL,
        norm REAL,
        metrics TEXT NOT NULL,
        compression TEXT,
        created_at REAL NOT NULL,
        arrays_sha256 TEXT REFERENCES blobs (sha256),
        applied_version INTEGER,
        FOREIGN KEY (model, applied_version) REFERENCES versions (model, version),
        CHECK ((status = 'rejected') = (reason IS NOT NULL)),
        CHECK ((status = 'accepted') = (arrays_sha256 IS NOT NULL)),
        CHECK ((status = 'applied') = (applied_version IS NOT NULL)))""",
    """CREATE TABLE strategy_state (
        model TEXT NOT NULL,
        name TEXT NOT NULL,
        arrays_sha256 TEXT NOT NULL REFERENCES blobs (sha256),
        meta TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (model, name))""",
    # At most one round per model is in progress; the database enforces it, not only the code.
    """CREATE UNIQUE INDEX rounds_in_progress ON rounds (model)
        WHERE state IN ('open', 'aggregating')""",
    "CREATE INDEX updates_accepted ON updates (model, round_id) WHERE status = 'accepted'",
    "CREATE INDEX updates_by_node ON updates (node, status)",
    "CREATE INDEX updates_by_status ON updates (status, received_at)",
    "CREATE INDEX updates_by_blob ON updates (arrays_sha256) WHERE arrays_sha256 IS NOT NULL",
    "CREATE INDEX versions_by_arrays ON versions (arrays_sha256)",
    "CREATE INDEX versions_by_onnx ON versions (onnx_sha256)",
    "CREATE INDEX strategy_state_by_blob ON strategy_state (arrays_sha256)",
)


class RegistryError(FedgeError):
    """The registry refused an operation or its database failed; nothing was written."""


class SchemaVersionError(RegistryError):
    """The registry file was written by a newer fedge whose schema this one does not know."""

    def __init__(self, path: Path, found: int, supported: int) -> None:
        super().__init__(
            f"registry {path} has schema version {found}, but this fedge understands up to "
            f"{supported}: upgrade fedge to open it (the file was left untouched)"
        )
        self.path = path
        self.found = found
        self.supported = supported


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if absent) the registry at ``path``: WAL, foreign keys, FULL sync.

    The schema is checked before the journal mode is set, so a refused file is not modified.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
    )
    try:
        db.execute("PRAGMA foreign_keys = ON")
        _check_schema(db, path)
        (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise RegistryError(f"registry {path}: cannot switch to WAL (journal mode is {mode})")
        db.execute("PRAGMA synchronous = FULL")
        db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        _create(db)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise RegistryError(
            f"registry {path} is not a readable SQLite database ({exc}): left untouched; "
            "restore it from a backup or point the aggregator at another path"
        ) from exc
    except BaseException:
        db.close()
        raise
    return db


def _tables(db: sqlite3.Connection) -> set[str]:
    rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(name) for (name,) in rows} - {"sqlite_sequence"}


def _check_schema(db: sqlite3.Connection, path: Path) -> None:
    tables = _tables(db)
    if not tables:
        return
    if "meta" not in tables:
        raise RegistryError(
            f"{path} is an SQLite database but not a fedge registry (it has no meta table): "
            "refusing to use it"
        )
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    found = int(row[0]) if row is not None and str(row[0]).isdigit() else None
    if found is None:
        raise RegistryError(f"registry {path} records no valid schema version: refusing to use it")
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(path, found, SCHEMA_VERSION)
    # Version 1 is the first schema: an older file cannot exist yet. The next schema change adds
    # its migration here, run inside one transaction before anything else reads the file.


def _create(db: sqlite3.Connection) -> None:
    """Create the schema in one transaction unless another process did it first."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if not _tables(db):
            for statement in _TABLES:
                db.execute(statement)
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
