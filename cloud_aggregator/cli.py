"""``fedge aggregator``: run the cloud aggregator until Ctrl-C or SIGTERM.

Options come from flags or the ``[aggregator]`` table of the config file (flags win); every key
is listed in ``cloud_aggregator.config``. The aggregator connects with a persistent session
(client id ``fedge-aggregator-{model}``), so updates published while it restarts wait for it
at the broker.
"""

from __future__ import annotations

import argparse
import logging
import threading

from cloud_aggregator.config import AGGREGATOR_KEYS, aggregator_config
from fedge.config import load_file, mqtt_settings, section
from fedge.mqtt import MqttClient

log = logging.getLogger(__name__)


class AggregatorCommand:
    name = "aggregator"
    help = "run the cloud aggregator: rounds, async updates, model registry"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model", help="model name (default: default)")
        parser.add_argument(
            "--registry", help="SQLite registry path (default: fedge-aggregator.db)"
        )
        parser.add_argument("--architecture", help="bootstrap architecture (default: dense_ae)")
        parser.add_argument("--window", type=int, help="bootstrap: readings per window (60)")
        parser.add_argument("--channels", type=int, help="bootstrap: channels per reading (8)")
        parser.add_argument("--seed", type=int, help="bootstrap seed (default 0)")
        parser.add_argument("--init", help="bootstrap from a .npz of named arrays or an .onnx")
        parser.add_argument("--strategy", help="aggregation strategy (default: fedavg)")
        parser.add_argument("--rounds", type=int, help="rounds to run; 0 = forever (default)")
        parser.add_argument("--min-nodes", type=int, help="fewest updates per round (default 2)")
        parser.add_argument("--max-nodes", type=int, help="most nodes per round; 0 = no limit")
        parser.add_argument("--fraction", type=float, help="share of live nodes asked (1.0)")
        parser.add_argument("--deadline-s", type=float, help="round deadline (default 120 s)")
        parser.add_argument("--epochs", type=int, help="local epochs per round (default 1)")
        parser.add_argument("--lr", type=float, help="local learning rate (default 0.001)")
        parser.add_argument(
            "--until-done",
            action="store_true",
            help="exit 0 once --rounds rounds have closed (default: keep serving async updates)",
        )

    def run(self, args: argparse.Namespace) -> int:
        # The service exports ONNX with torch: imported here, not when the CLI loads every
        # command (`fedge edge` on a device without torch must not pay for it or fail on it).
        from cloud_aggregator.registry import Registry  # noqa: PLC0415
        from cloud_aggregator.service import Aggregator  # noqa: PLC0415

        config = load_file(args.config)
        settings = mqtt_settings(args, config)
        aggregator_settings = aggregator_config(
            args, section(config, "aggregator", AGGREGATOR_KEYS)
        )
        options = settings.with_client(
            f"fedge-aggregator-{aggregator_settings.model}", persistent_session=True
        )
        client = MqttClient(settings.url, options)
        with Registry(aggregator_settings.registry) as registry:
            aggregator = Aggregator(aggregator_settings, client, settings.topics, registry)
            aggregator.start()
            log.info(
                "aggregator for %s running against %s (Ctrl-C stops it)",
                aggregator_settings.model,
                settings.url,
            )
            worker = threading.Thread(
                target=aggregator.run,
                kwargs={"until_done": bool(args.until_done)},
                name="aggregator",
                daemon=True,
            )
            worker.start()
            try:
                while worker.is_alive():
                    worker.join(0.5)
            except KeyboardInterrupt:
                pass
            finally:
                aggregator.stop()
                worker.join(30)
                client.close()
        return 0


COMMAND = AggregatorCommand()
