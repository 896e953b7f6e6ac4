"""Hostile HTTP against `statestore serve` as deployed: refused early, memory flat, service still up."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from app.http.server import BoundedHttpToolsProtocol
from app.main import create_app
from app.settings import Settings
from scripts.servers import serving_process
from support.api import assert_problem, state_body, state_path
from support.raw_http import chunked, connect, send_until_answered
from support.services import ServiceFactory
from support.uvicorn_thread import serving

MiB = 2**20
# What the server may grow by across a whole test: far below what it was sent.
RSS_SLACK = 16 * MiB
ONE_MIB = b"x" * MiB


@dataclass(frozen=True)
class Served:
    url: str
    process: psutil.Process

    def rss(self) -> int:
        return int(self.process.memory_info().rss)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = {
        "STATESTORE_SQLITE_PATH": str(tmp_path_factory.mktemp("hostile") / "states.db"),
        "STATESTORE_LOG_LEVEL": "warning",
    }
    with serving_process(env=env) as (url, process):
        for number in range(20):  # warm up, so that later growth is not first use
            httpx.put(f"{url}{state_path(f'warm-{number}')}", json=state_body(1)).raise_for_status()
        yield Served(url, psutil.Process(process.pid))


def put_head(*headers: str) -> bytes:
    lines = ["PUT /states/big HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def assert_up(served: Served) -> None:
    assert httpx.get(f"{served.url}/healthz", timeout=2).status_code == 200
    assert httpx.get(f"{served.url}{state_path('warm-0')}", timeout=2).status_code == 200


BODIES: dict[str, Callable[[], tuple[bytes, Iterable[bytes]]]] = {
    "declared in Content-Length": lambda: (
        put_head(f"Content-Length: {64 * MiB}"),
        itertools.repeat(ONE_MIB, 64),
    ),
    "chunked, no Content-Length": lambda: (
        put_head("Transfer-Encoding: chunked"),
        chunked(itertools.repeat(ONE_MIB, 64)),
    ),
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_a_64_mib_body_is_refused_with_413_without_being_buffered(
    served: Served, body: Callable[[], tuple[bytes, Iterable[bytes]]]
) -> None:
    before = served.rss()
    for _ in range(3):
        head, chunks = body()
        response = send_until_answered(served.url, head, chunks)
        assert response.status == 413
        assert response.problem()["status"] == 413
        assert response.bytes_sent < 32 * MiB, "the server read on far past its limit"
    assert served.rss() - before < RSS_SLACK
    assert_up(served)


NESTED = {
    "100k [": b"[" * 100_000,
    "100k balanced [ ]": b"[" * 100_000 + b"]" * 100_000,
    "100k { in a field": b'{"manifest": "a.B", "payload": "", "version_number": 1, "shard": '
    + b'{"a": ' * 100_000
    + b"1"
    + b"}" * 100_001,
}


@pytest.mark.parametrize("body", NESTED.values(), ids=NESTED.keys())
def test_deeply_nested_json_is_a_client_error(served: Served, body: bytes) -> None:
    response = httpx.put(
        f"{served.url}/states/nested", content=body, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)
    assert_up(served)


GET_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
HEADS: dict[str, Callable[[], tuple[bytes, Iterable[bytes]]]] = {
    "one 100 MiB header": lambda: (GET_HEAD + b"X-Big: ", itertools.repeat(b"a" * 65536, 1600)),
    "a million small headers": lambda: (GET_HEAD, (b"X-%d: a\r\n" % n for n in range(1_000_000))),
    "a 16 MiB URL": lambda: (b"GET /healthz", itertools.repeat(b"/a" * 32768, 256)),
}


@pytest.mark.parametrize("head", HEADS.values(), ids=HEADS.keys())
def test_a_huge_request_head_is_refused_with_431(
    served: Served, head: Callable[[], tuple[bytes, Iterable[bytes]]]
) -> None:
    before = served.rss()
    started = time.monotonic()
    response = send_until_answered(served.url, *head())
    assert response.status == 431
    assert response.problem()["status"] == 431
    assert response.bytes_sent < 8 * MiB
    assert time.monotonic() - started < 2
    assert served.rss() - before < RSS_SLACK
    assert_up(served)


def test_many_idle_and_trickling_connections_neither_block_requests_nor_grow_memory(served: Served) -> None:
    before = served.rss()
    idle = [connect(served.url) for _ in range(500)]
    trickling = [connect(served.url) for _ in range(200)]
    for sock in trickling:
        sock.sendall(b"PUT /states/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    try:
        started = time.monotonic()
        for number in range(20):
            response = httpx.put(f"{served.url}{state_path(f'busy-{number}')}", json=state_body(1), timeout=2)
            assert response.status_code == 200
        assert time.monotonic() - started < 2
        assert served.rss() - before < RSS_SLACK
    finally:
        for sock in idle + trickling:
            sock.close()
    assert_up(served)


class QuickHeadTimeout(BoundedHttpToolsProtocol):
    head_timeout = 0.5


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_request_head_that_never_completes_is_closed_with_408(
    settings_for: Callable[..., Settings],
) -> None:
    with serving(create_app(settings_for("sqlite")), http=QuickHeadTimeout) as url:
        silent, trickling, kept_alive = connect(url), connect(url), connect(url)
        started = time.monotonic()
        trickling.sendall(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(4):  # a byte now and then does not push the deadline back
            time.sleep(0.1)
            trickling.sendall(b"X")
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept_alive.recv(65536).startswith(b"HTTP/1.1 200")
        for sock in (silent, trickling):
            answer = read_until_closed(sock)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert b"application/problem+json" in answer
        assert time.monotonic() - started < 0.8
        # A connection between requests is the keep-alive timeout's, not the head timeout's.
        time.sleep(0.7)
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept_alive.recv(65536).startswith(b"HTTP/1.1 200")
        for sock in (silent, trickling, kept_alive):
            sock.close()


async def test_requests_beyond_the_concurrency_limit_get_a_quick_503(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    path = tmp_path / "states.db"
    with start_service("sqlite", sqlite_path=path, max_concurrent_requests=2) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.put(state_path("first"), json=state_body(1))).status_code == 200
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # the service's writes now wait for the lock
            held = [
                asyncio.create_task(client.put(state_path(f"held-{number}"), json=state_body(1)))
                for number in range(2)
            ]
            await asyncio.sleep(0.3)
            started = time.monotonic()
            refused = await client.get(state_path("first"))
            assert time.monotonic() - started < 0.5
            assert_problem(refused, 503)
            assert refused.headers["retry-after"] == "1"
            assert (await client.get("/healthz")).status_code == 200
            blocker.execute("ROLLBACK")
            blocker.close()
            assert [response.status_code for response in await asyncio.gather(*held)] == [200, 200]
            assert (await client.get(state_path("held-1"))).status_code == 200


def _upgrade_put(body: bytes) -> bytes:
    head = put_head(
        "Connection: Upgrade, HTTP2-Settings",
        "Upgrade: h2c",
        "HTTP2-Settings: AAMAAABkAAQBAAAAAAIAAAAA",
        f"Content-Length: {len(body)}",
    )
    return head + body


@pytest.mark.parametrize("split_at", [None, "\r\nUpgr", "\r\n", "\r\nUpgrade:"])
def test_an_offer_to_upgrade_is_ignored_and_the_body_arrives(served: Served, split_at: str | None) -> None:
    """Java's default HttpClient offers HTTP/2 (`Upgrade: h2c`) on every cleartext request; the body of such a
    request must reach the app, however the head is cut into reads."""
    body = json.dumps(state_body(7)).encode()
    request = _upgrade_put(body)
    if split_at is None:
        chunks = [request]
    else:
        cut = request.index(split_at.encode()) + len(split_at)
        chunks = [request[:cut], request[cut:]]
    with connect(served.url) as sock:
        for chunk in chunks:
            sock.sendall(chunk)
            time.sleep(0.05)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert b'"version_number":7' in answer or b'"version_number":"7"' in answer
