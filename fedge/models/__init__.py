"""The model-artifact contract, torch-free: what a model is, as every component sees it.

A model is a ``ModelSpec`` (architecture name, window length ``w``, channel count ``c`` and
architecture parameters), a set of named float32 arrays keyed by the torch state-dict names,
and an ONNX graph with one input ``window`` of shape ``[batch, w, c]`` (float32, batch
dynamic) and one output ``reconstruction`` of the same shape. Aggregation works on the named
arrays only; edge nodes run the ONNX graph only.

The torch side (building modules, converting state dicts, exporting ONNX) is in
``fedge.models.networks`` and is imported only by processes that train or export.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from fedge.errors import ConfigError
from fedge.wire import Plain

INPUT_NAME: Final = "window"
OUTPUT_NAME: Final = "reconstruction"
ONNX_OPSET: Final = 17
BUILTIN_ARCHITECTURES: Final = ("conv_ae", "dense_ae")
_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class ModelSpec:
    """Which network, over which window shape.

    ``architecture`` is ``conv_ae``, ``dense_ae`` or a user model ``package.module:Class``
    (see docs/models.md for the contract a user module must follow).
    """

    architecture: str
    window: int
    channels: int
    params: Mapping[str, Plain] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in BUILTIN_ARCHITECTURES and not _IMPORT_PATH.fullmatch(
            self.architecture
        ):
            raise ConfigError(
                "model.architecture",
                f"{self.architecture!r} is neither one of {BUILTIN_ARCHITECTURES} nor "
                "an import path like 'package.module:Class'",
            )
        if not 2 <= self.window <= 100_000:
            raise ConfigError("model.window", f"{self.window} must be in [2, 100000]")
        if not 1 <= self.channels <= 4096:
            raise ConfigError("model.channels", f"{self.channels} must be in [1, 4096]")

    def to_plain(self) -> dict[str, Plain]:
        """The form carried in ``GlobalModel.architecture``."""
        return {
            "architecture": self.architecture,
            "window": self.window,
            "channels": self.channels,
            "params": dict(self.params),
        }

    @classmethod
    def from_plain(cls, plain: Mapping[str, Plain]) -> ModelSpec:
        try:
            architecture = plain["architecture"]
            window = plain["window"]
            channels = plain["channels"]
            params = plain.get("params", {})
        except KeyError as exc:
            raise ConfigError("model", f"architecture spec lacks {exc.args[0]!r}") from None
        if not isinstance(architecture, str):
            raise ConfigError("model.architecture", "must be a string")
        if not isinstance(window, int) or not isinstance(channels, int):
            raise ConfigError("model", "window and channels must be integers")
        if not isinstance(params, dict):
            raise ConfigError("model.params", "must be a map")
        return cls(architecture, window, channels, params)
