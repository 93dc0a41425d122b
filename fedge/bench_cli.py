"""``fedge bench NAME --json PATH``: run one registered benchmark and write its figures.

Benchmarks register in the ``fedge.benchmarks`` entry-point group, each module exposing a
``BENCHMARK`` with ``name``, ``help``, ``configure(parser)`` and ``run(args) -> dict``. Every
result file has the same envelope (benchmark name, fedge version, machine, UTC time) around the
benchmark's own figures, whose keys name each figure plainly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from fedge import __version__
from fedge.cli import load_plugins
from fedge.errors import ConfigError


class Benchmark(Protocol):
    name: str
    help: str

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the benchmark's own arguments."""

    def run(self, args: argparse.Namespace) -> dict[str, Any]:
        """Measure; return the figures, JSON-serialisable, with plain names."""


def load_benchmarks() -> dict[str, Benchmark]:
    return {bench.name: bench for bench in load_plugins("fedge.benchmarks", "BENCHMARK")}


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


class BenchCommand:
    name = "bench"
    help = "run a benchmark and write its figures as JSON"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="benchmark", metavar="NAME", required=True)
        for name, bench in sorted(load_benchmarks().items()):
            child = sub.add_parser(name, help=bench.help, description=bench.help)
            child.add_argument("--json", metavar="PATH", help="write the results here")
            bench.configure(child)
            child.set_defaults(fedge_benchmark=bench)

    def run(self, args: argparse.Namespace) -> int:
        bench: Benchmark = args.fedge_benchmark
        out = Path(args.json) if args.json else None
        if out is not None and not out.parent.exists():
            raise ConfigError("--json", f"directory {out.parent} does not exist")
        started = time.time()
        figures = bench.run(args)
        result = {
            "benchmark": bench.name,
            "fedge_version": __version__,
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "duration_s": round(time.time() - started, 2),
            "machine": machine(),
            "results": figures,
        }
        text = json.dumps(result, indent=2, sort_keys=False)
        if out is not None:
            out.write_text(text + "\n")
        sys.stdout.write(_summary(bench.name, figures) + "\n")
        return 0


def _summary(name: str, figures: dict[str, Any], indent: str = "") -> str:
    lines = [f"{indent}{name}:"] if not indent else []
    for key, value in figures.items():
        if isinstance(value, dict):
            lines.append(f"{indent}  {key}:")
            lines.append(_summary(key, value, indent + "  "))
        elif isinstance(value, float):
            lines.append(f"{indent}  {key}: {value:,.3f}")
        else:
            lines.append(f"{indent}  {key}: {value}")
    return "\n".join(lines)


COMMAND = BenchCommand()
