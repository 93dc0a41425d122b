"""Fixtures for the edge node's unit tests: small exported models and a frame factory."""

from __future__ import annotations

import pytest

from fedge.models import ModelSpec
from fedge.models.networks import build_module, export_onnx
from fedge.wire import Plain
from tests.edge_node.inference_support import CHANNELS, WINDOW, Exported, FrameFactory

SMALL_PARAMS: dict[str, dict[str, Plain]] = {
    "dense_ae": {"hidden": [16, 4]},
    "conv_ae": {"filters": [8, 8], "kernel": 3},
}


def _export(architecture: str, seed: int) -> Exported:
    spec = ModelSpec(architecture, WINDOW, len(CHANNELS), SMALL_PARAMS[architecture])
    module = build_module(spec, seed=seed)
    return Exported(spec, module, export_onnx(module, spec))


@pytest.fixture(scope="session")
def dense_model() -> Exported:
    """A small untrained dense autoencoder over 16 x 3 windows, exported once per session."""
    return _export("dense_ae", seed=0)


@pytest.fixture(scope="session")
def conv_model() -> Exported:
    """A small untrained convolutional autoencoder over 16 x 3 windows."""
    return _export("conv_ae", seed=1)


@pytest.fixture(scope="session", params=["dense_ae", "conv_ae"])
def exported(
    request: pytest.FixtureRequest, dense_model: Exported, conv_model: Exported
) -> Exported:
    """Each built-in architecture in turn."""
    return dense_model if request.param == "dense_ae" else conv_model


@pytest.fixture
def frames() -> FrameFactory:
    """Frames of ``ROWS`` readings of the shared three-channel signal."""
    return FrameFactory()
