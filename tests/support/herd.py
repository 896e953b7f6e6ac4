"""Herds of waiters over bare asyncio connections: hundreds of `GET ?wait=` at once cost a connection each
and no client library's pool, and a waiter can hang up mid-wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from support.api import state_path
from support.metrics import sample_value


@dataclass(frozen=True)
class Answer:
    status: int
    etag: str | None


def waiting_request(persistence_id: str, version: int, seconds: int) -> bytes:
    lines = [
        f"GET {state_path(persistence_id)}?wait={seconds} HTTP/1.1",
        "Host: 127.0.0.1",
        f'If-None-Match: "{version}"',
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        await writer.wait_closed()


async def wait_on(url: str, persistence_id: str, version: int, seconds: int) -> Answer:
    """The answer of one waiter on `version` of the state, read until the server closes."""
    async with opened(url) as (reader, writer):
        writer.write(waiting_request(persistence_id, version, seconds))
        answer = await reader.read()
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in head[1:])
    return Answer(int(head[0].split()[1]), fields.get("etag"))


async def hang_up_after_waiting(url: str, persistence_id: str, version: int, hang_up: asyncio.Event) -> None:
    """A waiter whose client closes its connection once `hang_up` is set."""
    async with opened(url) as (_, writer):
        writer.write(waiting_request(persistence_id, version, 60))
        await hang_up.wait()


async def waiters(client: httpx.AsyncClient) -> float:
    return sample_value((await client.get("/metrics")).text, "statestore_watch_waiters")


async def until_waiters(client: httpx.AsyncClient, count: int, attempts: int = 1000) -> None:
    """Returns once exactly `count` requests wait (bounded: `attempts` looks at the gauge, 10 ms apart)."""
    for _ in range(attempts):
        if await waiters(client) == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{await waiters(client)} waiters, never {count}")
