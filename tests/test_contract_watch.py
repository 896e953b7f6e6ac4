"""Waiting for a change (`GET /states/{id}?wait=S` with `If-None-Match`), on every backend: a waiter sees a
write through its own replica, through another replica, and straight to the table by another program.

Timings are never asserted tightly: a test waits for the waiter to be registered (the waiters gauge), then
writes, and asserts that the answer is the write's, well before the wait would have run out.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from scripts.servers import serving_process
from support.api import assert_problem, state_body, state_path
from support.metrics import sample_value
from support.processes import json_lines
from support.raw_http import connect
from support.services import DYNAMODB_SERVERS, TABLE, ServiceFactory, server_endpoint
from support.slots import READ_ID, full_service

POLL_MS = 200
LONG_WAIT = 30  # seconds: a waiter that runs this long has missed the change
NEVER_POLLS = 60_000  # ms: the poller stays out of a test of this replica's own writes


@pytest.fixture
def storage(backend: str, tmp_path: Path) -> dict[str, Any]:
    """Settings that make several services share one store: a file, or the default table."""
    return {"sqlite_path": tmp_path / "shared.db"} if backend == "sqlite" else {}


@pytest.fixture
def replicas(
    ready_backend: str, storage: dict[str, Any], start_service: ServiceFactory
) -> Iterator[tuple[str, str]]:
    """Two services on one store, each polling every POLL_MS."""
    with (
        start_service(ready_backend, watch_poll_ms=POLL_MS, **storage) as first,
        start_service(ready_backend, watch_poll_ms=POLL_MS, **storage) as second,
    ):
        yield first, second


async def waiters(client: httpx.AsyncClient) -> float:
    return sample_value((await client.get("/metrics")).text, "statestore_watch_waiters")


async def until_waiting(client: httpx.AsyncClient, count: int = 1) -> None:
    """Returns once `count` requests wait on the service (bounded: 10 s)."""
    for _ in range(200):
        if await waiters(client) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} waiters never registered")


async def until_no_one_waits(client: httpx.AsyncClient) -> None:
    """Returns once no request waits on the service (bounded: 20 s, a third of the longest wait)."""
    for _ in range(200):
        if await waiters(client) == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("a waiter kept its place")


def waiting_head(path: str, version: int, *fields: str) -> bytes:
    """A raw GET that waits 60 s (the most) on `version`, for a client that will hang up."""
    lines = [f"GET {path}?wait=60 HTTP/1.1", "Host: 127.0.0.1", f'If-None-Match: "{version}"', *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def wait_for(client: httpx.AsyncClient, persistence_id: str, version: int, seconds: int = LONG_WAIT) -> Any:
    return asyncio.create_task(
        client.get(
            state_path(persistence_id), params={"wait": seconds}, headers={"If-None-Match": f'"{version}"'}
        )
    )


async def answered_within(waiter: Any, seconds: float) -> httpx.Response:
    response: httpx.Response = await asyncio.wait_for(waiter, seconds)
    return response


async def waited_on_across(
    replicas: tuple[str, str], persistence_id: str, change: Callable[[httpx.AsyncClient], Awaitable[None]]
) -> httpx.Response:
    """The answer of a waiter on the first replica, on version 1 written through the second, once `change`
    has been made through the second."""
    first, second = replicas
    async with (
        httpx.AsyncClient(base_url=first, timeout=60) as watcher,
        httpx.AsyncClient(base_url=second, timeout=60) as writer,
    ):
        await writer.put(state_path(persistence_id), json=state_body(1))
        waiter = wait_for(watcher, persistence_id, 1)
        await until_waiting(watcher)
        assert not waiter.done()
        await change(writer)
        return await answered_within(waiter, LONG_WAIT / 2)


def write_around_the_service(backend: str, request: pytest.FixtureRequest, storage: dict[str, Any]) -> Any:
    """A writer of raw states, as another program writes them: SQL on the file, or PutItem on the table."""
    if backend == "sqlite":

        def write_row(persistence_id: str, version: int) -> None:
            with sqlite3.connect(storage["sqlite_path"]) as connection:
                connection.execute(
                    "INSERT OR REPLACE INTO states"
                    " (persistence_id, version_number, manifest, payload, timestamp, shard)"
                    " VALUES (?, ?, 'acme.Raw', x'0a01', 1, 0)",
                    (persistence_id, version),
                )

        return write_row
    table = boto3.client("dynamodb", endpoint_url=server_endpoint(backend, request), region_name="us-east-1")

    def put_item(persistence_id: str, version: int) -> None:
        item = {
            "PersistenceID": {"S": persistence_id},
            "VersionNumber": {"N": str(version)},
            "StatePayload": {"B": b"\x0a\x01"},
            "StateManifest": {"S": "acme.Raw"},
            "Timestamp": {"N": "1"},
            "ShardNumber": {"N": "0"},
        }
        table.put_item(TableName=TABLE, Item=item)

    return put_item


async def test_a_waiter_answers_at_once_when_the_state_already_differs(
    client: httpx.AsyncClient, state_id: str
) -> None:
    await client.put(state_path(state_id), json=state_body(2))
    response = await answered_within(wait_for(client, state_id, 1), LONG_WAIT / 2)
    assert response.status_code == 200
    assert response.json()["version_number"] == "2"


async def test_a_waiter_wakes_at_once_on_a_write_through_its_own_replica(
    ready_backend: str, start_service: ServiceFactory, state_id: str
) -> None:
    with start_service(ready_backend, watch_poll_ms=NEVER_POLLS) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await client.put(state_path(state_id), json=state_body(1))
            waiter = wait_for(client, state_id, 1)
            await until_waiting(client)
            assert not waiter.done()
            written = await client.put(state_path(state_id), json=state_body(2))
            response = await answered_within(waiter, LONG_WAIT / 2)
            delivered = sample_value(
                (await client.get("/metrics")).text, "statestore_watch_changes_delivered_total"
            )
    assert written.status_code == 200
    assert response.status_code == 200
    assert response.headers["etag"] == '"2"'
    assert response.json()["version_number"] == "2"
    assert delivered == 1


async def test_a_waiter_wakes_on_a_write_through_another_replica(
    replicas: tuple[str, str], state_id: str
) -> None:
    async def write(writer: httpx.AsyncClient) -> None:
        await writer.put(state_path(state_id), json=state_body(2, b"\x0a\x02ho"))

    response = await waited_on_across(replicas, state_id, write)
    assert response.status_code == 200
    assert response.json()["version_number"] == "2"
    assert response.json()["payload"] == "CgJobw=="


async def test_a_waiter_wakes_on_a_write_straight_to_the_table(
    replicas: tuple[str, str],
    ready_backend: str,
    storage: dict[str, Any],
    request: pytest.FixtureRequest,
    state_id: str,
) -> None:
    write = write_around_the_service(ready_backend, request, storage)
    async with httpx.AsyncClient(base_url=replicas[0], timeout=60) as client:
        await client.put(state_path(state_id), json=state_body(1))
        waiter = wait_for(client, state_id, 1)
        await until_waiting(client)
        assert not waiter.done()
        await asyncio.to_thread(write, state_id, 5)
        response = await answered_within(waiter, LONG_WAIT / 2)
    assert response.status_code == 200
    assert response.json()["version_number"] == "5"
    assert response.json()["manifest"] == "acme.Raw"


async def test_a_waiter_answers_404_once_the_state_is_deleted(
    replicas: tuple[str, str], state_id: str
) -> None:
    async def delete(writer: httpx.AsyncClient) -> None:
        await writer.delete(state_path(state_id))

    assert_problem(await waited_on_across(replicas, state_id, delete), 404)


async def test_a_waiter_answers_304_when_nothing_changes_in_time(
    client: httpx.AsyncClient, state_id: str
) -> None:
    await client.put(state_path(state_id), json=state_body(4))
    started = time.monotonic()
    response = await answered_within(wait_for(client, state_id, 4, seconds=1), LONG_WAIT / 2)
    assert response.status_code == 304
    assert response.headers["etag"] == '"4"'
    assert time.monotonic() - started >= 1


@pytest.mark.parametrize("wait", ["0", "61", "-1", "1.5", "x", ""])
async def test_a_wait_out_of_range_is_422(client: httpx.AsyncClient, state_id: str, wait: str) -> None:
    response = await client.get(state_path(state_id), params={"wait": wait}, headers={"If-None-Match": '"1"'})
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["query", "wait"]


async def test_waiters_beyond_the_limit_are_503_and_do_not_count_against_concurrency(
    ready_backend: str, start_service: ServiceFactory, state_id: str
) -> None:
    with start_service(ready_backend, max_waiters=2, max_concurrent_requests=1) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await client.put(state_path(state_id), json=state_body(1))
            held = []
            for count in (1, 2):  # each takes the one slot for its first read, then gives it back to wait
                held.append(wait_for(client, state_id, 1))
                await until_waiting(client, count)
            refused = await client.get(
                state_path(state_id), params={"wait": 5}, headers={"If-None-Match": '"1"'}
            )
            plain_read = await client.get(state_path(state_id))
            await client.put(state_path(state_id), json=state_body(2))
            answers = await asyncio.gather(*held)
    assert_problem(refused, 503)
    assert refused.headers["retry-after"] == "1"
    assert plain_read.status_code == 200
    assert [answer.status_code for answer in answers] == [200, 200]


async def test_wait_exempts_a_request_from_the_concurrency_limit_only_once_it_waits(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    """A listing ignores `wait`, and a read whose `If-None-Match` does not match answers at once: neither
    waits, so each is refused by a full service as a plain read is (before, 200 flooders with `wait=1`
    on a limit of 16 got no 503)."""
    async with full_service(start_service, tmp_path) as service:
        await service.refused_read()
        listing = await service.client.get("/states", params={"wait": "1"})
        no_match = await service.client.get(state_path(READ_ID), params={"wait": "1"})
        other_version = await service.client.get(
            state_path(READ_ID), params={"wait": "1"}, headers={"If-None-Match": '"7"'}
        )
    assert_problem(listing, 503)
    assert_problem(no_match, 503)
    assert_problem(other_version, 503)


async def test_a_waiter_whose_client_hangs_up_gives_its_place_back(
    ready_backend: str, start_service: ServiceFactory, state_id: str
) -> None:
    """The first waiter's client closes its connection while it waits for up to 60 s: its place is freed
    well before, so that the one place `max_waiters=1` allows takes the next waiter, which sees the change."""
    path = state_path(state_id)
    with start_service(ready_backend, max_waiters=1) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await client.put(path, json=state_body(1))
            with connect(url) as sock:
                sock.sendall(waiting_head(path, 1))
                await until_waiting(client)
            await until_no_one_waits(client)
            waiter = wait_for(client, state_id, 1)
            await until_waiting(client)
            assert not waiter.done()
            await client.put(path, json=state_body(2))
            response = await answered_within(waiter, LONG_WAIT / 2)
            metrics = (await client.get("/metrics")).text
    assert response.status_code == 200
    assert response.json()["version_number"] == "2"
    assert sample_value(metrics, "statestore_watch_waiters") == 0
    answered = {"route": "/states/{persistence_id}", "method": "GET"}
    assert sample_value(metrics, "statestore_http_requests_total", status="499", **answered) == 1
    assert sample_value(metrics, "statestore_http_requests_total", status="200", **answered) == 1
    assert sample_value(metrics, "statestore_watch_changes_delivered_total") == 1


async def test_a_waiter_whose_client_hangs_up_is_logged_once_at_info_as_499(tmp_path: Path) -> None:
    """Through `statestore serve` and its own HTTP protocol, as in production: the access log says the
    client left, as it does of a client that leaves mid-body, and nothing is logged as an error."""
    log = tmp_path / "stderr.log"
    env = {"STATESTORE_SQLITE_PATH": str(tmp_path / "states.db")}
    path = state_path("hung-up")
    with serving_process(env=env, stderr_to=log) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await client.put(path, json=state_body(1))
            with connect(url) as sock:
                sock.sendall(waiting_head(path, 1, "X-Request-ID: hung-up"))
                await until_waiting(client)
            await until_no_one_waits(client)
    logged = [line for line in json_lines(log) if line.get("request_id") == "hung-up"]
    assert [(line["logger"], line["level"], line["status"]) for line in logged] == [
        ("statestore.access", "info", 499)
    ]
    assert [line for line in json_lines(log) if line["level"] in ("warning", "error")] == []
    assert "Traceback" not in json.dumps(json_lines(log))


@pytest.mark.parametrize("backend", list(DYNAMODB_SERVERS), indirect=True)
async def test_many_waiters_on_one_id_cost_one_read_per_poll(
    ready_backend: str, start_service: ServiceFactory, state_id: str
) -> None:
    clients = 50
    with start_service(ready_backend, watch_poll_ms=POLL_MS) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await client.put(state_path(state_id), json=state_body(1))
            held = [wait_for(client, state_id, 1, seconds=2) for _ in range(clients)]
            started = time.monotonic()
            answers = await asyncio.gather(*held)
            metrics = (await client.get("/metrics")).text
            # The poller goes on after the waiters leave (the watch lingers), so the polls counted are those
            # done by the time the metrics were read: the time they had is measured up to then.
            elapsed = time.monotonic() - started
    polls = sample_value(metrics, "statestore_watch_polled_ids_total")
    assert [answer.status_code for answer in answers] == [304] * clients
    assert 1 <= polls <= elapsed / (POLL_MS / 1000) + 1


async def test_a_waiter_on_a_state_that_expires_answers_404(replicas: tuple[str, str], state_id: str) -> None:
    async with httpx.AsyncClient(base_url=replicas[0], timeout=60) as client:
        await client.put(state_path(state_id), json=state_body(1, ttl_seconds=1))
        response = await answered_within(wait_for(client, state_id, 1), LONG_WAIT / 2)
    assert_problem(response, 404)
