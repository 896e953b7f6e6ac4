"""Retries are told by the write's own identity (`Idempotency-Key`), never by equal content: on every backend.

Without a key, a failed condition is a 412 or 409, always, so that two clients racing with the identical
next state never both succeed; with one, a retry finds its key and content stored and is answered as the
first write was, and a key reused for other content is a 422.
"""

from __future__ import annotations

import asyncio
import base64
import uuid

import httpx
import pytest

from support.api import (
    assert_problem,
    delete_op,
    keyed,
    put_op,
    state_body,
    state_path,
    stored_versions,
    transact,
)
from support.differences import DYNALITE_HAS_NO_TRANSACTIONS

WRITERS = 8
ATTEMPTS_PER_WRITER = 12
COUNTER_SECONDS = 120.0


def new_key() -> str:
    return str(uuid.uuid4())


async def increment_forever(client: httpx.AsyncClient, path: str, *, with_keys: bool) -> int:
    """ATTEMPTS_PER_WRITER compare-and-set increments of the counter: how many were acknowledged (200)."""
    acknowledged = 0
    for _ in range(ATTEMPTS_PER_WRITER):
        read = await client.get(path)
        assert read.status_code == 200, read.text
        version, count = int(read.json()["version_number"]), int(base64.b64decode(read.json()["payload"]))
        written = await client.put(
            path,
            json=state_body(version + 1, str(count + 1).encode()),
            headers={"If-Match": f'"{version}"', **keyed(new_key() if with_keys else None)},
        )
        assert written.status_code in (200, 412), written.text
        acknowledged += written.status_code == 200
    return acknowledged


@pytest.mark.parametrize("with_keys", [False, True], ids=["without keys", "with keys"])
async def test_racing_increments_are_counted_once_each(
    client: httpx.AsyncClient, state_id: str, with_keys: bool
) -> None:
    """8 writers increment one counter with If-Match, writing payload n+1: writers that read the same
    version send identical states, and only one of them may be acknowledged."""
    path = state_path(state_id)
    assert (await client.put(path, json=state_body(0, b"0"))).status_code == 200
    async with asyncio.timeout(COUNTER_SECONDS):
        acknowledged = await asyncio.gather(
            *(increment_forever(client, path, with_keys=with_keys) for _ in range(WRITERS))
        )
    final = (await client.get(path)).json()
    assert int(base64.b64decode(final["payload"])) == sum(acknowledged) == int(final["version_number"])


