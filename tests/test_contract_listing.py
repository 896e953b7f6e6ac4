"""Listing (`GET /states`), on every backend: a full walk returns each state exactly once, whatever the page
sizes; a shard filter returns exactly that shard; a page token the service did not issue is a 400.

Each backend gets a store of its own (a fresh file or table) holding exactly STATES states.
"""

from __future__ import annotations

import base64
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import httpx
import pytest

from support.api import assert_problem
from support.services import ServiceFactory, create_table, server_endpoint

STATES = 2500
SHARDS = 7
# A few more states, one in each of these shards: 2^53 and 2^53+1, which a JSON number in JavaScript cannot
# tell apart, and the largest.
LARGE_SHARDS = [2**53, 2**53 + 1, 2**64 - 1]


def shard_of(index: int) -> int:
    return index % SHARDS


@pytest.fixture(scope="module")
def listed_store(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Settings of a store of this module's own (a file, or a table), so that nothing else is listed."""
    if backend == "sqlite":
        return {"sqlite_path": tmp_path_factory.mktemp("listing") / "states.db"}
    table = f"listing-{uuid.uuid4().hex[:12]}"
    create_table(server_endpoint(backend, request), table)
    return {"dynamodb_table": table}


@pytest.fixture(scope="module")
def listed_url(backend: str, listed_store: dict[str, Any], start_service: ServiceFactory) -> Iterator[str]:
    with start_service(backend, **listed_store) as url:
        yield url


@pytest.fixture(scope="module")
def written(
    backend: str, request: pytest.FixtureRequest, listed_store: dict[str, Any], listed_url: str
) -> dict[str, int]:
    """The STATES states, by id, with their shards: written in bulk straight to the store, as a loader
    would (2,500 PUTs through the service take minutes on moto)."""
    expected = {f"list-{index:05d}/ü": shard_of(index) for index in range(STATES)}
    expected |= {f"list-large-{shard}": shard for shard in LARGE_SHARDS}
    if backend == "sqlite":
        with sqlite3.connect(listed_store["sqlite_path"]) as connection:
            connection.executemany(
                "INSERT INTO states (persistence_id, version_number, manifest, payload, timestamp, shard)"
                " VALUES (?, 1, 'acme.Listed', x'0a01', 1, ?)",
                # SQLite's integers are signed: the service stores a uint64 above 2^63-1 wrapped around
                [(i, shard - 2**64 if shard >= 2**63 else shard) for i, shard in expected.items()],
            )
        return expected
    table = boto3.client("dynamodb", endpoint_url=server_endpoint(backend, request), region_name="us-east-1")
    items = [
        {
            "PersistenceID": {"S": persistence_id},
            "VersionNumber": {"N": "1"},
            "StatePayload": {"B": b"\x0a\x01"},
            "StateManifest": {"S": "acme.Listed"},
            "Timestamp": {"N": "1"},
            "ShardNumber": {"N": str(shard)},
        }
        for persistence_id, shard in expected.items()
    ]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        unprocessed = {listed_store["dynamodb_table"]: batch}
        for _ in range(20):
            unprocessed = table.batch_write_item(RequestItems=unprocessed)["UnprocessedItems"]
            if not unprocessed:
                break
        assert not unprocessed
    return expected


@pytest.fixture
async def client(listed_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=listed_url, timeout=60) as http:
        yield http


async def walk(client: httpx.AsyncClient, limits: Iterator[int], **params: Any) -> list[dict[str, Any]]:
    """Every state of a full walk, following the page tokens, each page of the next limit."""
    listed: list[dict[str, Any]] = []
    token = None
    for _ in range(STATES + 2):  # more pages than that means the walk does not end
        query = {**params, "limit": next(limits), **({"page_token": token} if token else {})}
        response = await client.get("/states", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["states"]) <= query["limit"]
        listed += page["states"]
        token = page["next_page_token"]
        if token is None:
            return listed
    raise AssertionError("the walk never ended")


async def first_token(client: httpx.AsyncClient, **params: Any) -> str:
    response = await client.get("/states", params={"limit": 10, **params})
    token: str = response.json()["next_page_token"]
    return token


async def test_a_full_walk_returns_each_state_exactly_once(
    client: httpx.AsyncClient, written: dict[str, int]
) -> None:
    pages = random.Random(16)
    listed = await walk(client, iter(lambda: pages.choice([1, 7, 100, 333, 1000]), None))
    ids = [state["persistence_id"] for state in listed]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(written)
    assert all("payload" not in state and "state" not in state for state in listed)
    assert {state["shard"] for state in listed} == {str(shard) for shard in [*range(SHARDS), *LARGE_SHARDS]}
    assert listed[0]["version_number"] == "1"


async def test_the_default_page_holds_100_states(client: httpx.AsyncClient, written: dict[str, int]) -> None:
    response = await client.get("/states")
    assert len(response.json()["states"]) == 100


async def test_a_shard_filter_returns_exactly_that_shard(
    client: httpx.AsyncClient, written: dict[str, int]
) -> None:
    listed = await walk(client, iter(lambda: 500, None), shard=3)
    ids = [state["persistence_id"] for state in listed]
    assert sorted(ids) == sorted(i for i, shard in written.items() if shard == 3)
    assert {state["shard"] for state in listed} == {"3"}


async def test_decode_adds_the_state_but_no_payload(
    client: httpx.AsyncClient, written: dict[str, int]
) -> None:
    response = await client.get("/states", params={"limit": 3, "decode": "true"})
    states = response.json()["states"]
    assert states
    assert all(state["state"] is None and "payload" not in state for state in states)  # an unknown manifest


def altered(token: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[len(raw) // 2] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "damage",
    [
        altered,
        lambda token: token[:-3],
        lambda token: token[:5],
        lambda token: token + "A",
        lambda _: "x" * 5000,
    ],
    ids=["altered", "truncated", "cut-short", "lengthened", "too-long"],
)
async def test_a_damaged_page_token_is_400(
    client: httpx.AsyncClient, written: dict[str, int], damage: Any
) -> None:
    response = await client.get("/states", params={"page_token": damage(await first_token(client))})
    assert "page_token" in assert_problem(response, 400)["detail"]


@pytest.mark.parametrize(
    ("issued_for", "used_with"),
    [({}, {"shard": 3}), ({"shard": 3}, {}), ({"shard": 3}, {"shard": 4})],
    ids=["unfiltered-to-shard", "shard-to-unfiltered", "shard-to-other-shard"],
)
async def test_a_page_token_of_another_filter_is_400(
    client: httpx.AsyncClient, written: dict[str, int], issued_for: dict[str, int], used_with: dict[str, int]
) -> None:
    token = await first_token(client, **issued_for)
    response = await client.get("/states", params={"page_token": token, **used_with})
    assert "shard" in assert_problem(response, 400)["detail"]


@pytest.mark.parametrize("shard", LARGE_SHARDS)
async def test_a_shard_filter_above_2_53_returns_exactly_that_shard(
    client: httpx.AsyncClient, written: dict[str, int], shard: int
) -> None:
    listed = await walk(client, iter(lambda: 1000, None), shard=str(shard))
    assert [state["persistence_id"] for state in listed] == [f"list-large-{shard}"]
    assert listed[0]["shard"] == str(shard)


async def test_a_shard_filter_is_the_decimal_text_it_always_was(
    client: httpx.AsyncClient, written: dict[str, int]
) -> None:
    """The document types `shard` as a string of decimal digits; on the wire it is the same query text,
    `?shard=5`, as when it was an integer."""
    listed = await walk(client, iter(lambda: 1000, None), shard="5")
    ids = [state["persistence_id"] for state in listed]
    assert sorted(ids) == sorted(i for i, shard in written.items() if shard == 5)


@pytest.mark.parametrize("token", ["", "not a token", "%%%", "AAAA", "=" * 8])
async def test_a_page_token_never_issued_is_400(client: httpx.AsyncClient, token: str) -> None:
    assert_problem(await client.get("/states", params={"page_token": token}), 400)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "0"),
        ("limit", "1001"),
        ("limit", "x"),
        ("shard", "-1"),
        ("shard", str(2**64)),
        ("shard", "x"),
        ("shard", "05"),  # what the document's pattern refuses too
        ("shard", "5.0"),
    ],
)
async def test_a_limit_or_shard_out_of_range_is_422(client: httpx.AsyncClient, name: str, value: str) -> None:
    problem = assert_problem(await client.get("/states", params={name: value}), 422)
    assert problem["errors"][0]["loc"] == ["query", name]
