"""States beyond DynamoDB's 400 KB item: compressed with `STATESTORE_COMPRESSION=zstd`, read back by the
pointer-free `StateEncoding` mark, every condition as for small states; and SQLite, which has no item limit.

The service runs on each DynamoDB-compatible server with compression on; the items it writes are read
back raw to check their stored form.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app.states.model import Precondition, StateRecord
from app.store.dynamodb import DynamoDBStore
from support import dynamodb_only
from support.api import assert_problem, state_body, state_path
from support.differences import DYNALITE_HAS_NO_TRANSACTIONS, MOTO_ITEM_LIMIT_IS_LOWER
from support.dynamodb_only import assert_a_transaction_pins_it_when_found_done, assert_round_trip, stored_item
from support.services import TABLE, ServiceFactory

backend = dynamodb_only.backend
endpoint = dynamodb_only.endpoint
raw_table = dynamodb_only.raw_table

KB = 1024
# The largest payload an 8 MiB JSON body carries as base64, with room for the other fields.
LARGEST_JSON_PAYLOAD = 6 * 1024 * KB - 4 * KB


def compressible(size: int, seed: int = 0) -> bytes:
    """Bytes like a state of many similar entries: about 3% of them survive compression."""
    rng = random.Random(seed)
    entries = [
        b"entry account=%d kind=%d;" % (rng.randrange(2), rng.randrange(2)) for _ in range(size // 20 + 1)
    ]
    return b"".join(entries)[:size]


@pytest.fixture(scope="module")
def service_url(backend: str, start_service: ServiceFactory) -> Iterator[str]:
    with start_service(backend, compression="zstd") as url:
        yield url


@pytest.fixture
async def client(service_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service_url, timeout=60) as http:
        yield http


@pytest.mark.parametrize(
    ("size", "compressed"),
    [
        (299 * KB, False),
        pytest.param(399 * KB, False, marks=MOTO_ITEM_LIMIT_IS_LOWER),
        (401 * KB, True),
        (1024 * KB, True),
        (LARGEST_JSON_PAYLOAD, True),
    ],
)
async def test_states_round_trip_across_the_item_limit(
    client: httpx.AsyncClient, raw_table: Any, state_id: str, size: int, compressed: bool
) -> None:
    payload = compressible(size)
    await assert_round_trip(client, state_id, payload)
    item = stored_item(raw_table, state_id)
    assert ("StateEncoding" in item) is compressed
    assert (len(item["StatePayload"]["B"]) < size) is compressed


async def test_a_state_that_does_not_fit_even_compressed_is_413(
    client: httpx.AsyncClient, state_id: str
) -> None:
    payload = random.Random(1).randbytes(1024 * KB)
    problem = assert_problem(await client.put(state_path(state_id), json=state_body(1, payload)), 413)
    assert "even compressed" in problem["detail"]
    assert (await client.get(state_path(state_id))).status_code == 404


async def test_conditions_hold_on_compressed_states(client: httpx.AsyncClient, state_id: str) -> None:
    path, first, second = state_path(state_id), compressible(600 * KB, 1), compressible(600 * KB, 2)
    assert (
        await client.put(path, json=state_body(1, first), headers={"If-None-Match": "*"})
    ).status_code == 201
    assert_problem(await client.put(path, json=state_body(2, second), headers={"If-None-Match": "*"}), 412)
    assert_problem(await client.put(path, json=state_body(2, second), headers={"If-Match": '"7"'}), 412)
    assert (
        await client.put(path, json=state_body(2, second), headers={"If-Match": '"1"'})
    ).status_code == 200
    assert base64.b64decode((await client.get(path)).json()["payload"]) == second
    assert_problem(await client.delete(path, headers={"If-Match": '"1"'}), 412)
    assert (await client.delete(path, headers={"If-Match": '"2"'})).status_code == 204
    assert (await client.get(path)).status_code == 404


async def test_listing_reads_compressed_states_within_a_page(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """Scan's 1 MB counts payloads compressed; a page with payloads (`decode=true`) stops where the
    decoded ones pass 1 MB, so that no page holds two of these 700 KB states."""
    ids = {f"{state_id}-{n}" for n in range(3)}
    # A shard of their own: the table is shared, and other modules' states may point to an S3 gone since.
    shard = uuid.uuid4().int % 2**63
    for persistence_id in ids:
        body = state_body(1, compressible(700 * KB), shard=shard)
        assert (await client.put(state_path(persistence_id), json=body)).status_code == 200
    seen: list[str] = []
    params = {"limit": "100", "decode": "true", "shard": str(shard)}
    for _ in range(1000):
        page = await client.get("/states", params=params)
        assert page.status_code == 200, page.text
        mine = [state["persistence_id"] for state in page.json()["states"] if state["persistence_id"] in ids]
        assert len(mine) <= 1
        seen += mine
        token = page.json()["next_page_token"]
        if token is None:
            break
        params["page_token"] = token
    assert sorted(seen) == sorted(ids)


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_transaction_pins_a_compressed_state_it_finds_done(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """The repeated put is refused, finds its own state and is pinned to it (`StatePayload` compared in its
    stored, compressed form) while the new put is written."""
    await assert_a_transaction_pins_it_when_found_done(client, state_id, compressible(500 * KB))


@pytest.mark.parametrize(
    ("encoding", "payload"), [({"S": "zstd"}, b"not a frame"), ({"S": "brotli"}, b"x"), ({"N": "1"}, b"x")]
)
async def test_an_undecodable_stored_state_is_a_502_naming_it(
    client: httpx.AsyncClient, raw_table: Any, state_id: str, encoding: dict[str, str], payload: bytes
) -> None:
    item = {
        "PersistenceID": {"S": state_id},
        "VersionNumber": {"N": "1"},
        "StatePayload": {"B": payload},
        "StateManifest": {"S": "m"},
        "StateEncoding": encoding,
    }
    raw_table.put_item(TableName=TABLE, Item=item)
    problem = assert_problem(await client.get(state_path(state_id)), 502)
    assert state_id in problem["detail"]
    assert "StatePayload" in problem["detail"]


async def test_a_state_as_large_as_the_store_takes_round_trips(endpoint: str, state_id: str) -> None:
    """8 MiB, more than an HTTP body can carry as JSON: the store itself takes it."""
    record = StateRecord(state_id, 1, "m", compressible(8 * 1024 * KB), 1, 0)
    async with DynamoDBStore.open(TABLE, endpoint, compression="zstd") as store:
        await store.put(record, Precondition())
        assert await store.get(state_id) == record


async def test_without_compression_a_large_state_is_413(
    start_service: ServiceFactory, backend: str, state_id: str
) -> None:
    with start_service(backend) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as plain:
            body = state_body(1, compressible(401 * KB))
            assert "409600" in assert_problem(await plain.put(state_path(state_id), json=body), 413)["detail"]


async def test_sqlite_stores_a_state_beyond_400_kb(start_service: ServiceFactory, state_id: str) -> None:
    payload = random.Random(2).randbytes(LARGEST_JSON_PAYLOAD)
    with start_service("sqlite") as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as sqlite:
            assert (await sqlite.put(state_path(state_id), json=state_body(1, payload))).status_code == 200
            assert base64.b64decode((await sqlite.get(state_path(state_id))).json()["payload"]) == payload
