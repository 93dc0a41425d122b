"""Print fedge's requirements from pyproject.toml, one per line, for the image's dependency layer.

    python requirements.py PYPROJECT [EXTRA ...]

The Dockerfile installs these from a layer that depends on pyproject.toml alone, so editing the
source never reinstalls numpy, onnxruntime or torch. Without an EXTRA: the core dependencies
only, which is what the torch-free edge image installs.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The core dependencies, then those of each named extra (an unknown extra is an error)."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"requirements.py: {pyproject} has no extra {extra!r}")
        lines += optional[extra]
    return lines


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    sys.stdout.write("".join(f"{line}\n" for line in requirements(Path(sys.argv[1]), sys.argv[2:])))
