"""A bounded on-disk buffer of recent normalised windows, for local training and recalibration.

The engine offers every scored window; the store keeps every ``keep_every``-th window of each
device (at stride 1 neighbouring windows share all but one reading, so ``keep_every = w`` loses
little) with its end time, its score and whether the detector had it inside an anomaly episode.
``snapshot`` returns the most recent eligible windows as one ``(n, w, c)`` block: flagged
windows and windows inside given time spans (closed anomaly episodes) are left out, so a
fine-tune never learns an anomaly as normal.

Layout of the store directory::

    index.json          window shape, device names, next chunk id, and the chunks oldest first
                        (id, windows, bytes, CRC-32, time range); replaced atomically
    chunk-00000042.npy  one chunk: a structured array of records (added_at, end_time, score,
                        device code, flags, window), written once, never modified

Appends copy into an in-memory chunk and cost a memcpy. A full chunk, one whose first window is
older than ``flush_interval_s``, or ``flush``/``close`` hands the chunk to a writer thread, which
writes it atomically (``.npy``, read back with ``allow_pickle=False``), records it in the index
and prunes whole chunks, oldest first, while more than ``max_windows`` windows are on disk or a
chunk's newest window was stored more than ``max_age_s`` ago. Age is measured on the node's
clock at storing time (``added_at``), so device clock skew or a replayed recording cannot age
data out early; ``snapshot`` applies the age bound window by window as well. A chunk whose size,
checksum or layout does not match the index is skipped with a warning and removed; a missing or
unreadable index, or one for another window shape, starts an empty store.

Bounds: on disk at most ``max_windows`` records of ``4*w*c + 23`` bytes, plus the index. In
memory the open chunk plus at most ``max_queued_chunks`` chunks waiting for the writer: about
``(max_queued_chunks + 2) * chunk_windows`` records. If the disk falls further behind, whole
chunks are dropped and counted (``stats.windows_dropped``) instead of stalling inference.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge_node.state import write_atomic

log = logging.getLogger(__name__)

FORMAT = 1
INDEX = "index.json"
FLAG_IN_EPISODE = 1
MAX_DEVICES = 2**16

Span = tuple[float, float]  # (start, end) end times, inclusive
Records = NDArray[np.void]


def record_dtype(window: int, channels: int) -> np.dtype[np.void]:
    """The on-disk record of one stored window."""
    return np.dtype(
        [
            ("added_at", "<f8"),  # node clock when stored: retention by age
            ("end_time", "<f8"),  # timestamp of the window's last reading
            ("score", "<f4"),  # NaN when not scored
            ("device", "<u2"),  # index into the index's device names
            ("flags", "u1"),  # FLAG_IN_EPISODE
            ("window", "<f4", (window, channels)),
        ]
    )


@dataclass(frozen=True)
class StoredWindows:
    """Windows taken from the store, oldest first, with what is known about each."""

    windows: NDArray[np.float32]  # (n, w, c), normalised
    end_time: NDArray[np.float64]
    device: NDArray[np.str_]
    score: NDArray[np.float32]
    in_episode: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.windows.shape[0])


@dataclass
class WindowStoreStats:
    offered: int = 0  # windows passed to append
    kept: int = 0  # windows kept after keep_every
    chunks_written: int = 0
    chunks_pruned: int = 0
    chunks_corrupt: int = 0
    windows_dropped: int = 0  # the writer was too far behind, or a write failed


@dataclass(frozen=True)
class _Chunk:
    id: int
    count: int
    size: int
    crc32: int
    first_added: float
    last_added: float
    last_end: float

    @property
    def name(self) -> str:
        return f"chunk-{self.id:08d}.npy"

    @classmethod
    def from_plain(cls, plain: Mapping[str, Any]) -> _Chunk:
        return cls(
            int(plain["id"]),
            int(plain["count"]),
            int(plain["size"]),
            int(plain["crc32"]),
            float(plain["first_added"]),
            float(plain["last_added"]),
            float(plain["last_end"]),
        )


class WindowStore:
    """Recent normalised windows of every device of one node, bounded by count and age."""

    def __init__(
        self,
        directory: Path,
        max_windows: int,
        max_age_s: float,
        chunk_windows: int = 1024,
        *,
        window: int,
        channels: int,
        keep_every: int = 1,
        flush_interval_s: float = 60.0,
        max_queued_chunks: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_windows < 1 or max_age_s <= 0 or chunk_windows < 1 or keep_every < 1:
            raise ValueError(
                f"window store needs max_windows, chunk_windows, keep_every >= 1 and "
                f"max_age_s > 0, got {max_windows}, {chunk_windows}, {keep_every}, {max_age_s}"
            )
        self.directory = directory
        self.max_windows = max_windows
        self.max_age_s = max_age_s
        # Pruning removes whole chunks: keep them small enough that one is at most a quarter
        # of the store, so pruning never empties it.
        self.chunk_windows = max(1, min(chunk_windows, max_windows // 4))
        self.keep_every = keep_every
        self.flush_interval_s = flush_interval_s
        self.max_queued_chunks = max_queued_chunks
        self.stats = WindowStoreStats()
        self._clock = clock
        self._dtype = record_dtype(window, channels)
        self._shape = (window, channels)
        self._lock = threading.Lock()  # in-memory state below
        self._io_lock = threading.Lock()  # index file and chunk deletions; taken before _lock
        self._device_names: list[str] = []
        self._devices: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._chunks: list[_Chunk] = []
        self._next_id = 0
        self._open: Records = np.empty(self.chunk_windows, self._dtype)
        self._fill = 0
        self._queued: list[Records] = []  # handed to the writer, not yet in the index
        self._writes: queue.Queue[Records | None] = queue.Queue()
        self._closed = False
        self._warned: set[str] = set()
        self._recover()
        self._writer = threading.Thread(target=self._write_loop, name="window-store", daemon=True)
        self._writer.start()

    # -- writing -------------------------------------------------------------------------------

    def append(
        self,
        device: str,
        windows: NDArray[np.float32],
        end_time: NDArray[np.float64],
        *,
        score: NDArray[np.float32] | None = None,
        in_episode: bool | NDArray[np.bool_] = False,
    ) -> int:
        """Offer ``device``'s windows ``(k, w, c)``; keep every ``keep_every``-th; return kept."""
        k = windows.shape[0]
        if windows.shape[1:] != self._shape or end_time.shape != (k,):
            raise ValueError(
                f"windows {windows.shape} with end times {end_time.shape} do not fit this "
                f"store of (k, {self._shape[0]}, {self._shape[1]}) windows"
            )
        now = self._clock()
        scores = np.broadcast_to(np.float32(np.nan) if score is None else score, (k,))
        flags = np.broadcast_to(np.asarray(in_episode, np.uint8) * FLAG_IN_EPISODE, (k,))
        with self._lock:
            if self._closed:
                raise RuntimeError(f"window store {self.directory} is closed")
            seen = self._seen.get(device, 0)
            self._seen[device] = seen + k
            self.stats.offered += k
            first = (-seen) % self.keep_every
            picked = slice(first, k, self.keep_every)
            selected = windows[picked]
            count = int(selected.shape[0])
            code = self._code(device) if count else 0
            done = 0
            while done < count:
                take = min(count - done, self.chunk_windows - self._fill)
                src = slice(done, done + take)
                dest = self._open[self._fill : self._fill + take]
                dest["added_at"] = now
                dest["end_time"] = end_time[picked][src]
                dest["score"] = scores[picked][src]
                dest["device"] = code
                dest["flags"] = flags[picked][src]
                dest["window"] = selected[src]
                self._fill += take
                done += take
                if self._fill == self.chunk_windows:
                    self._hand_over(force=False)
            self.stats.kept += count
            if self._fill and now - float(self._open["added_at"][0]) >= self.flush_interval_s:
                self._hand_over(force=False)
        return count

    def flush(self) -> None:
        """Write what is buffered and wait until the writer has it on disk."""
        with self._lock:
            self._hand_over(force=True)
        self._writes.join()

    def close(self) -> None:
        """Flush and stop the writer; later appends raise."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._hand_over(force=True)
        self._writes.put(None)
        self._writer.join()

    def __enter__(self) -> WindowStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        """Windows held, on disk and in memory (before the age bound of ``snapshot``)."""
        with self._lock:
            return (
                sum(c.count for c in self._chunks)
                + sum(int(q.shape[0]) for q in self._queued)
                + self._fill
            )

    def prune(self) -> int:
        """Apply the count and age bounds now; return how many windows were removed."""
        with self._io_lock:
            with self._lock:
                doomed = self._prune_locked()
                index = self._index_locked()
            if doomed:
                self._write_index(index)
                self._delete(doomed)
        return sum(c.count for c in doomed)

    def _code(self, device: str) -> int:
        code = self._devices.get(device)
        if code is None:
            if len(self._device_names) >= MAX_DEVICES:
                raise ValueError(f"window store holds {MAX_DEVICES} devices: {device} refused")
            code = self._devices[device] = len(self._device_names)
            self._device_names.append(device)
        return code

    def _hand_over(self, *, force: bool) -> None:
        """Pass the open chunk to the writer (caller holds ``_lock``)."""
        if self._fill == 0:
            return
        chunk = self._open[: self._fill]
        self._open, self._fill = np.empty(self.chunk_windows, self._dtype), 0
        if not force and len(self._queued) >= self.max_queued_chunks:
            self.stats.windows_dropped += chunk.shape[0]
            self._warn_once("behind", "window store: disk too slow, dropping chunks of windows")
            return
        self._queued.append(chunk)
        self._writes.put(chunk)

    def _write_loop(self) -> None:
        while True:
            chunk = self._writes.get()
            try:
                if chunk is None:
                    return
                self._write(chunk)
            except Exception:  # the writer must outlive one bad write; logged with its traceback
                log.exception("window store: writing a chunk failed")
            finally:
                self._writes.task_done()

    def _write(self, records: Records) -> None:
        buffer = io.BytesIO()
        np.save(buffer, records, allow_pickle=False)
        data = buffer.getvalue()
        with self._io_lock:
            chunk = _Chunk(
                id=self._next_id,
                count=int(records.shape[0]),
                size=len(data),
                crc32=zlib.crc32(data),
                first_added=float(records["added_at"].min()),
                last_added=float(records["added_at"].max()),
                last_end=float(records["end_time"].max()),
            )
            self._next_id += 1
            try:
                write_atomic(self.directory / chunk.name, data)
            except OSError as exc:
                with self._lock:
                    self._queued = [q for q in self._queued if q is not records]
                    self.stats.windows_dropped += chunk.count
                self._warn_once("write", f"window store: cannot write {chunk.name}: {exc}")
                return
            with self._lock:
                self._chunks.append(chunk)
                self._queued = [q for q in self._queued if q is not records]
                self.stats.chunks_written += 1
                doomed = self._prune_locked()
                index = self._index_locked()
            self._write_index(index)
            self._delete(doomed)

    # -- reading -------------------------------------------------------------------------------

    def snapshot(
        self,
        max_windows: int | None = None,
        since: float | None = None,
        exclude: Mapping[str, Sequence[Span]] | None = None,
        *,
        devices: Collection[str] | None = None,
        include_episodes: bool = False,
        max_score: float | None = None,
    ) -> StoredWindows:
        """The most recent eligible windows (at most ``max_windows``), oldest first.

        Eligible: stored within ``max_age_s``, ``end_time >= since``, of one of ``devices``,
        not flagged in an episode (unless ``include_episodes``), score not above ``max_score``,
        and ``end_time`` outside every ``exclude[device]`` span ``(start, end)`` (inclusive).
        """
        now = self._clock()
        with self._lock:
            chunks = list(self._chunks)
            memory = [*self._queued, self._open[: self._fill].copy()]
            names = np.array(self._device_names or [""], dtype=np.str_)
            codes = dict(self._devices)
        wanted = max_windows if max_windows is not None else None
        parts: list[Records] = []
        got = 0
        for records in self._newest_first(memory, chunks):
            mask = records["added_at"] >= now - self.max_age_s
            if since is not None:
                mask &= records["end_time"] >= since
            if not include_episodes:
                mask &= (records["flags"] & FLAG_IN_EPISODE) == 0
            if max_score is not None:
                mask &= ~(records["score"] > max_score)
            if devices is not None:
                mask &= np.isin(records["device"], [codes[d] for d in devices if d in codes])
            for device, spans in (exclude or {}).items():
                if device in codes:
                    mask &= ~_in_spans(records, codes[device], spans)
            chosen = records[mask]
            if wanted is not None:
                chosen = chosen[max(0, chosen.shape[0] - (wanted - got)) :]
            parts.append(chosen)
            got += chosen.shape[0]
            if wanted is not None and got >= wanted:
                break
        picked = np.concatenate(parts[::-1]) if parts else np.empty(0, self._dtype)
        return StoredWindows(
            windows=np.ascontiguousarray(picked["window"], np.float32),
            end_time=np.ascontiguousarray(picked["end_time"], np.float64),
            device=names[picked["device"]],
            score=np.ascontiguousarray(picked["score"], np.float32),
            in_episode=(picked["flags"] & FLAG_IN_EPISODE) != 0,
        )

    def _newest_first(self, memory: list[Records], chunks: list[_Chunk]) -> Iterator[Records]:
        yield from reversed(memory)
        for chunk in reversed(chunks):
            records = self._load(chunk)
            if records is not None:
                yield records

    def _load(self, chunk: _Chunk) -> Records | None:
        path = self.directory / chunk.name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            with self._lock:
                if all(c.id != chunk.id for c in self._chunks):
                    return None  # pruned while we were reading
            reason = "the file is missing"
        except OSError as exc:
            reason = f"cannot read it: {exc}"
        else:
            records, reason = self._parse(chunk, data)
            if records is not None:
                return records
        self._discard(chunk, reason)
        return None

    def _parse(self, chunk: _Chunk, data: bytes) -> tuple[Records | None, str]:
        if len(data) != chunk.size or zlib.crc32(data) != chunk.crc32:
            return None, f"{len(data)} bytes do not match the index ({chunk.size}, checksum)"
        try:
            records = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            return None, f"not a readable .npy file: {exc}"
        if records.dtype != self._dtype or records.shape != (chunk.count,):
            return None, f"holds {records.shape} records of {records.dtype}"
        if records.shape[0] and int(records["device"].max()) >= len(self._device_names):
            return None, "names a device the index does not know"
        return records, ""

    def _discard(self, chunk: _Chunk, reason: str) -> None:
        log.warning(
            "window store: %s is corrupt (%s): skipped and removed, its %d windows are lost",
            chunk.name,
            reason,
            chunk.count,
        )
        with self._io_lock:
            with self._lock:
                self._chunks = [c for c in self._chunks if c.id != chunk.id]
                self.stats.chunks_corrupt += 1
                index = self._index_locked()
            self._write_index(index)
            (self.directory / chunk.name).unlink(missing_ok=True)

    # -- index and retention -------------------------------------------------------------------

    def _prune_locked(self) -> list[_Chunk]:
        cutoff = self._clock() - self.max_age_s
        keep = [c for c in self._chunks if c.last_added >= cutoff]
        total = sum(c.count for c in keep)
        while total > self.max_windows:
            total -= keep.pop(0).count
        kept = {c.id for c in keep}
        doomed = [c for c in self._chunks if c.id not in kept]
        self._chunks = keep
        self.stats.chunks_pruned += len(doomed)
        return doomed

    def _index_locked(self) -> bytes:
        index = {
            "format": FORMAT,
            "window": self._shape[0],
            "channels": self._shape[1],
            "devices": list(self._device_names),
            "next_chunk": self._next_id,
            "chunks": [asdict(c) for c in self._chunks],
        }
        return json.dumps(index).encode()

    def _write_index(self, index: bytes) -> None:
        try:
            write_atomic(self.directory / INDEX, index)
        except OSError as exc:
            self._warn_once("index", f"window store: cannot write {INDEX}: {exc}")

    def _delete(self, chunks: list[_Chunk]) -> None:
        for chunk in chunks:
            (self.directory / chunk.name).unlink(missing_ok=True)

    def _recover(self) -> None:
        """Load the index, drop what it cannot vouch for, apply the bounds."""
        self.directory.mkdir(parents=True, exist_ok=True)
        index = self._read_index()
        if index is not None:
            self._device_names = [str(d) for d in index["devices"]]
            self._devices = {d: i for i, d in enumerate(self._device_names)}
            self._next_id = int(index["next_chunk"])
            for chunk in index["chunks"]:
                path = self.directory / chunk.name
                size = path.stat().st_size if path.exists() else -1
                if size != chunk.size:
                    log.warning(
                        "window store: %s is missing or torn (%d bytes, index says %d): "
                        "its %d windows are lost",
                        chunk.name,
                        size,
                        chunk.size,
                        chunk.count,
                    )
                    self.stats.chunks_corrupt += 1
                    continue
                self._chunks.append(chunk)
        known = {c.name for c in self._chunks}
        for path in self.directory.iterdir():
            stray = path.name.startswith((".chunk-", f".{INDEX}."))  # write_atomic leftovers
            if stray or (path.name.startswith("chunk-") and path.name not in known):
                path.unlink(missing_ok=True)  # written but never indexed: a crash mid-flush
        self._next_id = max([self._next_id, *(c.id + 1 for c in self._chunks)])
        doomed = self._prune_locked()
        self._write_index(self._index_locked())
        self._delete(doomed)

    def _read_index(self) -> dict[str, Any] | None:
        path = self.directory / INDEX
        if not path.exists():
            return None
        try:
            index = json.loads(path.read_text())
            shape = (int(index["window"]), int(index["channels"]))
            if int(index["format"]) != FORMAT:
                raise ValueError(f"format {index['format']} is not {FORMAT}")
            index["chunks"] = [_Chunk.from_plain(c) for c in index["chunks"]]
            if not isinstance(index["devices"], list):
                raise TypeError("devices is not a list")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("window store: %s is unreadable (%s): starting empty", path, exc)
            return None
        if shape != self._shape:
            log.warning(
                "window store: %s holds windows of %d x %d, this node uses %d x %d: starting empty",
                self.directory,
                *shape,
                *self._shape,
            )
            return None
        return dict(index)

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s (further occurrences are counted, not logged)", text)


def _in_spans(records: Records, code: int, spans: Sequence[Span]) -> NDArray[np.bool_]:
    t = records["end_time"]
    hit = np.zeros(records.shape[0], np.bool_)
    for start, end in spans:
        hit |= (t >= start) & (t <= end)
    result: NDArray[np.bool_] = hit & (records["device"] == code)
    return result
