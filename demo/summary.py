"""The run's summary as plain data: what ``summary.json`` holds and the table and figure show.

Built once, after the observer has disconnected, from the ``Tally`` and the run's settings.
Everything is JSON-ready (numbers, strings, lists, maps), so the report can be redrawn from
``summary.json`` alone.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from demo import plan
from demo.plan import DemoSettings
from demo.tally import Tally

SCHEMA = 1


def summarise(
    tally: Tally, settings: DemoSettings, *, outcome: str, elapsed_s: float, **extra: Any
) -> dict[str, Any]:
    """The whole run as one JSON-ready map; ``extra`` adds run facts (broker, pids, paths)."""
    rounds = [
        {
            "round": r.round_id,
            "opened_at": _t(r.opened_at),
            "closed_at": None if r.closed_at is None else _t(r.closed_at),
            "version": r.version,
            "asked": sorted(set(r.asked)),
            "per_node": {
                node: {"sent": r.sent.get(node, 0), "received": r.received.get(node, 0)}
                for node in sorted(set(r.asked) | set(r.sent) | set(r.received))
            },
        }
        for r in sorted(tally.rounds.values(), key=lambda r: r.round_id)
    ]
    closed = [r for r in rounds if r["version"] is not None]
    nodes = {node: _node(tally, node) for node in sorted(tally.traffic)}
    return {
        "schema": SCHEMA,
        "outcome": outcome,
        "elapsed_s": _t(elapsed_s),
        "settings": {
            **asdict(settings),
            "rate_hz": plan.RATE_HZ,
            "window": plan.WINDOW,
            "calibration_windows": plan.CALIBRATION_WINDOWS,
            "scenario": plan.scenario(settings),
        },
        **extra,
        "rounds_closed": len(closed),
        "rounds": rounds,
        "versions": [
            {"version": v, "at": _t(at), "origin": origin}
            for v, (at, origin) in sorted(tally.versions.items())
        ],
        "nodes": nodes,
        "totals": _totals(nodes),
        "per_round_per_node": _per_round(closed),
        "break_even": _break_even(settings, nodes, _per_round(closed)),
        "anomalies": tally.detection(),
        "events": dict(sorted(tally.events.items())),
        "episodes": [
            {
                "node": e.node,
                "device": e.device,
                "opened_at": _t(e.opened_at),
                "closed_at": None if e.closed_at is None else _t(e.closed_at),
                "start": e.start,
                "end": e.end,
            }
            for e in tally.episodes
        ],
        "injected": [
            {
                "node": s.node,
                "device": s.device,
                "kind": s.kind,
                "code": s.code,
                "start": s.start,
                "end": s.end,
                "arrived_at": _t(s.arrived_at),
            }
            for s in tally.truth.spans
        ],
        "marks": [
            {
                "at": _t(m.at),
                "node": m.node,
                "device": m.device,
                "what": m.what,
                "detail": m.detail,
                "data": m.data,
            }
            for m in tally.marks
        ],
        "traffic_series": [[_t(at), ex, sensor, raw] for at, ex, sensor, raw in tally.series],
    }


def _node(tally: Tally, node: str) -> dict[str, Any]:
    t = tally.traffic[node]
    marks = [m for m in tally.marks if m.node == node]
    return {
        **asdict(t),
        "exchanged": t.sent + t.received,
        "anomalies": sum(1 for e in tally.episodes if e.node == node),
        "triggers": sum(1 for m in marks if m.what == "trigger"),
        "finetunes": sum(1 for m in marks if m.what == "finetune"),
        "model_version": tally.node_versions.get(node),
    }


def _totals(nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    keys = ("sent", "received", "exchanged", "sensor_bytes", "raw_bytes", "readings")
    totals: dict[str, Any] = {k: sum(n[k] for n in nodes.values()) for k in keys}
    exchanged = totals["exchanged"]
    # How many times more the raw data would have cost than what actually crossed the link.
    totals["sensor_vs_exchanged"] = _ratio(totals["sensor_bytes"], exchanged)
    totals["raw_vs_exchanged"] = _ratio(totals["raw_bytes"], exchanged)
    return totals


def _per_round(closed: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean bytes one node sent and received for one closed round."""
    cells = [cell for r in closed for cell in r["per_node"].values()]
    if not cells:
        return {"sent": None, "received": None}
    return {
        "sent": sum(c["sent"] for c in cells) / len(cells),
        "received": sum(c["received"] for c in cells) / len(cells),
    }


def _break_even(
    settings: DemoSettings, nodes: dict[str, dict[str, Any]], per_round: dict[str, float | None]
) -> dict[str, float | None]:
    """How much data time of a node's raw stream costs as much as one round of that node.

    Raw data grows with time, a round's cost does not: with rounds further apart than this,
    federated learning moves fewer bytes than shipping the raw stream would.
    """
    readings = sum(n["readings"] for n in nodes.values())
    pumps = settings.nodes * settings.devices
    data_s = readings / (pumps * plan.RATE_HZ) if pumps else 0.0  # per pump, i.e. per node
    count = max(len(nodes), 1)
    frames_per_s = _ratio(sum(n["sensor_bytes"] for n in nodes.values()) / count, data_s)
    floats_per_s = _ratio(sum(n["raw_bytes"] for n in nodes.values()) / count, data_s)
    cost = None
    if per_round["sent"] is not None and per_round["received"] is not None:
        cost = per_round["sent"] + per_round["received"]
    return {
        "round_bytes_per_node": cost,
        "raw_frame_bytes_per_node_per_data_s": frames_per_s,
        "raw_float32_bytes_per_node_per_data_s": floats_per_s,
        "data_s_per_round_frames": _ratio(cost or 0.0, frames_per_s or 0.0) if cost else None,
        "data_s_per_round_float32": _ratio(cost or 0.0, floats_per_s or 0.0) if cost else None,
    }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _t(seconds: float) -> float:
    return round(seconds, 3)
