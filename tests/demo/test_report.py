"""The summary, the table and the report directory, from a tally filled by hand."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from demo import report
from demo.plan import DemoSettings
from demo.status import StatusLine, human_bytes, status_text
from demo.summary import summarise
from demo.tally import Tally
from fedge.wire import LabelFrame
from tests.demo.messages import T0, anomaly, command, event, model, status, update

SETTINGS = DemoSettings(nodes=2, devices=1, rounds=2)


def _run() -> Tally:
    """Two nodes, two rounds, one injected and detected anomaly, one trigger and fine-tune,
    sensor traffic of 600 s of data per node."""
    tally = Tally(SETTINGS.node_ids, window_s=6.0)
    tally.sample(0.0)
    tally.global_model(model(0), 1000, at=1.0)
    for node in SETTINGS.node_ids:
        tally.status(node, status(node), 50, at=2.0)
    for round_id in (1, 2):
        for node in SETTINGS.node_ids:
            tally.command(node, command(node, round_id, base=round_id - 1), 200, at=round_id * 10)
            tally.update(node, update(node, round_id, base=round_id - 1), 400, at=round_id * 10 + 2)
        tally.global_model(model(round_id, round_id=round_id), 1000, at=round_id * 10 + 4)
    for node in SETTINGS.node_ids:
        for _ in range(60):  # 600 readings: 60 s of data at 10 Hz
            tally.sensor(node, rows=10, channels=6, size=500)
    labels = np.full((10, 2), 0, np.uint8)
    labels[:, 0] = 2
    tally.label("node-0", LabelFrame("pump-0", 3, ("anomaly", "drift"), labels, T0, period=0.1), 30)
    tally.event("node-0", anomaly("node-0", "pump-0", "open", T0 + 0.5, None), 80, at=31.0)
    tally.event("node-0", anomaly("node-0", "pump-0", "closed", T0 + 0.5, T0 + 2), 80, at=32.0)
    tally.event("node-1", event("node-1", "trigger", statistic="level", channel="pressure"), 90,
                at=33.0)  # fmt: skip
    tally.event("node-1", event("node-1", "finetune", threshold=1.2), 90, at=35.0)
    tally.sample(36.0)
    return tally


def test_the_summary_holds_rounds_traffic_detection_and_is_json() -> None:
    """Rounds with their per-node cost, totals with the raw comparison, detection, marks."""
    summary = summarise(_run(), SETTINGS, outcome="completed", elapsed_s=40.0, broker="mosquitto")

    assert json.loads(json.dumps(summary)) == summary
    assert summary["rounds_closed"] == 2
    assert summary["rounds"][1]["per_node"]["node-0"] == {"sent": 400, "received": 1200}
    assert summary["per_round_per_node"] == {"sent": 400.0, "received": 1200.0}
    totals = summary["totals"]
    assert totals["sensor_bytes"] == 60_000
    assert totals["raw_bytes"] == 2 * 600 * 6 * 4
    assert totals["exchanged"] == totals["sent"] + totals["received"]
    assert summary["anomalies"]["detected"] == 1
    assert [m["what"] for m in summary["marks"]] == ["trigger", "finetune"]
    assert summary["broker"] == "mosquitto"


def test_break_even_is_a_rounds_cost_in_raw_data_time() -> None:
    """A round costs a node 1,600 bytes; its pump streams 500 bytes of frames per data
    second: one round is worth 3.2 s of raw frames (1,600 / 240 B/s as bare float32)."""
    summary = summarise(_run(), SETTINGS, outcome="completed", elapsed_s=40.0)

    even = summary["break_even"]

    assert even["round_bytes_per_node"] == 1600.0
    assert even["raw_frame_bytes_per_node_per_data_s"] == 500.0
    assert even["data_s_per_round_frames"] == pytest.approx(3.2)
    assert even["data_s_per_round_float32"] == pytest.approx(1600 / 240, rel=1e-3)


def test_the_table_names_rounds_nodes_and_totals() -> None:
    """The printed table has a row per round and node, a row per node and a total row."""
    summary = summarise(_run(), SETTINGS, outcome="completed", elapsed_s=40.0)

    text = report.table(summary)

    assert text.startswith("fedge demo completed in 40 s: 2/2 rounds")
    assert len(report.round_rows(summary)) == 4
    assert [row[0] for row in report.node_rows(summary)] == ["node-0", "node-1", "total"]
    assert "1 of 1 injected detected" in text
    assert "one round costs a node 400 B up and 1.2 kB down" in text


def test_the_report_directory_has_json_png_and_a_page(tmp_path: Path) -> None:
    """summary.json, a PNG matplotlib can read back, and an index.html linking both."""
    from matplotlib import image  # noqa: PLC0415 - the report extra, as the demo imports it

    summary = summarise(_run(), SETTINGS, outcome="interrupted", elapsed_s=40.0)

    written = report.write(summary, tmp_path / "report")

    assert [p.name for p in written] == ["summary.json", "demo.png", "index.html"]
    pixels = image.imread(tmp_path / "report" / "demo.png")
    assert pixels.shape[0] > 400
    assert pixels.shape[1] > 800
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert 'src="demo.png"' in page
    assert 'href="summary.json"' in page
    assert "fedge demo interrupted" in page


def test_without_matplotlib_the_report_has_no_figure_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the report extra, summary.json and index.html are still written."""
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)  # import fails
    summary = summarise(_run(), SETTINGS, outcome="completed", elapsed_s=40.0)

    written = report.write(summary, tmp_path)

    assert [p.name for p in written] == ["summary.json", "index.html"]
    assert "No figure: matplotlib is not installed" in (tmp_path / "index.html").read_text()


def test_human_bytes_uses_decimal_units() -> None:
    """Network traffic reads in B, kB, MB, GB."""
    assert [human_bytes(n) for n in (999, 1000, 2_500_000, 7e9)] == [
        "999 B", "1.0 kB", "2.5 MB", "7.0 GB",
    ]  # fmt: skip


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_status_line_redraws_on_a_terminal_and_prints_lines_elsewhere() -> None:
    """On a TTY the line is redrawn in place, cut to the terminal's width; in a pipe each
    update is a line of its own."""
    snap = _run().snapshot()
    text = status_text(12.0, snap, rounds=2, nodes=2, phase="scenario  40 %")
    terminal, pipe = _Terminal(), io.StringIO()

    for stream in (terminal, pipe):
        line = StatusLine(stream, columns=41)
        line.show(text)
        line.show(text)
        line.say("done")

    assert "rounds 2/2 | nodes online 2/2 | anomalies 1 | triggers 1 | fine-tunes 1" in text
    assert terminal.getvalue() == f"\r{text[:40]}\x1b[K\r{text[:40]}\x1b[K\ndone\n"
    assert pipe.getvalue() == f"{text}\n{text}\ndone\n"
