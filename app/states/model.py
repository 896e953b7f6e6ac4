"""The model of a stored state and the rules every write obeys, whatever the backend.

A state is a `StateRecord`; a write carries a `Precondition`, checked by the backend in the same atomic
step as the write. When it fails, the backend hands the stored record to `settle_refused_write`, which
tells a retry of a write already stored (a success) from a refusal: 412 for the client's own condition,
409 for the monotonic version guard.

A retry is told by the write's own identity, never by equal content: every record written carries a
`write_key`, the client's `Idempotency-Key` or, without one, a key the service draws for that request
(`new_write_key`), so that the service's own re-sends of one request (the SDK's, the adapter's) are
recognised too. A refused write is already done only when the stored item carries its key and its
content (version, manifest, payload); its key with other content is a 422 (`IdempotencyKeyReused`).
Two writers racing with identical next states thus never both succeed.

Transactions follow the same rule operation by operation (`settle_refused`):

- a put whose condition fails but which finds its own write stored (its key and content) is already
  done;
- a conditional delete that finds nothing stored is already done only inside a retry of its
  transaction, and a retry shows itself by a put of the same transaction that finds its own state
  stored: a refused put, or a put whose condition held (an unconditional one too), read back for
  the purpose (`puts_to_read`); every put of a transaction carries the transaction's one key. Without
  such a put, the delete is refused as `DELETE` with
  `If-Match` on a missing state is (412), since a missing state proves nothing about the version
  the client expected;
- any other refused operation fails the whole transaction: 412 for its `if_match`/`if_none_match`,
  409 for the version guard, naming the lowest-numbered failing operation.

Backends then apply the transaction with the operations already done pinned to what they found, in
the same atomic step, so "applied" always describes one instant at which every outcome held at once.

A state is counted as DynamoDB counts its item (`item_size`): the backends refuse what they cannot store
(`app.store.StateStore.item_limit`), and answers are bounded by that count.

A state may expire (`expires_at`, Unix epoch seconds): from that second on it is absent for every read
and every condition (`present`), whether or not the backend has deleted it yet.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.errors import IdempotencyKeyReused, PreconditionFailed, VersionConflict

MAX_UINT64 = 2**64 - 1
"""Versions and shards are unsigned 64-bit, as in eGo."""
MAX_INT64 = 2**63 - 1
MAX_ITEM_BYTES = 400 * 1024
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024  # the items of one TransactWriteItems call, together
MAX_TTL_SECONDS = 10 * 365 * 24 * 60 * 60


class Attribute:
    """The item layout of ego-contrib's Go store: one DynamoDB attribute per field of a state."""

    PERSISTENCE_ID = "PersistenceID"
    VERSION_NUMBER = "VersionNumber"
    PAYLOAD = "StatePayload"
    MANIFEST = "StateManifest"
    TIMESTAMP = "Timestamp"
    SHARD = "ShardNumber"
    EXPIRES_AT = "ExpiresAt"
    """Only on states that expire, in DynamoDB's TTL format; ego-contrib's Go store never writes it."""
    WRITE_KEY = "WriteKey"
    """The identity of the write that stored the item (`write_key`); ego-contrib's Go store ignores it."""


MAX_WRITE_KEY_LENGTH = 255
"""Characters of an `Idempotency-Key`, at most; the service's own keys are far shorter."""


def new_write_key() -> str:
    """The identity the service gives a write whose client sent no key: 128 random bits, never guessed."""
    return secrets.token_urlsafe(16)


_NAMES_BYTES = sum(
    len(name)
    for name in (
        Attribute.PERSISTENCE_ID,
        Attribute.VERSION_NUMBER,
        Attribute.PAYLOAD,
        Attribute.MANIFEST,
        Attribute.TIMESTAMP,
        Attribute.SHARD,
    )
)


@dataclass(frozen=True, slots=True)
class StateRecord:
    persistence_id: str
    version_number: int
    manifest: str
    payload: bytes
    timestamp: int
    shard: int
    expires_at: int | None = None
    write_key: str | None = None
    """Who wrote it: None on items written by others (ego-contrib's Go store), which no retry can match."""

    def expired(self, now: int) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def same_state_as(self, other: StateRecord) -> bool:
        return (
            self.version_number == other.version_number
            and self.manifest == other.manifest
            and self.payload == other.payload
        )


@dataclass(frozen=True, slots=True)
class Page:
    """States in the order a backend walks them, and the id to continue after (None: the walk is over)."""

    records: list[StateRecord]
    last_id: str | None


MAX_PAGE_READ_BYTES = 1024 * 1024
"""What one page may read, as DynamoDB's Scan stops at 1 MB: a page of large states holds fewer of them."""


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


def present(stored: StateRecord | None, now: int) -> StateRecord | None:
    """What a read or a condition finds stored at `now` (epoch seconds): an expired state is absent."""
    return None if stored is None or stored.expired(now) else stored


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


