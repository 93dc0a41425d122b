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
from demo.plan import DemoSettings, RunFiles
from demo.run import DemoFailedError, DemoRun
from demo.status import StatusLine
from demo.summary import summarise
from device_sim.scenario import parse_duration
from fedge.errors import ConfigError, TopicError
from fedge.topics import TopicRoot

log = logging.getLogger(__name__)

# Common options that make no sense for a demo that runs its own, anonymous, local broker.
_REFUSED = {
    "config": "--config",
    "broker": "--broker",
    "username": "--username",
    "password_env": "--password-env",
    "ca_file": "--ca-file",
    "cert_file": "--cert-file",
    "key_file": "--key-file",
}


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
            default=Path("fedge-demo-report"),
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
        add("--keep", action="store_true", help="keep the run directory (logs, state, registry)")
        add(
            "--embedded-broker",
            action="store_true",
            help="use the embedded MQTT 3.1.1 broker even if Mosquitto is installed",
        )

    def run(self, args: argparse.Namespace) -> int:
        settings = demo_settings(args)
        _check_report_dir(args.report)
        root, temporary = _run_dir(args.run_dir)
        status = StatusLine(sys.stdout)
        demo = DemoRun(
            settings,
            RunFiles(root),
            status,
            embedded_broker=bool(args.embedded_broker),
            topic_prefix=args.topic_prefix,
            protocol=args.mqtt_protocol,
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
            keep = bool(args.keep) or not temporary or outcome == "failed"
            try:
                self._finish(demo, settings, args.report, outcome, keep)
            except OSError as exc:  # logged here too: another error may be on its way out
                report_error = exc
                log.error("cannot write the report to %s: %s", args.report, exc)
            if not keep:
                shutil.rmtree(root, ignore_errors=True)
        if report_error is not None:
            raise DemoFailedError(f"cannot write the report to {args.report}: {report_error}")
        return 0

    def _finish(
        self, demo: DemoRun, settings: DemoSettings, directory: Path, outcome: str, keep: bool
    ) -> None:
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
            demo.tally, settings, outcome=outcome, elapsed_s=demo.elapsed_s, **extra
        )
        print()
        print(report.table(summary))
        written = report.write(summary, directory)
        print(f"report: {written[-1]} ({', '.join(p.name for p in written)})")
        if keep:
            print(f"logs, node state and registry: {demo.files.root}")


def demo_settings(args: argparse.Namespace) -> DemoSettings:
    """Validated settings from the flags; options the demo cannot honour are errors."""
    for attribute, flag in _REFUSED.items():
        if getattr(args, attribute, None) is not None:
            raise ConfigError(
                flag, "fedge demo starts its own local broker and takes no broker options"
            )
    defaults = DemoSettings()
    values: dict[str, Any] = {
        key: getattr(args, key)
        for key in ("nodes", "devices", "rounds", "speed", "seed")
        if getattr(args, key) is not None
    }
    if args.timeout is not None:
        values["timeout_s"] = parse_duration("timeout", args.timeout)
    settings = DemoSettings(**{**defaults.__dict__, **values})
    if args.topic_prefix is not None:
        try:
            TopicRoot(args.topic_prefix)
        except TopicError as exc:
            raise ConfigError("topic-prefix", str(exc)) from None
    if args.mqtt_protocol == "5" and args.embedded_broker:
        raise ConfigError("mqtt-protocol", "the embedded broker speaks MQTT 3.1.1 only")
    return settings


def _check_report_dir(directory: Path) -> None:
    """Fail before starting anything if the report could not be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("report", f"cannot create {directory}: {exc.strerror}") from None


def _run_dir(given: Path | None) -> tuple[Path, bool]:
    """The run directory and whether it is a temporary one of ours."""
    if given is None:
        return Path(tempfile.mkdtemp(prefix="fedge-demo-")).resolve(), True
    if given.exists() and (not given.is_dir() or any(given.iterdir())):
        raise ConfigError(
            "run-dir", f"{given} is not an empty directory (old node state would be reused)"
        )
    given.mkdir(parents=True, exist_ok=True)
    return given.resolve(), False


COMMAND = DemoCommand()
