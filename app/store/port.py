"""The storage port: what every backend adapter offers, and the write rules they share.

A condition is checked by the backend in the same atomic step as the write. When it fails, the
adapter hands the stored record to `settle_refused_write`, which decides between "this is a retry of
what is already stored" (success) and the precondition (412) or version guard (409) refusal.
Transactions (`transact`) follow the same rule operation by operation; see `app.store.transactions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.errors import PreconditionFailed, VersionConflict

MAX_UINT64 = 2**64 - 1
"""Versions and shards are unsigned 64-bit, as in eGo."""


@dataclass(frozen=True, slots=True)
class StateRecord:
    persistence_id: str
    version_number: int
    manifest: str
    payload: bytes
    timestamp: int
    shard: int

    def same_state_as(self, other: StateRecord) -> bool:
        return (
            self.version_number == other.version_number
            and self.manifest == other.manifest
            and self.payload == other.payload
        )


@dataclass(frozen=True, slots=True)
class Precondition:
    """What must hold of the stored state for a write to go ahead.

    `match` is If-Match (the stored version must be one of these; a state must exist), `exists` is
    If-Match: *, `absent` is If-None-Match: *, `none_match` is If-None-Match with versions, and
    `older_than` is the monotonic version guard (a stored version, if any, must be below it).
    """

    match: frozenset[int] | None = None
    exists: bool = False
    absent: bool = False
    none_match: frozenset[int] = frozenset()
    older_than: int | None = None

    @property
    def is_unconditional(self) -> bool:
        return self == UNCONDITIONAL

    def client_allows(self, stored_version: int | None) -> bool:
        """The client's own preconditions (If-Match / If-None-Match), without the guard."""
        if stored_version is None:
            return self.match is None and not self.exists
        if self.absent or stored_version in self.none_match:
            return False
        return self.match is None or stored_version in self.match

    def guard_allows(self, stored_version: int | None) -> bool:
        return self.older_than is None or stored_version is None or stored_version < self.older_than

    def allows(self, stored_version: int | None) -> bool:
        return self.client_allows(stored_version) and self.guard_allows(stored_version)

    def allows_state(self, stored: StateRecord | None) -> bool:
        return self.allows(None if stored is None else stored.version_number)

    def with_guard(self, new_version: int) -> Precondition:
        return Precondition(self.match, self.exists, self.absent, self.none_match, new_version)


UNCONDITIONAL = Precondition()


def refusal(precondition: Precondition, stored: StateRecord | None) -> PreconditionFailed | VersionConflict:
    """The error for a write whose condition failed against `stored`."""
    if stored is None:
        return PreconditionFailed("no state is stored under this persistence id")
    current = stored.version_number
    if not precondition.client_allows(current):
        return PreconditionFailed(f"the stored version is {current}", current_version=current)
    return VersionConflict(
        f"version {precondition.older_than} does not move past the stored version {current}",
        current_version=current,
    )


def settle_refused_write(
    precondition: Precondition, record: StateRecord, stored: StateRecord | None
) -> StateRecord:
    """A write whose condition failed is still a success when it finds its own state stored."""
    if stored is not None and stored.same_state_as(record):
        return stored
    raise refusal(precondition, stored)


@dataclass(frozen=True, slots=True)
class PutOperation:
    """One write of a transaction: store `record` if `precondition` holds."""

    record: StateRecord
    precondition: Precondition = UNCONDITIONAL

    @property
    def persistence_id(self) -> str:
        return self.record.persistence_id


@dataclass(frozen=True, slots=True)
class DeleteOperation:
    """One delete of a transaction: remove the state if `precondition` holds."""

    persistence_id: str
    precondition: Precondition = UNCONDITIONAL


Operation = PutOperation | DeleteOperation


class StateStore(Protocol):
    """One backend. Adapters are async context managers that own their connections."""

    @property
    def description(self) -> str:
        """Where this store writes, for the start-up log line."""
        ...

    async def get(self, persistence_id: str) -> StateRecord | None: ...

    async def put(self, record: StateRecord, precondition: Precondition) -> StateRecord:
        """Store `record` if `precondition` holds; returns what is stored, or raises 412/409."""
        ...

    async def delete(self, persistence_id: str, precondition: Precondition) -> None: ...

    async def get_many(self, persistence_ids: Sequence[str]) -> list[StateRecord]:
        """The stored states of distinct ids, in no particular order; ids with none are left out."""
        ...

    async def transact(self, operations: Sequence[Operation]) -> list[StateRecord | None]:
        """Apply every operation or none (each id at most once).

        Returns, for each operation in order, what its put left stored (None for a delete); raises
        412/409 naming the first operation that fails, per `app.store.transactions.settle_refused`.
        """
        ...

    async def ping(self) -> None:
        """Raise `BackendUnavailable` unless the backend answers and its table exists."""
        ...
