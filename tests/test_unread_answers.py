"""Clients that ask for large answers and never read them (issue 26, item 2), against `statestore serve` on
SQLite: the service holds a bounded number of bytes for them, keeps serving the others, closes their
connections once a send has made no progress for `STATESTORE_SEND_TIMEOUT_SECONDS`, and gives the memory
back once they are gone."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from app.states.answers import MAX_HELD_ANSWER_BYTES
from support.api import state_body, state_path
from support.processes import serving_sqlite

KEY = "unread-answers-key-0123456789"
AUTHORIZATION = {"Authorization": f"Bearer {KEY}"}
STATES = 40
PAYLOAD_BYTES = 395_000
UNREAD_SOCKETS = 60
RECEIVE_BUFFER_BYTES = 2048
SEND_TIMEOUT_SECONDS = 1
MiB = 2**20
# Beyond the states held for unsent answers: one state's JSON queued per connection, the reads in flight.
RSS_SLACK = 64 * MiB
IDS = [f"unread-{number}" for number in range(STATES)]


@dataclass(frozen=True)
class Served:
    url: str
    pid: int

    def memory(self, field: str) -> int:
        """A `/proc/<pid>/status` figure of the service's process, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == field:
                return int(value.split()[0]) * 1024
        raise AssertionError(f"no {field} in /proc/{self.pid}/status")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = {
        "STATESTORE_API_KEYS": KEY,
        "STATESTORE_SEND_TIMEOUT_SECONDS": str(SEND_TIMEOUT_SECONDS),
    }
    with serving_sqlite(tmp_path_factory.mktemp("unread") / "states.db", settings) as (url, process):
        with httpx.Client(base_url=url, headers=AUTHORIZATION, timeout=30) as client:
            for persistence_id in IDS:
                body = state_body(1, payload=os.urandom(PAYLOAD_BYTES))
                client.put(state_path(persistence_id), json=body).raise_for_status()
            for _ in range(3):  # warm up: later growth is what the unread answers hold, not first use
                assert len(batch_get(client)["states"]) == STATES
        yield Served(url, process.pid)


def batch_get(client: httpx.Client) -> dict[str, list[object]]:
    response = client.post("/states:batchGet", json={"persistence_ids": IDS})
    response.raise_for_status()
    answer: dict[str, list[object]] = response.json()
    return answer


def unread_batch_get(url: str) -> socket.socket:
    """A keyed batchGet of every state, sent on a socket with a tiny receive buffer that is never read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    host, port = url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    body = orjson.dumps({"persistence_ids": IDS})
    head = [
        "POST /states:batchGet HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {KEY}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    sock.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + body)
    return sock


def answer_once_closed(sock: socket.socket) -> bytes:
    """What the client can still read of its answer, once the server has ended the connection (a reset
    may leave nothing); a connection still open after a few seconds fails the test."""
    sock.settimeout(5)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the connection is still open, after {len(data)} bytes") from None
    return data


def test_unread_answers_hold_bounded_memory_others_are_served_and_the_connections_are_closed(
    served: Served,
) -> None:
    baseline = served.memory("VmRSS")
    unread = [unread_batch_get(served.url) for _ in range(UNREAD_SOCKETS)]
    try:
        with httpx.Client(base_url=served.url, headers=AUTHORIZATION, timeout=30) as client:
            assert client.get("/healthz").status_code == 200
            stored = client.get(state_path(IDS[0]))
            assert stored.status_code == 200
            put = client.put(state_path("served-meanwhile"), json=state_body(1))
            assert put.status_code == 200
        time.sleep(2 * SEND_TIMEOUT_SECONDS + 2)  # never read: each stalled send is cut off meanwhile
        answers = [answer_once_closed(sock) for sock in unread]
    finally:
        for sock in unread:
            sock.close()
    # Those whose answers the held states had no room for took a 503; the others were cut off.
    refused = [answer for answer in answers if answer.startswith(b"HTTP/1.1 503 ")]
    whole = [answer for answer in answers if answer.endswith(b"\r\n0\r\n\r\n")]
    cut_off = len(answers) - len(refused) - len(whole)
    assert cut_off >= MAX_HELD_ANSWER_BYTES // (STATES * PAYLOAD_BYTES), (len(refused), len(whole))
    peak = served.memory("VmHWM")
    assert peak - baseline < MAX_HELD_ANSWER_BYTES + RSS_SLACK, (baseline, peak)
    with httpx.Client(base_url=served.url, headers=AUTHORIZATION, timeout=30) as client:
        assert len(batch_get(client)["states"]) == STATES  # what they held is free for the next answer
    assert served.memory("VmRSS") - baseline < RSS_SLACK, (baseline, served.memory("VmRSS"))
