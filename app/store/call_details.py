"""What an adapter learns about a backend call beyond its outcome (the capacity it consumed, the SDK's
retries), kept for whoever reports the call: the trace's backend span (`app.observability.tracing`).

Only an adapter opened with `call_details=True` notes anything, so that nobody pays for it untraced. The
notes live in the calling task's context: an `ObservedCall`'s observer takes what was noted inside it.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class CallDetails:
    requests: int = 0
    """Requests the SDK answered inside the call: a write checked by a read makes two."""
    retries: int = 0
    """Attempts the SDK made again (throttling, a lost connection), over all those requests."""
    consumed_capacity: float | None = None
    """Capacity units consumed, when the backend said (DynamoDB's `ConsumedCapacity`)."""


_noted: ContextVar[CallDetails | None] = ContextVar("statestore_call_details", default=None)


def note(retries: int, consumed_capacity: float | None) -> None:
    """One request of the current call was answered."""
    details = _noted.get()
    if details is None:
        details = CallDetails()
        _noted.set(details)
    details.requests += 1
    details.retries += retries
    if consumed_capacity is not None:
        details.consumed_capacity = (details.consumed_capacity or 0.0) + consumed_capacity


def take() -> CallDetails | None:
    """What was noted since the last `take` in this context, and forget it."""
    details = _noted.get()
    if details is not None:
        _noted.set(None)
    return details
