"""One ``fedge evaluate`` run: load, prepare every node, run the modes, print and write."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from evaluation import results, skab
from evaluation.inprocess import ModeResult, run_mode
from evaluation.nodes import prepare
from evaluation.protocol import EvalConfig

log = logging.getLogger(__name__)


def evaluate(
    directory: Path,
    config: EvalConfig,
    modes: Sequence[str],
    *,
    live: bool = False,
    json_path: Path | None = None,
    report_dir: Path | None = None,
    broker: str | None = None,
    out: TextIO = sys.stdout,
) -> int:
    started = time.monotonic()

    def progress(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    if live and not log.isEnabledFor(logging.DEBUG):
        # Twenty nodes and an aggregator log every install and round at INFO: keep the
        # terminal to the progress lines (--log-level debug shows everything).
        for name in ("edge_node", "cloud_aggregator", "fedge"):
            logging.getLogger(name).setLevel(logging.WARNING)
    dataset = skab.load(directory, min_rows=config.train_rows + config.window)
    nodes = [prepare(e, config) for e in dataset.experiments]
    progress(f"{len(nodes)} runs prepared ({', '.join(dataset.skipped) or 'none'} skipped)")
    done: list[ModeResult] = []
    for mode in modes:
        done.append(run_mode(mode, nodes, config, progress))
        if mode == "federated" and live:
            from evaluation.live import run_live  # noqa: PLC0415 - only --live needs a broker

            done.append(run_live(nodes, config, broker, progress))
    print(results.table(dataset, done), file=out)
    if live:
        print(results.live_agreement(done), file=out)
    if json_path is not None:
        results.write_json(json_path, results.as_json(dataset, config, done))
        print(f"metrics: {json_path}", file=out)
    if report_dir is not None:
        from evaluation.report import write_report  # noqa: PLC0415 - matplotlib, on demand

        page = write_report(report_dir, nodes, done, config)
        print(f"report: {page}", file=out)
    return 0
