"""Which files ``fedge replay`` plays, and as which node and device.

Every PATH is a file or a directory; a directory contributes every ``*.csv`` file below it
(recursively, sorted, hidden files and folders skipped). Ids come from the file's path relative
to the PATH that found it (for a file given directly: its name), without the extension; each
folder level and the file name are joined with ``-`` and characters outside
``[A-Za-z0-9_.:-]`` become ``_``:

- ``per-file``: node = device = that id, so every file is one edge node of its own
  (``skab/valve1/0.csv`` under ``skab/`` → node ``valve1-0``, device ``valve1-0``).
- ``per-folder``: node = the folder the file is in, relative to the PATH (for a file directly
  in PATH or given directly: that folder's own name); device = the file name
  (``skab/valve1/0.csv`` → node ``valve1``, device ``0``). This is the layout ``fedge record``
  writes (``DIR/{node}/{device}.csv``).
- ``single:NAME``: node = NAME for every file; device as for ``per-file``.
- ``auto`` (the default): ``per-folder`` when every file is fedge CSV (a recording made by
  ``fedge record`` plays back under its original ids), else ``per-file``.

Two files that end up as the same node and device are an error naming both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from device_sim.recording import CsvKind, Recording, RecordingError
from fedge.errors import ConfigError, FedgeError, TopicError
from fedge.topics import validate_id

RULES: Final = ("auto", "per-file", "per-folder", "single:NAME")
_ILLEGAL: Final = re.compile(r"[^A-Za-z0-9_.:-]")


@dataclass(frozen=True)
class NodeRule:
    """How files map to nodes: ``auto``, ``per-file``, ``per-folder`` or ``single:NAME``."""

    kind: str
    node: str | None = None

    @classmethod
    def parse(cls, text: str) -> NodeRule:
        if text in ("auto", "per-file", "per-folder"):
            return cls(text)
        if text.startswith("single:"):
            name = text.removeprefix("single:")
            try:
                return cls("single", validate_id("node", name))
            except TopicError as exc:
                raise ConfigError("--nodes", str(exc)) from None
        raise ConfigError("--nodes", f"{text!r} is not one of {', '.join(RULES)}")

    def resolve(self, kinds: Iterable[CsvKind]) -> NodeRule:
        """The concrete rule for files of these kinds (``auto`` decided, others unchanged)."""
        if self.kind != "auto":
            return self
        every_fedge = all(kind is CsvKind.FEDGE for kind in kinds)
        return NodeRule("per-folder" if every_fedge else "per-file")


@dataclass(frozen=True)
class SourceFile:
    """A file to replay and where it was found: ``relative`` is its path under ``root``."""

    path: Path
    root: Path
    relative: Path


@dataclass(frozen=True)
class Source:
    """One recording, played as ``device`` on ``node``."""

    node: str
    device: str
    recording: Recording


def find_files(paths: Sequence[Path]) -> list[SourceFile]:
    """Expand files and directories into the CSV files to replay, in a stable order."""
    if not paths:
        raise FedgeError("give at least one CSV file or directory to replay (PATH...)")
    found: list[SourceFile] = []
    for path in paths:
        if path.is_dir():
            files = sorted(
                f
                for f in path.rglob("*")
                if f.suffix.lower() == ".csv"
                and f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
            if not files:
                raise RecordingError(path, "is a directory without any .csv file")
            found.extend(SourceFile(f, path, f.relative_to(path)) for f in files)
        elif path.exists():
            found.append(SourceFile(path, path.parent, Path(path.name)))
        else:
            raise RecordingError(path, "no such file or directory")
    return found


def assign(
    files: Sequence[SourceFile], recordings: Sequence[Recording], rule: NodeRule
) -> list[Source]:
    """Name the node and device of every recording by ``rule``; reject duplicates."""
    concrete = rule.resolve(r.kind for r in recordings)
    sources: list[Source] = []
    seen: dict[tuple[str, str], Path] = {}
    for file, recording in zip(files, recordings, strict=True):
        node, device = _ids(file, concrete)
        if (node, device) in seen:
            raise RecordingError(
                file.path,
                f"would play as device {device!r} on node {node!r}, like {seen[node, device]}: "
                "rename one, or replay their common folder",
            )
        seen[node, device] = file.path
        sources.append(Source(node, device, recording))
    return sources


def _ids(file: SourceFile, rule: NodeRule) -> tuple[str, str]:
    stem = file.relative.with_suffix("")
    whole = _sanitise(file.path, "device", stem.parts)
    if rule.kind == "per-file":
        return whole, whole
    if rule.kind == "single":
        assert rule.node is not None  # noqa: S101  # set by NodeRule.parse
        return rule.node, whole
    folder = stem.parent.parts or (file.root.resolve().name,)
    return _sanitise(file.path, "node", folder), _sanitise(file.path, "device", (stem.name,))


def _sanitise(path: Path, what: str, parts: Sequence[str]) -> str:
    text = "-".join(_ILLEGAL.sub("_", part) for part in parts)
    try:
        return validate_id(what, text)
    except TopicError as exc:
        raise RecordingError(path, f"cannot name the {what} after this file: {exc}") from None
