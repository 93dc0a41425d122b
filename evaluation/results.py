"""What an evaluation prints and writes: the table beside SKAB's leaderboard, and the JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from evaluation.inprocess import ModeResult
from evaluation.protocol import EvalConfig
from evaluation.skab import Dataset

# SKAB leaderboard, outlier detection, same protocol (github.com/waico/SKAB, v0.9).
ANCHORS: Final = (
    ("Conv-AE", 0.79, 0.1369, 0.1777),
    ("MSET", 0.73, None, None),
    ("LSTM-AE", 0.68, None, None),
    ("T2+Q (PCA)", 0.67, None, None),
    ("Isolation Forest", 0.40, None, None),
)


def table(dataset: Dataset, results: Sequence[ModeResult]) -> str:
    runs = len(dataset.experiments)
    lines = [
        f"SKAB: {runs} runs under {dataset.root}"
        + (f" (skipped, unlabelled: {', '.join(dataset.skipped)})" if dataset.skipped else ""),
        "",
        f"{'':<22}{'F1':>7}{'FAR':>9}{'MAR':>9}{'time':>9}",
    ]
    for result in results:
        overall = result.overall
        name = f"fedge {result.mode}" + (" (live)" if result.live else "")
        lines.append(
            f"{name:<22}{overall.f1:>7.3f}{overall.far:>8.1%}{overall.mar:>8.1%}"
            f"{result.seconds:>8.0f}s"
        )
    for name, f1, far, mar in ANCHORS:
        far_text = f"{far:>8.1%}" if far is not None else f"{'-':>8}"
        mar_text = f"{mar:>8.1%}" if mar is not None else f"{'-':>8}"
        lines.append(f"{'SKAB ' + name:<22}{f1:>7.2f} {far_text} {mar_text}")
    lines.append("")
    lines.extend(traffic_lines(results))
    return "\n".join(lines)


def traffic_lines(results: Sequence[ModeResult]) -> list[str]:
    lines = []
    for result in results:
        traffic = result.traffic
        if not traffic.sent:
            lines.append(f"{result.mode}: no model traffic (each node trains alone)")
            continue
        nodes = max(1, len(traffic.sent))
        rounds = max(1, max((len(r) for r in traffic.sent.values()), default=1))
        received = sum(sum(row) for row in traffic.received.values())
        raw = sum(traffic.raw_bytes.values())
        lines.append(
            f"{result.mode}{' (live)' if result.live else ''}: per node per round "
            f"{traffic.total_sent / nodes / rounds / 1e3:.1f} kB sent, "
            f"{received / nodes / rounds / 1e3:.1f} kB received"
            + (f" (+{traffic.final_model / 1e3:.1f} kB final model)" if traffic.final_model else "")
            + f"; {(traffic.total_sent + traffic.total_received) / 1e6:.2f} MB in total vs "
            f"{raw / 1e6:.2f} MB of raw float32 readings "
            f"({sum(traffic.frame_bytes.values()) / 1e6:.2f} MB as sensor frames)"
        )
    return lines


def as_json(
    dataset: Dataset, config: EvalConfig, results: Sequence[ModeResult]
) -> dict[str, object]:
    modes: dict[str, object] = {}
    for result in results:
        key = result.mode + ("_live" if result.live else "")
        modes[key] = {
            "overall": result.overall.as_dict(),
            "files": {
                name: {
                    "threshold": d.threshold,
                    "episodes": len(d.episodes),
                    **d.confusion.as_dict(),
                }
                for name, d in result.detections.items()
            },
            "rounds": [
                {
                    "round": r.index,
                    "f1": round(r.f1, 4) if math.isfinite(r.f1) else None,
                    "loss_before": r.loss_before,
                    "loss_after": r.loss_after,
                }
                for r in result.rounds
            ],
            "traffic": result.traffic.as_dict(),
            "seconds": result.seconds,
            "live": result.live,
        }
    return {
        "dataset": {
            "root": str(dataset.root),
            "runs": [e.name for e in dataset.experiments],
            "skipped": list(dataset.skipped),
        },
        "protocol": config.describe(),
        "modes": modes,
        "anchors": {name: {"f1": f1, "far": far, "mar": mar} for name, f1, far, mar in ANCHORS},
    }


def write_json(path: Path, document: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def live_agreement(done: Sequence[ModeResult]) -> str:
    """How far the live federated run is from the in-process one (the target: < 0.01 F1)."""
    by_kind = {(r.mode, r.live): r for r in done}
    inprocess, live = by_kind.get(("federated", False)), by_kind.get(("federated", True))
    if inprocess is None or live is None:
        return "live: no federated pair to compare"
    gap = abs(live.overall.f1 - inprocess.overall.f1)
    return (
        f"live vs in-process federated: F1 {live.overall.f1:.4f} vs {inprocess.overall.f1:.4f} "
        f"(difference {gap:.4f})"
    )
