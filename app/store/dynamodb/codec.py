"""The item layout of ego-contrib's Go store, and preconditions as DynamoDB condition expressions.

An item whose `ExpiresAt` is at or below "now" is absent to every condition, as it is to reads: DynamoDB's
TTL deletes such items only eventually, so the conditions say "gone" as `attribute_not_exists(#k) OR
#e <= :now` in the same atomic step as every other check.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from app.errors import CorruptItem
from app.observability.logging import FIELDS
from app.states.model import MAX_ITEM_BYTES, Attribute, Precondition, StateRecord
from app.store.dynamodb._large_states import (
    STATE_ENCODING,
    ZSTD,
    compressed,
    decoded,
    encoded_size,
    needs_encoding,
)
from app.store.dynamodb._offload import PAYLOAD_REF, SHA256, digest

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]

HASH_KEY = Attribute.PERSISTENCE_ID
logger = logging.getLogger("statestore.store")


def key_of(persistence_id: str) -> Item:
    return {HASH_KEY: {"S": persistence_id}}


def to_item(record: StateRecord) -> Item:
    """The whole item: a put replaces every attribute, so a state written without expiry loses any."""
    item: Item = {
        HASH_KEY: {"S": record.persistence_id},
        Attribute.VERSION_NUMBER: {"N": str(record.version_number)},
        Attribute.PAYLOAD: {"B": record.payload},
        Attribute.MANIFEST: {"S": record.manifest},
        Attribute.TIMESTAMP: {"N": str(record.timestamp)},
        Attribute.SHARD: {"N": str(record.shard)},
    }
    if record.expires_at is not None:
        item[Attribute.EXPIRES_AT] = {"N": str(record.expires_at)}
    if record.write_key is not None:
        item[Attribute.WRITE_KEY] = {"S": record.write_key}
    return item


_RANGES = {
    Attribute.VERSION_NUMBER: (0, 2**64 - 1),
    Attribute.TIMESTAMP: (-(2**63), 2**63 - 1),
    Attribute.SHARD: (0, 2**64 - 1),
    Attribute.EXPIRES_AT: (-(2**63), 2**63 - 1),
}
# Longer than any 64-bit integer written out, even with an exponent: not one, and not worth converting.
_MAX_TEXT = 32


def _attribute(item: Mapping[str, Any], name: str, kind: str) -> Any:
    """The value of attribute `name`, of DynamoDB type `kind`, or None when the item lacks it."""
    attribute = item.get(name)
    if attribute is None:
        return None
    if not isinstance(attribute, Mapping) or kind not in attribute:
        raise _corrupt(item, name, f"is not of type {kind}")
    return attribute[kind]


def _number(item: Mapping[str, Any], name: str) -> int:
    value = _optional_number(item, name)
    return 0 if value is None else value


def _optional_number(item: Mapping[str, Any], name: str) -> int | None:
    text: Any = _attribute(item, name, "N")
    if text is None:
        return None
    value = _whole_number(text)
    lowest, highest = _RANGES[name]
    if value is None or not lowest <= value <= highest:
        raise _corrupt(item, name, f"is not a whole number in {lowest}..{highest}")
    return value


def _whole_number(text: Any) -> int | None:
    """The whole number a DynamoDB number's text spells; None when it spells none or is too long for one."""
    if not isinstance(text, str) or len(text) > _MAX_TEXT:
        return None
    if text.isascii() and text.isdigit():  # how DynamoDB gives back every number of 0 and above written here
        return int(text)
    try:  # its other spellings: a sign, a fraction, an exponent
        value = Decimal(text)
    except ArithmeticError:
        return None
    return int(value) if value.is_finite() and value == value.to_integral_value() else None


def _corrupt(item: Mapping[str, Any], name: str, problem: str) -> CorruptItem:
    key = item.get(HASH_KEY)
    persistence_id = key.get("S") if isinstance(key, Mapping) else None
    logger.error(
        "a stored item cannot be read: its attribute %s %s",
        name,
        problem,
        extra={FIELDS: {"persistence_id": persistence_id, "attribute": name}},
    )
    return CorruptItem(f"the stored item cannot be read: its attribute {name} {problem}")


def from_item(item: Mapping[str, Any], offloaded: bytes | None = None) -> StateRecord:
    """Read an item as the Go store writes it; tolerate extra attributes and missing numbers, and answer a
    502 naming the attribute, logged once, for anything else the service did not write. `offloaded` is the
    payload of an item that points to it (`_offload.payload_ref`), read and checked already."""
    persistence_id: Any = _attribute(item, HASH_KEY, "S")
    if not isinstance(persistence_id, str):
        raise _corrupt(item, HASH_KEY, "is missing")
    payload: Any = _attribute(item, Attribute.PAYLOAD, "B")
    if not isinstance(payload, bytes | bytearray | None):
        raise _corrupt(item, Attribute.PAYLOAD, "is not binary")
    manifest: Any = _attribute(item, Attribute.MANIFEST, "S")
    if not isinstance(manifest, str | None):
        raise _corrupt(item, Attribute.MANIFEST, "is not a string")
    write_key: Any = _attribute(item, Attribute.WRITE_KEY, "S")
    if not isinstance(write_key, str | None):
        raise _corrupt(item, Attribute.WRITE_KEY, "is not a string")
    return StateRecord(
        persistence_id=persistence_id,
        version_number=_number(item, Attribute.VERSION_NUMBER),
        manifest=manifest or "",
        payload=decoded(item, bytes(payload or b"")) if offloaded is None else offloaded,
        timestamp=_number(item, Attribute.TIMESTAMP),
        shard=_number(item, Attribute.SHARD),
        expires_at=_optional_number(item, Attribute.EXPIRES_AT),
        write_key=write_key,
    )


