"""``fedge evaluate --report DIR``: PNGs of every run's scores, F1 by mode, training and traffic,
and one self-contained HTML page (no scripts, fonts or network) that links them.

Drawn with matplotlib's object API (``Figure`` and the Agg canvas), never pyplot: no global
backend or figure registry, so nothing to close and nothing shared between threads.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import LogFormatter, MaxNLocator
from numpy.typing import NDArray

from evaluation.inprocess import ModeResult
from evaluation.metrics import Confusion
from evaluation.nodes import NodeData
from evaluation.protocol import EvalConfig
from evaluation.results import ANCHORS, traffic_lines

DPI = 100
MODE_COLOURS = {"local": "tab:green", "federated": "tab:blue", "centralized": "tab:orange"}
LIVE_COLOUR = "tab:purple"
TRUTH_COLOUR = "#d62728"
DETECTED_COLOUR = "#222222"
ANCHOR_COLOUR = "0.65"
DETECTED_STRIP = 0.08  # height of the detected strip, as a fraction of the axes


def write_report(
    directory: Path, nodes: Sequence[NodeData], results: Sequence[ModeResult], config: EvalConfig
) -> Path:
    """Draw every PNG into ``directory`` and return the path of the ``index.html`` linking them."""
    (directory / "runs").mkdir(parents=True, exist_ok=True)
    ordered = sorted(results, key=_display_order)
    run_pngs: list[str] = []
    for index, data in enumerate(nodes, start=1):
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", data.experiment.name).strip("_") or "run"
        name = f"runs/{index:02d}-{slug}.png"
        _save(_run_figure(data, ordered, config), directory / name)
        run_pngs.append(name)
    figures = {"f1_by_mode.png": _mode_figure(ordered), "training.png": _training_figure(ordered)}
    traffic = _traffic_figure(ordered, len(nodes))
    if traffic is not None:
        figures["traffic.png"] = traffic
    for name, figure in figures.items():
        _save(figure, directory / name)
    page = directory / "index.html"
    page.write_text(_page(nodes, ordered, config, run_pngs, list(figures)), encoding="utf-8")
    return page


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI)


def _label(result: ModeResult) -> str:
    return result.mode + (" (live)" if result.live else "")


def _colour(result: ModeResult) -> str:
    return LIVE_COLOUR if result.live else MODE_COLOURS.get(result.mode, "tab:gray")


def _display_order(result: ModeResult) -> tuple[int, bool]:
    """Federated first (the mode the report is about), then local and centralized."""
    ranks = {"federated": 0, "local": 1, "centralized": 2}
    return ranks.get(result.mode, 3), result.live


def _metrics(confusion: Confusion) -> str:
    return f"F1 {confusion.f1:.3f}  FAR {confusion.far:.1%}  MAR {confusion.mar:.1%}"


def _spans(
    times: NDArray[np.float64], mask: NDArray[np.bool_], step: float
) -> list[tuple[float, float]]:
    """``(start, end)`` of each run of set readings, each reading covering ``step`` seconds."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [
        (float(times[a]), float(times[b - 1]) + step)
        for a, b in zip(edges[::2], edges[1::2], strict=True)
    ]


