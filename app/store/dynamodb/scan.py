"""One page of a listing as one consistent `Scan` call, which DynamoDB itself stops at `Limit` items
evaluated or at 1 MB read, whichever comes first; `ShardNumber` filtered on the server when a shard is
asked for (the filter does not lower the read units: DynamoDB counts every item it evaluates).

Payloads are left out of the answer unless asked for, which saves transfer and memory but not read units,
which DynamoDB counts from the whole item.

An item the service cannot read (written by some other program) is left out of the page, and logged
with its id and the attribute at fault: failing the page instead would stop every walk of the table there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from app.errors import CorruptItem
from app.states.model import MAX_PAGE_READ_BYTES, Attribute, Page, StateRecord
from app.store.dynamodb._large_states import STATE_ENCODING, decoded_size
from app.store.dynamodb.codec import HASH_KEY, from_item, key_of

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

_NAMES = {
    "#k": HASH_KEY,
    "#v": Attribute.VERSION_NUMBER,
    "#m": Attribute.MANIFEST,
    "#t": Attribute.TIMESTAMP,
    "#s": Attribute.SHARD,
    "#e": Attribute.EXPIRES_AT,
}
_PAYLOAD_NAME = {"#p": Attribute.PAYLOAD, "#n": STATE_ENCODING}


def _scan_arguments(
    table: str, limit: int, after: str | None, shard: int | None, *, payloads: bool
) -> dict[str, Any]:
    names = {**_NAMES, **(_PAYLOAD_NAME if payloads else {})}
    arguments: dict[str, Any] = {
        "TableName": table,
        "Limit": limit,
        "ConsistentRead": True,
        "ProjectionExpression": ", ".join(names),
        "ExpressionAttributeNames": names,
    }
    if after is not None:
        arguments["ExclusiveStartKey"] = key_of(after)
    if shard is not None:
        # An item without ShardNumber reads as shard 0, in filters as everywhere else.
        missing = " OR attribute_not_exists(#s)" if shard == 0 else ""
        arguments["FilterExpression"] = f"#s = :shard{missing}"
        arguments["ExpressionAttributeValues"] = {":shard": {"N": str(shard)}}
    return arguments


async def scan_page(
    client: DynamoDBClient,
    table: str,
    limit: int,
    after: str | None,
    shard: int | None,
    *,
    payloads: bool,
    now: int,
) -> Page:
    """The page, without the states expired at `now` (which DynamoDB may keep for a while)."""
    response: Any = await client.scan(**_scan_arguments(table, limit, after, shard, payloads=payloads))
    last_key = response.get("LastEvaluatedKey")
    items = response.get("Items", [])
    if payloads:
        kept = _within_page_read(items)
        if len(kept) < len(items):
            items, last_key = kept, key_of(kept[-1][HASH_KEY]["S"])
    records = _readable(items)
    return Page(
        [record for record in records if not record.expired(now)],
        None if last_key is None else last_key[HASH_KEY]["S"],
    )


def _within_page_read(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first items whose payloads, decoded, take at most a page's read (at least one item): Scan's
    1 MB counts compressed payloads as stored, which may decode to many times that."""
    total = 0
    for count, item in enumerate(items):
        total += decoded_size(item)
        if total > MAX_PAGE_READ_BYTES and count > 0:
            return items[:count]
    return items


def _readable(items: Iterable[dict[str, Any]]) -> Iterator[StateRecord]:
    for item in items:
        try:
            record = from_item(item)  # logs what it cannot read
        except CorruptItem:
            continue
        yield record
