"""Point-wise metrics and episodes -> flagged readings (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.metrics import Confusion, Episode, flag_readings, pooled
from evaluation.nodes import episodes_from


def test_confusion_counts_and_rates() -> None:
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 1], bool)
    flagged = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)
    c = Confusion.of(truth, flagged)
    assert (c.tp, c.fp, c.tn, c.fn) == (2, 1, 3, 2)
    assert c.f1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    assert c.far == pytest.approx(1 / 4)
    assert c.mar == pytest.approx(2 / 4)


def test_rates_of_empty_classes_are_zero_not_errors() -> None:
    c = Confusion.of(np.zeros(4, bool), np.zeros(4, bool))
    assert (c.f1, c.far, c.mar) == (0.0, 0.0, 0.0)


def test_pooling_adds_counts_rather_than_averaging_rates() -> None:
    a = Confusion(tp=90, fp=10, tn=0, fn=0)
    b = Confusion(tp=0, fp=0, tn=10, fn=10)
    total = pooled([a, b])
    assert total == Confusion(90, 10, 10, 10)
    assert total.f1 == pytest.approx(180 / 200)  # not the mean of 0.947 and 0.0


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match="shape"):
        Confusion.of(np.zeros(3, bool), np.zeros(4, bool))


def test_closed_episodes_flag_their_span_and_open_ones_run_to_the_end() -> None:
    times = np.arange(10, dtype=np.float64)
    flagged = flag_readings(times, [Episode(2.0, 4.0), Episode(7.0, None)])
    assert flagged.tolist() == [0, 0, 1, 1, 1, 0, 0, 1, 1, 1]


def test_episodes_from_pairs_open_and_closed_events() -> None:
    events = [
        ("open", 2.0, None),
        ("closed", 2.0, 4.0),
        ("open", 7.0, None),  # never closed: the data ended inside it
    ]
    assert episodes_from(events) == (Episode(2.0, 4.0), Episode(7.0, None))
    assert episodes_from([]) == ()
