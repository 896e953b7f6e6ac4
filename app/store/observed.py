"""How a backend adapter reports each call (operation, duration, outcome) without knowing who listens."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

CallObserver = Callable[[str, float, Exception | None], None]
"""Told of every backend call: its operation, its seconds, and the service error it ended with, if any."""


def ignore_call(operation: str, seconds: float, error: Exception | None) -> None:
    """The observer of a store nobody watches, such as the one `statestore create-table` opens."""


class ObservedCall:
    """One backend call, as a `with` block that may await inside: timed, reported to the observer, and its
    error replaced by the service error `translate` makes of it. A class rather than a generator-based
    context manager, because it wraps every request's backend call."""

    __slots__ = ("_observer", "_operation", "_started")

    def __init__(self, observer: CallObserver, operation: str) -> None:
        self._observer = observer
        self._operation = operation
        self._started = 0.0

    def translate(self, error: Exception) -> Exception:
        return error

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(
        self, kind: type[BaseException] | None, raised: BaseException | None, _: TracebackType | None
    ) -> None:
        if raised is not None and not isinstance(raised, Exception):
            return  # cancelled: the call has no outcome to report
        error = None if raised is None else self.translate(raised)
        self._observer(self._operation, time.perf_counter() - self._started, error)
        if error is not None and error is not raised:
            raise error from raised
