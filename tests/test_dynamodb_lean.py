"""The lean client answers each hot call as aiobotocore answers it, on each DynamoDB-compatible server: every
AttributeValue type decoded the same way, and an error raised as the same `ClientError`; and it signs what it
sends as DynamoDB checks a signature (neither moto nor dynalite checks one)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aioboto3
import pytest
from botocore.exceptions import ClientError

from app.store.dynamodb import CLIENT_CONFIG
from app.store.dynamodb.lean import LeanClient
from support import dynamodb_only
from support.differences import DYNALITE_HAS_NO_TRANSACTIONS
from support.fault_proxy import FaultProxy
from support.services import TABLE

backend = dynamodb_only.backend
endpoint = dynamodb_only.endpoint

EVERY_TYPE: dict[str, Any] = {
    "S": {"S": "text é"},
    "N": {"N": "-12.5"},
    "B": {"B": b"\x00\xff binary"},
    "SS": {"SS": ["a", "b"]},
    "NS": {"NS": ["1", "2.5"]},
    "BS": {"BS": [b"\x01", b"\x02\x03"]},
    "BOOL": {"BOOL": False},
    "NULL": {"NULL": True},
    "L": {"L": [{"B": b"in a list"}, {"N": "3"}, {"L": [{"S": "nested"}]}]},
    "M": {"M": {"ref": {"M": {"sha": {"B": b"\x10" * 32}, "key": {"S": "k"}}}, "size": {"N": "7"}}},
}


@asynccontextmanager
async def both_clients(session: aioboto3.Session, endpoint: str) -> AsyncIterator[tuple[Any, Any]]:
    """aiobotocore's client of `session`, and the lean client over it."""
    async with (
        session.client("dynamodb", endpoint_url=endpoint, config=CLIENT_CONFIG) as sdk,
        LeanClient.open(sdk, await session.get_credentials(), CLIENT_CONFIG) as lean,
    ):
        yield sdk, lean


@pytest.fixture
async def clients(endpoint: str) -> AsyncIterator[tuple[Any, Any]]:
    async with both_clients(aioboto3.Session(), endpoint) as pair:
        yield pair


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in response.items() if name != "ResponseMetadata"}


def key(persistence_id: str) -> dict[str, Any]:
    return {"PersistenceID": {"S": persistence_id}}


async def test_every_attribute_type_is_written_and_read_as_aiobotocore_does(clients: tuple[Any, Any]) -> None:
    sdk, lean = clients
    written, other = f"lean-{uuid.uuid4()}", f"lean-{uuid.uuid4()}"
    await lean.put_item(TableName=TABLE, Item={**key(written), **EVERY_TYPE})
    await sdk.put_item(TableName=TABLE, Item={**key(other), **EVERY_TYPE})
    for persistence_id in (written, other):
        arguments = {"TableName": TABLE, "Key": key(persistence_id), "ConsistentRead": True}
        by_lean, by_sdk = await lean.get_item(**arguments), await sdk.get_item(**arguments)
        assert without_metadata(by_lean) == without_metadata(by_sdk)
        assert by_lean["Item"] == {**key(persistence_id), **EVERY_TYPE}
    request = {TABLE: {"Keys": [key(written), key(other), key("never-written")], "ConsistentRead": True}}
    by_lean = await lean.batch_get_item(RequestItems=request)
    by_sdk = await sdk.batch_get_item(RequestItems=request)
    assert sorted(by_lean["Responses"][TABLE], key=str) == sorted(by_sdk["Responses"][TABLE], key=str)
    assert len(by_lean["Responses"][TABLE]) == 2
    assert by_lean.get("UnprocessedKeys", {}) == by_sdk.get("UnprocessedKeys", {})
    assert by_lean["ResponseMetadata"]["HTTPStatusCode"] == 200


