"""How a backend adapter reports each call (operation, duration, outcome) without knowing who listens."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

CallObserver = Callable[[str, float, Exception | None], None]
"""Told of every backend call: its operation, its seconds, and the service error it ended with, if any."""


def ignore_call(operation: str, seconds: float, error: Exception | None) -> None:
    """The observer of a store nobody watches, such as the one `statestore create-table` opens."""


@asynccontextmanager
async def observed(observer: CallObserver, operation: str) -> AsyncIterator[None]:
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        observer(operation, time.perf_counter() - started, exc)
        raise
    observer(operation, time.perf_counter() - started, None)