class PlainLogFormatter(LogFormatter):
    """Matplotlib's choice of which log ticks to label, written as 0.05 rather than 5e-02."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def _log_scale(ax: Axes, score: NDArray[np.float64], threshold: float) -> None:
    """Log y with plain tick labels, and room below the data for the detected strip."""
    low = min(float(score.min()), threshold) if score.size else threshold
    high = max(float(score.max()), threshold) if score.size else threshold
    span = max(high / low, 1.5) if low > 0 else 10.0
    ax.set_yscale("log")
    ax.set_ylim(low / span**0.15, high * span**0.06)
    ax.yaxis.set_major_formatter(PlainLogFormatter())
    ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.8)))
    ax.tick_params(axis="y", which="minor", labelsize=7)


def _run_figure(data: NodeData, results: Sequence[ModeResult], config: EvalConfig) -> Figure:
    """Window score against the threshold per mode, true anomalies shaded over the whole
    height, the readings the node flagged as a dark strip along the bottom."""
    shown = [r for r in results if data.node in r.detections]
    figure = Figure(figsize=(10, 1.3 + 1.9 * max(1, len(shown))), layout="constrained")
    axes = figure.subplots(max(1, len(shown)), 1, sharex=True, squeeze=False)[:, 0]
    timestamps = data.experiment.recording.timestamps
    start = float(timestamps[config.train_rows])
    reading_time = timestamps[config.train_rows :] - start
    step = float(np.median(np.diff(reading_time))) if len(reading_time) > 1 else 1.0
    truth = _spans(reading_time, data.experiment.anomaly[config.train_rows :], step)
    window_time = data.test_end_time - start
    for ax, result in zip(axes, shown, strict=False):
        detection = result.detections[data.node]
        for a, b in truth:
            ax.axvspan(a, b, color=TRUTH_COLOUR, alpha=0.15, linewidth=0)
        for a, b in _spans(reading_time, detection.flagged, step):
            ax.axvspan(a, b, ymax=DETECTED_STRIP, color=DETECTED_COLOUR, linewidth=0)
        score = np.maximum(detection.score.astype(np.float64), 1e-12)  # log axis
        breaks = np.flatnonzero(np.diff(window_time) > config.max_gap_s) + 1  # no line over gaps
        ax.plot(
            np.insert(window_time, breaks, np.nan),
            np.insert(score, breaks, np.nan),
            color=_colour(result),
            linewidth=1,
        )
        ax.axhline(detection.threshold, color="black", linestyle="--", linewidth=1)
        _log_scale(ax, score, detection.threshold)
        ax.set_ylabel(f"{_label(result)}\nscore")
        ax.set_title(
            f"{_label(result)}: {_metrics(detection.confusion)}, "
            f"threshold {detection.threshold:.3g}, {len(detection.episodes)} episode(s)",
            loc="left",
            fontsize=9,
        )
        ax.grid(visible=True, which="major", axis="y", alpha=0.3)
    if not shown:
        axes[0].text(0.5, 0.5, "no mode has a verdict for this run", ha="center")
    axes[-1].set_xlabel(f"seconds since the test part began (row {config.train_rows})")
    axes[-1].set_xlim(0, float(reading_time[-1]) + step)
    headline = next((r for r in shown if r.mode == "federated"), shown[0] if shown else None)
    summary = (
        f" ({_label(headline)}: {_metrics(headline.detections[data.node].confusion)})"
        if headline is not None
        else ""
    )
    figure.suptitle(f"{data.experiment.name}{summary}", x=0.01, ha="left", fontsize=11)
    figure.legend(
        handles=[
            Line2D([], [], color="0.3", linewidth=1, label="window score"),
            Line2D([], [], color="black", linestyle="--", linewidth=1, label="threshold"),
            Patch(color=TRUTH_COLOUR, alpha=0.15, label="true anomaly"),
            Patch(color=DETECTED_COLOUR, label="detected (strip at bottom)"),
        ],
        loc="outside lower center",
        ncols=4,
        fontsize=8,
        frameon=False,
    )
    return figure


def _bar_labels(ax: Axes, bars: BarContainer, *, percent: bool) -> None:
    ax.bar_label(bars, fmt="{:.1%}" if percent else "{:.3f}", fontsize=7, padding=2)


def _mode_figure(results: Sequence[ModeResult]) -> Figure:
    """Pooled F1 of every mode beside SKAB's leaderboard; FAR and MAR beside Conv-AE's."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    f1_ax, rate_ax = figure.subplots(1, 2, width_ratios=(1, 1.1))
    names = [f"fedge {_label(r)}" for r in results] + [f"SKAB {a[0]}" for a in ANCHORS]
    f1s = [r.overall.f1 for r in results] + [a[1] for a in ANCHORS]
    colours = [_colour(r) for r in results] + [ANCHOR_COLOUR] * len(ANCHORS)
    bars = f1_ax.barh(np.arange(len(names)), f1s, color=colours)
    _bar_labels(f1_ax, bars, percent=False)
    f1_ax.set_yticks(np.arange(len(names)), names, fontsize=9)
    f1_ax.invert_yaxis()
    f1_ax.set_xlim(0, 1.08)
    f1_ax.set_xlabel("F1 over every test reading (pooled over runs)")
    f1_ax.set_title("F1: fedge modes (colour) vs SKAB leaderboard (grey)", fontsize=10)
    rows = [(f"fedge {_label(r)}", r.overall.far, r.overall.mar) for r in results]
    rows += [
        (f"SKAB {n}", far, mar) for n, _, far, mar in ANCHORS if far is not None and mar is not None
    ]
    x = np.arange(len(rows))
    for offset, column, label, colour in (
        (-0.2, 1, "FAR (false alarms / normal readings)", "#d62728"),
        (0.2, 2, "MAR (missed / anomalous readings)", "0.35"),
    ):
        values = [float(row[column] or 0.0) for row in rows]
        _bar_labels(
            rate_ax, rate_ax.bar(x + offset, values, 0.4, color=colour, label=label), percent=True
        )
    rate_ax.set_xticks(x, [row[0] for row in rows], fontsize=9, rotation=15)
    rate_ax.set_ylim(0, max(0.1, *(max(float(r[1] or 0), float(r[2] or 0)) for r in rows)) * 1.2)
    rate_ax.yaxis.set_major_formatter("{x:.0%}")
    rate_ax.set_title("False- and missed-alarm rates (lower is better)", fontsize=10)
    rate_ax.legend(fontsize=8, loc="upper left")
    return figure


