"""The DynamoDB adapter on each DynamoDB-compatible test server: eGo's item layout, unusable tables,
table creation, and the servers' own limits where they differ from DynamoDB's."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from google.protobuf import any_pb2, wrappers_pb2

from app.errors import CorruptItem, PreconditionFailed, TableKeyMismatch
from app.states.model import DeleteOperation, Precondition, PutOperation, StateRecord
from app.store.dynamodb import DynamoDBStore
from app.store.dynamodb.codec import from_item, to_item
from app.store.dynamodb.store import ClientKind
from scripts.servers import free_port, service_command
from support import dynamodb_only
from support.api import assert_problem, keyed, state_body, state_path
from support.differences import (
    DYNALITE_ANSWERS_1_MB_OF_A_BATCH,
    DYNALITE_HAS_NO_TRANSACTIONS,
    DYNALITE_HAS_NO_TTL,
    DYNALITE_RETURNS_NO_OLD_ITEM,
    MOTO_GETS_ANY_KEY_SIZE,
)
from support.services import TABLE, ServiceFactory

backend = dynamodb_only.backend
endpoint = dynamodb_only.endpoint


@pytest.fixture(scope="module")
def raw_table(endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture(scope="module")
def dynamodb_url(backend: str, dynamodb_path: str, start_service: ServiceFactory) -> Iterator[str]:
    with start_service(backend, dynamodb_client=dynamodb_path) as url:
        yield url


@pytest.fixture
async def dynamodb_client(dynamodb_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dynamodb_url, timeout=30) as http:
        yield http


def go_item(persistence_id: str) -> tuple[dict[str, Any], bytes]:
    """An item exactly as ego-contrib's Go store writes it: the state wrapped in an Any."""
    wrapped = any_pb2.Any()
    wrapped.Pack(wrappers_pb2.StringValue(value="account-42 open"))
    payload = wrapped.SerializeToString()
    item = {
        "PersistenceID": {"S": persistence_id},
        "VersionNumber": {"N": "7"},
        "StatePayload": {"B": payload},
        "StateManifest": {"S": "google.protobuf.Any"},
        "Timestamp": {"N": "1764115200123456789"},
        "ShardNumber": {"N": "3"},
    }
    return item, payload


async def test_an_item_written_by_the_go_store_reads_back_unchanged(
    raw_table: Any, dynamodb_client: httpx.AsyncClient, state_id: str
) -> None:
    item, payload = go_item(state_id)
    raw_table.put_item(TableName=TABLE, Item=item)
    response = await dynamodb_client.get(state_path(state_id))
    assert response.status_code == 200
    assert response.headers["etag"] == '"7"'
    state = response.json()
    assert state["manifest"] == "google.protobuf.Any"
    assert state["version_number"] == "7"
    assert state["timestamp"] == "1764115200123456789"
    assert state["shard"] == "3"
    assert base64.b64decode(state["payload"]) == payload


async def test_a_put_writes_the_go_stores_exact_layout(
    raw_table: Any, dynamodb_client: httpx.AsyncClient, state_id: str
) -> None:
    item, payload = go_item(state_id)
    body = state_body(7, payload, manifest="google.protobuf.Any", timestamp=1764115200123456789, shard=3)
    written = await dynamodb_client.put(state_path(state_id), json=body, headers=keyed(state_id))
    assert written.status_code == 200
    stored = raw_table.get_item(TableName=TABLE, Key={"PersistenceID": {"S": state_id}}, ConsistentRead=True)
    assert stored["Item"] == {**item, "WriteKey": {"S": state_id}}  # the one attribute of our own


async def test_a_go_actors_negative_timestamp_is_a_negative_number_both_ways(
    raw_table: Any, dynamodb_client: httpx.AsyncClient, state_id: str
) -> None:
    """eGo writes the zero time.Time (-62135596800 s) when an actor stops before any command."""
    body = state_body(1, timestamp="-62135596800")
    assert (await dynamodb_client.put(state_path(state_id), json=body)).status_code == 200
    stored = raw_table.get_item(TableName=TABLE, Key={"PersistenceID": {"S": state_id}}, ConsistentRead=True)
    assert stored["Item"]["Timestamp"] == {"N": "-62135596800"}
    item, _ = go_item(f"{state_id}-go")
    raw_table.put_item(TableName=TABLE, Item={**item, "Timestamp": {"N": "-9223372036854775808"}})
    read = (await dynamodb_client.get(state_path(f"{state_id}-go"))).json()
    assert read["timestamp"] == "-9223372036854775808"


