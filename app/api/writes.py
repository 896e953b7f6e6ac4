"""A write as the store takes it: the validation PUT and transaction puts share, and the version guard."""

from __future__ import annotations

import time

from app.api.payloads import payload_to_store
from app.api.schemas import PutStateRequest
from app.errors import InvalidState, PayloadTooLarge
from app.protobuf import TypeRegistry
from app.settings import Settings
from app.store.item_size import MAX_ITEM_BYTES, item_size
from app.store.port import Precondition, StateRecord


def record_to_write(
    persistence_id: str, request: PutStateRequest, types: TypeRegistry, settings: Settings
) -> StateRecord:
    """The record to store under `persistence_id`, or 422/413 before any backend call."""
    if request.persistence_id is not None and request.persistence_id != persistence_id:
        raise InvalidState(
            "the body's persistence_id differs from the path's",
            errors=[{"loc": ["body", "persistence_id"], "msg": "must equal the persistence id in the path"}],
        )
    record = StateRecord(
        persistence_id=persistence_id,
        version_number=request.version_number,
        manifest=request.manifest,
        payload=payload_to_store(request, types, settings.manifest_policy),
        timestamp=time.time_ns() // 1_000_000 if request.timestamp is None else request.timestamp,
        shard=request.shard,
    )
    size = item_size(record)
    if size > MAX_ITEM_BYTES:
        raise PayloadTooLarge(
            f"the state would take {size} bytes as a DynamoDB item; the limit is {MAX_ITEM_BYTES}"
        )
    return record


def write_precondition(precondition: Precondition, record: StateRecord, settings: Settings) -> Precondition:
    """The client's precondition, plus the monotonic version guard when it is on."""
    if settings.version_guard == "monotonic":
        return precondition.with_guard(record.version_number)
    return precondition