def _training_figure(results: Sequence[ModeResult]) -> Figure:
    """Loss per round (mean over nodes, bars from the lowest to the highest node), before and
    after the round's training, and the pooled F1 after each round."""
    figure = Figure(figsize=(11, 4.6), layout="constrained")
    loss_ax, f1_ax = figure.subplots(1, 2)
    trained = [r for r in results if r.rounds]
    handles: list[Line2D | Patch] = []
    f1s: list[float] = [ANCHORS[0][1]]
    for position, result in enumerate(trained):
        colour, dodge = _colour(result), 0.06 * (position - (len(trained) - 1) / 2)
        rounds = np.array([r.index for r in result.rounds], dtype=np.float64) + dodge
        after = [list(r.loss_after.values()) for r in result.rounds]
        before = [np.mean(list(r.loss_before.values())) for r in result.rounds if r.loss_before]
        mean = np.array([np.mean(v) if v else math.nan for v in after])
        low = mean - np.array([min(v, default=math.nan) for v in after])
        high = np.array([max(v, default=math.nan) for v in after]) - mean
        loss_ax.errorbar(rounds, mean, yerr=[low, high], color=colour, marker="o", capsize=3)
        if len(before) == len(rounds):
            loss_ax.plot(rounds, before, color=colour, linestyle=":", marker=".")
        f1_ax.plot(rounds, [r.f1 for r in result.rounds], color=colour, marker="o")
        f1s.extend(r.f1 for r in result.rounds)
        handles.append(Patch(color=colour, label=_label(result)))
    name, anchor = ANCHORS[0][0], ANCHORS[0][1]
    f1_ax.axhline(anchor, color=ANCHOR_COLOUR, linestyle="--")
    middle, half = (max(f1s) + min(f1s)) / 2, max((max(f1s) - min(f1s)) * 0.6, 0.05)
    f1_ax.set_ylim(middle - half, middle + half)  # at least 0.1 wide: no drama from 0.002
    handles += [
        Line2D([], [], color="0.3", marker="o", label="loss after the round's training"),
        Line2D([], [], color="0.3", linestyle=":", marker=".", label="loss of the round's start"),
        Line2D([], [], color=ANCHOR_COLOUR, linestyle="--", label=f"SKAB {name} F1 ({anchor})"),
    ]
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("training loss (mean over nodes; bars: min-max)")
    loss_ax.set_title("Training loss per round (centralized: one model, all runs)", fontsize=10)
    f1_ax.set_ylabel("F1 (pooled over runs)")
    f1_ax.set_title("Detection F1 after each round", fontsize=10)
    for ax in (loss_ax, f1_ax):
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(visible=True, alpha=0.3)
    if not trained:
        loss_ax.text(0.5, 0.5, "no rounds recorded", ha="center", transform=loss_ax.transAxes)
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    return figure


