"""Each DynamoDB request's consumed capacity and SDK retries, noted for the call's trace span
(`app.store.call_details`): on aioboto3's client through botocore's events, so that no call site changes
and an untraced client registers nothing; the lean client (`lean.py`) notes its answers itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from app.store import call_details

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

# The operations that take `ReturnConsumedCapacity`; the table's management calls do not.
_CAPACITY_OPERATIONS = (
    "GetItem",
    "PutItem",
    "DeleteItem",
    "UpdateItem",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
    "Query",
    "Scan",
)


def note_call_details(client: DynamoDBClient) -> None:
    events = client.meta.events
    for operation in _CAPACITY_OPERATIONS:
        events.register(f"before-parameter-build.dynamodb.{operation}", _ask_for_capacity)
    events.register("after-call.dynamodb", _note_answer)


def _ask_for_capacity(params: dict[str, Any], **_: Any) -> None:
    params.setdefault("ReturnConsumedCapacity", "TOTAL")


def _note_answer(parsed: Mapping[str, Any], **_: Any) -> None:
    note_answer(parsed)


def note_answer(parsed: Mapping[str, Any]) -> None:
    """One answered request, a success or an error, as botocore parses it."""
    retries = int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0))
    call_details.note(retries, _capacity_units(parsed.get("ConsumedCapacity")))


def _capacity_units(consumed: object) -> float | None:
    """`ConsumedCapacity` is one entry for a single-item call, a list of them (one a table) otherwise."""
    entries = [consumed] if isinstance(consumed, Mapping) else consumed
    if not isinstance(entries, list) or not entries:
        return None
    return sum(float(entry.get("CapacityUnits", 0.0)) for entry in entries if isinstance(entry, Mapping))
