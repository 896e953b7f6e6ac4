"""DynamoDB's item size rule, applied before any backend call so that every backend refuses alike."""

from __future__ import annotations

from app.store.port import StateRecord

MAX_ITEM_BYTES = 400 * 1024
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024  # the items of one TransactWriteItems call, together

_NAMES_BYTES = sum(
    len(name)
    for name in (
        "PersistenceID",
        "VersionNumber",
        "StatePayload",
        "StateManifest",
        "Timestamp",
        "ShardNumber",
    )
)


def _number_bytes(value: int) -> int:
    significant = str(value).strip("0") or "0"
    return (len(significant) + 1) // 2 + 1


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
    )
