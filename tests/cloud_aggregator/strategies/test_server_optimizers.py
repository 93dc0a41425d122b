"""Server optimizers: the update of Reddi et al. 2021 (and FedAvgM's momentum), round by round."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from cloud_aggregator.strategies import (
    AggregationError,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedYogi,
    Strategy,
)
from cloud_aggregator.strategies.fedopt import AdaptiveServer

F64 = NDArray[np.float64]
SECOND_MOMENT: dict[str, Callable[[F64, F64, float], F64]] = {
    "fedadagrad": lambda v, d2, b2: v + d2,
    "fedadam": lambda v, d2, b2: b2 * v + (1 - b2) * d2,
    "fedyogi": lambda v, d2, b2: v - (1 - b2) * d2 * np.sign(v - d2),
}
OPTIMIZERS: dict[str, Callable[[], AdaptiveServer]] = {
    "fedadagrad": lambda: FedAdagrad(eta=0.1, beta1=0.5, tau=1e-2),
    "fedadam": lambda: FedAdam(eta=0.1, beta1=0.9, beta2=0.99, tau=1e-2),
    "fedyogi": lambda: FedYogi(eta=0.1, beta1=0.9, beta2=0.99, tau=1e-2),
}


def _deltas(rounds: int) -> list[dict[str, NDArray[np.float32]]]:
    rng = np.random.default_rng(11)
    return [
        {
            "w": (rng.standard_normal((3, 4)) * 0.1).astype(np.float32),
            "b": (rng.standard_normal(4) * 0.1).astype(np.float32),
        }
        for _ in range(rounds)
    ]


def _start() -> dict[str, NDArray[np.float32]]:
    return {"w": np.ones((3, 4), np.float32), "b": np.zeros(4, np.float32)}


def _run(
    strategy: Strategy, deltas: list[dict[str, NDArray[np.float32]]]
) -> dict[str, NDArray[np.float32]]:
    model = _start()
    for delta in deltas:
        model = strategy.step(model, delta)
    return model


def _paper(
    kind: str, strategy: AdaptiveServer, deltas: list[dict[str, NDArray[np.float32]]]
) -> dict[str, F64]:
    """Algorithm 2 of Reddi et al. 2021 written out in float64, one array at a time."""
    out = {}
    for name, x0 in _start().items():
        x = x0.astype(np.float64)
        m = np.zeros_like(x)
        v = np.full_like(x, strategy.tau**2)
        for delta in deltas:
            d = delta[name].astype(np.float64)
            m = strategy.beta1 * m + (1 - strategy.beta1) * d
            v = SECOND_MOMENT[kind](v, d * d, strategy.beta2)
            x = x + strategy.eta * m / (np.sqrt(v) + strategy.tau)
        out[name] = x
    return out


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_adaptive_optimizers_follow_the_paper(kind: str) -> None:
    """Five rounds of FedAdagrad, FedAdam and FedYogi match a float64 numpy reference."""
    deltas = _deltas(5)
    strategy = OPTIMIZERS[kind]()
    expected = _paper(kind, OPTIMIZERS[kind](), deltas)
    for name, value in _run(strategy, deltas).items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-6)


def test_fedavgm_keeps_server_momentum() -> None:
    """FedAvgM: v <- momentum * v + delta, x <- x + server_lr * v, over several rounds."""
    deltas = _deltas(4)
    strategy = FedAvgM(server_lr=0.7, momentum=0.9)
    got = _run(strategy, deltas)
    for name, x0 in _start().items():
        x, v = x0.astype(np.float64), np.zeros(x0.shape)
        for delta in deltas:
            v = 0.9 * v + delta[name]
            x = x + 0.7 * v
        np.testing.assert_allclose(got[name], x, rtol=1e-6, atol=1e-6)


def test_fedavgm_without_momentum_is_fedavg() -> None:
    """momentum 0 and server_lr 1 reduce FedAvgM to FedAvg."""
    deltas = _deltas(3)
    fedavgm, fedavg = _run(FedAvgM(1.0, 0.0), deltas), _run(FedAvg(), deltas)
    for name, value in fedavg.items():
        np.testing.assert_allclose(fedavgm[name], value, rtol=1e-6)


@pytest.mark.parametrize(
    "make", [*OPTIMIZERS.values(), lambda: FedAvgM(0.5, 0.8)], ids=[*OPTIMIZERS, "fedavgm"]
)
def test_state_survives_a_restart(make: Callable[[], Strategy]) -> None:
    """Rounds after load_state(state()) in a new instance equal an uninterrupted run."""
    deltas = _deltas(4)
    uninterrupted = _run(make(), deltas)
    before = make()
    halfway = _run(before, deltas[:2])
    after = make()
    after.load_state(before.state())
    resumed = halfway
    for delta in deltas[2:]:
        resumed = after.step(resumed, delta)
    for name, value in uninterrupted.items():
        np.testing.assert_array_equal(resumed[name], value)


def test_state_is_a_copy() -> None:
    """Changing a returned state array does not change the optimizer."""
    strategy = FedAdam()
    _run(strategy, _deltas(1))
    state = strategy.state()
    assert sorted(state) == ["m/b", "m/w", "v/b", "v/w"]
    state["m/w"] += 100.0
    assert not np.array_equal(strategy.state()["m/w"], state["m/w"])


@pytest.mark.parametrize(
    ("make", "state", "message"),
    [
        (FedAdam, {"x/w": np.zeros(1, np.float32)}, "unknown entry 'x/w'"),
        (FedAdam, {"m/w": np.zeros(1, np.float32)}, "different arrays"),
        (FedAvgM, {"velocity": np.zeros(1, np.float32)}, "unknown entry 'velocity'"),
        (FedAvg, {"m/w": np.zeros(1, np.float32)}, "keeps no server state"),
    ],
)
def test_bad_state_is_refused(
    make: Callable[[], Strategy], state: dict[str, NDArray[np.float32]], message: str
) -> None:
    """A state that does not belong to the optimizer raises AggregationError."""
    with pytest.raises(AggregationError, match=message):
        make().load_state(state)


def test_step_refuses_a_delta_of_another_model() -> None:
    """A delta whose arrays differ from the global model's is an AggregationError."""
    with pytest.raises(AggregationError, match="shape"):
        FedYogi().step(_start(), {"w": np.zeros((4, 3), np.float32), "b": np.zeros(4, np.float32)})
    strategy = FedAdam()
    _run(strategy, _deltas(1))
    with pytest.raises(AggregationError, match="arrays"):
        strategy.step({"w": np.zeros(2, np.float32)}, {"w": np.zeros(2, np.float32)})
