"""Fixtures for a test module about DynamoDB alone: import them into the module, where they take the place
of the contract suite's `backend` (SQLite, moto, dynalite) with each DynamoDB-compatible server."""

from __future__ import annotations

import pytest

from support.services import DYNAMODB_SERVERS, server_endpoint


@pytest.fixture(scope="module", params=list(DYNAMODB_SERVERS))
def backend(request: pytest.FixtureRequest) -> str:
    """The module's tests run on each DynamoDB-compatible server."""
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def endpoint(backend: str, request: pytest.FixtureRequest) -> str:
    """The server's URL, its table created."""
    return server_endpoint(backend, request)
