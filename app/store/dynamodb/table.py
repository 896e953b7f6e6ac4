"""The table the service needs: the key `create-table` gives it, the check that a table found has it, and
DynamoDB's time to live on `ExpiresAt`, which deletes expired states for free (within days of expiry)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, WaiterError

from app.errors import BackendUnavailable, TableKeyMismatch, TableMissing
from app.states.model import Attribute
from app.store import Expiry
from app.store.dynamodb.codec import HASH_KEY
from app.store.dynamodb.errors import error_code

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import AttributeDefinitionTypeDef, KeySchemaElementTypeDef

KEY_SCHEMA: list[KeySchemaElementTypeDef] = [{"AttributeName": HASH_KEY, "KeyType": "HASH"}]
KEY_ATTRIBUTES: list[AttributeDefinitionTypeDef] = [{"AttributeName": HASH_KEY, "AttributeType": "S"}]
_SERVING_STATUSES = ("ACTIVE", "UPDATING")
_TIME_TO_LIVE_ON = ("ENABLED", "ENABLING")
# How an endpoint without DynamoDB's time to live (dynalite) or one that will not change it now refuses.
_REFUSALS = ("UnknownOperationException", "ValidationException")


def describe_key(key_schema: Sequence[Mapping[str, Any]], attributes: Sequence[Mapping[str, Any]]) -> str:
    """A key schema as `Name (type, role)` per element, such as `PersistenceID (S, HASH)`."""
    types = {attribute["AttributeName"]: attribute["AttributeType"] for attribute in attributes}
    return " + ".join(
        f"{element['AttributeName']} ({types.get(element['AttributeName'], '?')}, {element['KeyType']})"
        for element in key_schema
    )


EXPECTED_KEY = describe_key(KEY_SCHEMA, KEY_ATTRIBUTES)


def check_table(table: str, description: Mapping[str, Any]) -> None:
    """Raise unless the table DescribeTable described has the service's key and can serve now."""
    found = describe_key(description.get("KeySchema", []), description.get("AttributeDefinitions", []))
    if found != EXPECTED_KEY:
        raise TableKeyMismatch(table, found, EXPECTED_KEY)
    status = description.get("TableStatus")
    if status not in _SERVING_STATUSES:
        raise BackendUnavailable(f"DynamoDB table {table!r} is {status}")


async def request_table(client: DynamoDBClient, table: str) -> bool:
    """Ask for the table unless it exists; True when this call created it."""
    try:
        await client.create_table(
            TableName=table,
            AttributeDefinitions=KEY_ATTRIBUTES,
            KeySchema=KEY_SCHEMA,
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
        return False
    return True


async def wait_for_table(client: DynamoDBClient, table: str) -> None:
    """Wait until the table exists (a new one takes seconds on DynamoDB)."""
    waiter = client.get_waiter("table_exists")
    try:
        await waiter.wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    except WaiterError as exc:
        raise TableMissing(table) from exc


async def expiry(client: DynamoDBClient, table: str) -> Expiry:
    """The table's time to live, with why DynamoDB will not delete expired states, if it will not."""
    try:
        status, attribute = await _time_to_live(client, table)
    except ClientError as exc:
        return Expiry("unknown", None, _refused(exc, table))
    return Expiry(status.lower(), attribute, _warning(table, status, attribute))


async def enable_time_to_live(client: DynamoDBClient, table: str) -> str | None:
    """Turn the table's time to live on for `ExpiresAt` unless it is on; a warning when it cannot be."""
    try:
        status, attribute = await _time_to_live(client, table)
        if status == "DISABLED":
            specification: Any = {"Enabled": True, "AttributeName": Attribute.EXPIRES_AT}
            await client.update_time_to_live(TableName=table, TimeToLiveSpecification=specification)
            return None
    except ClientError as exc:
        return _refused(exc, table)
    return _warning(table, status, attribute)


async def _time_to_live(client: DynamoDBClient, table: str) -> tuple[str, str | None]:
    described = await client.describe_time_to_live(TableName=table)
    description: Mapping[str, Any] = described.get("TimeToLiveDescription", {})
    return description.get("TimeToLiveStatus", "DISABLED"), description.get("AttributeName")


def _warning(table: str, status: str, attribute: str | None) -> str | None:
    if status not in _TIME_TO_LIVE_ON:
        return _lingering(table, f"its time to live is {status}")
    if attribute != Attribute.EXPIRES_AT:
        return _lingering(
            table, f"its time to live reads the attribute {attribute}, not {Attribute.EXPIRES_AT}"
        )
    return None


def _refused(exc: ClientError, table: str) -> str:
    """The warning for an endpoint that refuses a time-to-live call; any other error goes on up."""
    code = error_code(exc)
    if code not in _REFUSALS:
        raise exc
    return _lingering(table, f"the endpoint refused {exc.operation_name} ({code})")


def _lingering(table: str, reason: str) -> str:
    return (
        f"DynamoDB will not delete expired states of table {table!r}: {reason}. The service treats them as"
        " absent all the same; they take space until deleted"
    )
