"""BatchGetItem's UnprocessedKeys, made real by a proxy in front of moto.

Keys left after a call that read something are asked again at once; keys still left when half the
deadline has passed go back to the client as `unprocessed`; only an answer that read nothing is a 503.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.errors import BackendUnavailable
from app.store.dynamodb import CALL_DEADLINE_SECONDS, DynamoDBStore
from app.store.dynamodb.store import ClientKind
from support.api import batch_get, put_op, transact
from support.services import TABLE, ServiceFactory
from support.unprocessed_keys_proxy import UnprocessedKeysProxy, unprocessed_keys_proxy

# The service's own deadline. The read gives up at half of it; an answer or a 503 of its own (rather than
# the deadline's) shows that it did, whatever the speed of the machine.
DEADLINE_SECONDS = CALL_DEADLINE_SECONDS


@pytest.fixture(scope="module")
def proxy(dynamodb_endpoint: str) -> Iterator[tuple[str, UnprocessedKeysProxy]]:
    with unprocessed_keys_proxy(dynamodb_endpoint) as running:
        yield running


@pytest.fixture
def steer(proxy: tuple[str, UnprocessedKeysProxy]) -> Iterator[UnprocessedKeysProxy]:
    yield proxy[1]
    proxy[1].leave_unprocessed(0)


async def test_unprocessed_keys_are_read_again_until_every_state_is_answered(
    proxy: tuple[str, UnprocessedKeysProxy],
    steer: UnprocessedKeysProxy,
    start_service: ServiceFactory,
    state_id: str,
    dynamodb_path: str,
) -> None:
    requested = [f"{state_id}/{n}" for n in range(150)]
    stored = requested[::10]
    with start_service("moto", dynamodb_endpoint_url=proxy[0], dynamodb_client=dynamodb_path) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await transact(client, *(put_op(i, 1) for i in stored))).status_code == 200
            steer.leave_unprocessed(4)
            response = await batch_get(client, requested)
    assert response.status_code == 200
    assert steer.degraded == 4
    assert [state["persistence_id"] for state in response.json()["states"]] == stored
    assert response.json()["missing"] == [i for i in requested if i not in stored]
    assert response.json()["unprocessed"] == []


async def test_keys_still_unprocessed_after_half_the_deadline_go_back_to_the_client(
    proxy: tuple[str, UnprocessedKeysProxy],
    steer: UnprocessedKeysProxy,
    state_id: str,
    dynamodb_path: ClientKind,
) -> None:
    """Every call answers half its keys: the last key of each call is never read, and is unprocessed."""
    steer.leave_unprocessed(None)
    requested = [f"{state_id}/{n}" for n in range(150)]
    async with DynamoDBStore.open(TABLE, proxy[0], deadline=DEADLINE_SECONDS, client=dynamodb_path) as store:
        read = await store.get_many(requested)  # an answer, not the deadline's 503: it gave up in time
    assert read.found == []
    assert read.unprocessed, "the proxy never lets a call's last key through"
    assert read.unprocessed == [i for i in requested if i in set(read.unprocessed)]


async def test_an_answer_in_which_nothing_could_be_read_is_503(
    proxy: tuple[str, UnprocessedKeysProxy],
    steer: UnprocessedKeysProxy,
    state_id: str,
    dynamodb_path: ClientKind,
) -> None:
    """One key per call, never read: backoff only, then a 503 rather than an answer all unprocessed."""
    steer.leave_unprocessed(None)
    async with DynamoDBStore.open(TABLE, proxy[0], deadline=DEADLINE_SECONDS, client=dynamodb_path) as store:
        with pytest.raises(BackendUnavailable) as refused:
            await store.get_many([state_id])
    # The batch read's own refusal, before the deadline: not the deadline's "did not answer within".
    assert "left all 1 requested states unread" in refused.value.detail
    assert refused.value.headers == {"Retry-After": "1"}
    assert steer.degraded > 2  # it backed off and asked again