async def refused(call: Any, **arguments: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as raised:
        await call(**arguments)
    response: Any = raised.value.response
    return without_metadata(response)


async def test_a_refused_condition_is_the_same_client_error(clients: tuple[Any, Any]) -> None:
    sdk, lean = clients
    persistence_id = f"lean-{uuid.uuid4()}"
    await lean.put_item(TableName=TABLE, Item={**key(persistence_id), **EVERY_TYPE})
    arguments = {
        "TableName": TABLE,
        "Key": key(persistence_id),
        "ConditionExpression": "attribute_not_exists(PersistenceID)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    by_lean = await refused(lean.delete_item, **arguments)
    assert by_lean == await refused(sdk.delete_item, **arguments)
    assert by_lean["Error"]["Code"] == "ConditionalCheckFailedException"


async def test_a_missing_table_and_a_key_over_the_limit_are_the_same_client_errors(
    clients: tuple[Any, Any],
) -> None:
    sdk, lean = clients
    missing = {"TableName": f"missing-{uuid.uuid4().hex[:8]}", "Key": key("x")}
    by_lean = await refused(lean.get_item, **missing)
    assert by_lean == await refused(sdk.get_item, **missing)
    assert by_lean["Error"]["Code"] == "ResourceNotFoundException"
    invalid = {"TableName": TABLE, "Item": key("x" * 2049)}  # DynamoDB's 2048-byte partition key limit
    by_lean = await refused(lean.put_item, **invalid)
    assert by_lean == await refused(sdk.put_item, **invalid)
    assert by_lean["Error"]["Code"] == "ValidationException"


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_cancelled_transaction_has_the_same_reasons(clients: tuple[Any, Any]) -> None:
    sdk, lean = clients
    stored, absent = f"lean-{uuid.uuid4()}", f"lean-{uuid.uuid4()}"
    await lean.transact_write_items(
        TransactItems=[{"Put": {"TableName": TABLE, "Item": {**key(stored), **EVERY_TYPE}}}]
    )
    items = [
        {"Put": {"TableName": TABLE, "Item": key(absent)}},
        {
            "ConditionCheck": {
                "TableName": TABLE,
                "Key": key(stored),
                "ConditionExpression": "attribute_not_exists(PersistenceID)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
    ]
    by_lean = await refused(lean.transact_write_items, TransactItems=items)
    assert by_lean == await refused(sdk.transact_write_items, TransactItems=items)
    assert by_lean["Error"]["Code"] == "TransactionCanceledException"
    assert by_lean["CancellationReasons"][1]["Item"] == {**key(stored), **EVERY_TYPE}


@pytest.fixture(scope="module")
def checking_proxy(endpoint: str) -> Iterator[FaultProxy]:
    """The server behind a proxy that checks each request's SigV4 signature before it forwards it."""
    with FaultProxy(int(endpoint.rsplit(":", 1)[1])).running() as proxy:
        proxy.set("check_signatures")
        yield proxy


@pytest.mark.parametrize("token", [None, "a-session-token"], ids=["keys", "session-token"])
async def test_each_hot_call_is_signed_for_what_arrives(
    checking_proxy: FaultProxy, token: str | None
) -> None:
    """The Host signed is the one sent, and every x-amz- header is signed (a session token's too): each hot
    call of each client passes a check of its signature made from the request as it arrived."""
    checked, problems = checking_proxy.signatures_checked, len(checking_proxy.signature_problems)
    session = aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token=token
    )
    async with both_clients(session, checking_proxy.url) as (sdk, lean):
        for client in (sdk, lean):
            persistence_id = f"lean-{uuid.uuid4()}"
            await client.put_item(TableName=TABLE, Item={**key(persistence_id), **EVERY_TYPE})
            found = await client.get_item(TableName=TABLE, Key=key(persistence_id), ConsistentRead=True)
            assert found["Item"] == {**key(persistence_id), **EVERY_TYPE}
            request = {TABLE: {"Keys": [key(persistence_id)], "ConsistentRead": True}}
            assert len((await client.batch_get_item(RequestItems=request))["Responses"][TABLE]) == 1
            await client.delete_item(TableName=TABLE, Key=key(persistence_id))
    assert checking_proxy.signature_problems[problems:] == []
    assert checking_proxy.signatures_checked - checked == 8


async def test_each_hot_call_names_the_sdk_as_its_user_agent(checking_proxy: FaultProxy) -> None:
    """DynamoDB sees one client on both paths: the lean one sends the aioboto3 client's own user agent
    (aiohttp's would name aiohttp), added after signing as botocore leaves it unsigned, and the signature
    still holds."""
    session = aioboto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    problems = len(checking_proxy.signature_problems)
    async with both_clients(session, checking_proxy.url) as (sdk, lean):
        sent = len(checking_proxy.user_agents)
        await lean.get_item(TableName=TABLE, Key=key(f"lean-{uuid.uuid4()}"), ConsistentRead=True)
        expected = sdk.meta.config.user_agent.encode()
    assert expected.startswith(b"aiobotocore/")
    assert checking_proxy.user_agents[sent:] == [expected]
    assert checking_proxy.signature_problems[problems:] == []


async def test_a_request_signed_with_another_secret_is_refused_on_both_paths(
    checking_proxy: FaultProxy,
) -> None:
    """The check is not vacuous: the same calls signed with a wrong secret key are refused, and each client
    raises DynamoDB's refusal as the same `ClientError`."""
    session = aioboto3.Session(aws_access_key_id="testing", aws_secret_access_key="not-the-secret")
    async with both_clients(session, checking_proxy.url) as (sdk, lean):
        arguments = {"TableName": TABLE, "Key": key("x"), "ConsistentRead": True}
        by_lean = await refused(lean.get_item, **arguments)
        assert by_lean == await refused(sdk.get_item, **arguments)
    assert by_lean["Error"]["Code"] == "InvalidSignatureException"
    assert "the signature does not hold" in checking_proxy.signature_problems[-1]
