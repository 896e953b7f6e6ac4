"""No connection outlives its purpose, and every answer is the service's: socket-level tests against
`statestore serve` (docs/security.md says which finding each one checks)."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.http.server import MAX_HEAD_BYTES
from scripts.servers import serving_process
from support.api import state_body, state_path
from support.processes import json_lines
from support.raw_http import RawResponse, chunked, connect, read_response

KEY = "connections-test-key-0001"
AUTHORIZATION = f"Authorization: Bearer {KEY}"
BODY_TIMEOUT_SECONDS = 2
SLOTS = 4
LOGGED_WITHIN_SECONDS = 10  # only bounds a failure: the line comes at once unless the machine is busy
MiB = 2**20


@dataclass(frozen=True)
class Served:
    url: str
    log: Path

    def access_lines(self, request_id: str) -> list[dict[str, Any]]:
        return [line for line in self.logged(request_id) if line.get("logger") == "statestore.access"]

    def error_lines(self) -> list[dict[str, Any]]:
        return [line for line in json_lines(self.log) if line["level"] in ("warning", "error")]

    def logged(self, request_id: str) -> list[dict[str, Any]]:
        """The log lines of a request, once its access line is written: the server writes it after it has
        sent the answer (or seen the client leave), so a client may read the log before it is there."""
        deadline = time.monotonic() + LOGGED_WITHIN_SECONDS
        while True:
            written = self.log.read_text()
            whole_lines = written[: written.rfind("\n") + 1].splitlines()  # not a line still being written
            lines = [line for line in map(json.loads, whole_lines) if line.get("request_id") == request_id]
            if any(line.get("logger") == "statestore.access" for line in lines):
                return lines
            assert time.monotonic() < deadline, f"{request_id} not logged in {LOGGED_WITHIN_SECONDS} s"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("connections")
    env = {
        "STATESTORE_SQLITE_PATH": str(folder / "states.db"),
        "STATESTORE_API_KEYS": KEY,
        "STATESTORE_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT_SECONDS),
        "STATESTORE_MAX_CONCURRENT_REQUESTS": str(SLOTS),
    }
    log = folder / "stderr.log"
    with serving_process(env=env, stderr_to=log) as (url, _):
        yield Served(url, log)


def head(*lines: str, target: str = "/states/connections") -> bytes:
    return ("\r\n".join([f"PUT {target} HTTP/1.1", "Host: 127.0.0.1", *lines]) + "\r\n\r\n").encode()


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` within `seconds`, what it sends meanwhile read and dropped."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def answer_of(sock: socket.socket) -> RawResponse:
    sock.settimeout(10)
    return read_response(sock)


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        (("Content-Type: application/json",), 401),
        ((AUTHORIZATION, "Content-Type: text/plain"), 415),
        ((AUTHORIZATION, "Content-Type: application/json", f"X-Big: {'a' * 100}"), 413),
    ],
    ids=["401", "415", "413"],
)
def test_an_answer_that_leaves_the_body_unread_closes_the_connection(
    served: Served, lines: tuple[str, ...], status: int
) -> None:
    length = 10 * MiB if status == 413 else 1_000_000
    with connect(served.url) as sock:
        sock.sendall(head(*lines, f"Content-Length: {length}") + b"{")
        sock.settimeout(5)
        answer = sock.recv(65536)
        assert answer.startswith(f"HTTP/1.1 {status} ".encode())
        assert b"\r\nconnection: close\r\n" in answer.lower()
        sock.sendall(b" ")  # a trickle does not keep it open
        assert closed_within(sock, 5)


def test_a_body_that_is_late_is_a_408_problem_and_the_connection_closes(served: Served) -> None:
    with connect(served.url) as sock:
        started = time.monotonic()
        sock.sendall(head(AUTHORIZATION, "Content-Type: application/json", "Content-Length: 100") + b'{"a"')
        answer = answer_of(sock)
    assert answer.status == 408
    assert "did not arrive within" in answer.problem()["detail"]
    assert answer.headers["x-request-id"]
    # Not before the configured deadline, and long before a client would give up (30 s).
    assert BODY_TIMEOUT_SECONDS <= time.monotonic() - started < 30


def test_a_body_slower_than_the_minimum_rate_is_a_408(served: Served) -> None:
    with connect(served.url) as sock:
        sock.sendall(head(AUTHORIZATION, "Content-Type: application/json", "Content-Length: 100000"))
        for _ in range(3):  # 1 byte a second, far below 1 KB/s; the deadline alone would allow 2 s more
            sock.sendall(b" ")
            time.sleep(0.5)
        assert answer_of(sock).status == 408


def test_requests_waiting_for_their_bodies_hold_no_slot(served: Served) -> None:
    slow = [connect(served.url) for _ in range(SLOTS * 2)]
    try:
        for sock in slow:
            sock.sendall(head(AUTHORIZATION, "Content-Type: application/json", "Content-Length: 100") + b"{")
        time.sleep(0.3)
        for _ in range(3):
            answer = httpx.get(
                f"{served.url}{state_path('absent')}", headers={"Authorization": f"Bearer {KEY}"}
            )
            assert answer.status_code == 404
    finally:
        for sock in slow:
            sock.close()


def stream_all_then_read(url: str, request_head: bytes, body: Iterable[bytes]) -> RawResponse:
    """As most clients do (httpx, requests): send the whole body, and only then read the answer."""
    with connect(url) as sock:
        sock.sendall(request_head)
        for chunk in body:
            sock.sendall(chunk)
        return answer_of(sock)


def test_a_client_that_streams_64_mib_reads_the_413_every_time(served: Served) -> None:
    """The refusal comes at 8 MiB; closing then, with the rest of the body unread, would reset the
    connection before the client reads the 413 (1 run in 10 before the lingering close)."""
    one_mib = b"x" * MiB
    declared = head(AUTHORIZATION, "Content-Type: application/json", f"Content-Length: {64 * MiB}")
    streamed = head(AUTHORIZATION, "Content-Type: application/json", "Transfer-Encoding: chunked")
    for run in range(100):
        if run % 2:
            answer = stream_all_then_read(served.url, declared, itertools.repeat(one_mib, 64))
        else:
            answer = stream_all_then_read(served.url, streamed, chunked(itertools.repeat(one_mib, 64)))
        assert answer.status == 413, run
        assert answer.problem()["status"] == 413


def get_head(size: int) -> bytes:
    """A GET of /healthz whose head is exactly `size` bytes."""
    start, end = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


@pytest.mark.parametrize("read_size", [None, 1000, 40_000])
def test_the_head_limit_is_exact_however_the_head_is_cut_into_reads(
    served: Served, read_size: int | None
) -> None:
    for size, status in ((MAX_HEAD_BYTES, 200), (MAX_HEAD_BYTES + 1, 431), (2 * MAX_HEAD_BYTES, 431)):
        request = get_head(size)
        pieces = (
            [request]
            if read_size is None
            else [request[i : i + read_size] for i in range(0, size, read_size)]
        )
        with connect(served.url) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for piece in pieces:
                sock.sendall(piece)
                if read_size is not None:
                    time.sleep(0.001)
            sock.settimeout(10)
            assert sock.recv(65536).startswith(f"HTTP/1.1 {status} ".encode()), (size, read_size)


def test_the_servers_own_answers_are_problems_logged_and_counted(served: Served) -> None:
    with connect(served.url) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        invalid = answer_of(sock)
    with connect(served.url) as sock:
        sock.sendall(get_head(2 * MAX_HEAD_BYTES))
        too_large = answer_of(sock)
    for answer, status in ((invalid, 400), (too_large, 431)):
        assert answer.status == status
        assert answer.problem()["status"] == status
        logged = served.access_lines(answer.headers["x-request-id"])
        assert [line["status"] for line in logged] == [status]
    metrics = httpx.get(f"{served.url}/metrics").text
    for status in (400, 431):
        assert f'status="{status}"' in metrics


def test_a_client_that_leaves_mid_body_is_logged_once_at_info_and_not_a_5xx(served: Served) -> None:
    with connect(served.url) as sock:
        lines = (
            AUTHORIZATION,
            "Content-Type: application/json",
            "Content-Length: 1000",
            "X-Request-ID: gone",
        )
        sock.sendall(head(*lines) + b'{"a"')
        time.sleep(0.2)
    logged = served.logged("gone")
    assert [(line["logger"], line["level"], line["status"]) for line in logged] == [
        ("statestore.access", "info", 499)
    ]
    assert [line for line in served.error_lines() if "Traceback" in json.dumps(line)] == []
    metrics = httpx.get(f"{served.url}/metrics").text
    assert 'status="500"' not in metrics


def test_many_refused_connections_at_once_leave_a_keyed_client_answered(served: Served) -> None:
    """A smaller, quick cousin of the soak in scripts/soak.py."""

    def refused(_: int) -> int:
        with connect(served.url) as sock:
            sock.sendall(head("Content-Type: application/json", "Content-Length: 1000000") + b"{")
            return int(sock.recv(65536).split(b" ")[1])

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(refused, range(200))) == {401}
    answer = httpx.put(
        f"{served.url}{state_path('after-refusals')}",
        json=state_body(1),
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    )
    assert answer.status_code == 200
