"""BatchGetItem for up to 1000 ids, filling one bounded answer (`AnswerBudget`) and no more.

Each call asks for as many keys (up to 100) as the largest state seen so far says fit in 4 MiB (or in
what the endpoint answered to a call it cut short, which dynalite does at about 1 MB), and
several calls run at once as long as their keys, times that largest state, fit in what the answer may
still take; so the service stops asking once the answer is full instead of reading everything and
trimming, and no single call's answer (which the SDK holds whole, in base64 JSON, while it parses it)
gets large. Until a state has been seen, each is assumed as large as an item can be.

DynamoDB answers part of a call and hands back the rest as `UnprocessedKeys` when the answer passes its
size limit (16 MB; dynalite stops at about 1 MB) or when it throttles. A call that ends in a throttling
(or busy) error once the SDK's own retries are spent reads nothing: all its keys are left over, and the
other calls of its round keep what they read. A call that read something is followed at once by another
for its leftover keys; a round in which no call read anything, or in which a call was throttled, backs
off, with exponential backoff and full jitter. Either way, no call starts once half the deadline has
passed, and calls still in flight at 80% of it are given up (the calls of their round that answered keep
their states): whatever is still unread then goes back to the client as `unprocessed`. Only an answer in
which not one id could be read is a 503. Any other error of a call (a missing table, a refused request)
fails the whole read, as it would a single call.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from app.errors import BackendUnavailable
from app.states.answers import AnswerBudget, BatchRead
from app.states.model import MAX_ITEM_BYTES, StateRecord, item_size
from app.store.dynamodb._offload import payload_ref
from app.store.dynamodb.codec import HASH_KEY, from_item, key_of
from app.store.dynamodb.errors import retry_may_cure

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

Pointing = dict[str, Mapping[str, Any]]
"""The items, by id, of states read without their payload, which lies in S3 (`_offload.payload_ref`)."""
Answer = tuple[list[Any], list[str], bool]
"""What one call answered: its items, the ids it left unprocessed, and whether it was throttled."""

MAX_KEYS_PER_CALL = 100
MAX_CALL_ANSWER_BYTES = 4 * 1024 * 1024
# A call cut short after this much is taken for the endpoint's limit on one answer, and later calls ask
# for no more; a call cut short below it was throttled, which says nothing about sizes.
MIN_SIZE_LIMIT_BYTES = 512 * 1024
# A 1000-id read of small states is 10 calls: 4 at a time make it a few round trips instead of 10, yet one
# request never holds more than 4 of the client's 64 pooled connections.
CONCURRENT_CALLS = 4
# Calls still in flight at this fraction of the deadline are given up, their keys unprocessed, so that
# the states already read are answered rather than lost to the deadline's 503.
ANSWER_BY_FRACTION = 0.8
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 1.0


async def batch_get(
    client: DynamoDBClient, table: str, persistence_ids: Sequence[str], deadline: float
) -> tuple[BatchRead, Pointing]:
    """The stored states of distinct ids, as many as fit in one answer; raises 503 when none could be read.

    A state whose item points to S3 counts in the answer with the size its pointer gives, and comes back
    without its payload, its item in `Pointing` for the caller to read the payload of: only the states that
    fit in the answer are ever read from S3."""
    loop = asyncio.get_running_loop()
    last_start = loop.time() + deadline / 2
    answer_by = loop.time() + deadline * ANSWER_BY_FRACTION
    budget = AnswerBudget()
    pending = list(persistence_ids)
    unread: list[str] = []
    idle_rounds = 0
    call_bytes = MAX_CALL_ANSWER_BYTES
    pointing: Pointing = {}
    while pending and not budget.full:
        calls = _next_calls(pending, budget, call_bytes)
        asked = sum(len(keys) for keys in calls)
        del pending[:asked]
        answers, given_up = await _round(client, table, calls, answer_by)
        left_over: list[str] = []
        throttled = False
        for items, unprocessed, call_throttled in answers:
            records = [_admit(budget, item, pointing, unread) for item in items]
            left_over += unprocessed
            throttled = throttled or call_throttled
            answered = sum(item_size(record) for record in records)
            if unprocessed and answered >= MIN_SIZE_LIMIT_BYTES:
                call_bytes = min(call_bytes, answered)
        pending[:0] = given_up + left_over
        if given_up:
            break
        if len(left_over) < asked and not throttled:
            idle_rounds = 0
        else:
            idle_rounds += 1
            pause = random.uniform(0, min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2**idle_rounds))  # noqa: S311
            if loop.time() + pause >= last_start:
                break
            await asyncio.sleep(pause)
        if loop.time() >= last_start:
            break
    unread += pending
    if persistence_ids and len(unread) == len(persistence_ids):
        raise BackendUnavailable(
            f"DynamoDB left all {len(unread)} requested states unread (throttled or slow); retry later",
            retry_after=1,
        )
    return budget.answer(persistence_ids, unread), pointing


def _admit(
    budget: AnswerBudget, item: Mapping[str, Any], pointing: Pointing, unread: list[str]
) -> StateRecord:
    """The item's state, admitted to the answer if it fits (else its id is unread); an offloaded one counts
    with its payload's size and is noted in `pointing`."""
    ref = payload_ref(item)
    record = from_item(item, None if ref is None else b"")
    if budget.admit(record, item_size(record) + (0 if ref is None else ref.size)):
        if ref is not None:
            pointing[record.persistence_id] = item
    else:
        unread.append(record.persistence_id)
    return record


def _next_calls(pending: Sequence[str], budget: AnswerBudget, call_bytes: int) -> list[Sequence[str]]:
    """The keys of the calls to make at once: as many as the answer still has room for, if all were large,
    each call asking no more than `call_bytes` of states."""
    largest = budget.largest or MAX_ITEM_BYTES
    keys_per_call = max(1, min(MAX_KEYS_PER_CALL, call_bytes // largest, budget.left // largest))
    calls = max(1, min(CONCURRENT_CALLS, budget.left // (keys_per_call * largest)))
    return [
        pending[start : start + keys_per_call]
        for start in range(0, min(len(pending), calls * keys_per_call), keys_per_call)
    ]


async def _ask(client: DynamoDBClient, table: str, keys: Sequence[str]) -> Answer:
    """One BatchGetItem call: the items it answered, the ids it left unprocessed, and whether it was
    throttled (then it answered nothing, and left every id). Any other error goes on up."""
    request: Any = {table: {"Keys": [key_of(i) for i in keys], "ConsistentRead": True}}
    try:
        response: Any = await client.batch_get_item(RequestItems=request)
    except ClientError as exc:
        if not retry_may_cure(exc):
            raise
        return [], list(keys), True
    left = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
    return response.get("Responses", {}).get(table, []), [key[HASH_KEY]["S"] for key in left], False


async def _round(
    client: DynamoDBClient, table: str, calls: Sequence[Sequence[str]], answer_by: float
) -> tuple[list[Answer], list[str]]:
    """The calls run concurrently: the answers of those done by `answer_by`, and the ids of those still in
    flight then, given up. The first call to fail cancels the others, and its error is raised as is, not
    in an ExceptionGroup, so the adapter's boundary translates it as it would the error of a single call.
    """
    tasks: list[asyncio.Task[Answer]] = []
    try:
        async with asyncio.timeout_at(answer_by), asyncio.TaskGroup() as group:
            tasks += [group.create_task(_ask(client, table, keys)) for keys in calls]
    except TimeoutError:
        pass
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    answers = [task.result() for task in tasks if not task.cancelled()]
    return answers, [i for task, keys in zip(tasks, calls, strict=True) if task.cancelled() for i in keys]
