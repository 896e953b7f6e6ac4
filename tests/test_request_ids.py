"""`X-Request-ID` on every response: the client's own when safe, else a fresh one; errors included."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.http.bodies import MAX_BODY_BYTES
from app.main import create_app
from app.settings import Settings
from support.api import assert_problem, state_body, state_path
from support.services import ServiceFactory
from support.uvicorn_thread import serving

KEY = "the-request-ids-key"


@pytest.fixture(scope="module")
def url(start_service: ServiceFactory) -> Iterator[str]:
    with start_service("sqlite", api_keys=(KEY,)) as service_url:
        yield service_url


@pytest.fixture
async def client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        yield http


def assert_generated(response: httpx.Response) -> str:
    request_id = response.headers["x-request-id"]
    assert str(uuid.UUID(request_id)) == request_id
    return request_id


@pytest.mark.parametrize(
    "request_id",
    ["abc-123", str(uuid.uuid4()), "Root=1-5759e988-bd862e3fe1be46a994272793", "a.b_c:d+e/f@g", "x" * 128],
)
async def test_a_safe_request_id_is_echoed(client: httpx.AsyncClient, request_id: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    [b"x" * 129, b"has space", b"semi;colon", b'quote"', b"<script>", "é".encode(), b"tab\there", b""],
)
async def test_an_unsafe_request_id_is_replaced(client: httpx.AsyncClient, request_id: bytes) -> None:
    response = await client.get("/healthz", headers={b"X-Request-ID": request_id})
    assert_generated(response)


async def test_each_request_without_an_id_gets_a_new_one(client: httpx.AsyncClient) -> None:
    ids = {assert_generated(await client.get("/healthz")) for _ in range(3)}
    assert len(ids) == 3


async def test_error_answers_carry_the_request_id(client: httpx.AsyncClient, url: str) -> None:
    path = state_path("request-id-errors")
    answers = {
        404: await client.get(path),
        405: await client.post(path, json={}),
        412: await client.put(path, json=state_body(1), headers={"If-Match": '"9"'}),
        415: await client.put(path, content=b"{}"),
        422: await client.put(path, json={"manifest": "a.B"}),
    }
    async with httpx.AsyncClient(base_url=url) as anonymous:
        answers[401] = await anonymous.get(path)
    for status, response in answers.items():
        assert_problem(response, status)
        assert_generated(response)
    too_large = await declared_too_large(url, path)
    assert too_large.startswith(b"HTTP/1.1 413 ")
    assert b"\r\nx-request-id: " in too_large
    echoed = await client.put(path, content=b"{}", headers={"X-Request-ID": "mine-415"})
    assert echoed.headers["x-request-id"] == "mine-415"


async def declared_too_large(url: str, path: str) -> bytes:
    """The head of the answer to a body declared too large (a lie httpx would not tell)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n{{}}".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    return head


async def test_an_unexpected_crash_answers_500_with_the_request_id(tmp_path: Path) -> None:
    app = create_app(Settings(backend="sqlite", sqlite_path=tmp_path / "states.db"))

    async def crash() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/crash", crash)
    with serving(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.get("/crash", headers={"X-Request-ID": "crash-1"})
            metrics = (await client.get("/metrics")).text
    assert_problem(response, 500)
    assert "a bug" not in response.text
    assert response.headers["x-request-id"] == "crash-1"
    assert 'statestore_http_requests_total{method="GET",route="/crash",status="500"} 1.0' in metrics
