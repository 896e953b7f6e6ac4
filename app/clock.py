"""The service's one source of "now": for expiry, and for the timestamp of a write that carries none.

A clock is a function answering nanoseconds since the Unix epoch: `time.time_ns` in production, a clock
the tests move by hand in the tests. Every replica reads its own, so replicas agree on expiry only as
well as their clocks agree (the README's "Expiry" says what skew does).
"""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], int]

NANOSECONDS_PER_SECOND = 1_000_000_000


def epoch_seconds(clock: Clock) -> int:
    """The whole seconds elapsed: a state with `expires_at` at or below this is expired."""
    return clock() // NANOSECONDS_PER_SECOND
