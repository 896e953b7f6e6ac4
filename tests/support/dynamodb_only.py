"""Fixtures for a test module about DynamoDB alone: import them into the module, where they take the place
of the contract suite's `backend` (SQLite, moto, dynalite) with each DynamoDB-compatible server."""

from __future__ import annotations

import base64
from typing import Any

import boto3
import httpx
import pytest

from support.api import batch_get, put_op, state_body, state_path, transact
from support.services import DYNAMODB_SERVERS, TABLE, server_endpoint


@pytest.fixture(scope="module", params=list(DYNAMODB_SERVERS))
def backend(request: pytest.FixtureRequest) -> str:
    """The module's tests run on each DynamoDB-compatible server."""
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def endpoint(backend: str, request: pytest.FixtureRequest) -> str:
    """The server's URL, its table created."""
    return server_endpoint(backend, request)


@pytest.fixture(scope="module")
def raw_table(endpoint: str) -> Any:
    """A plain boto3 client of the server, to read the items the service wrote as they are stored."""
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")


def stored_item(raw_table: Any, persistence_id: str) -> dict[str, Any]:
    """The item of `persistence_id` in TABLE as stored (empty when there is none)."""
    item: dict[str, Any] = raw_table.get_item(
        TableName=TABLE, Key={"PersistenceID": {"S": persistence_id}}, ConsistentRead=True
    ).get("Item", {})
    return item


async def assert_round_trip(client: httpx.AsyncClient, persistence_id: str, payload: bytes) -> None:
    """PUT `payload`, then read it back whole by GET, HEAD (the same ETag) and batchGet."""
    put = await client.put(state_path(persistence_id), json=state_body(1, payload))
    assert put.status_code == 200, put.text
    got = await client.get(state_path(persistence_id))
    assert got.status_code == 200, got.text
    assert base64.b64decode(got.json()["payload"]) == payload
    assert (await client.head(state_path(persistence_id))).headers["etag"] == got.headers["etag"]
    read = (await batch_get(client, [persistence_id])).json()
    assert [base64.b64decode(state["payload"]) for state in read["states"]] == [payload]


async def assert_a_transaction_pins_it_when_found_done(
    client: httpx.AsyncClient, persistence_id: str, payload: bytes
) -> None:
    """A transaction's put of `payload`, repeated with its key beside a new put: the repeated put is
    refused, finds its own state and is pinned to it while the new put is written."""
    other = f"{persistence_id}-other"
    first = await transact(client, put_op(persistence_id, 1, payload, if_none_match=True), key=persistence_id)
    assert first.status_code == 200, first.text
    again = await transact(
        client, put_op(persistence_id, 1, payload, if_none_match=True), put_op(other, 1), key=persistence_id
    )
    assert again.status_code == 200, again.text
    assert (await client.get(state_path(other))).status_code == 200
