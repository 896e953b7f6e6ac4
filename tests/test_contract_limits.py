"""Size limits, on every backend: DynamoDB's 400 KB item rule and the request body cap."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from app.states.model import new_write_key
from support.api import MANIFEST, assert_problem, state_body, state_path
from support.differences import MOTO_ITEM_LIMIT_IS_LOWER, SQLITE_HAS_NO_ITEM_LIMIT

ITEM_LIMIT = 409_600
LARGE_ITEM = 300_000  # within moto's limit too, which counts binary values by their base64 text
TIMESTAMP = 1_764_115_200_000


def item_overhead(persistence_id: str) -> int:
    """Everything but the payload, counted as DynamoDB does: names, strings' UTF-8, numbers' digits."""
    names = len("PersistenceIDVersionNumberStatePayloadStateManifestTimestampShardNumberWriteKey")
    version_1, timestamp_17641152, shard_0 = 2, 5, 2  # (significant digits + 1) // 2 + 1 each
    write_key = len(new_write_key())  # the key the service draws for a write that sends none
    return (
        names
        + len(persistence_id.encode())
        + len(MANIFEST)
        + version_1
        + timestamp_17641152
        + shard_0
        + write_key
    )


def body_of_item_size(persistence_id: str, size: int) -> dict[str, object]:
    return state_body(1, b"\x00" * (size - item_overhead(persistence_id)), timestamp=TIMESTAMP)


@SQLITE_HAS_NO_ITEM_LIMIT
async def test_an_item_just_over_400_kb_is_refused(client: httpx.AsyncClient, state_id: str) -> None:
    response = await client.put(state_path(state_id), json=body_of_item_size(state_id, ITEM_LIMIT + 1))
    problem = assert_problem(response, 413)
    assert str(ITEM_LIMIT) in problem["detail"]
    assert (await client.get(state_path(state_id))).status_code == 404


async def test_a_large_item_within_every_limit_round_trips(client: httpx.AsyncClient, state_id: str) -> None:
    body = body_of_item_size(state_id, LARGE_ITEM)
    assert (await client.put(state_path(state_id), json=body)).status_code == 200
    assert (await client.get(state_path(state_id))).json()["payload"] == body["payload"]


@MOTO_ITEM_LIMIT_IS_LOWER
async def test_an_item_of_exactly_400_kb_is_stored(client: httpx.AsyncClient, state_id: str) -> None:
    """DynamoDB's limit is 400 KB, 409,600 bytes, names and values together (Developer Guide, "Service,
    account, and table quotas": "Item size")."""
    body = body_of_item_size(state_id, ITEM_LIMIT)
    assert (await client.put(state_path(state_id), json=body)).status_code == 200
    assert (await client.get(state_path(state_id))).json()["payload"] == body["payload"]


@SQLITE_HAS_NO_ITEM_LIMIT
async def test_a_negative_timestamps_sign_counts_toward_the_item_size(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """The item just fits with a positive timestamp (`test_an_item_of_exactly_400_kb_is_stored`); its
    sign is one byte more."""
    body = {**body_of_item_size(state_id, ITEM_LIMIT), "timestamp": -TIMESTAMP}
    problem = assert_problem(await client.put(state_path(state_id), json=body), 413)
    assert str(ITEM_LIMIT) in problem["detail"]


async def test_a_declared_body_far_over_the_cap_is_refused_unread(service_url: str, state_id: str) -> None:
    host, port = service_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"PUT {state_path(state_id)} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {64 * 1024 * 1024}\r\n\r\n"
    )
    writer.write(head.encode() + b"{")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), timeout=5)
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413 ")
    assert b"application/problem+json" in rest


async def test_a_streamed_body_over_the_cap_is_refused(
    client: httpx.AsyncClient, service_url: str, state_id: str
) -> None:
    host, port = service_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"PUT {state_path(state_id)} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    writer.write(head.encode())

    async def send_chunks() -> None:
        chunk = b"%x\r\n%s\r\n" % (1024 * 1024, b" " * (1024 * 1024))
        with contextlib.suppress(ConnectionError):
            for _ in range(12):  # 12 MiB, over the 8 MiB cap, without a Content-Length
                writer.write(chunk)
                await writer.drain()

    sending = asyncio.create_task(send_chunks())
    # The server answers and closes with the body unread, so the client's kernel gets a reset for the
    # chunks still arriving; if that reset lands before the answer is read, it discards the answer.
    # Either way the body is refused (the answer itself is checked in full in test_request_bodies.py).
    try:
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    except ConnectionResetError:
        answer = None
    await sending
    writer.close()
    if answer is not None:
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b"application/problem+json" in answer
    assert (await client.get(state_path(state_id))).status_code == 404


@SQLITE_HAS_NO_ITEM_LIMIT
@pytest.mark.parametrize("size", [ITEM_LIMIT + 1, 2 * ITEM_LIMIT])
async def test_refusals_do_not_depend_on_the_payload_form(
    client: httpx.AsyncClient, state_id: str, size: int
) -> None:
    body = body_of_item_size(state_id, size)
    body["payload"] = str(body["payload"]).rstrip("=").replace("+", "-").replace("/", "_")
    assert_problem(await client.put(state_path(state_id), json=body), 413)
