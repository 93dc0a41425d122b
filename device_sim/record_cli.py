"""``fedge record DIR``: write the sensor frames seen on the broker to fedge CSV files.

Subscribes to the sensor topics of every node (or ``--node``) and writes
``DIR/{node}/{device}.csv`` (``device_sim.recorder``) until ``--duration`` seconds passed,
``--frames`` frames were recorded, or Ctrl-C / SIGTERM, which end the recording normally:
buffered frames are written, files closed, a summary printed, exit 0. ``fedge replay DIR``
plays the result back with the same node and device ids, rows, timestamps and float32 values.
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from device_sim.argtypes import counted, positive_float, positive_int
from device_sim.recorder import Recorder
from fedge.config import load_file, mqtt_settings
from fedge.errors import FedgeError
from fedge.mqtt import MqttClient
from fedge.progress import Progress
from fedge.topics import validate_id

_TICK_S = 0.1
_FLUSH_EVERY_S = 1.0


class RecordCommand:
    """The ``fedge record`` subcommand."""

    name = "record"
    help = "record sensor frames from the broker into fedge CSV files that `fedge replay` plays"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        # Optional for argparse (so generic option checks parse without it); run() requires it.
        parser.add_argument("directory", nargs="?", type=Path, metavar="DIR", help="output")
        parser.add_argument("--node", metavar="ID", help="record only this node (default: all)")
        stop = parser.add_mutually_exclusive_group()
        stop.add_argument(
            "--duration", type=positive_float, metavar="S", help="stop after S seconds"
        )
        stop.add_argument("--frames", type=positive_int, metavar="N", help="stop after N frames")
        parser.add_argument("--qos", type=int, choices=(0, 1), default=1, help="subscribe QoS (1)")
        parser.add_argument(
            "--reorder-window",
            type=positive_int,
            default=64,
            metavar="N",
            help="frames held per device to put late ones back in order (64)",
        )
        parser.add_argument(
            "--client-id",
            metavar="ID",
            help="use a persistent session under this id: frames published while the recorder "
            "is away are kept by the broker and recorded when it comes back",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress output")

    def run(self, args: argparse.Namespace) -> int:
        if args.directory is None:
            raise FedgeError("give the directory to record into (DIR)")
        if args.directory.exists() and not args.directory.is_dir():
            raise FedgeError(f"{args.directory} exists and is not a directory")
        node = None if args.node is None else validate_id("node", args.node)
        settings = mqtt_settings(args, load_file(args.config))
        if args.client_id is None:
            options = settings.with_client(f"fedge-record-{uuid.uuid4().hex[:8]}")
        else:
            options = settings.with_client(args.client_id, persistent_session=True)
        recorder = Recorder(
            args.directory, settings.topics, args.reorder_window, max_frames=args.frames
        )
        topic_filter = settings.topics.sensors_filter(node)
        client = MqttClient(settings.url, options).connect()
        progress = Progress("record", args.frames, unit="frames", enabled=not args.no_progress)
        start = time.monotonic()
        interrupted = False
        try:
            client.subscribe(topic_filter, recorder.handler(), qos=args.qos)
            print(  # noqa: T201  # tells the user (and scripts) that recording has begun
                f"recording {topic_filter} from {settings.url} into {args.directory} "
                "(Ctrl-C to stop)",
                flush=True,
            )
            interrupted = _wait(recorder, progress, args.duration)
        finally:
            client.close(flush_timeout=0)
            stats = recorder.close()
            progress.update(stats.frames - progress.count)
            progress.close()
        if recorder.failure is not None:
            raise recorder.failure
        elapsed = time.monotonic() - start
        print(  # noqa: T201  # the command's result, on stdout
            f"{'stopped: ' if interrupted else ''}recorded {counted(stats.rows, 'row')} in "
            f"{counted(stats.frames, 'frame')} from {counted(recorder.devices, 'device')} on "
            f"{counted(recorder.nodes, 'node')} into {counted(stats.files, 'file')} under "
            f"{args.directory}; dropped {counted(stats.duplicates, 'duplicate')} and "
            f"{counted(stats.late, 'late frame')}, {counted(stats.missing, 'frame')} missing, "
            f"{counted(recorder.rejects.total, 'message')} rejected; {elapsed:.2f} s",
            flush=True,
        )
        return 0


def _wait(recorder: Recorder, progress: Progress, duration: float | None) -> bool:
    """Record until the duration or frame count is reached (False) or Ctrl-C/SIGTERM (True)."""
    deadline = None if duration is None else time.monotonic() + duration
    next_flush = time.monotonic() + _FLUSH_EVERY_S
    try:
        while recorder.failure is None:
            remaining = _TICK_S if deadline is None else deadline - time.monotonic()
            if remaining <= 0 or recorder.done.wait(min(remaining, _TICK_S)):
                return False
            progress.update(recorder.stats.frames - progress.count)
            if time.monotonic() >= next_flush:
                recorder.flush()
                next_flush += _FLUSH_EVERY_S
    except KeyboardInterrupt:
        return True
    return False


COMMAND = RecordCommand()
