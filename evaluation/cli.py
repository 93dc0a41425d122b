"""``fedge evaluate skab DIR``: SKAB's protocol through fedge's edge code, in three modes.

Imports nothing heavy at module level (the CLI loads every command at start-up); torch comes
in with the run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from evaluation.protocol import MODES, EvalConfig

log = logging.getLogger(__name__)


class EvaluateCommand:
    name = "evaluate"
    help = "measure detection on labelled recordings (SKAB): local, federated, centralized"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        defaults = EvalConfig()
        parser.add_argument("dataset", choices=("skab",), help="the data layout (skab)")
        parser.add_argument("directory", type=Path, help="the data folder (valve1/, valve2/ ...)")
        parser.add_argument(
            "--mode",
            choices=(*MODES, "all"),
            default="all",
            help="which training setting to evaluate (default all)",
        )
        parser.add_argument(
            "--rounds", type=int, default=defaults.rounds, help="training rounds (default 5)"
        )
        parser.add_argument(
            "--live",
            action="store_true",
            help="run the federated mode through a real broker, aggregator and edge nodes",
        )
        parser.add_argument("--json", type=Path, metavar="OUT", help="write the metrics here")
        parser.add_argument("--report", type=Path, metavar="DIR", help="write PNGs + HTML here")

    def run(self, args: argparse.Namespace) -> int:
        from evaluation.run import evaluate  # noqa: PLC0415 - imports torch: not at CLI start-up

        modes = MODES if args.mode == "all" else (args.mode,)
        config = EvalConfig(rounds=args.rounds)
        return evaluate(
            args.directory,
            config,
            modes,
            live=args.live,
            json_path=args.json,
            report_dir=args.report,
            broker=args.broker,
            out=sys.stdout,
        )


COMMAND = EvaluateCommand()
