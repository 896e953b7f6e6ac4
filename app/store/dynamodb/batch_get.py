"""BatchGetItem for any number of ids: chunks of 100 read concurrently, unprocessed keys asked again.

DynamoDB may answer a BatchGetItem with only part of the items and the rest as `UnprocessedKeys`
(throttling, or the 16 MB response limit). Those are asked again with exponential backoff and full
jitter until every key is answered or the deadline passes; then the whole read fails with 503, never
a silent partial answer.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from app.errors import BackendUnavailable
from app.states.model import StateRecord
from app.store.dynamodb.codec import from_item, key_of

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

T = TypeVar("T")

MAX_KEYS_PER_CALL = 100
# A 1000-id read is 10 chunks: 4 at a time make it 3 round trips instead of 10 (what counts against
# DynamoDB, where a call's time is mostly the round trip), yet one request never holds more than 4
# of the client's 64 pooled connections.
CONCURRENT_CHUNKS = 4
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 1.0


async def batch_get(
    client: DynamoDBClient, table: str, persistence_ids: Sequence[str], deadline: float
) -> list[StateRecord]:
    """The stored states of distinct ids; raises 503 when some stay unprocessed `deadline` s from now."""
    give_up_at = asyncio.get_running_loop().time() + deadline
    limit = asyncio.Semaphore(CONCURRENT_CHUNKS)

    async def read(chunk: Sequence[str]) -> list[StateRecord]:
        async with limit:
            return await _read_chunk(client, table, chunk, give_up_at)

    chunks = [
        persistence_ids[start : start + MAX_KEYS_PER_CALL]
        for start in range(0, len(persistence_ids), MAX_KEYS_PER_CALL)
    ]
    answers = await _all_or_first_error([read(chunk) for chunk in chunks])
    return [record for answer in answers for record in answer]


async def _read_chunk(
    client: DynamoDBClient, table: str, persistence_ids: Sequence[str], give_up_at: float
) -> list[StateRecord]:
    loop = asyncio.get_running_loop()
    request: Any = {table: {"Keys": [key_of(i) for i in persistence_ids], "ConsistentRead": True}}
    found: list[StateRecord] = []
    for attempt in itertools.count():
        response = await client.batch_get_item(RequestItems=request)
        found.extend(from_item(item) for item in response.get("Responses", {}).get(table, []))
        request = response.get("UnprocessedKeys") or {}
        if table in request:  # compatible endpoints may not echo it back
            request[table]["ConsistentRead"] = True
        if not request.get(table, {}).get("Keys"):
            break
        pause = random.uniform(0, min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2**attempt))  # noqa: S311
        if loop.time() + pause > give_up_at:
            left = len(request[table]["Keys"])
            raise BackendUnavailable(
                f"DynamoDB left {left} of the requested states unread (throttled or too large an answer)"
                " until the deadline; retry later",
                retry_after=1,
            )
        await asyncio.sleep(pause)
    return found


async def _all_or_first_error(calls: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run the calls concurrently; the first to fail cancels the others.

    Its error is raised as is, not in an ExceptionGroup, so the adapter's boundary translates it as it
    would the error of a single call.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]