async def test_extra_attributes_and_missing_numbers_are_tolerated(
    raw_table: Any, dynamodb_client: httpx.AsyncClient, state_id: str
) -> None:
    raw_table.put_item(
        TableName=TABLE,
        Item={
            "PersistenceID": {"S": state_id},
            "StatePayload": {"B": b"\x01"},
            "StateManifest": {"S": "acme.State"},
            "ExpiresAt": {"N": "1900000000"},
            "Owner": {"S": "someone else"},
        },
    )
    state = (await dynamodb_client.get(state_path(state_id))).json()
    assert (state["version_number"], state["timestamp"], state["shard"]) == ("0", "0", "0")
    assert (
        await dynamodb_client.get(state_path(state_id), headers={"If-None-Match": '"0"'})
    ).status_code == 304
    written = await dynamodb_client.put(state_path(state_id), json=state_body(1), headers={"If-Match": '"0"'})
    assert written.status_code == 200


async def test_an_item_whose_expires_at_has_passed_is_absent_until_dynamodb_deletes_it(
    raw_table: Any, dynamodb_client: httpx.AsyncClient, state_id: str
) -> None:
    """DynamoDB's time to live deletes an expired item within days: until then, it is in the table."""
    item, _ = go_item(state_id)
    past = int(time.time()) - 1
    raw_table.put_item(TableName=TABLE, Item={**item, "ExpiresAt": {"N": str(past)}})
    path = state_path(state_id)
    assert_problem(await dynamodb_client.get(path), 404)
    answer = (await dynamodb_client.post("/states:batchGet", json={"persistence_ids": [state_id]})).json()
    assert answer["missing"] == [state_id]
    for if_match in ('"7"', "*"):
        refused = await dynamodb_client.put(path, json=state_body(8), headers={"If-Match": if_match})
        assert "current_version" not in assert_problem(refused, 412)
    created = await dynamodb_client.put(path, json=state_body(1), headers={"If-None-Match": "*"})
    assert created.status_code == 201, created.text
    stored = raw_table.get_item(TableName=TABLE, Key={"PersistenceID": {"S": state_id}}, ConsistentRead=True)
    assert "ExpiresAt" not in stored["Item"]


async def test_an_item_that_expires_later_reads_with_its_expires_at(
    raw_table: Any, dynamodb_client: httpx.AsyncClient, state_id: str
) -> None:
    item, _ = go_item(state_id)
    later = int(time.time()) + 3600
    raw_table.put_item(TableName=TABLE, Item={**item, "ExpiresAt": {"N": str(later)}})
    assert (await dynamodb_client.get(state_path(state_id))).json()["expires_at"] == str(later)


