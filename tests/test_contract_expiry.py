"""Expiry (`ttl_seconds`), on every backend, with the service's clock moved by the tests: an expired
state is absent to every read and every condition from the very second it expires."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from app.states.model import MAX_TTL_SECONDS
from support.api import assert_problem, batch_get, delete_op, put_op, state_body, state_path, transact
from support.clock import MovableClock
from support.differences import DYNALITE_HAS_NO_TRANSACTIONS, SQLITE_HAS_NO_ITEM_LIMIT
from support.uvicorn_thread import serving

TTL = 60


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(scope="module")
def expiring_url(backend: str, settings_for: Callable[..., Settings], clock: MovableClock) -> Iterator[str]:
    with serving(create_app(settings_for(backend), clock=clock)) as url:
        yield url


@pytest.fixture
async def client(expiring_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=expiring_url, timeout=30) as http:
        yield http


async def put_expiring(client: httpx.AsyncClient, state_id: str, version: int = 1, **headers: str) -> int:
    """Write a state that expires TTL seconds from a whole second of the clock; its `expires_at`."""
    response = await client.put(
        state_path(state_id), json=state_body(version, ttl_seconds=TTL), headers=headers
    )
    assert response.status_code in (200, 201), response.text
    return int(response.json()["expires_at"])


async def expire(client: httpx.AsyncClient, clock: MovableClock, state_id: str) -> None:
    """Write a state that expires, and move the clock to the second it does."""
    clock.move_to_next_second()
    clock.move_to(await put_expiring(client, state_id))


@pytest.mark.parametrize("ttl", [0, -1, MAX_TTL_SECONDS + 1, "60", 1.5, True, {}])
async def test_a_ttl_outside_1_second_to_10_years_is_a_422_naming_it(
    client: httpx.AsyncClient, state_id: str, ttl: object
) -> None:
    response = await client.put(state_path(state_id), json=state_body(1, ttl_seconds=ttl))
    problem = assert_problem(response, 422)
    assert [error["loc"] for error in problem["errors"]] == [["body", "ttl_seconds"]]
    assert (await client.get(state_path(state_id))).status_code == 404


@pytest.mark.parametrize("ttl", [1, MAX_TTL_SECONDS, 60.0])
async def test_the_bounds_of_ttl_and_a_whole_float_are_accepted(
    client: httpx.AsyncClient, clock: MovableClock, state_id: str, ttl: float
) -> None:
    """A whole float is an integer to JSON Schema, as for every integer of the API."""
    now = clock.move_to_next_second()
    response = await client.put(state_path(state_id), json=state_body(1, ttl_seconds=ttl))
    assert response.status_code == 200, response.text
    assert response.json()["expires_at"] == str(now + int(ttl))


async def test_expires_at_is_shown_while_the_state_expires_and_a_write_without_ttl_clears_it(
    client: httpx.AsyncClient, clock: MovableClock, state_id: str
) -> None:
    now = clock.move_to_next_second()
    assert await put_expiring(client, state_id) == now + TTL
    assert (await client.get(state_path(state_id))).json()["expires_at"] == str(now + TTL)
    [found] = (await batch_get(client, [state_id])).json()["states"]
    assert found["expires_at"] == str(now + TTL)

    cleared = await client.put(state_path(state_id), json=state_body(2))
    assert "expires_at" not in cleared.json()
    clock.move_to(now + TTL)
    state = (await client.get(state_path(state_id))).json()
    assert state["version_number"] == "2"
    assert "expires_at" not in state


async def test_a_ttl_that_starts_within_a_second_counts_from_its_end(
    client: httpx.AsyncClient, clock: MovableClock, state_id: str
) -> None:
    """A state lives at least ttl_seconds: the write's time is rounded up to the whole second."""
    now = clock.move_to_next_second()
    clock.move_to(now + 0.25)
    assert await put_expiring(client, state_id) == now + 1 + TTL


async def test_every_read_finds_the_state_until_the_second_it_expires_and_none_from_then(
    client: httpx.AsyncClient, clock: MovableClock, state_id: str
) -> None:
    clock.move_to_next_second()
    expires_at = await put_expiring(client, state_id)
    path = state_path(state_id)
    clock.move_to(expires_at - 0.001)
    assert (await client.get(path)).status_code == 200
    assert (await client.head(path)).status_code == 200
    assert (await client.get(path, headers={"If-None-Match": '"1"'})).status_code == 304
    assert [s["persistence_id"] for s in (await batch_get(client, [state_id])).json()["states"]] == [state_id]

    clock.move_to(expires_at)
    assert_problem(await client.get(path), 404)
    assert_problem(await client.get(path, params={"decode": "true"}), 404)
    assert (await client.head(path)).status_code == 404
    assert_problem(await client.get(path, headers={"If-None-Match": '"1"'}), 404)
    answer = (await batch_get(client, [state_id, f"{state_id}-never-written"])).json()
    assert answer == {"states": [], "missing": [state_id, f"{state_id}-never-written"], "unprocessed": []}


async def test_if_none_match_star_creates_over_an_expired_state(
    client: httpx.AsyncClient, clock: MovableClock, state_id: str
) -> None:
    await expire(client, clock, state_id)
    created = await client.put(state_path(state_id), json=state_body(1), headers={"If-None-Match": "*"})
    assert created.status_code == 201, created.text
    assert "expires_at" not in (await client.get(state_path(state_id))).json()


