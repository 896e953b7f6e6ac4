"""States too large for a DynamoDB item even compressed, offloaded to S3 (`STATESTORE_LARGE_STATES_BUCKET`):
the payload in moto's S3, the item (on moto or dynalite) holding `StatePayloadRef`, every read following
the pointer and checking it, every condition and the retry rule as for small states, and no object left
that no item points to after an overwrite, a delete or a refused write.

The service runs over HTTP on each DynamoDB-compatible server; the items and objects it writes are read
back raw to check their stored form.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import httpx
import pytest

from app.states.model import Precondition, StateRecord
from app.store.dynamodb import DynamoDBStore
from scripts.servers import service_command
from support import dynamodb_only
from support.api import assert_problem, batch_get, keyed, put_op, state_body, state_path, transact
from support.differences import DYNALITE_HAS_NO_TRANSACTIONS
from support.dynamodb_only import assert_a_transaction_pins_it_when_found_done, assert_round_trip, stored_item
from support.metrics import sample_value
from support.services import TABLE, ServiceFactory

backend = dynamodb_only.backend
endpoint = dynamodb_only.endpoint
raw_table = dynamodb_only.raw_table

KB = 1024
MB = 1024 * KB
# The largest payload an 8 MiB JSON body carries as base64, with room for the other fields.
LARGEST_JSON_PAYLOAD = 6 * MB - 4 * KB
BUCKET = "large-states"
PREFIX = "states/"


def incompressible(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(scope="module")
def s3(moto_endpoint: str) -> Any:
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def service_url(backend: str, s3: Any, start_service: ServiceFactory) -> Iterator[str]:
    with start_service(backend, compression="zstd", large_states_bucket=BUCKET) as url:
        yield url


@pytest.fixture
async def client(service_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service_url, timeout=60) as http:
        yield http


def object_key(item: dict[str, Any]) -> str:
    key: str = item["StatePayloadRef"]["M"]["Key"]["S"]
    return key


def objects(s3: Any) -> set[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX).get("Contents", [])
    return {entry["Key"] for entry in listed}


def payload_of(response: httpx.Response) -> bytes:
    assert response.status_code == 200, response.text
    return base64.b64decode(response.json()["payload"])


@pytest.mark.parametrize("size", [401 * KB, MB, LARGEST_JSON_PAYLOAD])
async def test_states_round_trip_through_s3(
    client: httpx.AsyncClient, raw_table: Any, s3: Any, state_id: str, size: int
) -> None:
    payload = incompressible(size)
    await assert_round_trip(client, state_id, payload)
    item = stored_item(raw_table, state_id)
    assert "StatePayload" not in item
    assert "StateEncoding" not in item
    ref = item["StatePayloadRef"]["M"]
    assert ref["Bucket"] == {"S": BUCKET}
    assert ref["Size"] == {"N": str(size)}
    assert ref["SHA256"] == {"S": hashlib.sha256(payload).hexdigest()}
    assert ref["Key"]["S"].startswith(PREFIX)
    assert s3.get_object(Bucket=BUCKET, Key=ref["Key"]["S"])["Body"].read() == payload
    assert item["StateManifest"] == {"S": state_body(1)["manifest"]}
    assert {"VersionNumber", "Timestamp", "ShardNumber", "WriteKey"} <= item.keys()


async def test_a_state_that_fits_compressed_is_not_offloaded(
    client: httpx.AsyncClient, raw_table: Any, state_id: str
) -> None:
    payload = b"entry account=1 kind=0;" * (MB // 23)
    assert (await client.put(state_path(state_id), json=state_body(1, payload))).status_code == 200
    item = stored_item(raw_table, state_id)
    assert item["StateEncoding"] == {"S": "zstd"}
    assert "StatePayloadRef" not in item
    assert payload_of(await client.get(state_path(state_id))) == payload


async def test_a_state_as_large_as_the_store_takes_round_trips(
    endpoint: str, moto_endpoint: str, s3: Any, state_id: str
) -> None:
    """8 MiB, more than an HTTP body can carry as JSON: the store itself takes it, with compression off."""
    record = StateRecord(state_id, 1, "m", incompressible(8 * MB), 1, 0, write_key="k")
    async with DynamoDBStore.open(
        TABLE, endpoint, large_states_bucket=BUCKET, s3_endpoint_url=moto_endpoint
    ) as store:
        await store.put(record, Precondition())
        assert await store.get(state_id) == record


async def test_conditions_hold_on_offloaded_states(client: httpx.AsyncClient, state_id: str) -> None:
    path, first, second = state_path(state_id), incompressible(500 * KB, 1), incompressible(500 * KB, 2)
    created = await client.put(path, json=state_body(1, first), headers={"If-None-Match": "*"})
    assert created.status_code == 201, created.text
    assert_problem(await client.put(path, json=state_body(2, second), headers={"If-None-Match": "*"}), 412)
    assert_problem(await client.put(path, json=state_body(2, second), headers={"If-Match": '"7"'}), 412)
    assert payload_of(await client.get(path)) == first
    assert (
        await client.put(path, json=state_body(2, second), headers={"If-Match": '"1"'})
    ).status_code == 200
    assert payload_of(await client.get(path)) == second
    assert_problem(await client.delete(path, headers={"If-Match": '"1"'}), 412)
    assert (await client.delete(path, headers={"If-Match": '"2"'})).status_code == 204
    assert (await client.get(path)).status_code == 404


async def test_a_retry_of_an_offloaded_write_succeeds_and_keeps_its_object(
    client: httpx.AsyncClient, raw_table: Any, s3: Any, state_id: str
) -> None:
    path, payload, key = state_path(state_id), incompressible(600 * KB, 3), keyed(str(uuid.uuid4()))
    headers = {"If-None-Match": "*", **key}
    assert (await client.put(path, json=state_body(1, payload), headers=headers)).status_code == 201
    again = await client.put(path, json=state_body(1, payload), headers=headers)
    assert again.status_code in (200, 201), again.text
    assert object_key(stored_item(raw_table, state_id)) in objects(s3)
    assert payload_of(await client.get(path)) == payload
    other = await client.put(path, json=state_body(1, incompressible(600 * KB, 4)), headers=headers)
    assert_problem(other, 422)
    assert payload_of(await client.get(path)) == payload


async def test_an_overwrite_and_a_delete_leave_no_object_behind(
    client: httpx.AsyncClient, raw_table: Any, s3: Any, state_id: str
) -> None:
    path = state_path(state_id)
    assert (await client.put(path, json=state_body(1, incompressible(500 * KB, 5)))).status_code == 200
    first = object_key(stored_item(raw_table, state_id))
    assert (await client.put(path, json=state_body(2, incompressible(500 * KB, 6)))).status_code == 200
    second = object_key(stored_item(raw_table, state_id))
    assert first not in objects(s3)
    assert second in objects(s3)
    assert (await client.put(path, json=state_body(3, b"small"))).status_code == 200
    assert second not in objects(s3)
    assert (await client.put(path, json=state_body(4, incompressible(500 * KB, 7)))).status_code == 200
    third = object_key(stored_item(raw_table, state_id))
    assert (await client.delete(path)).status_code == 204
    assert third not in objects(s3)


async def test_a_refused_write_leaves_no_object_behind(
    client: httpx.AsyncClient, raw_table: Any, s3: Any, state_id: str
) -> None:
    path = state_path(state_id)
    assert (await client.put(path, json=state_body(1, incompressible(500 * KB, 8)))).status_code == 200
    before = objects(s3)
    body = state_body(2, incompressible(500 * KB, 9))
    refused = await client.put(path, json=body, headers={"If-Match": '"9"'})
    assert_problem(refused, 412)
    assert objects(s3) == before
    assert object_key(stored_item(raw_table, state_id)) in before


@pytest.mark.parametrize("fault", ["missing", "corrupt"])
async def test_a_missing_or_altered_object_is_a_502_naming_the_id(
    client: httpx.AsyncClient, raw_table: Any, s3: Any, state_id: str, fault: str
) -> None:
    path = state_path(state_id)
    assert (await client.put(path, json=state_body(1, incompressible(500 * KB, 10)))).status_code == 200
    key = object_key(stored_item(raw_table, state_id))
    if fault == "missing":
        s3.delete_object(Bucket=BUCKET, Key=key)
    else:
        s3.put_object(Bucket=BUCKET, Key=key, Body=incompressible(500 * KB, 11))
    for response in (await client.get(path), await batch_get(client, [state_id])):
        problem = assert_problem(response, 502)
        assert state_id in problem["detail"]
        assert "StatePayloadRef" in problem["detail"]


async def test_a_waiting_read_answers_the_offloaded_state_written_by_another_replica(
    client: httpx.AsyncClient, backend: str, start_service: ServiceFactory, state_id: str
) -> None:
    """The waiter's process finds the change by polling (the write went through another replica), and
    answers the new state, its payload read from S3."""
    path, first, second = state_path(state_id), incompressible(450 * KB, 60), incompressible(450 * KB, 61)
    assert (await client.put(path, json=state_body(1, first))).status_code == 200
    with start_service(backend, compression="zstd", large_states_bucket=BUCKET) as other_url:
        async with httpx.AsyncClient(base_url=other_url, timeout=60) as other:
            waiting = asyncio.create_task(
                client.get(path, params={"wait": "20"}, headers={"If-None-Match": '"1"'})
            )
            await asyncio.sleep(0.5)
            assert (await other.put(path, json=state_body(2, second))).status_code == 200
            assert payload_of(await waiting) == second


async def test_batch_get_counts_the_offloaded_bytes_in_its_answer(
    client: httpx.AsyncClient, backend: str, start_service: ServiceFactory, state_id: str
) -> None:
    """Three 6 MiB states do not fit one 16 MiB answer: two come back, the third is unprocessed, and only
    the two are read from S3 (so memory is bounded by the answer, as for states in items). The read goes
    through a service of its own, whose metrics count its S3 reads alone."""
    ids = [f"{state_id}-{n}" for n in range(3)]
    for n, persistence_id in enumerate(ids):
        body = state_body(1, incompressible(LARGEST_JSON_PAYLOAD, 20 + n))
        assert (await client.put(state_path(persistence_id), json=body)).status_code == 200
    with start_service(backend, large_states_bucket=BUCKET) as reader_url:
        async with httpx.AsyncClient(base_url=reader_url, timeout=60) as reader:
            read = await batch_get(reader, ids)
            assert read.status_code == 200, read.text
            reads = await object_reads(reader)
    answer = read.json()
    assert len(answer["states"]) == 2
    assert len(answer["unprocessed"]) == 1
    got = {state["persistence_id"] for state in answer["states"]} | set(answer["unprocessed"])
    assert got == set(ids)
    assert reads == 2, "the state left out is never read from S3"


async def object_reads(client: httpx.AsyncClient) -> float:
    exposition = (await client.get("/metrics")).text
    name = "statestore_backend_call_duration_seconds_count"
    return sample_value(exposition, name, backend="dynamodb", operation="GetObject")


async def test_listing_with_payloads_reads_offloaded_states(client: httpx.AsyncClient, state_id: str) -> None:
    """`decode=true` renders each state from its payload, read from S3: a `BytesValue`'s JSON is its bytes."""
    values = {f"{state_id}-{n}": incompressible(450 * KB, 30 + n) for n in range(2)}
    for persistence_id, value in values.items():
        body = state_body(1, bytes_value(value), manifest="google.protobuf.BytesValue")
        assert (await client.put(state_path(persistence_id), json=body)).status_code == 200
    seen: dict[str, bytes] = {}
    params = {"limit": "100", "decode": "true"}
    for _ in range(1000):
        page = await client.get("/states", params=params)
        assert page.status_code == 200, page.text
        for state in page.json()["states"]:
            if state["persistence_id"] in values:
                seen[state["persistence_id"]] = base64.b64decode(state["state"])
        token = page.json()["next_page_token"]
        if token is None:
            break
        params["page_token"] = token
    assert seen == values