_NAMES = {
    "#k": HASH_KEY,
    "#v": Attribute.VERSION_NUMBER,
    "#m": Attribute.MANIFEST,
    "#p": Attribute.PAYLOAD,
    "#e": Attribute.EXPIRES_AT,
    "#n": STATE_ENCODING,
    "#w": Attribute.WRITE_KEY,
    "#r": PAYLOAD_REF,
    "#h": SHA256,
}


class ConditionBuilder:
    """Turns a `Precondition`, or a pin on a stored state, into `ConditionExpression` and its values.

    An item without a `VersionNumber` attribute is read as version 0 (and one without a manifest or
    payload as empty), so the clauses treat a missing attribute the same way. An item that expired at
    `now` (epoch seconds) counts as no item: `_gone` and `_live` replace `attribute_not_exists(#k)` and
    `attribute_exists(#k)`. (`#e <= :now` is false when `ExpiresAt` is missing: such an item, as every
    item ego-contrib's Go store writes, never expires.)
    """

    def __init__(self, now: int) -> None:
        self.values: dict[str, AttributeValueTypeDef] = {}
        self._now = now
        self._now_placeholder = ""

    def _expired(self) -> str:
        if not self._now_placeholder:
            self._now_placeholder = self._number(self._now)
        return f"#e <= {self._now_placeholder}"

    def _gone(self) -> str:
        return f"(attribute_not_exists(#k) OR {self._expired()})"

    def _live(self) -> str:
        return f"(attribute_exists(#k) AND NOT ({self._expired()}))"

    def _value(self, value: AttributeValueTypeDef) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def _number(self, number: int) -> str:
        return self._value({"N": str(number)})

    def _version_in(self, versions: frozenset[int]) -> str:
        listed = ", ".join(self._number(v) for v in sorted(versions))
        clause = f"#v IN ({listed})"
        if 0 in versions:
            clause = f"({clause} OR attribute_not_exists(#v))"
        return f"({self._live()} AND {clause})"

    def _equals(self, name: str, value: AttributeValueTypeDef, *, read_when_missing: bool) -> str:
        clause = f"{name} = {self._value(value)}"
        return f"({clause} OR attribute_not_exists({name}))" if read_when_missing else clause

    def build(self, precondition: Precondition) -> str:
        clauses: list[str] = []
        if precondition.absent:
            clauses.append(self._gone())
        if precondition.exists:
            clauses.append(self._live())
        if precondition.match is not None:
            clauses.append(self._version_in(precondition.match))
        if precondition.none_match:
            clauses.append(f"({self._gone()} OR NOT {self._version_in(precondition.none_match)})")
        if precondition.older_than is not None:
            guard = f"#v < {self._number(precondition.older_than)}"
            if precondition.older_than > 0:
                guard += " OR attribute_not_exists(#v)"
            clauses.append(f"({self._gone()} OR {guard})")
        return " AND ".join(clauses)

    def build_pin(self, stored: StateRecord | None) -> str:
        """Holds while exactly `stored` (same write key, version, manifest and payload) is stored; None:
        nothing is. The payload is compared in any form its item may take (`_stored_payload`)."""
        if stored is None:
            return self._gone()
        written_by = (
            "attribute_not_exists(#w)"
            if stored.write_key is None
            else self._equals("#w", {"S": stored.write_key}, read_when_missing=False)
        )
        return " AND ".join(
            [
                self._live(),
                written_by,
                self._equals(
                    "#v", {"N": str(stored.version_number)}, read_when_missing=stored.version_number == 0
                ),
                self._equals("#m", {"S": stored.manifest}, read_when_missing=not stored.manifest),
                self._stored_payload(stored),
            ]
        )

    def _stored_payload(self, stored: StateRecord) -> str:
        """The payload as an item holds it: inline as written when it fits; else compressed (when the
        compressed item fits: the writer had compression on) or offloaded (`StatePayloadRef.SHA256`, the
        writer having had compression off, or the compressed item not fitting)."""
        if not needs_encoding(stored):
            inline = self._equals("#p", {"B": stored.payload}, read_when_missing=not stored.payload)
            return f"{inline} AND attribute_not_exists(#n) AND attribute_not_exists(#r)"
        offloaded = f"(#r.#h = {self._value({'S': digest(stored.payload)})} AND attribute_not_exists(#p))"
        packed = compressed(stored.payload)
        if encoded_size(stored, packed) > MAX_ITEM_BYTES:
            return offloaded
        inline = f"#p = {self._value({'B': packed})} AND #n = {self._value({'S': ZSTD})}"
        return f"(({inline}) OR {offloaded})"

    def arguments(self, expression: str) -> dict[str, Any]:
        """Keyword arguments for a conditional write or check of `expression`; empty when there is none."""
        if not expression:
            return {}
        arguments: dict[str, Any] = {
            "ConditionExpression": expression,
            "ExpressionAttributeNames": {
                placeholder: name for placeholder, name in _NAMES.items() if placeholder in expression
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if self.values:
            arguments["ExpressionAttributeValues"] = self.values
        return arguments


def condition_arguments(precondition: Precondition, now: int) -> dict[str, Any]:
    """PutItem/DeleteItem (or transaction item) arguments that make the write conditional."""
    builder = ConditionBuilder(now)
    return builder.arguments(builder.build(precondition))


def pin_arguments(stored: StateRecord | None, now: int) -> dict[str, Any]:
    """ConditionCheck arguments that hold while exactly `stored` is stored (None: nothing is)."""
    builder = ConditionBuilder(now)
    return builder.arguments(builder.build_pin(stored))
