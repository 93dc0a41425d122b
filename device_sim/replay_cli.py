"""``fedge replay PATH...``: play recorded CSV files through the broker as devices.

Every file is read and validated before anything is published, so a bad file stops the run
with one line naming file and line, before the first frame. Then frames are published in
timestamp order (``device_sim.replay``) at ``--speed`` x real time or ``--fast``, with a
progress bar on a terminal (plain lines otherwise), and a one-line summary on stdout.
See docs/replay.md.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from device_sim.argtypes import counted, name_list, positive_float, positive_int
from device_sim.csvio import TIME_FORMATS, CsvOptions, read_recording
from device_sim.publish import FramePublisher, Pacer
from device_sim.replay import ALIGNMENTS, Scheduled, play, schedule
from device_sim.sources import RULES, NodeRule, Source, assign, find_files
from fedge.config import load_file, mqtt_settings
from fedge.errors import TransportError
from fedge.mqtt import MqttClient
from fedge.progress import Progress

log = logging.getLogger(__name__)


class ReplayCommand:
    """The ``fedge replay`` subcommand."""

    name = "replay"
    help = "play recorded CSV files (SKAB, fedge CSV, generic) through the broker as devices"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        # Optional for argparse so that `fedge replay --help`-style checks work without a PATH;
        # run() rejects an empty list with a one-line error.
        parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files or folders")
        pace = parser.add_mutually_exclusive_group()
        pace.add_argument(
            "--speed", type=positive_float, default=1.0, metavar="X", help="X times real time (1)"
        )
        pace.add_argument("--fast", action="store_true", help="as fast as the broker takes it")
        parser.add_argument(
            "--nodes",
            default="auto",
            metavar="RULE",
            help=f"how files map to nodes: {', '.join(RULES)} (default auto, see docs/replay.md)",
        )
        parser.add_argument(
            "--align",
            choices=ALIGNMENTS,
            default="none",
            help="start: play all files as if recorded together (default none: true time order)",
        )
        parser.add_argument(
            "--frame-size", type=positive_int, default=10, metavar="N", help="rows per frame (10)"
        )
        parser.add_argument("--qos", type=int, choices=(0, 1), default=1, help="sensor QoS (1)")
        parser.add_argument(
            "--skip-bad-rows", action="store_true", help="skip and count bad rows, not fail"
        )
        csv_group = parser.add_argument_group("CSV layout (detected when not given)")
        csv_group.add_argument("--delimiter", metavar="CHAR", help="field separator")
        csv_group.add_argument("--time-column", metavar="NAME", help="column holding the time")
        csv_group.add_argument(
            "--time-format",
            default="auto",
            metavar="FMT",
            help=f"{' | '.join(TIME_FORMATS)} | a strptime format; zone-less times are UTC",
        )
        csv_group.add_argument(
            "--channels", type=name_list, metavar="A,B", help="channel columns (default: the rest)"
        )
        csv_group.add_argument(
            "--label-columns", type=name_list, metavar="A,B", help="label columns ('' for none)"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="read and map the files, publish nothing"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress output")
        parser.add_argument(
            "--flush-timeout",
            type=positive_float,
            default=60.0,
            metavar="S",
            help="seconds to wait at the end for the broker to acknowledge everything (60)",
        )

    def run(self, args: argparse.Namespace) -> int:
        config = load_file(args.config)
        options = CsvOptions(
            delimiter=args.delimiter,
            time_column=args.time_column,
            time_format=args.time_format,
            channels=args.channels,
            label_columns=args.label_columns,
            skip_bad_rows=args.skip_bad_rows,
        )
        rule = NodeRule.parse(args.nodes)
        settings = None if args.dry_run else mqtt_settings(args, config)
        files = find_files(args.paths)
        recordings = [read_recording(f.path, options) for f in files]
        sources = assign(files, recordings, rule)
        for source in sources:
            if source.recording.bad_rows:
                log.warning(
                    "skipped %d bad rows of %s, the first: %s",
                    source.recording.bad_rows,
                    source.recording.path,
                    source.recording.first_bad,
                )
        if settings is None:
            _describe(sources)
            return 0
        client = MqttClient(
            settings.url, settings.with_client(f"fedge-replay-{uuid.uuid4().hex[:8]}")
        )
        client.connect()
        publisher = FramePublisher(client, settings.topics, qos=args.qos)
        total = sum(s.recording.rows for s in sources)
        progress = Progress("replay", total, unit="rows", enabled=not args.no_progress)
        start = time.monotonic()

        def sent(item: Scheduled) -> None:
            progress.update(item.frame.rows)

        try:
            pacer = Pacer(math.inf if args.fast else args.speed)
            play(schedule(sources, args.frame_size, args.align), publisher, pacer, sent)
            if not publisher.flush(args.flush_timeout):
                raise TransportError(
                    f"{client.pending} frames were not acknowledged by {settings.url} within "
                    f"{args.flush_timeout:g} s"
                )
        except KeyboardInterrupt:
            _summary(sources, publisher, time.monotonic() - start, "interrupted: ")
            raise
        finally:
            progress.close()
            client.close(flush_timeout=0)
        _summary(sources, publisher, time.monotonic() - start)
        return 0


def _summary(
    sources: list[Source], publisher: FramePublisher, elapsed: float, head: str = ""
) -> None:
    stats = publisher.stats
    nodes = len({s.node for s in sources})
    bad = sum(s.recording.bad_rows for s in sources)
    rate = stats.readings / elapsed if elapsed > 0 else 0.0
    print(  # noqa: T201  # the command's result, on stdout
        f"{head}replayed {counted(stats.readings, 'row')} in {counted(stats.frames, 'frame')} "
        f"and {counted(stats.label_frames, 'label frame')} from {counted(len(sources), 'file')} "
        f"as {counted(len(sources), 'device')} on {counted(nodes, 'node')}; "
        f"{counted(bad, 'bad row')} skipped; {elapsed:.2f} s ({rate:,.0f} rows/s)",
        flush=True,
    )


def _describe(sources: list[Source]) -> None:
    for s in sources:
        r = s.recording
        labels = ",".join(r.label_names) or "none"
        print(  # noqa: T201  # the dry run's result, on stdout
            f"{r.path}: node {s.node} device {s.device} ({r.kind}): {counted(r.rows, 'row')}, "
            f"{counted(len(r.channels), 'channel')}, labels {labels}, "
            f"{_iso(r.start)} .. {_iso(r.end)}, {counted(r.bad_rows, 'bad row')} skipped"
        )
    rows = sum(s.recording.rows for s in sources)
    nodes = len({s.node for s in sources})
    summary = (
        f"{counted(len(sources), 'file')}, {counted(rows, 'row')}, {counted(nodes, 'node')}: "
        "nothing published (--dry-run)"
    )
    print(summary)  # noqa: T201


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


COMMAND = ReplayCommand()