def already_written(record: StateRecord, stored: StateRecord | None) -> bool:
    """Whether `stored` is `record`'s own write, done before: its key and its content. Its key with other
    content is a 422: the client reused a key for another write."""
    if stored is None or record.write_key is None or stored.write_key != record.write_key:
        return False
    if not stored.same_state_as(record):
        raise IdempotencyKeyReused(
            "the Idempotency-Key is that of the stored state, written with other content;"
            " a key names one write: use a new key for a new write",
            errors=[{"loc": ["header", "idempotency-key"], "msg": "was already used for other content"}],
        )
    return True


def settle_refused_write(
    precondition: Precondition, record: StateRecord, stored: StateRecord | None
) -> StateRecord:
    """A write whose condition failed is still a success when it finds its own write stored (a retry)."""
    if stored is not None and already_written(record, stored):
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


def _number_bytes(value: int) -> int:
    """DynamoDB's count for a number: a byte per two significant digits, one more, and one for a sign."""
    significant = str(abs(value)).strip("0") or "0"
    return (len(significant) + 1) // 2 + 1 + (value < 0)


def item_size(record: StateRecord) -> int:
    """Bytes the record's item counts against DynamoDB's 400 KB limit: attribute names plus values."""
    return (
        _NAMES_BYTES
        + len(record.persistence_id.encode())
        + len(record.payload)
        + len(record.manifest.encode())
        + _number_bytes(record.version_number)
        + _number_bytes(record.timestamp)
        + _number_bytes(record.shard)
        + (0 if record.expires_at is None else len(Attribute.EXPIRES_AT) + _number_bytes(record.expires_at))
        + (0 if record.write_key is None else len(Attribute.WRITE_KEY) + len(record.write_key.encode()))
    )


Settled = dict[int, StateRecord | None]
"""Operations already done, by index, with what each found stored (None: nothing, for a delete)."""


def refused_operations(
    operations: Sequence[Operation], stored: Mapping[str, StateRecord]
) -> dict[int, StateRecord | None]:
    """The operations whose condition fails against `stored`, with what each finds."""
    refused: dict[int, StateRecord | None] = {}
    for index, operation in enumerate(operations):
        found = stored.get(operation.persistence_id)
        if not operation.precondition.allows_state(found):
            refused[index] = found
    return refused


def _deletes_of_nothing(
    operations: Sequence[Operation], refused: Mapping[int, StateRecord | None]
) -> list[int]:
    return [
        index
        for index, found in refused.items()
        if found is None
        and isinstance(operations[index], DeleteOperation)
        and not operations[index].precondition.allows_state(None)
    ]


def puts_to_read(operations: Sequence[Operation], refused: Mapping[int, StateRecord | None]) -> list[int]:
    """The puts the backend did not refuse, whose stored state `settle_refused` needs as `unrefused_puts`:
    only when a delete found nothing, since only a put already done can show that this is a retry."""
    if not _deletes_of_nothing(operations, refused):
        return []
    return [
        index
        for index, operation in enumerate(operations)
        if isinstance(operation, PutOperation) and index not in refused
    ]


def settle_refused(
    operations: Sequence[Operation],
    refused: Mapping[int, StateRecord | None],
    settled_before: Mapping[int, StateRecord | None] | None = None,
    unrefused_puts: Mapping[int, StateRecord | None] | None = None,
) -> Settled:
    """The operations already done, or the 412/409 of the first one that fails.

    `refused` holds what is stored for each operation the backend refused: its condition failed, or,
    for one found done by an earlier attempt (`settled_before`), the pin on what it found failed.
    `unrefused_puts` holds what is stored for every put of `puts_to_read`: one left out counts as not done,
    so a backend that could not read one must not settle with it (DynamoDB answers 503 instead).
    """
    settled = {i: found for i, found in (settled_before or {}).items() if i not in refused}
    deletes_of_nothing = _deletes_of_nothing(operations, refused)
    failed: list[int] = []
    for index, found in refused.items():
        operation = operations[index]
        if operation.precondition.allows_state(found):
            continue  # its own condition holds again: it is written rather than pinned
        if index in deletes_of_nothing:
            continue  # done or failed, as the puts tell below
        if _put_found_done(operation, found):
            settled[index] = found
        else:
            failed.append(index)
    if deletes_of_nothing:
        settled.update(
            (index, found)
            for index, found in (unrefused_puts or {}).items()
            if _put_found_done(operations[index], found)
        )
    if any(isinstance(operations[index], PutOperation) for index in settled):
        settled.update(dict.fromkeys(deletes_of_nothing))
    else:
        failed.extend(deletes_of_nothing)
    if failed:
        first = min(failed)
        operation = operations[first]
        raise refusal(operation.precondition, refused[first]).for_operation(first, operation.persistence_id)
    return settled


def _put_found_done(operation: Operation, found: StateRecord | None) -> bool:
    return isinstance(operation, PutOperation) and already_written(operation.record, found)


def transaction_results(operations: Sequence[Operation], settled: Settled) -> list[StateRecord | None]:
    """What each operation left stored: a put's record (or the state it found), None for a delete."""
    return [
        settled.get(index, operation.record) if isinstance(operation, PutOperation) else None
        for index, operation in enumerate(operations)
    ]
