"""Offloaded states under faults: S3 and DynamoDB each behind a fault proxy (tests/support/fault_proxy.py)
in front of one moto server, answers lost or connections refused at each step of a write (the PUT to S3,
the item write, the clean-up), and two replicas overwriting one large state at once.

Whatever fails, no state is lost or read wrong, and every object no item points to is deleted at once or
by the next sweep (`DynamoDBStore.sweep_large_states`), as docs/large-states.md, "Clean-up", bounds it.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import httpx
import pytest

from app.store.dynamodb import DynamoDBStore
from support.api import assert_problem, state_body, state_path
from support.fault_proxy import FaultProxy
from support.processes import moto_process
from support.services import ServiceFactory, create_table

TABLE = "large_faults_table"
BUCKET = "large-faults"
PREFIX = "faults/"
KB = 1024


def large(seed: int) -> bytes:
    return os.urandom(400 * KB + seed)


@pytest.fixture(scope="module")
def moto_endpoint_of_module() -> Iterator[str]:
    with moto_process() as (_, endpoint):
        create_table(endpoint, TABLE)
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield endpoint


def _proxy(endpoint: str) -> FaultProxy:
    return FaultProxy(int(endpoint.rsplit(":", 1)[1]))


@pytest.fixture(scope="module")
def s3_proxy(moto_endpoint_of_module: str) -> Iterator[FaultProxy]:
    with _proxy(moto_endpoint_of_module).running() as running:
        yield running


@pytest.fixture(scope="module")
def dynamodb_proxy(moto_endpoint_of_module: str) -> Iterator[FaultProxy]:
    with _proxy(moto_endpoint_of_module).running() as running:
        yield running


@pytest.fixture(scope="module")
def s3(moto_endpoint_of_module: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_endpoint_of_module, region_name="us-east-1")


@pytest.fixture(scope="module")
def raw_table(moto_endpoint_of_module: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=moto_endpoint_of_module, region_name="us-east-1")


@pytest.fixture(scope="module")
def faulty_url(
    s3_proxy: FaultProxy, dynamodb_proxy: FaultProxy, dynamodb_path: str, start_service: ServiceFactory
) -> Iterator[str]:
    with start_service(
        "moto",
        dynamodb_endpoint_url=dynamodb_proxy.url,
        dynamodb_table=TABLE,
        dynamodb_client=dynamodb_path,
        large_states_bucket=BUCKET,
        large_states_prefix=PREFIX,
        s3_endpoint_url=s3_proxy.url,
    ) as url:
        yield url


@pytest.fixture
async def client(
    faulty_url: str, s3_proxy: FaultProxy, dynamodb_proxy: FaultProxy
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=faulty_url, timeout=30) as http:
        yield http
    s3_proxy.set("pass")
    dynamodb_proxy.set("pass")


def objects(s3: Any) -> set[str]:
    return {entry["Key"] for entry in s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX).get("Contents", [])}


def pointed_to(raw_table: Any, persistence_id: str) -> str | None:
    item = raw_table.get_item(TableName=TABLE, Key={"PersistenceID": {"S": persistence_id}}).get("Item")
    if item is None:
        return None
    key: str = item["StatePayloadRef"]["M"]["Key"]["S"]
    return key


async def sweep(endpoint: str) -> None:
    async with DynamoDBStore.open(
        TABLE, endpoint, large_states_bucket=BUCKET, large_states_prefix=PREFIX, s3_endpoint_url=endpoint
    ) as store:
        await store.sweep_large_states(grace_seconds=0)


async def read_back(client: httpx.AsyncClient, persistence_id: str) -> bytes:
    got = await client.get(state_path(persistence_id))
    assert got.status_code == 200, got.text
    return base64.b64decode(got.json()["payload"])


async def test_a_lost_put_object_answer_is_retried_into_the_same_object(
    client: httpx.AsyncClient, s3_proxy: FaultProxy, s3: Any, raw_table: Any, state_id: str
) -> None:
    payload, lost = large(1), s3_proxy.answers_lost
    s3_proxy.lose_answers(1)
    put = await client.put(state_path(state_id), json=state_body(1, payload))
    assert put.status_code == 200, put.text
    assert s3_proxy.answers_lost == lost + 1
    assert await read_back(client, state_id) == payload
    assert pointed_to(raw_table, state_id) in objects(s3)


async def test_a_lost_item_write_answer_is_settled_as_that_write(
    client: httpx.AsyncClient, dynamodb_proxy: FaultProxy, s3: Any, raw_table: Any, state_id: str
) -> None:
    """The SDK's retry of the create-only PutItem is refused by the item its first attempt wrote: the same
    write (its WriteKey), so the create succeeded, and its object stays."""
    payload, lost = large(2), dynamodb_proxy.answers_lost
    dynamodb_proxy.lose_answers(1)
    put = await client.put(state_path(state_id), json=state_body(1, payload), headers={"If-None-Match": "*"})
    assert put.status_code == 201, put.text
    assert dynamodb_proxy.answers_lost == lost + 1
    assert await read_back(client, state_id) == payload
    assert pointed_to(raw_table, state_id) in objects(s3)


async def test_an_unreachable_s3_is_a_503_and_writes_nothing(
    client: httpx.AsyncClient, s3_proxy: FaultProxy, raw_table: Any, state_id: str
) -> None:
    s3_proxy.set("refuse")
    assert_problem(await client.put(state_path(state_id), json=state_body(1, large(3))), 503)
    assert pointed_to(raw_table, state_id) is None
    s3_proxy.set("pass")
    assert (await client.get(state_path(state_id))).status_code == 404


async def test_an_item_write_that_fails_leaves_its_object_to_the_sweep(
    client: httpx.AsyncClient,
    dynamodb_proxy: FaultProxy,
    s3: Any,
    raw_table: Any,
    moto_endpoint_of_module: str,
    state_id: str,
) -> None:
    """The PUT to S3 went through, the item write did not (or may have: the service cannot tell), so the
    object stays until a sweep finds that no item points to it."""
    before = objects(s3)
    dynamodb_proxy.set("refuse")
    assert_problem(await client.put(state_path(state_id), json=state_body(1, large(4))), 503)
    dynamodb_proxy.set("pass")
    left = objects(s3) - before
    assert len(left) == 1
    await sweep(moto_endpoint_of_module)
    assert not left & objects(s3)
    assert (await client.get(state_path(state_id))).status_code == 404


@pytest.mark.parametrize("fault", ["lost answer", "refused"])
async def test_a_clean_up_that_fails_is_finished_by_the_sweep(
    client: httpx.AsyncClient,
    s3_proxy: FaultProxy,
    s3: Any,
    raw_table: Any,
    moto_endpoint_of_module: str,
    state_id: str,
    fault: str,
) -> None:
    """Overwritten by a small state, the large one's object is the one S3 call: its answer lost, the SDK
    deletes it again; S3 unreachable, the overwrite still succeeds and the sweep deletes the object."""
    path = state_path(state_id)
    assert (await client.put(path, json=state_body(1, large(5)))).status_code == 200
    old = pointed_to(raw_table, state_id)
    if fault == "lost answer":
        s3_proxy.lose_answers(1)
    else:
        s3_proxy.set("refuse")
    assert (await client.put(path, json=state_body(2, b"small"))).status_code == 200
    s3_proxy.set("pass")
    assert await read_back(client, state_id) == b"small"
    if fault == "refused":
        assert old in objects(s3)
        await sweep(moto_endpoint_of_module)
    assert old not in objects(s3)


async def test_two_replicas_overwriting_one_large_state_leave_only_its_object(
    moto_endpoint_of_module: str, start_service: ServiceFactory, s3: Any, raw_table: Any, state_id: str
) -> None:
    """Unconditional overwrites from two replicas at once: each deletes the object of the item it replaced
    (`ReturnValues=ALL_OLD` names it exactly), so once they are done only the last state's object is left,
    and the last state reads whole."""
    prefix = f"race-{state_id}/"
    settings = {
        "dynamodb_endpoint_url": moto_endpoint_of_module,
        "dynamodb_table": TABLE,
        "large_states_bucket": BUCKET,
        "large_states_prefix": prefix,
        "s3_endpoint_url": moto_endpoint_of_module,
    }
    payloads = {(replica, n): large(10 * n + replica) for replica in range(2) for n in range(8)}
    with start_service("moto", **settings) as first, start_service("moto", **settings) as second:
        async with (
            httpx.AsyncClient(base_url=first, timeout=60) as one,
            httpx.AsyncClient(base_url=second, timeout=60) as two,
        ):

            async def overwrite(replica: int, http: httpx.AsyncClient) -> None:
                for n in range(8):
                    body = state_body(1 + n, payloads[replica, n])
                    assert (await http.put(state_path(state_id), json=body)).status_code == 200

            await asyncio.gather(overwrite(0, one), overwrite(1, two))
            final = await read_back(one, state_id)
    assert final in (payloads[0, 7], payloads[1, 7])
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    assert [entry["Key"] for entry in listed] == [pointed_to(raw_table, state_id)]
