"""The table the service needs: the key `create-table` gives it, and the check that a table found has it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, WaiterError

from app.errors import BackendUnavailable, TableKeyMismatch, TableMissing
from app.store.dynamodb.codec import HASH_KEY
from app.store.dynamodb.errors import error_code

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import AttributeDefinitionTypeDef, KeySchemaElementTypeDef

KEY_SCHEMA: list[KeySchemaElementTypeDef] = [{"AttributeName": HASH_KEY, "KeyType": "HASH"}]
KEY_ATTRIBUTES: list[AttributeDefinitionTypeDef] = [{"AttributeName": HASH_KEY, "AttributeType": "S"}]
_SERVING_STATUSES = ("ACTIVE", "UPDATING")


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
