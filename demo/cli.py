"""``fedge demo``: the whole platform on this machine, in one command (see docs/demo.md).

It starts a broker (Mosquitto if installed, else the embedded one), an aggregator, several edge
nodes and a simulated fleet with injected anomalies and one drift, as separate processes; runs
a few federated rounds while showing live progress; and ends with a summary table and a report
directory. Ctrl-C stops every process it started, and theirs.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from demo import report
from demo.options import DemoOptions, demo_options
from demo.plan import DemoSettings, RunFiles
from demo.run import DemoFailedError, DemoRun
from demo.status import StatusLine
from demo.summary import summarise
from fedge.errors import ConfigError

log = logging.getLogger(__name__)


class DemoCommand:
    """The ``fedge demo`` subcommand."""

    name = "demo"
    help = "run the whole platform locally: broker, aggregator, edge nodes, simulated pumps"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        defaults = DemoSettings()
        add = parser.add_argument
        add("--nodes", type=int, metavar="N", help=f"edge nodes (default {defaults.nodes})")
        add("--devices", type=int, metavar="N", help=f"pumps per node (default {defaults.devices})")
        add("--rounds", type=int, metavar="N", help=f"federated rounds (default {defaults.rounds})")
        add(
            "--speed",
            type=float,
            metavar="X",
            help=f"simulated pumps run X times faster than real time (default {defaults.speed:g})",
        )
        add("--seed", type=int, metavar="N", help="seed of the data and the model (default 0)")
        add(
            "--timeout",
            metavar="TIME",
            help=f"fail if the rounds have not closed by then (default "
            f"{defaults.timeout_s / 60:g}m)",
        )
        add(
            "--report",
            type=Path,
            metavar="DIR",
            help="where summary.json, demo.png and index.html go (default ./fedge-demo-report)",
        )
        add(
            "--run-dir",
            type=Path,
            metavar="DIR",
            help="where logs, node state and the registry go (default: a temporary directory, "
            "removed at the end unless --keep or the run fails); must be new or empty",
        )
        add(
            "--keep",
            action="store_true",
            default=None,
            help="keep the run directory (logs, state, registry)",
        )
        add(
            "--embedded-broker",
            action="store_true",
            default=None,
            help="use the embedded MQTT 3.1.1 broker even if Mosquitto is installed",
        )

    def run(self, args: argparse.Namespace) -> int:
        options = demo_options(args)
        _check_run_dir(options.run_dir)  # before creating anything
        _check_report_dir(options.report)
        root, temporary = _run_dir(options.run_dir)
        demo = DemoRun(
            options.settings,
            RunFiles(root),
            StatusLine(sys.stdout),
            embedded_broker=options.embedded_broker,
            topic_prefix=options.topic_prefix,
            protocol=options.protocol,
            log_level=args.log_level,
        )
        outcome, report_error = "failed", None
        try:
            demo.execute()
            outcome = "completed"
        except KeyboardInterrupt:
            outcome = "interrupted"
            raise
        finally:
            keep = options.keep or not temporary or outcome == "failed"
            try:
                self._finish(demo, options, outcome, keep)
            except OSError as exc:  # logged here too: another error may be on its way out
                report_error = exc
                log.error("cannot write the report to %s: %s", options.report, exc)
            if not keep:
                shutil.rmtree(root, ignore_errors=True)
        if report_error is not None:
            raise DemoFailedError(f"cannot write the report to {options.report}: {report_error}")
        return 0

    def _finish(self, demo: DemoRun, options: DemoOptions, outcome: str, keep: bool) -> None:
        """Print the summary table and write the report, whatever the outcome."""
        extra: dict[str, Any] = {
            "broker": demo.broker_kind,
            "run_dir": str(demo.files.root) if keep else None,
            "pids": demo.children.pids(),
            "leftover_processes_killed": demo.leftovers,
            "rejected_messages": None if demo.observer is None else demo.observer.rejects.total,
            "phases": {"simulator_started_at": demo.sim_started,
                       "scenario_started_at": demo.scenario_started},
        }  # fmt: skip
        summary = summarise(
            demo.tally, options.settings, outcome=outcome, elapsed_s=demo.elapsed_s, **extra
        )
        print()
        print(report.table(summary))
        written = report.write(summary, options.report)
        print(f"report: {written[-1]} ({', '.join(p.name for p in written)})")
        if keep:
            print(f"logs, node state and registry: {demo.files.root}")


def _check_report_dir(directory: Path) -> None:
    """Fail before starting anything if the report could not be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("report", f"cannot create {directory}: {exc.strerror}") from None


def _check_run_dir(given: Path | None) -> None:
    if given is not None and given.exists() and (not given.is_dir() or any(given.iterdir())):
        raise ConfigError(
            "run-dir", f"{given} is not an empty directory (old node state would be reused)"
        )


def _run_dir(given: Path | None) -> tuple[Path, bool]:
    """The run directory, created, and whether it is a temporary one of ours."""
    if given is None:
        return Path(tempfile.mkdtemp(prefix="fedge-demo-")).resolve(), True
    try:
        given.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("run-dir", f"cannot create {given}: {exc.strerror}") from None
    return given.resolve(), False


COMMAND = DemoCommand()
