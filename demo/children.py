"""The demo's child processes: start each in its own session, stop them all, leave nothing.

Every child runs ``python -m fedge.cli ...`` from the same interpreter, with its output in a
log file of the run directory and its own process group (so a Ctrl-C at the terminal reaches
only the demo, which then stops the children in order). Some children start processes of their
own in *other* sessions: ``fedge broker`` runs Mosquitto in a new session, an edge node runs
its trainer in a new session. Signalling a child's group therefore cannot reach them, so every
child also carries ``FEDGE_DEMO_RUN=<run id>`` in its environment, which its descendants
inherit, and the last step of a shutdown kills whatever process on this machine still carries
that marker (on Linux, through ``/proc``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

log = logging.getLogger(__name__)

MARKER_ENV: Final = "FEDGE_DEMO_RUN"
_POLL_S: Final = 0.1


@dataclass
class Child:
    """One running (or finished) child process and where its output goes."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes]
    log_file: IO[bytes]
    stopped: bool = False  # we asked it to stop: its exit is expected, whatever the code

    @property
    def pid(self) -> int:
        return self.proc.pid

    def returncode(self) -> int | None:
        return self.proc.poll()

    def log_tail(self, lines: int = 8) -> str:
        """The last ``lines`` lines of the child's log, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Children:
    """Starts the demo's children and guarantees that none of them, or of theirs, outlives it."""

    def __init__(self, run_id: str, workdir: Path, log_dir: Path) -> None:
        self.run_id = run_id
        self.workdir = workdir
        self.log_dir = log_dir
        self.children: list[Child] = []
        self.hurry = False  # set by a second Ctrl-C: skip the grace periods
        self.env = {**os.environ, MARKER_ENV: run_id, "PYTHONUNBUFFERED": "1"}

    def start(self, name: str, command: list[str]) -> Child:
        """Run ``fedge <command>`` as a child; its stdout and stderr go to ``<name>.log``."""
        argv = [sys.executable, "-m", "fedge.cli", *command]
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("wb")
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.env,
                start_new_session=True,  # Ctrl-C reaches the demo only; we stop the children
            )
        except OSError:
            log_file.close()
            raise
        child = Child(name, argv, log_path, proc, log_file)
        self.children.append(child)
        log.debug("started %s (pid %d): %s", name, proc.pid, " ".join(argv))
        return child

    def pids(self) -> dict[str, int]:
        return {child.name: child.pid for child in self.children}

    def stop(self, names: Iterable[str], grace_s: float) -> None:
        """SIGTERM the named children (fedge maps it to Ctrl-C, so they shut down cleanly),
        wait up to ``grace_s`` for all of them, then SIGKILL their process groups."""
        chosen = [c for c in self.children if c.name in set(names) and c.returncode() is None]
        for child in chosen:
            child.stopped = True
            _signal(child.pid, signal.SIGTERM, group=False)
        deadline = time.monotonic() + grace_s
        while any(c.returncode() is None for c in chosen):
            if self.hurry or time.monotonic() > deadline:
                break
            time.sleep(_POLL_S)
        for child in chosen:
            if child.returncode() is None:
                log.warning("%s did not stop within %gs: killing it", child.name, grace_s)
                _signal(child.pid, signal.SIGKILL, group=True)
                child.proc.wait()

    def close(self) -> list[int]:
        """Kill every child still running and every process carrying this run's marker; close
        the log files. Returns the pids that had to be killed by the marker sweep."""
        for child in self.children:
            child.stopped = True
            if child.returncode() is None:
                _signal(child.pid, signal.SIGKILL, group=True)
                child.proc.wait()
        swept = sweep(self.run_id)
        for child in self.children:
            child.log_file.close()
        return swept


def marked_processes(run_id: str) -> list[int]:
    """Pids of live processes whose environment carries ``FEDGE_DEMO_RUN=run_id`` (Linux
    /proc; elsewhere an empty list, and process groups are all the clean-up there is)."""
    needle = f"{MARKER_ENV}={run_id}".encode()
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def sweep(run_id: str, rounds: int = 3) -> list[int]:
    """SIGKILL every process marked with ``run_id``; repeat while new ones appear (a dying
    parent may have forked just before)."""
    killed: list[int] = []
    for _ in range(rounds):
        pids = marked_processes(run_id)
        if not pids:
            break
        for pid in pids:
            _signal(pid, signal.SIGKILL, group=False)
        killed += pids
        time.sleep(_POLL_S)
    if killed:
        log.info("killed %d leftover process(es) of this run: %s", len(killed), killed)
    return killed


def _signal(pid: int, sig: signal.Signals, *, group: bool) -> None:
    """Signal a process (or the group it leads); one that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