@DYNALITE_RETURNS_NO_OLD_ITEM
def test_a_refused_conditional_write_returns_the_stored_item(raw_table: Any, state_id: str) -> None:
    """What the service relies on to tell a retry from a conflict in one call; where the endpoint ignores
    it, the service reads the item after the refusal (the contract tests pass on dynalite that way)."""
    item, _ = go_item(state_id)
    raw_table.put_item(TableName=TABLE, Item=item)
    with pytest.raises(ClientError) as refused:
        raw_table.put_item(
            TableName=TABLE,
            Item=item,
            ConditionExpression="attribute_not_exists(PersistenceID)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert refused.value.response.get("Item") == item


async def test_a_missing_version_attribute_counts_as_zero_in_conditions(
    raw_table: Any, dynamodb_client: httpx.AsyncClient, state_id: str
) -> None:
    raw_table.put_item(
        TableName=TABLE, Item={"PersistenceID": {"S": state_id}, "StateManifest": {"S": "a.B"}}
    )
    refused = await dynamodb_client.put(
        state_path(state_id), json=state_body(1), headers={"If-None-Match": '"0"'}
    )
    assert assert_problem(refused, 412)["current_version"] == "0"
    stale = await dynamodb_client.delete(state_path(state_id), headers={"If-Match": '"5"'})
    assert assert_problem(stale, 412)["current_version"] == "0"


async def test_a_missing_table_is_a_503_that_says_what_to_do(
    backend: str, dynamodb_path: str, start_service: ServiceFactory, state_id: str
) -> None:
    table = f"missing-{uuid.uuid4().hex[:8]}"
    with start_service(backend, dynamodb_table=table, dynamodb_client=dynamodb_path) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            for response in (
                await http.get(state_path(state_id)),
                await http.put(state_path(state_id), json=state_body(1)),
                await http.delete(state_path(state_id)),
                await http.post("/states:batchGet", json={"persistence_ids": [state_id, f"{state_id}/2"]}),
                await http.get("/readyz"),
            ):
                problem = assert_problem(response, 503)
                assert table in problem["detail"]
                assert "statestore create-table" in problem["detail"]
                assert int(response.headers["retry-after"]) > 0
            assert (await http.get("/healthz")).status_code == 200


def run_cli(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        service_command(*arguments),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_create_table_is_idempotent_and_the_table_serves(
    backend: str, endpoint: str, raw_table: Any, start_service: ServiceFactory
) -> None:
    table = f"created-{uuid.uuid4().hex[:8]}"
    env = {
        "STATESTORE_BACKEND": "dynamodb",
        "STATESTORE_DYNAMODB_TABLE": table,
        "STATESTORE_DYNAMODB_ENDPOINT_URL": endpoint,
    }
    first = run_cli("create-table", env=env)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    second = run_cli("create-table", env=env)
    assert second.returncode == 0, second.stderr
    assert "already exists" in second.stdout
    description = raw_table.describe_table(TableName=table)["Table"]
    assert description["TableStatus"] == "ACTIVE"
    assert description["KeySchema"] == [{"AttributeName": "PersistenceID", "KeyType": "HASH"}]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    with start_service(backend, dynamodb_table=table) as url:
        assert httpx.get(f"{url}/readyz").status_code == 200


def cli_environment(endpoint: str, table: str) -> dict[str, str]:
    return {
        "STATESTORE_BACKEND": "dynamodb",
        "STATESTORE_DYNAMODB_TABLE": table,
        "STATESTORE_DYNAMODB_ENDPOINT_URL": endpoint,
    }


@DYNALITE_HAS_NO_TTL
def test_create_table_turns_time_to_live_on_for_expires_at_once(endpoint: str, raw_table: Any) -> None:
    env = cli_environment(endpoint, f"expiring-{uuid.uuid4().hex[:8]}")
    for _ in range(2):
        result = run_cli("create-table", env=env)
        assert result.returncode == 0, result.stderr
        assert "with time to live on ExpiresAt" in result.stdout
        assert result.stderr == ""
    description = raw_table.describe_time_to_live(TableName=env["STATESTORE_DYNAMODB_TABLE"])
    assert description["TimeToLiveDescription"]["TimeToLiveStatus"] in ("ENABLING", "ENABLED")
    assert description["TimeToLiveDescription"]["AttributeName"] == "ExpiresAt"


def test_create_table_on_an_endpoint_without_time_to_live_warns_and_succeeds(dynalite_endpoint: str) -> None:
    table = f"no-ttl-{uuid.uuid4().hex[:8]}"
    result = run_cli("create-table", env=cli_environment(dynalite_endpoint, table))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"table {table} created and is ACTIVE"
    assert result.stderr.startswith("statestore: warning: DynamoDB will not delete expired states")
    assert "UpdateTimeToLive (UnknownOperationException)" in result.stderr


def test_start_up_warns_when_dynamodb_will_not_delete_expired_states(
    backend: str, raw_table: Any, start_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    table = table_of_its_own(raw_table, "no-ttl")
    with (
        caplog.at_level(logging.WARNING, logger="statestore"),
        start_service(backend, dynamodb_table=table) as url,
    ):
        assert httpx.get(f"{url}/readyz").status_code == 200
    [warning] = [record.getMessage() for record in caplog.records if "expired states" in record.getMessage()]
    assert f"table {table!r}" in warning
    assert "time to live is DISABLED" in warning


def test_the_start_up_line_names_the_client_that_makes_the_hot_calls(
    backend: str, dynamodb_path: str, start_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="statestore"),
        start_service(backend, dynamodb_client=dynamodb_path),
    ):
        pass
    [ready] = [record.getMessage() for record in caplog.records if "statestore ready" in record.getMessage()]
    assert ready.endswith(f"({dynamodb_path} client)")


def test_create_table_without_a_backend_fails_in_one_line() -> None:
    result = run_cli(
        "create-table",
        env={
            "STATESTORE_BACKEND": "dynamodb",
            "STATESTORE_DYNAMODB_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        },
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "cannot be reached" in result.stderr


def test_serve_refuses_to_start_without_its_table(endpoint: str) -> None:
    table = f"absent-{uuid.uuid4().hex[:8]}"
    env = {
        "STATESTORE_BACKEND": "dynamodb",
        "STATESTORE_DYNAMODB_TABLE": table,
        "STATESTORE_DYNAMODB_ENDPOINT_URL": endpoint,
        "STATESTORE_PORT": str(free_port()),
    }
    result = run_cli("serve", env=env)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        f"statestore: DynamoDB table '{table}' does not exist; create it with `statestore create-table`"
    )


WRONG_KEYS = {
    "hash key id": (
        [{"AttributeName": "id", "KeyType": "HASH"}],
        [{"AttributeName": "id", "AttributeType": "S"}],
        "id (S, HASH)",
    ),
    "numeric PersistenceID": (
        [{"AttributeName": "PersistenceID", "KeyType": "HASH"}],
        [{"AttributeName": "PersistenceID", "AttributeType": "N"}],
        "PersistenceID (N, HASH)",
    ),
    "an extra range key": (
        [{"AttributeName": "PersistenceID", "KeyType": "HASH"}, {"AttributeName": "At", "KeyType": "RANGE"}],
        [
            {"AttributeName": "PersistenceID", "AttributeType": "S"},
            {"AttributeName": "At", "AttributeType": "N"},
        ],
        "PersistenceID (S, HASH) + At (N, RANGE)",
    ),
}


@pytest.fixture(params=list(WRONG_KEYS.values()), ids=list(WRONG_KEYS))
def wrongly_keyed_table(request: pytest.FixtureRequest, raw_table: Any) -> tuple[str, str]:
    """A table made by someone else, with another key; its name, and its key as the service describes it."""
    key_schema, attributes, described = request.param
    table = f"wrong-key-{uuid.uuid4().hex[:8]}"
    raw_table.create_table(
        TableName=table, KeySchema=key_schema, AttributeDefinitions=attributes, BillingMode="PAY_PER_REQUEST"
    )
    return table, described


def assert_names_the_keys(detail: str, table: str, found: str) -> None:
    assert f"table {table!r} has the key {found}," in detail
    assert "needs PersistenceID (S, HASH) only" in detail


async def test_readiness_names_a_table_with_another_key(
    backend: str, wrongly_keyed_table: tuple[str, str], start_service: ServiceFactory
) -> None:
    table, found = wrongly_keyed_table
    with start_service(backend, dynamodb_table=table) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.get("/readyz")
    problem = assert_problem(response, 503)
    assert problem["type"] == "urn:statestore:problem:table-key-mismatch"
    assert_names_the_keys(problem["detail"], table, found)
    assert int(response.headers["retry-after"]) > 0


async def test_a_ping_of_a_table_with_another_key_is_one_describe_table(
    wrongly_keyed_table: tuple[str, str], endpoint: str
) -> None:
    table, found = wrongly_keyed_table
    calls: list[str] = []
    async with DynamoDBStore.open(
        table, endpoint, observer=lambda operation, *_: calls.append(operation)
    ) as store:
        with pytest.raises(TableKeyMismatch) as refused:
            await store.ping()
    assert calls == ["DescribeTable"]
    assert_names_the_keys(refused.value.detail, table, found)


@pytest.mark.parametrize(
    "wrongly_keyed_table", [WRONG_KEYS["an extra range key"]], ids=["an extra range key"], indirect=True
)
def test_serve_and_create_table_refuse_a_table_with_another_key_in_one_line(
    wrongly_keyed_table: tuple[str, str], endpoint: str
) -> None:
    table, found = wrongly_keyed_table
    env = {
        "STATESTORE_BACKEND": "dynamodb",
        "STATESTORE_DYNAMODB_TABLE": table,
        "STATESTORE_DYNAMODB_ENDPOINT_URL": endpoint,
        "STATESTORE_PORT": str(free_port()),
    }
    served, created = run_cli("serve", env=env), run_cli("create-table", env=env)
    assert served.returncode != 0
    assert created.returncode != 0
    assert served.stderr == created.stderr
    assert served.stderr.strip().count("\n") == 0
    assert served.stderr.startswith("statestore: ")
    assert_names_the_keys(served.stderr, table, found)


def table_of_its_own(raw_table: Any, prefix: str) -> str:
    """A new table keyed as the service's, made with the server's own client; its name."""
    table = f"{prefix}-{uuid.uuid4().hex[:8]}"
    raw_table.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "PersistenceID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "PersistenceID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return table


@MOTO_GETS_ANY_KEY_SIZE
def test_a_read_of_a_key_over_2048_bytes_is_refused(raw_table: Any) -> None:
    """DynamoDB refuses a partition key over 2048 bytes in reads as in writes (Developer Guide, "Service,
    account, and table quotas": "Partition key value length"). The service never sends one: it refuses
    such an id with a 422 first (test_contract_states.py)."""
    key = {"PersistenceID": {"S": "x" * 2049}}
    with pytest.raises(ClientError) as refused:
        raw_table.get_item(TableName=TABLE, Key=key, ConsistentRead=True)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "2048" in refused.value.response["Error"]["Message"]


@DYNALITE_HAS_NO_TTL
def test_time_to_live_can_be_turned_on_for_expires_at(raw_table: Any) -> None:
    """What `create-table` will ask for expiry: DynamoDB answers UpdateTimeToLive with the specification,
    and DescribeTimeToLive then says ENABLING or ENABLED (API Reference, "UpdateTimeToLive")."""
    table = table_of_its_own(raw_table, "ttl")
    specification = {"Enabled": True, "AttributeName": "ExpiresAt"}
    answer = raw_table.update_time_to_live(TableName=table, TimeToLiveSpecification=specification)
    assert answer["TimeToLiveSpecification"] == specification
    description = raw_table.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert description["TimeToLiveStatus"] in ("ENABLING", "ENABLED")
    assert description["AttributeName"] == "ExpiresAt"


@DYNALITE_ANSWERS_1_MB_OF_A_BATCH
def test_a_batch_read_of_items_within_16_mb_is_answered_whole(raw_table: Any) -> None:
    """DynamoDB's BatchGetItem answers up to 16 MB at once; UnprocessedKeys only beyond that or when
    throttled (API Reference, "BatchGetItem")."""
    table = table_of_its_own(raw_table, "large-items")  # moto's transactions slow down with table size
    keys = [{"PersistenceID": {"S": str(n)}} for n in range(8)]
    for key in keys:
        raw_table.put_item(TableName=table, Item={**key, "StatePayload": {"B": b"\x00" * 300_000}})
    answer = raw_table.batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
    assert len(answer["Responses"][table]) == len(keys)
    assert not answer["UnprocessedKeys"]


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_transaction_is_settled_on_every_state_it_reads_beyond_one_answer(
    raw_table: Any, endpoint: str, dynamodb_path: ClientKind
) -> None:
    """A conditional delete of nothing makes the service read the transaction's puts back, to tell a resent
    transaction from a conflict; 45 stored states of 390 KB are more than one 16 MiB answer. They are read
    in more than one read, and the transaction is settled on all of them: a 412, not a 503 that no resend
    could cure."""
    table = table_of_its_own(raw_table, "settle-large")
    ids = [f"large-{n}" for n in range(45)]
    for persistence_id in ids:
        stored = StateRecord(persistence_id, 1, "m", b"\x00" * 390_000, 1, 0)
        raw_table.put_item(TableName=table, Item=to_item(stored))
    puts = [PutOperation(StateRecord(persistence_id, 2, "m", b"new", 2, 0)) for persistence_id in ids]
    delete = DeleteOperation("never-stored", Precondition(match=frozenset({1})))

    async with DynamoDBStore.open(table, endpoint, client=dynamodb_path) as store:
        with pytest.raises(PreconditionFailed) as refused:
            await store.transact([*puts, delete])
        assert refused.value.extensions["operation_index"] == len(puts)
        assert {record.version_number for record in (await store.get_many(ids[:5])).found} == {1}


CORRUPT = {
    "a number beyond uint64": ("VersionNumber", {"N": "1E+125"}),
    "digits beyond uint64": ("VersionNumber", {"N": "18446744073709551616"}),
    "a fraction": ("ShardNumber", {"N": "1.5"}),
    "a number beyond int64": ("Timestamp", {"N": "-9223372036854775809"}),
    "a number as a string": ("VersionNumber", {"S": "7"}),
    "a manifest as a number": ("StateManifest", {"N": "7"}),
    "a payload as a string": ("StatePayload", {"S": "secret-value"}),
}


@pytest.mark.parametrize(("attribute", "value"), CORRUPT.values(), ids=CORRUPT.keys())
async def test_a_corrupt_item_is_a_502_naming_the_attribute_logged_once(
    raw_table: Any,
    dynamodb_client: httpx.AsyncClient,
    state_id: str,
    attribute: str,
    value: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    item, _ = go_item(state_id)
    raw_table.put_item(TableName=TABLE, Item={**item, attribute: value})
    caplog.set_level(logging.INFO)
    for response in (
        await dynamodb_client.get(state_path(state_id)),
        await dynamodb_client.post("/states:batchGet", json={"persistence_ids": [state_id]}),
    ):
        problem = assert_problem(response, 502)
        assert attribute in problem["detail"]
        assert next(iter(value.values())) not in response.text
    logged = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(logged) == 2, logged  # once for each of the two requests
    assert all(attribute in message and "Traceback" not in message for message in logged)


async def test_a_listing_walks_past_an_item_it_cannot_read_and_logs_it(
    raw_table: Any, dynamodb_client: httpx.AsyncClient, state_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One unreadable item, written by some other program, must not stop every walk of the table at it."""
    shard = int(uuid.uuid4().int % 2**63)
    readable, corrupt = f"{state_id}-readable", f"{state_id}-corrupt"
    for persistence_id, version in ((readable, {"N": "7"}), (corrupt, {"S": "7"})):
        item, _ = go_item(persistence_id)
        raw_table.put_item(
            TableName=TABLE, Item={**item, "ShardNumber": {"N": str(shard)}, "VersionNumber": version}
        )
    caplog.set_level(logging.INFO)

    listed, params = [], {"shard": str(shard), "limit": "1000"}
    for _ in range(1000):  # the scan evaluates the whole shared table, at most 1 MB a page
        page = await dynamodb_client.get("/states", params=params)
        assert page.status_code == 200, page.text
        listed += [state["persistence_id"] for state in page.json()["states"]]
        if page.json()["next_page_token"] is None:
            break
        params["page_token"] = page.json()["next_page_token"]

    assert listed == [readable]
    logged = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [getattr(record, "fields", {}).get("persistence_id") for record in logged] == [corrupt]


def test_an_item_without_its_key_is_refused_naming_the_key() -> None:
    with pytest.raises(CorruptItem, match="PersistenceID"):
        from_item({"VersionNumber": {"N": "1"}})


@pytest.mark.parametrize(
    ("text", "number"),
    [("7", 7), ("0", 0), ("007", 7), ("18446744073709551615", 2**64 - 1), ("1E+2", 100), ("2.0", 2)],
)
def test_a_whole_number_reads_however_it_is_spelled(text: str, number: int) -> None:
    assert from_item({"PersistenceID": {"S": "id"}, "VersionNumber": {"N": text}}).version_number == number
