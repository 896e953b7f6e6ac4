"""Why a request body is refused, answered in full in process (no socket, so no reset cuts them short)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from app.http.bodies import MAX_BODY_BYTES
from app.main import create_app
from app.settings import Settings
from support.api import assert_problem

JSON = {"content-type": "application/json"}


def in_process_client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(Settings()))
    return httpx.AsyncClient(transport=transport, base_url="http://statestore")


async def test_a_streamed_body_over_the_cap_is_the_too_large_problem() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY_BYTES // (1024 * 1024) + 1):
            yield b" " * (1024 * 1024)

    async with in_process_client() as client:
        response = await client.put("/states/x", content=chunks(), headers=JSON)
    problem = assert_problem(response, 413)
    assert problem["type"] == "urn:statestore:problem:too-large"
    assert response.headers["connection"] == "close"


async def test_a_declared_body_over_the_cap_is_the_too_large_problem() -> None:
    async with in_process_client() as client:
        response = await client.put(
            "/states/x", content=b"{}", headers={**JSON, "content-length": "9999999999"}
        )
    assert assert_problem(response, 413)["type"] == "urn:statestore:problem:too-large"


async def test_a_body_that_is_not_json_is_the_unsupported_media_type_problem() -> None:
    async with in_process_client() as client:
        response = await client.put("/states/x", content=b"a=1", headers={"content-type": "text/plain"})
    assert assert_problem(response, 415)["type"] == "urn:statestore:problem:unsupported-media-type"


async def test_a_method_a_route_lacks_is_405_whatever_its_body() -> None:
    async with in_process_client() as client:
        response = await client.put("/healthz", content=b"a=1", headers={"content-type": "text/plain"})
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD"
