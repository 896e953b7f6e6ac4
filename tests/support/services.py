"""What tests share about the service the fixtures start: the type of the `start_service` fixture, the
DynamoDB-compatible servers the service is served from, and their table."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from app.store.dynamodb import DynamoDBStore

TABLE = "states_store"
# The service's dynamodb backend on each DynamoDB-compatible server, by the fixture that gives the
# server's endpoint with TABLE created. docs/test-backends.md says which tests use which and why.
DYNAMODB_SERVERS = {"moto": "dynamodb_endpoint", "dynalite": "dynalite_endpoint"}

ServiceFactory = Callable[..., AbstractContextManager[str]]
"""The `start_service` fixture: `with start_service("sqlite", **settings) as url`."""


def create_table(endpoint: str, table: str) -> None:
    async def create() -> None:
        async with DynamoDBStore.open(table, endpoint) as store:
            await store.create_table()

    asyncio.run(create())


def server_endpoint(backend: str, request: pytest.FixtureRequest) -> str:
    """The endpoint of the DynamoDB-compatible server that `backend` names, started on first use."""
    endpoint: str = request.getfixturevalue(DYNAMODB_SERVERS[backend])
    return endpoint


def own_table(backend: str, request: pytest.FixtureRequest, table: str) -> dict[str, str]:
    """The settings that give a service on `backend` a DynamoDB table of its own, created on the server
    (none on the embedded backend): for tests whose cost or checks grow with what other tests stored."""
    if backend not in DYNAMODB_SERVERS:
        return {}
    create_table(server_endpoint(backend, request), table)
    return {"dynamodb_table": table}