def bytes_value(value: bytes) -> bytes:
    """`google.protobuf.BytesValue{value}` serialized: field 1, length-delimited."""
    length, size = b"", len(value)
    while size >= 0x80:
        length, size = length + bytes([size & 0x7F | 0x80]), size >> 7
    return b"\x0a" + length + bytes([size]) + value


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_transaction_pins_an_offloaded_state_it_finds_done(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """The repeated put is refused, finds its own state (read from S3) and is pinned to it
    (`StatePayloadRef.SHA256`) while the new put is written."""
    large = incompressible(500 * KB, 40)
    await assert_a_transaction_pins_it_when_found_done(client, state_id, large)
    assert payload_of(await client.get(state_path(state_id))) == large


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_refused_transaction_leaves_no_object_behind(
    client: httpx.AsyncClient, s3: Any, state_id: str
) -> None:
    before = objects(s3)
    refused = await transact(client, put_op(state_id, 1, incompressible(500 * KB, 70), if_match=3))
    assert_problem(refused, 412)
    assert objects(s3) == before


async def test_without_a_bucket_or_compression_a_large_state_is_413(
    start_service: ServiceFactory, backend: str, state_id: str
) -> None:
    with start_service(backend) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as plain:
            body = state_body(1, incompressible(401 * KB))
            assert "409600" in assert_problem(await plain.put(state_path(state_id), json=body), 413)["detail"]


async def test_with_compression_off_a_large_state_is_offloaded(
    start_service: ServiceFactory, backend: str, raw_table: Any, s3: Any, state_id: str
) -> None:
    payload = b"entry account=1 kind=0;" * (500 * KB // 23)
    with start_service(backend, large_states_bucket=BUCKET) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as offloading:
            put = await offloading.put(state_path(state_id), json=state_body(1, payload))
            assert put.status_code == 200, put.text
            assert payload_of(await offloading.get(state_path(state_id))) == payload
    assert "StatePayloadRef" in stored_item(raw_table, state_id)


async def test_the_sweep_deletes_only_old_objects_no_item_points_to(
    endpoint: str, moto_endpoint: str, s3: Any, state_id: str
) -> None:
    """What no clean-up after a write could delete (a transaction's replaced state, an expired one, a write
    whose answer was lost) goes at the next sweep, once older than the grace."""
    prefix = f"sweep-{state_id}/"
    record = StateRecord(state_id, 1, "m", incompressible(500 * KB, 50), 1, 0, write_key="k")
    async with DynamoDBStore.open(
        TABLE,
        endpoint,
        large_states_bucket=BUCKET,
        large_states_prefix=prefix,
        s3_endpoint_url=moto_endpoint,
    ) as store:
        await store.put(record, Precondition())
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}orphan", Body=b"left behind")
        young = await store.sweep_large_states(grace_seconds=3600)
        assert (young.listed, young.referenced, young.deleted, young.young) == (2, 1, 0, 1)
        swept = await store.sweep_large_states(grace_seconds=0)
        assert (swept.listed, swept.referenced, swept.deleted, swept.young) == (2, 1, 1, 0)
        assert await store.get(state_id) == record
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    assert len(listed) == 1
    assert listed[0]["Key"] != f"{prefix}orphan"


def test_the_sweep_command_reports_what_it_did(
    endpoint: str, moto_endpoint: str, s3: Any, state_id: str
) -> None:
    prefix = f"sweep-{state_id}/"
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}orphan", Body=b"left behind")
    env = {
        **os.environ,
        "STATESTORE_BACKEND": "dynamodb",
        "STATESTORE_DYNAMODB_ENDPOINT_URL": endpoint,
        "STATESTORE_DYNAMODB_TABLE": TABLE,
        "STATESTORE_LARGE_STATES_BUCKET": BUCKET,
        "STATESTORE_LARGE_STATES_PREFIX": prefix,
        "AWS_ENDPOINT_URL_S3": moto_endpoint,  # the SDK's own variable, read by botocore
    }
    result = subprocess.run(
        service_command("sweep-large-states", "--grace-seconds", "0"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "1 objects, 0 pointed to, 1 deleted" in result.stdout
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
