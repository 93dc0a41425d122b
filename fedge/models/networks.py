"""Built-in autoencoders, state-dict conversion and ONNX export. Imports torch.

Only the trainer child process and the aggregator import this module; an edge node's
always-on process never does.

User models: ``ModelSpec.architecture = "package.module:Class"``. The class is a
``torch.nn.Module`` constructed as ``Class(window=w, channels=c, **spec.params)``; its
``forward`` maps a float32 tensor ``[batch, w, c]`` to a reconstruction of the same shape. Its
state dict must hold floating-point tensors only; each becomes one named float32 array of the
model artifact, under the same name.
"""

from __future__ import annotations

import importlib
import io
import itertools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from fedge.errors import ConfigError
from fedge.models import INPUT_NAME, ONNX_OPSET, OUTPUT_NAME, ModelSpec


class ConvAutoencoder(nn.Module):
    """1-D convolutional autoencoder: two stride-2 convolutions down, two transposed up.

    Input ``[batch, w, c]``; the time axis is halved twice (``w`` -> ``w/4``) and restored,
    then cropped back to ``w`` so any window length works.
    """

    def __init__(
        self, window: int, channels: int, filters: Sequence[int] = (32, 32), kernel: int = 7
    ) -> None:
        super().__init__()
        if kernel % 2 == 0 or kernel < 3:
            raise ConfigError("model.params.kernel", f"{kernel} must be odd and >= 3")
        f1, f2 = int(filters[0]), int(filters[1])
        pad = kernel // 2
        self.window = window
        self.encoder = nn.Sequential(
            nn.Conv1d(channels, f1, kernel, stride=2, padding=pad),
            nn.ReLU(),
            nn.Conv1d(f1, f2, kernel, stride=2, padding=pad),
            nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose1d(f2, f2, kernel, stride=2, padding=pad, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose1d(f2, f1, kernel, stride=2, padding=pad, output_padding=1),
            nn.ReLU(),
            nn.Conv1d(f1, channels, kernel, padding=pad),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.decoder(self.encoder(x.transpose(1, 2)))
        return y[:, :, : self.window].transpose(1, 2)


class DenseAutoencoder(nn.Module):
    """Fully connected autoencoder over the flattened window: ``w*c -> hidden... -> w*c``."""

    def __init__(self, window: int, channels: int, hidden: Sequence[int] = (64, 16)) -> None:
        super().__init__()
        sizes = [window * channels, *(int(h) for h in hidden)]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.encoder = nn.Sequential(*layers)
        back = sizes[::-1]
        layers = []
        for i, (a, b) in enumerate(itertools.pairwise(back)):
            layers.append(nn.Linear(a, b))
            if i < len(back) - 2:
                layers.append(nn.ReLU())
        self.decoder = nn.Sequential(*layers)
        self.window, self.channels = window, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], self.window * self.channels)
        y: torch.Tensor = self.decoder(self.encoder(flat))
        return y.reshape(x.shape[0], self.window, self.channels)


def build_module(spec: ModelSpec, seed: int | None = None) -> nn.Module:
    """Instantiate the network a spec describes (weights seeded when ``seed`` is given)."""
    if seed is not None:
        torch.manual_seed(seed)
    params: dict[str, Any] = dict(spec.params)
    try:
        if spec.architecture == "conv_ae":
            return ConvAutoencoder(spec.window, spec.channels, **params)
        if spec.architecture == "dense_ae":
            return DenseAutoencoder(spec.window, spec.channels, **params)
        module_name, class_name = spec.architecture.split(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        module = cls(window=spec.window, channels=spec.channels, **params)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("model.architecture", f"cannot load {spec.architecture}: {exc}") from None
    except TypeError as exc:
        raise ConfigError("model.params", f"{spec.architecture} rejected {params}: {exc}") from None
    if not isinstance(module, nn.Module):
        raise ConfigError("model.architecture", f"{spec.architecture} is not a torch.nn.Module")
    return module


def to_arrays(module: nn.Module) -> dict[str, NDArray[np.float32]]:
    """State dict -> named float32 arrays (copies, C-contiguous)."""
    out: dict[str, NDArray[np.float32]] = {}
    for name, tensor in module.state_dict().items():
        if not tensor.is_floating_point():
            raise ConfigError("model", f"state-dict entry {name} is {tensor.dtype}, not floating")
        out[name] = np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)
    return out


def load_arrays(module: nn.Module, arrays: Mapping[str, NDArray[np.generic]]) -> None:
    """Named arrays -> the module's parameters; names and shapes must match exactly."""
    state = module.state_dict()
    missing = sorted(set(state) - set(arrays))
    extra = sorted(set(arrays) - set(state))
    if missing or extra:
        raise ConfigError(
            "model", f"arrays do not match the network: missing {missing}, extra {extra}"
        )
    new_state = {}
    for name, tensor in state.items():
        array = arrays[name]
        if tuple(array.shape) != tuple(tensor.shape):
            raise ConfigError(
                "model", f"{name} has shape {tuple(array.shape)}, expected {tuple(tensor.shape)}"
            )
        new_state[name] = torch.from_numpy(np.array(array, dtype=np.float32))
    module.load_state_dict(new_state)


def export_onnx(module: nn.Module, spec: ModelSpec) -> bytes:
    """ONNX bytes with input ``window`` ``[batch, w, c]`` (dynamic batch), opset 17."""
    module.eval()
    buffer = io.BytesIO()
    example = torch.zeros(1, spec.window, spec.channels)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which needs onnxscript;
        # it still produces standard ONNX, which is all the edge needs.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            buffer,  # type: ignore[arg-type]  # a file object is accepted at run time
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=ONNX_OPSET,
        )
    return buffer.getvalue()


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
