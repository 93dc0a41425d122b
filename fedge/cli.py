"""The ``fedge`` command: one entry point, subcommands registered by the components.

Subcommands are discovered from the ``fedge.commands`` entry-point group, so this module never
imports ``edge_node``, ``cloud_aggregator`` or ``device_sim``; each registers its own commands
in ``pyproject.toml``. A user mistake ends in one line on stderr and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any, Protocol

from fedge import __version__
from fedge.errors import FedgeError

log = logging.getLogger("fedge")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Command(Protocol):
    """A ``fedge`` subcommand. Modules in the ``fedge.commands`` group expose one as COMMAND."""

    name: str
    help: str

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's own arguments (the common ones are already there)."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work; return the process exit code."""


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every command takes: where the broker is, how to reach it, the config file."""
    parser.add_argument("--config", metavar="PATH", help="TOML config file (see docs/config.md)")
    parser.add_argument(
        "--broker", metavar="URL", help="broker address, mqtt://host:port or mqtts://host:port"
    )
    parser.add_argument(
        "--mqtt-protocol", choices=("5", "3.1.1"), help="MQTT protocol version (default 5)"
    )
    parser.add_argument("--username", help="broker user name")
    parser.add_argument(
        "--password-env",
        metavar="VAR",
        help="environment variable holding the broker password (never pass it as an argument)",
    )
    parser.add_argument("--ca-file", metavar="PATH", help="CA bundle to verify the broker (TLS)")
    parser.add_argument("--cert-file", metavar="PATH", help="client certificate (mutual TLS)")
    parser.add_argument("--key-file", metavar="PATH", help="client private key (mutual TLS)")
    parser.add_argument("--topic-prefix", metavar="PREFIX", help="topic root (default fedge/v1)")
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )


def load_plugins(group: str, attribute: str) -> list[Any]:
    """The ``attribute`` of every module registered in entry-point ``group``.

    Plugin modules must import quickly and without torch: the CLI loads them all at start-up.
    """
    found = []
    for ep in entry_points(group=group):
        try:
            # "pkg.module" exposes ``attribute``; "pkg.module:NAME" names the object itself.
            loaded = ep.load()
            found.append(loaded if ep.attr else getattr(loaded, attribute))
        except (ImportError, AttributeError) as exc:
            # A broken or partial install must not take every other command down with it.
            print(f"fedge: {group} entry {ep.name!r} is unavailable: {exc}", file=sys.stderr)
    return found


def load_commands() -> dict[str, Command]:
    """Every installed subcommand, by name."""
    return {command.name: command for command in load_plugins("fedge.commands", "COMMAND")}


def build_parser(commands: dict[str, Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedge",
        description="Federated learning for IoT edge devices over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"fedge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in sorted(commands):
        command = commands[name]
        child = sub.add_parser(name, help=command.help, description=command.help)
        add_common_arguments(child)
        command.configure(child)
        child.set_defaults(fedge_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    commands = load_commands()
    parser = build_parser(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    command: Command = args.fedge_command
    # SIGTERM (docker stop, systemd, kill) unwinds like Ctrl-C, so every `finally` runs and
    # child processes such as a temporary broker are stopped rather than orphaned.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return command.run(args)
    except FedgeError as exc:
        print(f"fedge {command.name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"fedge {command.name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
