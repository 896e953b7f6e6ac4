"""`STATESTORE_VERSION_GUARD=monotonic`: no write (PUT or transaction put) may keep or lower the version."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

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
from support.services import ServiceFactory


@pytest.fixture(scope="session")
def guarded_url(backend: str, start_service: ServiceFactory) -> Iterator[str]:
    with start_service(backend, version_guard="monotonic") as url:
        yield url


@pytest.fixture
async def guarded(guarded_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=guarded_url, timeout=30) as http:
        yield http


async def put(
    client: httpx.AsyncClient, persistence_id: str, version: int, payload: bytes, key: str | None = None
) -> httpx.Response:
    return await client.put(state_path(persistence_id), json=state_body(version, payload), headers=keyed(key))


@pytest.mark.parametrize("version", [4, 5])
async def test_put_that_does_not_move_the_version_forward_is_409(
    guarded: httpx.AsyncClient, state_id: str, version: int
) -> None:
    assert (await put(guarded, state_id, 5, b"five")).status_code == 200
    problem = assert_problem(await put(guarded, state_id, version, b"other"), 409)
    assert problem["current_version"] == "5"
    assert (await guarded.get(state_path(state_id))).json()["payload"] == "Zml2ZQ=="


async def test_put_that_moves_the_version_forward_succeeds(guarded: httpx.AsyncClient, state_id: str) -> None:
    assert (await put(guarded, state_id, 5, b"five")).status_code == 200
    assert (await put(guarded, state_id, 6, b"six")).status_code == 200


async def test_a_retried_put_of_the_stored_state_succeeds(guarded: httpx.AsyncClient, state_id: str) -> None:
    first = await put(guarded, state_id, 5, b"five", key=state_id)
    retried = await put(guarded, state_id, 5, b"five", key=state_id)
    assert (first.status_code, retried.status_code) == (200, 200)
    assert retried.headers["etag"] == '"5"'


async def test_a_repeated_put_of_the_stored_state_without_its_key_is_409(
    guarded: httpx.AsyncClient, state_id: str
) -> None:
    """eGo's stop-time re-write of the version already stored: egostore reads it back and calls it done."""
    assert (await put(guarded, state_id, 5, b"five")).status_code == 200
    assert assert_problem(await put(guarded, state_id, 5, b"five"), 409)["current_version"] == "5"


async def test_if_match_is_checked_before_the_guard(guarded: httpx.AsyncClient, state_id: str) -> None:
    await put(guarded, state_id, 5, b"five")
    response = await guarded.put(state_path(state_id), json=state_body(4), headers={"If-Match": '"3"'})
    assert assert_problem(response, 412)["current_version"] == "5"


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_transact_put_behind_the_stored_version_is_409_and_nothing_applies(
    guarded: httpx.AsyncClient, state_id: str
) -> None:
    ahead, behind = f"{state_id}-ahead", f"{state_id}-behind"
    await put(guarded, behind, 5, b"five")
    response = await transact(guarded, put_op(ahead, 1), put_op(behind, 3, b"zombie"))
    problem = assert_problem(response, 409)
    assert (problem["operation_index"], problem["persistence_id"], problem["current_version"]) == (
        1,
        behind,
        "5",
    )
    assert await stored_versions(guarded, [ahead, behind]) == {ahead: None, behind: "5"}


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_transact_retry_carrying_the_stored_state_succeeds(
    guarded: httpx.AsyncClient, state_id: str
) -> None:
    first, second = f"{state_id}-1", f"{state_id}-2"
    operations = [put_op(first, 2, b"a"), put_op(second, 7, b"b")]
    assert (await transact(guarded, *operations, key=state_id)).status_code == 200
    retried = await transact(guarded, *operations, key=state_id)
    assert retried.status_code == 200, retried.text
    assert [result["version_number"] for result in retried.json()["results"]] == ["2", "7"]
    assert assert_problem(await transact(guarded, *operations), 409)["current_version"] == "2"


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_transact_delete_is_not_guarded(guarded: httpx.AsyncClient, state_id: str) -> None:
    await put(guarded, state_id, 5, b"five")
    assert (await transact(guarded, delete_op(state_id))).status_code == 200
    assert (await put(guarded, state_id, 1, b"again")).status_code == 200
