"""Hostile HTTP against `statestore serve` as deployed: refused early, memory flat, service still up."""

from __future__ import annotations

import itertools
import json
import select
import socket
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
from support.raw_http import chunked, connect, read_kept_alive_response, send_until_answered
from support.services import ServiceFactory
from support.slots import full_service
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
    response = send_until_answered(served.url, *head())
    # Refused for its size, early: a 431 (not the head timeout's 408) after less than 8 MiB of the head.
    assert response.status == 431
    assert response.problem()["status"] == 431
    assert response.bytes_sent < 8 * MiB
    assert served.rss() - before < RSS_SLACK
    assert_up(served)


def waiting_for_head(sock: socket.socket) -> bool:
    """Whether the server has neither answered nor closed the connection: nothing to read yet."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


def test_many_idle_and_trickling_connections_neither_block_requests_nor_grow_memory(served: Served) -> None:
    before = served.rss()
    idle = [connect(served.url) for _ in range(500)]
    trickling = [connect(served.url) for _ in range(200)]
    for sock in trickling:
        sock.sendall(b"PUT /states/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    try:
        for number in range(20):
            response = httpx.put(
                f"{served.url}{state_path(f'busy-{number}')}", json=state_body(1), timeout=30
            )
            assert response.status_code == 200
        # Not blocked: every request was answered while each trickling connection still waits for its
        # head, unanswered and open; requests held up by them would have waited for their 408s.
        assert [waiting_for_head(sock) for sock in trickling] == [True] * len(trickling)
        assert served.rss() - before < RSS_SLACK
    finally:
        for sock in idle + trickling:
            sock.close()
    assert_up(served)


class QuickHeadTimeout(BoundedHttpToolsProtocol):
    head_timeout = 0.5


# A trickling head sends a byte this often, far more often than the head timeout: were each byte to push
# the deadline back, the head would never time out.
TRICKLE_SECONDS = QuickHeadTimeout.head_timeout / 10
# How long a trickle goes on at most: 60 head timeouts, far beyond when its 408 is due.
TRICKLE_LIMIT_SECONDS = 30.0


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def trickle_until_answered(sock: socket.socket) -> None:
    """A header byte every TRICKLE_SECONDS until the server answers, for TRICKLE_LIMIT_SECONDS at most."""
    until = time.monotonic() + TRICKLE_LIMIT_SECONDS
    while not select.select([sock], [], [], TRICKLE_SECONDS)[0]:
        assert time.monotonic() < until, f"a head still trickling after {TRICKLE_LIMIT_SECONDS} s got no 408"
        sock.sendall(b"X")


def test_a_request_head_that_never_completes_is_closed_with_408(
    settings_for: Callable[..., Settings],
) -> None:
    head_timeout = QuickHeadTimeout.head_timeout
    with serving(create_app(settings_for("sqlite")), http=QuickHeadTimeout) as url:
        silent, trickling, kept_alive = connect(url), connect(url), connect(url)
        started = time.monotonic()
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept_alive.recv(65536).startswith(b"HTTP/1.1 200")
        idle_since = time.monotonic()
        trickling.sendall(b"GET /healthz HTTP/1.1\r\n")
        trickle_until_answered(trickling)  # a byte now and then does not push the deadline back
        for sock in (silent, trickling):
            answer = read_until_closed(sock)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert b"application/problem+json" in answer
        assert time.monotonic() - started >= head_timeout
        # A connection between requests is the keep-alive timeout's, not the head timeout's: idle for
        # longer than the head timeout, it still takes a request.
        time.sleep(max(0.0, idle_since + 1.5 * head_timeout - time.monotonic()))
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept_alive.recv(65536).startswith(b"HTTP/1.1 200")
        for sock in (silent, trickling, kept_alive):
            sock.close()


async def test_requests_beyond_the_concurrency_limit_get_a_quick_503(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    async with full_service(start_service, tmp_path) as service:
        refused = await service.refused_read()
        assert_problem(refused, 503)
        assert refused.headers["retry-after"] == "1"
        assert (await service.client.get("/healthz")).status_code == 200
        await service.release()
        assert [task.result().status_code for task in service.held] == [200, 200]
        assert (await service.client.get(state_path("held-1"))).status_code == 200


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
        answer = read_kept_alive_response(sock)
    assert answer.status == 200, answer
    assert json.loads(answer.body)["version_number"] == "7"


def test_a_422s_status_line_and_title_both_say_rfc_9110s_name(served: Served) -> None:
    response = httpx.put(
        f"{served.url}/states/unprocessable", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.reason_phrase == response.json()["title"] == "Unprocessable Content"
