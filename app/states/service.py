"""The states service: what a write request becomes before any backend call, and the calls themselves.

A write's payload is checked against its type (or its JSON state serialized), it gets the server's time
when it has none and an expiry when it asks for one (`ttl_seconds`), the version guard joins the
client's precondition, and a state larger than the configured backend can store is refused
(`StateStore.item_limit`): on DynamoDB without compression, one whose item would pass 400 KB, and a
transaction whose items would pass 4 MB. SQLite, and DynamoDB with compression, take larger states; the
request cap bounds them, and DynamoDB with compression refuses, itself, a state that does not fit
compressed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.clock import NANOSECONDS_PER_SECOND, Clock
from app.errors import InvalidState, PayloadTooLarge, ProblemError
from app.protobuf_worker import ProtobufWorker, SerializedState
from app.settings import ManifestPolicy, TimestampUnit, UnknownFields, VersionGuard
from app.states.answers import BatchRead
from app.states.model import (
    MAX_TRANSACTION_BYTES,
    DeleteOperation,
    Operation,
    Page,
    Precondition,
    PutOperation,
    StateRecord,
    item_size,
    new_write_key,
)
from app.states.watches import Watches
from app.store import StateStore


class WriteRequest(Protocol):
    """A validated write, as `PUT /states/{id}` and a transaction's puts carry it."""

    @property
    def manifest(self) -> str: ...
    @property
    def payload(self) -> bytes | None: ...
    @property
    def state(self) -> Any: ...
    @property
    def serialized_state(self) -> SerializedState | None: ...
    @property
    def version_number(self) -> int: ...
    @property
    def timestamp(self) -> int | None: ...
    @property
    def shard(self) -> int: ...
    @property
    def ttl_seconds(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class PlannedPut:
    """A transaction's put before validation: `request`, under `persistence_id`, if `precondition` holds."""

    persistence_id: str
    request: WriteRequest
    precondition: Precondition


@dataclass(frozen=True, slots=True)
class StatesService:
    store: StateStore
    protobuf: ProtobufWorker
    manifest_policy: ManifestPolicy
    version_guard: VersionGuard
    timestamp_unit: TimestampUnit
    watches: Watches
    unknown_fields: UnknownFields
    clock: Clock = time.time_ns

    async def ping(self) -> None:
        await self.store.ping()

    async def get(self, persistence_id: str) -> StateRecord | None:
        return await self.store.get(persistence_id)

    async def get_many(self, persistence_ids: Sequence[str]) -> BatchRead:
        return await self.store.get_many(persistence_ids)

    async def list_page(self, limit: int, after: str | None, shard: int | None, *, payloads: bool) -> Page:
        return await self.store.list_page(limit, after, shard, payloads=payloads)

    async def put(
        self,
        persistence_id: str,
        request: WriteRequest,
        precondition: Precondition,
        write_key: str | None = None,
    ) -> StateRecord:
        """Store the request's state if `precondition` holds: what is stored, or 412/409/413/422.
        `write_key` is the client's Idempotency-Key; without one, the write gets a key of its own."""
        record = await self._record_to_write(persistence_id, request, write_key or new_write_key())
        began = self.watches.ticket()
        stored = await self.store.put(record, self._with_guard(precondition, record))
        self.watches.written(stored, began)
        return stored

    async def delete(self, persistence_id: str, precondition: Precondition) -> None:
        began = self.watches.ticket()
        await self.store.delete(persistence_id, precondition)
        self.watches.deleted(persistence_id, began)

    async def transact(
        self, planned: Sequence[PlannedPut | DeleteOperation], write_key: str | None = None
    ) -> list[StateRecord | None]:
        """Apply every operation or none; each put is validated first, as `put` validates one, and carries
        the transaction's one key (the client's Idempotency-Key, else one of its own)."""
        write_key = write_key or new_write_key()
        operations: list[Operation] = []
        for index, operation in enumerate(planned):
            if isinstance(operation, DeleteOperation):
                operations.append(operation)
                continue
            try:
                record = await self._record_to_write(operation.persistence_id, operation.request, write_key)
            except ProblemError as error:
                raise _within_operation(error, index).for_operation(index, operation.persistence_id) from None
            operations.append(PutOperation(record, self._with_guard(operation.precondition, record)))
        size = sum(
            item_size(operation.record) for operation in operations if isinstance(operation, PutOperation)
        )
        if self.store.item_limit is not None and size > MAX_TRANSACTION_BYTES:
            raise PayloadTooLarge(
                f"the transaction's states would take {size} bytes as DynamoDB items;"
                f" the limit for one transaction is {MAX_TRANSACTION_BYTES}"
            )
        began = self.watches.ticket()
        results = await self.store.transact(operations)
        for applied, result in zip(operations, results, strict=True):
            if result is None:
                self.watches.deleted(applied.persistence_id, began)
            else:
                self.watches.written(result, began)
        return results

    async def _record_to_write(
        self, persistence_id: str, request: WriteRequest, write_key: str
    ) -> StateRecord:
        payload = await self._payload_to_store(request)
        now = self.clock()
        timestamp = request.timestamp
        if timestamp is None:
            timestamp = now // _NANOSECONDS[self.timestamp_unit]
        record = StateRecord(
            persistence_id=persistence_id,
            version_number=request.version_number,
            manifest=request.manifest,
            payload=payload,
            timestamp=timestamp,
            shard=request.shard,
            expires_at=None if request.ttl_seconds is None else _expiry(now, request.ttl_seconds),
            write_key=write_key,
        )
        size, limit = item_size(record), self.store.item_limit
        if limit is not None and size > limit:
            raise PayloadTooLarge(
                f"the state would take {size} bytes as a DynamoDB item; the limit is {limit}"
            )
        return record

    async def _payload_to_store(self, request: WriteRequest) -> bytes:
        """The payload checked against its type, or the JSON state serialized."""
        manifest = request.manifest
        if request.payload is None:
            serialized = request.serialized_state
            try:
                if serialized is not None:
                    return serialized.checked()
                return await self.protobuf.from_json(manifest, request.state)
            except InvalidState as exc:
                raise _refusal("state", exc.detail) from exc
        if self.protobuf.types.knows(manifest):
            try:
                await self.protobuf.check_payload(manifest, request.payload, self.unknown_fields)
            except InvalidState as exc:
                raise _refusal("payload", exc.detail) from exc
        elif self.manifest_policy == "strict":
            raise _refusal(
                "manifest",
                f"{manifest} is neither a well-known type nor in the loaded descriptor sets,"
                " and STATESTORE_MANIFEST_POLICY is strict",
            )
        return request.payload

    def _with_guard(self, precondition: Precondition, record: StateRecord) -> Precondition:
        """The client's precondition, plus the monotonic version guard when it is on."""
        if self.version_guard == "monotonic":
            return precondition.with_guard(record.version_number)
        return precondition


# The unit of a write's timestamp when it carries none: that of the Go actors that share the table.
_NANOSECONDS: dict[TimestampUnit, int] = {"s": NANOSECONDS_PER_SECOND, "ms": 1_000_000, "ns": 1}


def _expiry(now: int, ttl_seconds: int) -> int:
    """Epoch seconds `ttl_seconds` after `now` (nanoseconds), rounded up: a state lives at least that long."""
    return -(-now // NANOSECONDS_PER_SECOND) + ttl_seconds


def _refusal(field: str, detail: str) -> InvalidState:
    return InvalidState(detail, errors=[{"loc": ["body", field], "msg": detail}])


def _within_operation(error: ProblemError, index: int) -> ProblemError:
    """PUT's field errors (`["body", "payload"]`) located in the transaction's body instead."""
    for field_error in error.extensions.get("errors", []):
        if field_error["loc"][:1] == ["body"]:
            field_error["loc"] = ["body", "operations", index, *field_error["loc"][1:]]
    return error
