"""The report's figure, drawn from ``summary.json`` alone with matplotlib's Agg backend.

Top: one lane per pump, wall-clock seconds since the demo started. Injected anomalies are
pale red bands (the ground truth), the episodes the node reported are dark bars over them, a
drift is an orange band from its start, and trigger firings and fine-tunes are markers on the
pump's lane. Rounds are shaded and every new global version is a vertical line.
Bottom left: cumulative bytes between the nodes and the cloud next to what shipping every
sensor frame would have cost. Bottom right: what each round cost each node.

matplotlib is imported here and only here (the ``report`` extra), when the report is written,
and used through its object API (a ``Figure`` and an Agg canvas, no pyplot state), so drawing
never opens a window or depends on a global backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_KB = 1000.0


def draw(summary: dict[str, Any], path: Path) -> None:
    """Write the figure as a PNG to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - optional
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(13, 8.5), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2, height_ratios=(3, 2))
    _timeline(fig.add_subplot(grid[0, :]), summary)
    _traffic(fig.add_subplot(grid[1, 0]), summary)
    _rounds(fig.add_subplot(grid[1, 1]), summary)
    settings = summary["settings"]
    fig.suptitle(
        f"fedge demo: {settings['nodes']} edge nodes, {settings['nodes'] * settings['devices']}"
        f" pumps, {summary['rounds_closed']} federated rounds, data at {settings['speed']:g}x",
        fontsize=13,
    )
    fig.savefig(path, dpi=100)


def lanes_top(count: int) -> float:
    """Where version labels go: below the last lane (the y axis is inverted)."""
    return count - 0.1


def _lanes(summary: dict[str, Any]) -> list[tuple[str, str]]:
    settings = summary["settings"]
    return [
        (f"node-{n}", f"pump-{d}")
        for n in range(settings["nodes"])
        for d in range(settings["devices"])
    ]


def _timeline(ax: Any, summary: dict[str, Any]) -> None:
    lanes = _lanes(summary)
    row = {lane: k for k, lane in enumerate(lanes)}
    end = summary["elapsed_s"]
    speed = summary["settings"]["speed"]
    _phases(ax, summary.get("phases") or {}, end, len(lanes))
    for r in summary["rounds"]:
        if r["closed_at"] is not None:
            ax.axvspan(r["opened_at"], r["closed_at"], color="tab:blue", alpha=0.12, lw=0)
            ax.text(r["opened_at"], len(lanes) - 0.55, f" round {r['round']}", fontsize=8,
                    color="tab:blue", va="bottom")  # fmt: skip
    for v in summary["versions"]:
        colour = "tab:purple" if v["origin"] == "async" else "tab:blue"
        ax.axvline(v["at"], color=colour, lw=1, ls="--" if v["origin"] == "async" else "-")
        ax.text(v["at"], lanes_top(len(lanes)), f"v{v['version']}", fontsize=8, color=colour,
                ha="center", va="top")  # fmt: skip
    for span in summary["injected"]:
        y = row.get((span["node"], span["device"]))
        if y is None:
            continue
        start = span["arrived_at"]
        if span["kind"] == "drift":
            ax.barh(y, end - start, left=start, height=0.8, color="tab:orange", alpha=0.25)
            ax.text(start, y + 0.3, " drift", fontsize=8, color="tab:orange", va="center")
        else:
            width = max((span["end"] - span["start"]) / speed, 0.3)
            ax.barh(y, width, left=start, height=0.8, color="tab:red", alpha=0.25)
    for e in summary["episodes"]:
        y = row.get((e["node"], e["device"]))
        if y is not None:
            closed = e["closed_at"] if e["closed_at"] is not None else end
            ax.barh(y, max(closed - e["opened_at"], 0.3), left=e["opened_at"], height=0.35,
                    color="darkred")  # fmt: skip
    styles = {"trigger": ("*", "tab:orange", 180), "finetune": ("^", "tab:green", 90),
              "training_failed": ("x", "black", 80)}  # fmt: skip
    for m in summary["marks"]:
        y = row.get((m["node"], m["device"]))
        if m["what"] in styles and y is not None:
            marker, colour, size = styles[m["what"]]
            ax.scatter(m["at"], y, marker=marker, s=size, color=colour, zorder=5,
                       edgecolors="black", linewidths=0.5)  # fmt: skip
    ax.set_yticks(range(len(lanes)), [f"{n}/{d}" for n, d in lanes])
    ax.set_ylim(-1.2, len(lanes) + 0.2)
    ax.set_xlim(0, max(end, 1.0))
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the demo started (wall clock)")
    ax.set_title("anomalies injected (pale red) and reported (dark red), drift (orange), "
                 "trigger (star), fine-tune (triangle), rounds (blue), versions (lines)",
                 fontsize=10)  # fmt: skip


def _phases(ax: Any, phases: dict[str, float | None], end: float, lanes: int) -> None:
    """Name the run's phases along the top: warm-up (calibration, then the rounds on replayed
    normal data) and the scenario."""
    warmup, scenario = phases.get("simulator_started_at"), phases.get("scenario_started_at")
    if warmup is not None:
        stop = scenario if scenario is not None else end
        ax.annotate("", (warmup, -0.55), (stop, -0.55),
                    arrowprops={"arrowstyle": "<->", "color": "grey"})  # fmt: skip
        ax.text((warmup + stop) / 2, -0.6, "warm-up: calibration, then rounds on normal data",
                ha="center", va="bottom", fontsize=8, color="grey")  # fmt: skip
    if scenario is not None:
        ax.axvspan(scenario, end, color="grey", alpha=0.06, lw=0)
        ax.text((scenario + end) / 2, -0.6, "scenario: anomalies and a drift", ha="center",
                va="bottom", fontsize=8, color="grey")  # fmt: skip


def _traffic(ax: Any, summary: dict[str, Any]) -> None:
    series = summary["traffic_series"]
    if series:
        at = [s[0] for s in series]
        ax.plot(at, [s[1] / _KB for s in series], color="tab:blue",
                label="nodes <-> cloud (updates, models, commands, events)")  # fmt: skip
        ax.plot(at, [s[2] / _KB for s in series], color="tab:red",
                label="raw: every sensor frame to the cloud")  # fmt: skip
    for v in summary["versions"]:
        ax.axvline(v["at"], color="grey", lw=0.5, alpha=0.5)
    ax.set_xlabel("seconds since the demo started")
    ax.set_ylabel("cumulative kB")
    ax.set_title("bytes exchanged vs shipping the raw data", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")


def _rounds(ax: Any, summary: dict[str, Any]) -> None:
    closed = [r for r in summary["rounds"] if r["version"] is not None]
    nodes = sorted({n for r in closed for n in r["per_node"]})
    width = 0.8 / max(len(nodes), 1)
    for k, node in enumerate(nodes):
        xs = [i + k * width for i in range(len(closed))]
        up = [r["per_node"].get(node, {}).get("sent", 0) / _KB for r in closed]
        down = [r["per_node"].get(node, {}).get("received", 0) / _KB for r in closed]
        ax.bar(xs, down, width, color=f"C{k}", alpha=0.45)
        ax.bar(xs, up, width, bottom=down, color=f"C{k}", label=node)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(closed))],
                  [f"round {r['round']}" for r in closed])  # fmt: skip
    ax.set_ylabel("kB per node (pale: received, solid: sent)")
    ax.set_title("what one round costs each node", fontsize=10)
    if nodes:
        ax.set_ylim(top=ax.get_ylim()[1] * 1.25)  # room for the legend above the bars
        ax.legend(fontsize=8, loc="upper center", ncols=min(len(nodes), 4))
