"""States whose item would pass DynamoDB's 400 KB: stored compressed (`STATESTORE_COMPRESSION=zstd`).

The stored form is a function of the record alone: an item that fits is written as ego-contrib's Go store
writes it; one that does not has its `StatePayload` compressed with zstd, and the attribute
`StateEncoding` = `zstd` says so. Readers decode by that attribute, whatever this process's setting, so
replicas that differ in the setting still read each other's items; an item without it is read as today.

Because the form follows from the record, a transaction's pin on a stored state (`codec.build_pin`)
compares `StatePayload` with the same record encoded again. zstd's output is the same for the same input,
level and library version; replicas whose zstandard versions compress differently would make such a pin
fail, and the transaction answer a 503 after its attempts, never a wrong result.

Decoding is bounded: a frame must declare its content size, and one larger than any state a request can
carry (8 MiB) is a `502` naming the id, as is any frame that does not decode.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import zstandard

from app.errors import CorruptItem, PayloadTooLarge
from app.observability.logging import FIELDS
from app.states.model import MAX_ITEM_BYTES, MAX_TRANSACTION_BYTES, Attribute, StateRecord, item_size

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]

STATE_ENCODING = "StateEncoding"
ZSTD = "zstd"
# Level 3, zstd's default: 8 MiB of JSON-like protobuf compress in tens of milliseconds; higher levels
# cost several times that for a few percent (docs/large-states.md).
_LEVEL = 3
# No state is larger than the request body that carried it (app.http.bodies.MAX_BODY_BYTES).
MAX_STATE_BYTES = 8 * 1024 * 1024
_ENCODING_BYTES = len(STATE_ENCODING) + len(ZSTD)
_compressor = zstandard.ZstdCompressor(level=_LEVEL, write_content_size=True, write_checksum=False)
_decompressor = zstandard.ZstdDecompressor()
logger = logging.getLogger("statestore.store")


def needs_encoding(record: StateRecord) -> bool:
    """Whether the record's item would pass the item limit as ego-contrib's Go store writes it."""
    return item_size(record) > MAX_ITEM_BYTES


def compressed(payload: bytes) -> bytes:
    return _compressor.compress(payload)


def encode(item: Item, record: StateRecord, packed: bytes) -> Item:
    """`item`, the plain item of a record that `needs_encoding`, with `packed`, its payload compressed;
    a 413 when even that does not fit."""
    size = item_size(record) - len(record.payload) + len(packed) + _ENCODING_BYTES
    if size > MAX_ITEM_BYTES:
        raise PayloadTooLarge(
            f"the state would take {size} bytes as a DynamoDB item even compressed; the limit is"
            f" {MAX_ITEM_BYTES}"
        )
    return {**item, Attribute.PAYLOAD: {"B": packed}, STATE_ENCODING: {"S": ZSTD}}


def stored_payload(record: StateRecord) -> bytes:
    """`StatePayload` as the item of `record` holds it (compressed when the item needs it)."""
    return compressed(record.payload) if needs_encoding(record) else record.payload


def check_transaction(items: list[Item]) -> None:
    """A 413 when the encoded items together pass DynamoDB's 4 MB per transaction."""
    size = sum(_stored_size(item) for item in items)
    if size > MAX_TRANSACTION_BYTES:
        raise PayloadTooLarge(
            f"the transaction's states would take {size} bytes as DynamoDB items;"
            f" the limit for one transaction is {MAX_TRANSACTION_BYTES}"
        )


def _stored_size(item: Item) -> int:
    size = 0
    for name, value in item.items():
        size += len(name)
        for text in value.values():
            size += len(text) if isinstance(text, bytes) else len(str(text).encode())
    return size


def decoded(item: Mapping[str, Any], payload: bytes) -> bytes:
    """The payload of `item` as written by the client: decompressed when `StateEncoding` says so."""
    encoding = item.get(STATE_ENCODING)
    if encoding is None:
        return payload
    if encoding != {"S": ZSTD}:
        raise _corrupt(item, "names no encoding this service knows")
    try:
        size = zstandard.frame_content_size(payload)
        if not 0 <= size <= MAX_STATE_BYTES:
            raise _corrupt(item, f"is a frame whose declared size is not within 0..{MAX_STATE_BYTES}")
        return _decompressor.decompress(payload, max_output_size=size)
    except zstandard.ZstdError:
        raise _corrupt(item, "is a zstd frame that does not decode") from None


def decoded_size(item: Mapping[str, Any]) -> int:
    """The payload's bytes once decoded, read from the frame's header (0 for a frame that declares none)."""
    payload = item.get(Attribute.PAYLOAD, {}).get("B", b"")
    if item.get(STATE_ENCODING) is None or not payload:
        return len(payload)
    try:
        return max(0, zstandard.frame_content_size(payload))
    except zstandard.ZstdError:
        return 0


def _corrupt(item: Mapping[str, Any], problem: str) -> CorruptItem:
    key = item.get(Attribute.PERSISTENCE_ID)
    persistence_id = key.get("S") if isinstance(key, Mapping) else None
    logger.error(
        "a stored item cannot be read: its %s %s",
        Attribute.PAYLOAD,
        problem,
        extra={FIELDS: {"persistence_id": persistence_id, "attribute": Attribute.PAYLOAD}},
    )
    return CorruptItem(
        f"the stored state {persistence_id} cannot be read: its attribute {Attribute.PAYLOAD} {problem}"
    )
