"""The run's report: a summary table for the terminal, and a directory to keep.

The directory holds ``summary.json`` (everything, see ``demo.summary``), ``demo.png`` (see
``demo.figure``) and ``index.html``, which shows both tables and the figure and links the
JSON. Without matplotlib (the ``report`` extra) the PNG is left out and the page says so.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

from demo.status import human_bytes

log = logging.getLogger(__name__)

FIGURE = "demo.png"


def round_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per closed round and node: what that round cost that node."""
    rows = []
    for r in summary["rounds"]:
        if r["version"] is None:
            continue
        for node, cell in r["per_node"].items():
            rows.append([str(r["round"]), f"v{r['version']}", node, human_bytes(cell["sent"]),
                         human_bytes(cell["received"])])  # fmt: skip
    return rows


def node_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per node and a total: alarms, learning, traffic and the raw alternative."""
    rows = []
    entries = [*summary["nodes"].items(), ("total", _total_row(summary))]
    for node, n in entries:
        rows.append([
            node, str(n["anomalies"]), str(n["triggers"]), str(n["finetunes"]),
            human_bytes(n["sent"]), human_bytes(n["received"]), human_bytes(n["exchanged"]),
            human_bytes(n["sensor_bytes"]), human_bytes(n["raw_bytes"]),
            _times(n["sensor_bytes"], n["exchanged"]),
        ])  # fmt: skip
    return rows


ROUND_HEADER = ["round", "version", "node", "sent", "received"]
NODE_HEADER = ["node", "anomalies", "triggers", "fine-tunes", "sent", "received", "exchanged",
               "raw frames", "raw float32", "raw/exchanged"]  # fmt: skip


def table(summary: dict[str, Any]) -> str:
    """The text the demo prints at the end."""
    s = summary["settings"]
    lines = [
        f"fedge demo {summary['outcome']} in {summary['elapsed_s']:.0f} s: "
        f"{summary['rounds_closed']}/{s['rounds']} rounds, {s['nodes']} nodes, "
        f"{s['nodes'] * s['devices']} pumps at {s['speed']:g}x, broker "
        f"{summary.get('broker', '?')}",
        "",
        "what each round cost each node (payload bytes, node's view):",
        *_format([ROUND_HEADER, *round_rows(summary)]),
        "",
        "per node, whole run (sent: updates, events, status; received: commands, models):",
        *_format([NODE_HEADER, *node_rows(summary)]),
        "",
        _anomaly_line(summary),
    ]
    lines += _cost_lines(summary)
    return "\n".join(lines)


def _cost_lines(summary: dict[str, Any]) -> list[str]:
    """A round's cost per node, and how much raw data time costs the same."""
    per_round, even = summary["per_round_per_node"], summary["break_even"]
    if per_round["sent"] is None or even["data_s_per_round_frames"] is None:
        return []
    s = summary["settings"]
    return [
        f"one round costs a node {human_bytes(per_round['sent'])} up and "
        f"{human_bytes(per_round['received'])} down: as much as "
        f"{even['data_s_per_round_frames'] / 60:.1f} min of its raw sensor frames "
        f"({even['data_s_per_round_float32'] / 60:.1f} min as bare float32) at "
        f"{s['devices']} pump(s) x {s['rate_hz']:g} Hz x 6 channels;",
        "with rounds further apart than that, federated learning moves less data than "
        "shipping the raw stream.",
    ]


def write(summary: dict[str, Any], directory: Path) -> list[Path]:
    """Write summary.json, the figure and index.html into ``directory``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "summary.json"]
    written[0].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    figure: Path | None = directory / FIGURE
    try:
        from demo.figure import draw  # noqa: PLC0415 - matplotlib only when a report is written

        assert figure is not None  # noqa: S101 - just set
        draw(summary, figure)
        written.append(figure)
    except ImportError as exc:
        log.warning("no figure: %s (install the report extra: pip install 'fedge[report]')", exc)
        figure = None
    page = directory / "index.html"
    page.write_text(_html(summary, figure is not None), encoding="utf-8")
    written.append(page)
    return written


def _total_row(summary: dict[str, Any]) -> dict[str, Any]:
    nodes = summary["nodes"].values()
    return {
        **summary["totals"],
        "anomalies": sum(n["anomalies"] for n in nodes),
        "triggers": sum(n["triggers"] for n in nodes),
        "finetunes": sum(n["finetunes"] for n in nodes),
    }


def _anomaly_line(summary: dict[str, Any]) -> str:
    a = summary["anomalies"]
    events = summary["events"]
    return (
        f"anomalies: {a['detected']} of {a['injected_anomalies']} injected detected; "
        f"{a['episodes']} episodes reported ({a['other_episodes']} not on injected behaviour); "
        f"drift: {a['injected_drifts']} injected, {events.get('trigger', 0)} trigger firing(s), "
        f"{events.get('finetune', 0)} fine-tune(s), "
        f"{sum(1 for v in summary['versions'] if v['origin'] == 'async')} async version(s)"
    )


def _times(raw: int, exchanged: int) -> str:
    return f"{raw / exchanged:.2f}x" if exchanged else "-"


def _format(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    out = []
    for i, r in enumerate(rows):
        cells = [
            c.ljust(w) if k == 0 else c.rjust(w)
            for k, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append("  " + "  ".join(cells))
        if i == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(summary: dict[str, Any], with_figure: bool) -> str:
    figure = (
        f'<p><img src="{FIGURE}" alt="timeline of anomalies, triggers and rounds; traffic"></p>'
        if with_figure
        else "<p>No figure: matplotlib is not installed (pip install 'fedge[report]').</p>"
    )
    headline = html.escape(table(summary).splitlines()[0])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fedge demo report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;
text-align:right}}td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}</style>
</head><body>
<h1>fedge demo</h1>
<p>{headline}</p>
<p>{html.escape(_anomaly_line(summary))}</p>
<p>{html.escape(" ".join(_cost_lines(summary)))}</p>
{figure}
<h2>What each round cost each node</h2>
{_html_table([ROUND_HEADER, *round_rows(summary)])}
<h2>Per node, whole run</h2>
<p>Sent: model updates, events and status messages. Received: commands and global models.
Raw: every sensor frame of the node's pumps, as published, and the same readings as bare
float32. Bytes are MQTT payload bytes.</p>
{_html_table([NODE_HEADER, *node_rows(summary)])}
<p>Everything, including the timeline: <a href="summary.json">summary.json</a>.
How to read it: docs/demo.md.</p>
</body></html>
"""