def _traffic_figure(results: Sequence[ModeResult], runs: int) -> Figure | None:
    """Federated payload per node per round beside the node's whole recording, and the
    cumulative total beside shipping every reading; ``None`` without federated traffic."""
    federated = next((r for r in results if r.mode == "federated" and r.traffic.sent), None)
    if federated is None:
        return None
    traffic, kb, mb = federated.traffic, 1e-3, 1e-6
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    node_ax, total_ax = figure.subplots(1, 2, width_ratios=(1.3, 1))
    nodes = list(traffic.sent)
    x = np.arange(len(nodes))
    sent = [np.mean(traffic.sent[n]) * kb for n in nodes]
    received = [np.mean(traffic.received.get(n, [0])) * kb for n in nodes]
    node_ax.bar(x, sent, 0.8, color="tab:blue", label="sent per round (update)")
    node_ax.bar(
        x,
        received,
        0.8,
        bottom=sent,
        color="tab:cyan",
        label="received per round (command + model)",
    )
    for raw, marker, label in (
        (traffic.raw_bytes, "o", "the node's whole recording, float32"),
        (traffic.frame_bytes, "s", "the node's whole recording, as sensor frames"),
    ):
        values = [raw.get(n, 0) * kb for n in nodes]
        node_ax.scatter(x, values, s=36, c="white", marker=marker, edgecolors="black", label=label)
    node_ax.set_xticks(x, nodes, rotation=90, fontsize=7)
    node_ax.set_ylabel("kB")
    node_ax.set_title(f"{_label(federated)}: a round per node vs the node's data", fontsize=10)
    node_ax.set_ylim(0, node_ax.get_ylim()[1] * 1.3)  # room for the legend above the bars
    node_ax.legend(fontsize=7, loc="upper center", ncols=2)
    rounds = max(len(row) for row in traffic.sent.values())
    rows = [*traffic.sent.values(), *traffic.received.values()]
    per_round = [sum(row[i] for row in rows if i < len(row)) for i in range(rounds)]
    cumulative = np.cumsum([0, *per_round, traffic.final_model * len(traffic.received)]) * mb
    steps = np.arange(len(cumulative))
    total_ax.plot(steps, cumulative, color=_colour(federated), marker="o", label="federated")
    for value, style, label in (
        (sum(traffic.raw_bytes.values()), "--", f"every reading of {runs} runs, float32"),
        (sum(traffic.frame_bytes.values()), ":", f"every reading of {runs} runs, sensor frames"),
    ):
        total_ax.axhline(value * mb, color="black", linestyle=style, label=label)
    central = next((r for r in results if r.mode == "centralized" and r.traffic.sent), None)
    if central is not None:
        total = (central.traffic.total_sent + central.traffic.total_received) * mb
        label = "centralized: training frames up, model down"
        total_ax.axhline(total, color=_colour(central), linestyle="-.", label=label)
    total_ax.set_xticks(steps, ["start", *(str(i + 1) for i in range(rounds)), "final\nmodel"])
    total_ax.set_xlabel("round")
    total_ax.set_ylabel("MB, all nodes, cumulative")
    total_ax.set_title("Total traffic vs shipping the readings", fontsize=10)
    total_ax.legend(fontsize=7)
    total_ax.grid(visible=True, alpha=0.3)
    return figure


