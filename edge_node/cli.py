"""``fedge edge --node ID``: run an edge node until Ctrl-C or SIGTERM.

Options come from flags or the ``[edge]`` table of the config file (flags win)::

    [edge]
    node = "pump-station-7"
    model = "default"
    state_dir = "/var/lib/fedge/pump-station-7"
    channels = ["vibration_rms", "current", "pressure", "temperature", "flow", "voltage"]
    window = 60
    stride = 1
    batch_size = 256
    max_wait_ms = 5
    calibration_windows = 200
    quantile = 0.99
    margin = 1.5                 # threshold = quantile of calibration scores x (1 + margin)
    min_windows = 3
    threads = 1
    learning = true              # false: inference only (no torch on this device)
    trigger = true               # false: no drift-triggered fine-tuning (rounds only)
    trigger_fraction = 0.2       # drift: a sustained 20 % deviation ...
    trigger_window_s = 120       # ... of the rolling statistics over this window ...
    trigger_sustain_s = 300      # ... held this long (must exceed the window)
    trigger_cooldown_s = 3600
    trigger_max_per_day = 4
    finetune_epochs = 10
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from edge_node.detector import DetectorConfig
from edge_node.engine import EngineConfig
from edge_node.learning import LearningConfig
from edge_node.service import EdgeConfig, EdgeNode, client_options
from edge_node.trainer.job import TrainingConfig
from edge_node.trigger import TriggerConfig
from edge_node.windows import WindowConfig
from fedge.config import load_file, mqtt_settings, section
from fedge.errors import ConfigError
from fedge.mqtt import MqttClient
from fedge.topics import validate_id

log = logging.getLogger(__name__)

EDGE_KEYS = frozenset(
    {
        "node", "model", "state_dir", "channels", "window", "stride", "batch_size",
        "max_wait_ms", "calibration_windows", "quantile", "margin", "min_windows", "threads",
        "heartbeat_s", "max_gap_s", "learning", "trigger", "trigger_fraction", "trigger_window_s",
        "trigger_sustain_s", "trigger_cooldown_s", "trigger_max_per_day", "finetune_epochs",
    }
)  # fmt: skip


class EdgeCommand:
    name = "edge"
    help = "run an edge node: score sensor windows with ONNX Runtime, publish anomaly events"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--node", help="node id (required here or in [edge])")
        parser.add_argument("--model", help="model name to follow (default: default)")
        parser.add_argument("--state-dir", help="where the node keeps its model and calibration")
        parser.add_argument("--channels", help="channel names, comma-separated, in model order")
        parser.add_argument("--window", type=int, help="readings per window (default 60)")
        parser.add_argument("--stride", type=int, help="readings between windows (default 1)")
        parser.add_argument("--batch-size", type=int, help="windows per inference batch")
        parser.add_argument("--max-wait-ms", type=float, help="longest wait to fill a batch")
        parser.add_argument("--calibration-windows", type=int, help="normal windows per device")
        parser.add_argument("--quantile", type=float, help="threshold quantile of normal scores")
        parser.add_argument("--margin", type=float, help="threshold = quantile x (1 + margin)")
        parser.add_argument("--min-windows", type=int, help="windows above threshold to alarm")
        parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default 1)")
        parser.add_argument(
            "--no-learning",
            dest="learning",
            action="store_const",
            const=False,
            help="inference only: no drift-triggered fine-tuning, no training rounds",
        )
        parser.add_argument(
            "--no-trigger",
            dest="trigger",
            action="store_const",
            const=False,
            help="train in aggregator rounds only: no drift-triggered fine-tuning",
        )

    def run(self, args: argparse.Namespace) -> int:
        config = load_file(args.config)
        edge = edge_config(args, section(config, "edge", EDGE_KEYS))
        settings = mqtt_settings(args, config)
        options = client_options(edge.node, settings.topics, settings.options)
        node = EdgeNode(edge, MqttClient(settings.url, options), settings.topics)
        node.start()
        log.info("edge node %s running against %s (Ctrl-C stops it)", edge.node, settings.url)
        try:
            node.run()
        except KeyboardInterrupt:
            pass
        finally:
            node.stop()
        return 0


def edge_config(args: argparse.Namespace, table: dict[str, Any]) -> EdgeConfig:
    """Merge flags over the [edge] table into a validated EdgeConfig."""

    def pick(name: str, default: Any = None) -> Any:
        value = getattr(args, name, None)
        return value if value is not None else table.get(name, default)

    node = pick("node")
    if node is None:
        raise ConfigError("edge.node", "give the node id with --node or [edge] node")
    validate_id("node", node)
    channels = pick("channels", ())
    if isinstance(channels, str):
        channels = tuple(c.strip() for c in channels.split(",") if c.strip())
    try:
        engine = EngineConfig(
            window=WindowConfig(
                window=int(pick("window", 60)),
                stride=int(pick("stride", 1)),
                max_gap_s=float(pick("max_gap_s", 5.0)),
            ),
            detector=DetectorConfig(
                quantile=float(pick("quantile", DetectorConfig.quantile)),
                margin=float(pick("margin", DetectorConfig.margin)),
                min_windows=int(pick("min_windows", 3)),
            ),
            calibration_windows=int(pick("calibration_windows", 200)),
            batch_size=int(pick("batch_size", 256)),
            max_wait_s=float(pick("max_wait_ms", 5.0)) / 1000.0,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError("edge", str(exc)) from None
    learning: LearningConfig | None = None
    if pick("learning", default=True) is not False:
        try:
            learning = LearningConfig(
                trigger=TriggerConfig(
                    enabled=pick("trigger", default=True) is not False,
                    fraction=float(pick("trigger_fraction", 0.2)),
                    window_s=float(pick("trigger_window_s", 120.0)),
                    sustain_s=float(pick("trigger_sustain_s", 300.0)),
                    cooldown_s=float(pick("trigger_cooldown_s", 3600.0)),
                    max_per_day=int(pick("trigger_max_per_day", 4)),
                ),
                training=TrainingConfig(epochs=int(pick("finetune_epochs", 10))),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError("edge.trigger", str(exc)) from None
    return EdgeConfig(
        node=node,
        state_dir=Path(pick("state_dir", f"fedge-state/{node}")),
        model=str(pick("model", "default")),
        channels=tuple(channels),
        engine=engine,
        heartbeat_s=float(pick("heartbeat_s", 30.0)),
        threads=int(pick("threads", 1)),
        learning=learning,
    )


COMMAND = EdgeCommand()