async def test_a_retry_with_its_key_is_answered_as_the_first_write_was(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """The answer to the first write was lost; its retry fails If-Match but finds its own write stored."""
    path, key = state_path(state_id), new_key()
    assert (await client.put(path, json=state_body(1))).status_code == 200
    swap = {"If-Match": '"1"', **keyed(key)}
    first = await client.put(path, json=state_body(2, b"next"), headers=swap)
    retried = await client.put(path, json=state_body(2, b"next"), headers=swap)
    assert (first.status_code, retried.status_code) == (200, 200), retried.text
    assert (retried.json(), retried.headers["etag"]) == (first.json(), '"2"')
    created_key = {"If-None-Match": "*", **keyed(key)}
    created = await client.put(state_path(f"{state_id}-new"), json=state_body(1), headers=created_key)
    again = await client.put(state_path(f"{state_id}-new"), json=state_body(1), headers=created_key)
    assert (created.status_code, again.status_code) == (201, 201)
    assert again.json() == created.json()


async def test_without_a_key_a_repeated_write_is_a_412(client: httpx.AsyncClient, state_id: str) -> None:
    """The identical state stored proves nothing: another client may have written it."""
    path = state_path(state_id)
    assert (await client.put(path, json=state_body(1))).status_code == 200
    assert (await client.put(path, json=state_body(2), headers={"If-Match": '"1"'})).status_code == 200
    repeated = await client.put(path, json=state_body(2), headers={"If-Match": '"1"'})
    assert assert_problem(repeated, 412)["current_version"] == "2"
    other_key = await client.put(path, json=state_body(2), headers={"If-Match": '"1"', **keyed(new_key())})
    assert assert_problem(other_key, 412)["current_version"] == "2"


async def test_a_key_reused_with_other_content_is_a_422(client: httpx.AsyncClient, state_id: str) -> None:
    path, key = state_path(state_id), new_key()
    headers = {"If-None-Match": "*", **keyed(key)}
    assert (await client.put(path, json=state_body(1, b"mine"), headers=headers)).status_code == 201
    for other in (state_body(1, b"other"), state_body(2, b"mine"), state_body(1, b"mine", manifest="a.B")):
        problem = assert_problem(await client.put(path, json=other, headers=headers), 422)
        assert problem["type"] == "urn:statestore:problem:idempotency-key-reused"
        assert "Idempotency-Key" in problem["detail"]
    assert base64.b64decode((await client.get(path)).json()["payload"]) == b"mine"


@pytest.mark.parametrize(
    "value", ['"', '""', '"a"b"', '"a\\"b"', "a b", "x" * 256, '"' + "x" * 256 + '"', "caf\u00e9", "a, b"]
)
async def test_a_malformed_key_is_a_400_naming_the_header(
    client: httpx.AsyncClient, state_id: str, value: str
) -> None:
    response = await client.put(
        state_path(state_id), json=state_body(1), headers={b"Idempotency-Key": value.encode()}
    )
    assert "Idempotency-Key" in assert_problem(response, 400)["detail"]
    assert (await client.get(state_path(state_id))).status_code == 404


async def test_a_bare_key_is_the_same_key_as_the_string(client: httpx.AsyncClient, state_id: str) -> None:
    path, key = state_path(state_id), "x" * 255
    headers = {"If-None-Match": "*"}
    assert (await client.put(path, json=state_body(1), headers={**headers, **keyed(key)})).status_code == 201
    bare = await client.put(path, json=state_body(1), headers={**headers, "Idempotency-Key": key})
    assert bare.status_code == 201, bare.text


async def test_a_conditional_delete_retried_after_its_answer_is_a_412_without_a_version(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """Nothing is left to carry a key: the retry finds nothing stored, as after another client's delete."""
    path = state_path(state_id)
    assert (await client.put(path, json=state_body(3))).status_code == 200
    assert (await client.delete(path, headers={"If-Match": '"3"'})).status_code == 204
    retried = await client.delete(path, headers={"If-Match": '"3"', **keyed(new_key())})
    assert "current_version" not in assert_problem(retried, 412)


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_put_identical_to_the_stored_state_proves_no_retry_for_a_delete_of_nothing(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """A lease or fence check built as [put of what is stored, delete Y if_match 3], Y absent, must fail
    as the delete alone fails."""
    held, fence = f"{state_id}-held", f"{state_id}-fence"
    assert (await client.put(state_path(held), json=state_body(1))).status_code == 200
    response = await transact(client, put_op(held, 1), delete_op(fence, if_match=3))
    problem = assert_problem(response, 412)
    assert (problem["operation_index"], problem["persistence_id"]) == (1, fence)
    alone = assert_problem(await transact(client, delete_op(fence, if_match=3)), 412)
    assert alone["operation_index"] == 0


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_transaction_retried_with_its_key_is_answered_as_the_first_attempt_was(
    client: httpx.AsyncClient, state_id: str
) -> None:
    written, deleted, key = f"{state_id}-w", f"{state_id}-d", new_key()
    assert (await client.put(state_path(deleted), json=state_body(1))).status_code == 200
    operations = [put_op(written, 1), delete_op(deleted, if_match=1)]
    first = await transact(client, *operations, key=key)
    retried = await transact(client, *operations, key=key)
    assert (first.status_code, retried.status_code) == (200, 200), retried.text
    assert retried.json() == first.json()
    reused = await transact(client, put_op(written, 1, b"other"), delete_op(deleted, if_match=1), key=key)
    assert assert_problem(reused, 422)["type"] == "urn:statestore:problem:idempotency-key-reused"
    assert await stored_versions(client, [written, deleted]) == {written: "1", deleted: None}


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_identical_racing_transactions_do_not_both_succeed(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """Two clients' transactions that both move a state from 1 to the same 2: one of them is a 412."""
    await client.put(state_path(state_id), json=state_body(1))
    operation = put_op(state_id, 2, b"next", if_match=1)
    first = await transact(client, operation, key=new_key())
    second = await transact(client, operation, key=new_key())
    assert first.status_code == 200, first.text
    assert assert_problem(second, 412)["current_version"] == "2"
