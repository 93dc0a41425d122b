"""Helpers shared by tests that cross the wire: waiting for asynchronous outcomes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class Collector(Generic[T]):
    """Thread-safe list that handlers append to and tests wait on."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._cond = threading.Condition()

    def __call__(self, item: T) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 10.0) -> list[T]:
        """Wait until at least ``count`` items arrived; return a snapshot either way."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._items) >= count, timeout)
            return list(self._items)

    @property
    def items(self) -> list[T]:
        with self._cond:
            return list(self._items)