def _rates(f1: float | None, far: float | None, mar: float | None) -> str:
    """F1, FAR and MAR as table cells; a dash where there is no value (most SKAB anchors)."""
    return "".join(
        "<td>&ndash;</td>" if value is None else f"<td>{form.format(value)}</td>"
        for value, form in ((f1, "{:.3f}"), (far, "{:.1%}"), (mar, "{:.1%}"))
    )


def _href(path: str) -> str:
    return html.escape(quote(path))


def _page(
    nodes: Sequence[NodeData],
    results: Sequence[ModeResult],
    config: EvalConfig,
    run_pngs: Sequence[str],
    figures: Sequence[str],
) -> str:
    """The HTML page: every text escaped, every link relative, the style inline."""
    e = html.escape
    overall = "".join(
        f"<tr><th>fedge {e(_label(r))}</th>{_rates(c.f1, c.far, c.mar)}"
        f"<td>{c.tp}/{c.fp}/{c.tn}/{c.fn}</td><td>{r.seconds:.0f} s</td></tr>"
        for r, c in ((r, r.overall) for r in results)
    ) + "".join(
        f"<tr class=anchor><th>SKAB {e(name)}</th>{_rates(f1, far, mar)}<td></td><td></td></tr>"
        for name, f1, far, mar in ANCHORS
    )
    protocol = "".join(
        f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in config.describe().items()
    )
    files = []
    for data, png in zip(nodes, run_pngs, strict=True):
        verdicts = [r.detections.get(data.node) for r in results]
        cells = "".join(
            _rates(None, None, None)
            if d is None
            else _rates(d.confusion.f1, d.confusion.far, d.confusion.mar)
            for d in verdicts
        )
        files.append(
            f'<tr><th><a href="{_href(png)}">{e(data.experiment.name)}</a></th>{cells}</tr>'
        )
    images = "".join(
        f'<p><a href="{_href(f)}"><img src="{_href(f)}" alt="{e(f)}"></a></p>' for f in figures
    )
    thumbs = "".join(
        f'<figure><a href="{_href(png)}"><img src="{_href(png)}" alt="{e(d.experiment.name)}">'
        f"</a><figcaption>{e(d.experiment.name)}</figcaption></figure>"
        for d, png in zip(nodes, run_pngs, strict=True)
    )
    traffic = "".join(f"<li>{e(line)}</li>" for line in traffic_lines(results))
    heads = "".join(f"<th colspan=3>{e(_label(r))}</th>" for r in results)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>fedge evaluation: SKAB, {len(nodes)} runs</title>
<style>
body{{font-family:sans-serif;margin:1.5em;max-width:1200px}}
table{{border-collapse:collapse;margin:.5em 0}} td,th{{border:1px solid #ccc;padding:2px 8px}}
td{{text-align:right}} th{{text-align:left}} tr.anchor{{color:#666}}
img{{max-width:100%}} .grid{{display:flex;flex-wrap:wrap;gap:8px}}
.grid figure{{margin:0;width:280px}} .grid img{{width:280px}} figcaption{{font-size:small}}
</style></head><body>
<h1>fedge evaluation: SKAB, {len(nodes)} runs</h1>
<h2>Overall (confusion pooled over every test reading of every run)</h2>
<table><tr><th></th><th>F1</th><th>FAR</th><th>MAR</th><th>TP/FP/TN/FN</th><th>time</th></tr>
{overall}</table>
<ul>{traffic}</ul>
<h2>Protocol</h2>
<table>{protocol}</table>
{images}
<h2>Per run</h2>
<p>Each run's page: the window score per mode (log scale) against that mode's threshold, true
anomalies shaded red, the readings the node flagged as a dark strip along the bottom.</p>
<table><tr><th rowspan=2>run</th>{heads}</tr>
<tr>{"<th>F1</th><th>FAR</th><th>MAR</th>" * len(results)}</tr>
{"".join(files)}</table>
<div class=grid>{thumbs}</div>
</body></html>
"""