@pytest.mark.parametrize("if_match", ['"1"', "1", "*"])
async def test_if_match_fails_on_an_expired_state_as_on_a_missing_one(
    client: httpx.AsyncClient, clock: MovableClock, state_id: str, if_match: str
) -> None:
    await expire(client, clock, state_id)
    path = state_path(state_id)
    for response in (
        await client.put(path, json=state_body(2), headers={"If-Match": if_match}),
        await client.delete(path, headers={"If-Match": if_match}),
        await client.get(path, headers={"If-Match": if_match}),
    ):
        assert "current_version" not in assert_problem(response, 412)
    assert (await client.get(path)).status_code == 404


async def test_a_retry_never_brings_an_expired_state_back(
    client: httpx.AsyncClient, clock: MovableClock, state_id: str
) -> None:
    """The write of version 2 over 1 was stored, its answer lost, and the state expired before the retry:
    the stored state is the retry's own, but it has expired, so the retry's If-Match fails."""
    clock.move_to_next_second()
    await put_expiring(client, state_id, 1)
    expires_at = await put_expiring(client, state_id, 2, **{"If-Match": '"1"'})
    clock.move_to(expires_at)
    retried = await client.put(
        state_path(state_id), json=state_body(2, ttl_seconds=TTL), headers={"If-Match": '"1"'}
    )
    assert "current_version" not in assert_problem(retried, 412)
    assert (await client.get(state_path(state_id))).status_code == 404


async def test_the_version_guard_takes_an_expired_state_for_none(
    backend: str, settings_for: Callable[..., Settings], clock: MovableClock, state_id: str
) -> None:
    with serving(create_app(settings_for(backend, version_guard="monotonic"), clock=clock)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            clock.move_to_next_second()
            expires_at = await put_expiring(client, state_id, 5)
            clock.move_to(expires_at)
            restarted = await client.put(state_path(state_id), json=state_body(1))
            assert restarted.status_code == 200, restarted.text
            assert (await client.get(state_path(state_id))).json()["version_number"] == "1"


async def test_a_state_written_without_ttl_never_expires(
    client: httpx.AsyncClient, clock: MovableClock, state_id: str
) -> None:
    assert (await client.put(state_path(state_id), json=state_body(1))).status_code == 200
    clock.move_to(clock.seconds + 20 * 365 * 24 * 3600)
    assert (await client.get(state_path(state_id))).status_code == 200


def number_bytes(value: int) -> int:
    """DynamoDB's count for a number (as in test_contract_limits.py)."""
    return (len(str(value).strip("0")) + 1) // 2 + 1


@SQLITE_HAS_NO_ITEM_LIMIT
async def test_the_expiry_attribute_counts_toward_the_item_size(
    client: httpx.AsyncClient, clock: MovableClock, state_id: str
) -> None:
    """A state that just fits without expiry is one attribute too large with it: `ExpiresAt` and its
    number count as DynamoDB counts them."""
    from test_contract_limits import ITEM_LIMIT, LARGE_ITEM, body_of_item_size

    clock.move_to_next_second()
    expires_at = clock.seconds + TTL
    attribute = len("ExpiresAt") + number_bytes(expires_at)
    body = {**body_of_item_size(state_id, ITEM_LIMIT - attribute + 1), "ttl_seconds": TTL}
    assert str(ITEM_LIMIT) in assert_problem(await client.put(state_path(state_id), json=body), 413)["detail"]
    body = {**body_of_item_size(state_id, LARGE_ITEM), "ttl_seconds": TTL}
    assert (await client.put(state_path(state_id), json=body)).status_code == 200


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_transactions_puts_expire_and_its_conditions_take_expired_states_for_none(
    client: httpx.AsyncClient, clock: MovableClock, state_id: str
) -> None:
    ids = [f"{state_id}-{n}" for n in range(4)]
    now = clock.move_to_next_second()
    written = await transact(client, *(put_op(i, 1, ttl_seconds=TTL) for i in ids))
    assert written.status_code == 200, written.text
    assert [r["expires_at"] for r in written.json()["results"]] == [str(now + TTL)] * len(ids)
    clock.move_to(now + TTL)
    assert (await batch_get(client, ids)).json()["missing"] == ids

    for refused_operation in (put_op(ids[0], 2, if_match=1), delete_op(ids[0], if_match=1)):
        problem = assert_problem(await transact(client, put_op(ids[1], 1), refused_operation), 412)
        assert (problem["operation_index"], problem["persistence_id"]) == (1, ids[0])
        assert "current_version" not in problem
    created = await transact(client, put_op(ids[2], 1, if_none_match=True), delete_op(ids[3]))
    assert created.status_code == 200, created.text
    assert "expires_at" not in created.json()["results"][0]
    assert (await batch_get(client, ids)).json()["missing"] == [ids[0], ids[1], ids[3]]


async def test_a_transactions_ttl_outside_its_range_is_a_422_naming_the_operation(
    client: httpx.AsyncClient, state_id: str
) -> None:
    problem = assert_problem(await transact(client, put_op(state_id, 1, ttl_seconds=0)), 422)
    assert [error["loc"] for error in problem["errors"]] == [["body", "operations", 0, "put", "ttl_seconds"]]
