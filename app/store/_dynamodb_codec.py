"""The item layout of ego-contrib's Go store, and preconditions as DynamoDB condition expressions."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from app.store.port import Precondition, StateRecord

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]

HASH_KEY = "PersistenceID"


def key_of(persistence_id: str) -> Item:
    return {HASH_KEY: {"S": persistence_id}}


def to_item(record: StateRecord) -> Item:
    return {
        HASH_KEY: {"S": record.persistence_id},
        "VersionNumber": {"N": str(record.version_number)},
        "StatePayload": {"B": record.payload},
        "StateManifest": {"S": record.manifest},
        "Timestamp": {"N": str(record.timestamp)},
        "ShardNumber": {"N": str(record.shard)},
    }


def _number(item: Mapping[str, Any], name: str) -> int:
    value: Any = item.get(name, {}).get("N")
    if value is None:
        return 0
    return int(value) if value.isdigit() else int(Decimal(value))


def from_item(item: Mapping[str, Any]) -> StateRecord:
    """Read an item as the Go store writes it; tolerate extra attributes and missing numbers."""
    payload: Any = item.get("StatePayload", {}).get("B", b"")
    manifest: Any = item.get("StateManifest", {}).get("S", "")
    persistence_id: Any = item[HASH_KEY]["S"]
    return StateRecord(
        persistence_id=persistence_id,
        version_number=_number(item, "VersionNumber"),
        manifest=manifest,
        payload=bytes(payload),
        timestamp=_number(item, "Timestamp"),
        shard=_number(item, "ShardNumber"),
    )


class ConditionBuilder:
    """Turns a `Precondition` into `ConditionExpression` and its attribute values.

    An item without a `VersionNumber` attribute is read as version 0, so the clauses about
    versions treat a missing attribute the same way.
    """

    def __init__(self) -> None:
        self.values: dict[str, AttributeValueTypeDef] = {}

    def _value(self, number: int) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = {"N": str(number)}
        return placeholder

    def _version_in(self, versions: frozenset[int]) -> str:
        listed = ", ".join(self._value(v) for v in sorted(versions))
        clause = f"#v IN ({listed})"
        if 0 in versions:
            clause = f"({clause} OR attribute_not_exists(#v))"
        return f"(attribute_exists(#k) AND {clause})"

    def build(self, precondition: Precondition) -> str:
        clauses: list[str] = []
        if precondition.absent:
            clauses.append("attribute_not_exists(#k)")
        if precondition.exists:
            clauses.append("attribute_exists(#k)")
        if precondition.match is not None:
            clauses.append(self._version_in(precondition.match))
        if precondition.none_match:
            clauses.append(f"(attribute_not_exists(#k) OR NOT {self._version_in(precondition.none_match)})")
        if precondition.older_than is not None:
            guard = f"#v < {self._value(precondition.older_than)}"
            if precondition.older_than > 0:
                guard += " OR attribute_not_exists(#v)"
            clauses.append(f"(attribute_not_exists(#k) OR {guard})")
        return " AND ".join(clauses)

    def arguments(self, precondition: Precondition) -> dict[str, Any]:
        """Keyword arguments for PutItem/DeleteItem; empty when there is no condition."""
        if precondition.is_unconditional:
            return {}
        expression = self.build(precondition)
        names = {"#k": HASH_KEY}
        if "#v" in expression:
            names["#v"] = "VersionNumber"
        arguments: dict[str, Any] = {
            "ConditionExpression": expression,
            "ExpressionAttributeNames": names,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if self.values:
            arguments["ExpressionAttributeValues"] = self.values
        return arguments


def condition_arguments(precondition: Precondition) -> dict[str, Any]:
    return ConditionBuilder().arguments(precondition)
