"""DynamoDB misbehaving under the service: each fault gives a bounded 503, then the service recovers.

moto runs behind a fault-injecting proxy (tests/support/fault_proxy.py). Every test writes states
before the fault and checks them after it: nothing acknowledged may be lost.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import boto3
import httpx
import pytest

from app.states.model import MAX_ITEM_BYTES
from app.store.dynamodb import CALL_DEADLINE_SECONDS
from app.store.dynamodb.batch_get import MAX_CALL_ANSWER_BYTES
from support.api import (
    assert_problem,
    batch_get,
    delete_op,
    keyed,
    one_of_each_operation,
    put_op,
    state_body,
    state_path,
    stored_versions,
    transact,
)
from support.fault_proxy import FaultProxy
from support.metrics import sample_value
from support.processes import moto_process
from support.services import ServiceFactory, create_table

TABLE = "faults_table"
# The documented bound on time to a 503 (docs/reliability.md), with slack for a loaded machine: a 503
# bounded by the deadline, not a request left hanging until the client gives up (its timeout: 30 s).
BOUND_SECONDS = CALL_DEADLINE_SECONDS + 10.0
# The service recovers on its own, without a restart; how fast on a loaded machine is not the point.
RECOVERY_SECONDS = 30.0
# Until it has seen a state's size, a bounded read asks for this many keys per BatchGetItem call at most: a
# read of one id more is two calls, so throttling the first leaves its ids unread while the second answers
# (a read that gets nothing is batch_get's own 503, whoever asked for it).
KEYS_PER_FIRST_CALL = MAX_CALL_ANSWER_BYTES // MAX_ITEM_BYTES


@pytest.fixture(scope="module")
def moto_with_endpoint() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with moto_process() as (process, endpoint):
        create_table(endpoint, TABLE)
        yield process, endpoint


@pytest.fixture(scope="module")
def moto(moto_with_endpoint: tuple[subprocess.Popen[bytes], str]) -> subprocess.Popen[bytes]:
    return moto_with_endpoint[0]


@pytest.fixture(scope="module")
def proxy(moto_with_endpoint: tuple[subprocess.Popen[bytes], str]) -> Iterator[FaultProxy]:
    port = int(moto_with_endpoint[1].rsplit(":", 1)[1])
    with FaultProxy(port).running() as running:
        yield running


@pytest.fixture(scope="module")
def faulty_url(proxy: FaultProxy, dynamodb_path: str, start_service: ServiceFactory) -> Iterator[str]:
    with start_service(
        "moto", dynamodb_endpoint_url=proxy.url, dynamodb_table=TABLE, dynamodb_client=dynamodb_path
    ) as url:
        yield url


@pytest.fixture
async def client(faulty_url: str, proxy: FaultProxy) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=faulty_url, timeout=30) as http:
        yield http
    proxy.set("pass")


@contextmanager
def stopped(process: subprocess.Popen[bytes]) -> Iterator[None]:
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


@contextmanager
def proxy_fault(proxy: FaultProxy, mode: str, **options: object) -> Iterator[None]:
    proxy.set(mode, **options)  # type: ignore[arg-type]
    try:
        yield
    finally:
        proxy.set("pass")


Fault = Callable[[FaultProxy, subprocess.Popen[bytes]], AbstractContextManager[None]]
FAULTS: dict[str, Fault] = {
    "hung: moto stopped with SIGSTOP": lambda _, moto: stopped(moto),
    "hung: accepts and never answers": lambda proxy, _: proxy_fault(proxy, "hang"),
    "dead: nothing listening": lambda proxy, _: proxy_fault(proxy, "refuse"),
    "resets every connection": lambda proxy, _: proxy_fault(proxy, "reset"),
    "slower than an attempt may take": lambda proxy, _: proxy_fault(proxy, "slow", delay=1.5),
    "throttling: ProvisionedThroughputExceededException": lambda proxy, _: proxy_fault(
        proxy, "throttle", code="ProvisionedThroughputExceededException"
    ),
    "throttling: ThrottlingException": lambda proxy, _: proxy_fault(
        proxy, "throttle", code="ThrottlingException"
    ),
}


@contextmanager
def broken_checksums(proxy: FaultProxy, count: int | None) -> Iterator[None]:
    """The next `count` answers (None: all) damaged on the way: their `x-amz-crc32` not their body's."""
    proxy.checksums_to_break = count
    with proxy_fault(proxy, "bad_checksum"):
        yield


@contextmanager
def reads_throttled(proxy: FaultProxy, persistence_id: str) -> Iterator[None]:
    """Each BatchGetItem call that asks for `persistence_id` throttled, the SDK's retries too (in the
    proxy's modes `throttle_reads` and `drop_old_items`)."""
    proxy.throttled_ids = frozenset({persistence_id})
    try:
        yield
    finally:
        proxy.throttled_ids = frozenset()


def new_id() -> str:
    return f"fault-{uuid.uuid4()}"


async def write_acknowledged(client: httpx.AsyncClient, count: int) -> dict[str, int]:
    """Write `count` states; the versions the service acknowledged, by id."""
    written = {new_id(): version for version in range(1, count + 1)}
    responses = await asyncio.gather(
        *(client.put(state_path(key), json=state_body(version)) for key, version in written.items())
    )
    assert [response.status_code for response in responses] == [200] * count
    return written


async def assert_still_stored(client: httpx.AsyncClient, acknowledged: dict[str, int]) -> None:
    for key, version in acknowledged.items():
        response = await client.get(state_path(key))
        assert response.status_code == 200, response.text
        assert response.json()["version_number"] == str(version)


async def timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


async def assert_unsettled(
    client: httpx.AsyncClient,
    proxy: FaultProxy,
    unread: str,
    operations: list[dict[str, object]],
    key: str | None = None,
) -> None:
    """The transaction, sent while every read of `unread` is throttled, is a bounded 503 with Retry-After,
    not an outcome settled without that state."""
    throttled_before = proxy.reads_throttled
    with reads_throttled(proxy, unread):
        response, elapsed = await timed(transact(client, *operations, key=key))
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    assert elapsed <= BOUND_SECONDS
    assert proxy.reads_throttled > throttled_before, "the read that settles the transaction was throttled"


async def wait_until_ready(client: httpx.AsyncClient, within: float) -> float:
    started = time.monotonic()
    while (response := await client.get("/readyz")).status_code != 200:
        assert_problem(response, 503)
        assert time.monotonic() - started < within, "the service did not recover without a restart"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_a_backend_fault_gives_a_bounded_503_then_recovery(
    fault: Fault, client: httpx.AsyncClient, proxy: FaultProxy, moto: subprocess.Popen[bytes]
) -> None:
    acknowledged = await write_acknowledged(client, 5)
    during = new_id()
    with fault(proxy, moto):
        answers = await asyncio.gather(
            timed(client.put(state_path(during), json=state_body(1))),
            timed(client.put(state_path(during), json=state_body(2), headers={"If-Match": '"1"'})),
            timed(client.get(state_path(next(iter(acknowledged))))),
            timed(client.delete(state_path(during))),
            timed(client.get("/readyz")),
        )
    for response, elapsed in answers:
        assert_problem(response, 503)
        assert int(response.headers["retry-after"]) >= 1
        assert elapsed <= BOUND_SECONDS, (
            f"{response.request.method} {response.request.url} took {elapsed:.2f} s"
        )
    await wait_until_ready(client, RECOVERY_SECONDS)
    assert (await client.put(state_path(new_id()), json=state_body(1))).status_code == 200
    await assert_still_stored(client, acknowledged)


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
async def test_a_throttled_batch_get_call_leaves_its_ids_unprocessed_and_keeps_the_rest(
    client: httpx.AsyncClient, proxy: FaultProxy, code: str
) -> None:
    """A batchGet of 40 ids runs as several BatchGetItem calls; the one that asks for `throttled` is
    throttled on every attempt the SDK makes until it is given up. The states the other calls read are
    answered."""
    acknowledged = await write_acknowledged(client, 40)
    requested = list(acknowledged)
    throttled = requested[15]
    proxy.throttled_ids = frozenset({throttled})
    throttled_before = proxy.reads_throttled
    with proxy_fault(proxy, "throttle_reads", code=code):
        response, elapsed = await timed(batch_get(client, requested))
    assert response.status_code == 200, response.text
    assert elapsed <= BOUND_SECONDS
    # The SDK's backoff sleeps up to 1 s, then up to 2 s; when the two add up past 80% of the deadline,
    # the call is given up before its third attempt (about one run in eight).
    assert proxy.reads_throttled - throttled_before >= 2, "the SDK's retry was throttled too"
    answer = response.json()
    found = {state["persistence_id"]: state["version_number"] for state in answer["states"]}
    assert throttled in answer["unprocessed"]
    assert found, "the calls that were not throttled are answered"
    assert found == {key: str(acknowledged[key]) for key in found}
    assert sorted([*found, *answer["unprocessed"]]) == sorted(requested)
    assert answer["missing"] == []
    assert (await batch_get(client, answer["unprocessed"])).json()["unprocessed"] == []


async def test_a_batch_get_whose_every_call_is_throttled_is_a_503(
    client: httpx.AsyncClient, proxy: FaultProxy
) -> None:
    requested = list(await write_acknowledged(client, 12))
    proxy.throttled_ids = frozenset(requested)
    with proxy_fault(proxy, "throttle_reads", code="ThrottlingException"):
        response, elapsed = await timed(batch_get(client, requested))
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    assert elapsed <= BOUND_SECONDS
    assert (await batch_get(client, requested)).json()["unprocessed"] == []


@pytest.fixture(scope="module")
def without_old_items_url(
    proxy: FaultProxy, dynamodb_path: str, start_service: ServiceFactory
) -> Iterator[str]:
    """A service of its own for the `drop_old_items` tests: it has never seen a refusal with the item, as
    on an endpoint that ignores ALL_OLD, so it reads the item after each refusal."""
    with start_service(
        "moto", dynamodb_endpoint_url=proxy.url, dynamodb_table=TABLE, dynamodb_client=dynamodb_path
    ) as url:
        yield url


@pytest.fixture
async def without_old_items(
    without_old_items_url: str, proxy: FaultProxy
) -> AsyncIterator[httpx.AsyncClient]:
    proxy.set("drop_old_items")
    try:
        async with httpx.AsyncClient(base_url=without_old_items_url, timeout=30) as http:
            yield http
    finally:
        proxy.on_refusal = None
        proxy.set("pass")


async def test_without_the_old_item_a_refused_write_reads_it_to_settle(
    without_old_items: httpx.AsyncClient, proxy: FaultProxy
) -> None:
    """A retried create or compare-and-set succeeds, a conflict names the stored version, a stale delete
    too: as with the item in the refusal."""
    client, key, dropped_before = without_old_items, new_id(), proxy.old_items_dropped
    create, create_if = state_body(1), {"If-None-Match": "*", **keyed(key)}
    assert (await client.put(state_path(key), json=create, headers=create_if)).status_code == 201
    retried = await client.put(state_path(key), json=create, headers=create_if)
    assert (retried.status_code, retried.headers["etag"]) == (201, '"1"')
    other = await client.put(state_path(key), json=state_body(1, b"other"), headers={"If-None-Match": "*"})
    assert assert_problem(other, 412)["current_version"] == "1"
    swap, swap_if = state_body(2, b"next"), {"If-Match": '"1"', **keyed(f"{key}-swap")}
    assert (await client.put(state_path(key), json=swap, headers=swap_if)).status_code == 200
    assert (await client.put(state_path(key), json=swap, headers=swap_if)).status_code == 200
    stale = await client.delete(state_path(key), headers={"If-Match": '"1"'})
    assert assert_problem(stale, 412)["current_version"] == "2"
    missing = await client.put(state_path(new_id()), json=create, headers={"If-Match": '"1"'})
    assert "current_version" not in assert_problem(missing, 412)
    assert proxy.old_items_dropped - dropped_before == 4  # the missing state had no item to drop
    await assert_still_stored(client, {key: 2})


async def test_without_the_old_items_a_refused_transaction_reads_them_to_settle(
    without_old_items: httpx.AsyncClient, proxy: FaultProxy
) -> None:
    """TransactWriteItems' cancellation reasons without the items: a retried transaction still succeeds,
    and a failing condition still names the stored version."""
    client, (updated, created, deleted) = without_old_items, (new_id(), new_id(), new_id())
    dropped_before = proxy.old_items_dropped
    for key in (updated, deleted):
        assert (await client.put(state_path(key), json=state_body(1))).status_code == 200
    operations = one_of_each_operation(updated, created, deleted)
    first = await transact(client, *operations, key=updated)
    retried = await transact(client, *operations, key=updated)
    assert (first.status_code, retried.status_code) == (200, 200), retried.text
    assert retried.json() == first.json()
    assert proxy.old_items_dropped > dropped_before
    refused = await transact(client, put_op(created, 2, if_match=5))
    assert assert_problem(refused, 412)["current_version"] == "1"
    assert await stored_versions(client, [updated, created, deleted]) == {
        updated: "2",
        created: "1",
        deleted: None,
    }


async def test_without_the_old_items_a_refused_state_left_unread_is_a_503_not_a_false_412(
    without_old_items: httpx.AsyncClient, proxy: FaultProxy
) -> None:
    """The read that settles the refusals leaves the first operation's state unread (its call throttled on
    every attempt). Taken for "nothing stored", it would make a 412 on a missing state; the answer is a
    503 that writes nothing, and once the read answers, the same transaction is the 412 naming the stored
    version."""
    client = without_old_items
    stored = await write_acknowledged(client, KEYS_PER_FIRST_CALL + 1)
    stale_deletes = [delete_op(key, if_match=version + 1) for key, version in stored.items()]
    first = next(iter(stored))
    await assert_unsettled(client, proxy, first, stale_deletes)
    assert await stored_versions(client, list(stored)) == {key: str(v) for key, v in stored.items()}
    refused = assert_problem(await transact(client, *stale_deletes), 412)
    assert (refused["operation_index"], refused["current_version"]) == (0, str(stored[first]))


async def test_without_the_old_item_a_state_changed_back_before_the_read_lets_the_write_through(
    without_old_items: httpx.AsyncClient, proxy: FaultProxy, moto_with_endpoint: tuple[object, str]
) -> None:
    """The read after the refusal finds the state the write's condition asks for (another writer put it
    back in between): the write is made again, and succeeds."""
    client, key = without_old_items, new_id()
    assert (await client.put(state_path(key), json=state_body(3))).status_code == 200
    raw = boto3.client("dynamodb", endpoint_url=moto_with_endpoint[1], region_name="us-east-1")
    back_to_1 = {**raw.get_item(TableName=TABLE, Key={"PersistenceID": {"S": key}})["Item"]}
    back_to_1["VersionNumber"] = {"N": "1"}
    proxy.on_refusal = lambda: raw.put_item(TableName=TABLE, Item=back_to_1)
    response = await client.put(state_path(key), json=state_body(2), headers={"If-Match": '"1"'})
    assert response.status_code == 200, response.text
    await assert_still_stored(client, {key: 2})


async def test_once_a_refusal_came_with_the_item_no_refusal_reads_it_any_more(
    proxy: FaultProxy, dynamodb_path: str, start_service: ServiceFactory
) -> None:
    """On DynamoDB a refusal without the item means that nothing is stored: once the endpoint has shown
    that it sends the item, a refused write costs no GetItem."""
    key, if_match_1 = new_id(), {"If-Match": '"1"'}

    async def get_items(client: httpx.AsyncClient) -> float:
        text = (await client.get("/metrics")).text
        calls = "statestore_backend_call_duration_seconds_count"
        return sample_value(text, calls, backend="dynamodb", operation="GetItem")

    settings = {"dynamodb_endpoint_url": proxy.url, "dynamodb_table": TABLE, "dynamodb_client": dynamodb_path}
    with start_service("moto", **settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await client.put(state_path(key), json=state_body(3))).status_code == 200
            assert assert_problem(await client.delete(state_path(new_id()), headers=if_match_1), 412)
            assert await get_items(client) == 1, "no item seen yet: the refusal on nothing is read"
            assert assert_problem(await client.delete(state_path(key), headers=if_match_1), 412)
            assert await get_items(client) == 1, "the refusal came with the item"
            assert assert_problem(await client.delete(state_path(new_id()), headers=if_match_1), 412)
            assert await get_items(client) == 1, "no item now means nothing stored"


async def test_a_slow_backend_within_the_bounds_only_slows_answers(
    client: httpx.AsyncClient, proxy: FaultProxy
) -> None:
    with proxy_fault(proxy, "slow", delay=0.3):
        answers = await asyncio.gather(
            *(timed(client.put(state_path(new_id()), json=state_body(1))) for _ in range(5))
        )
    assert all(response.status_code == 200 and elapsed >= 0.3 for response, elapsed in answers)
    await assert_still_stored(client, {response.json()["persistence_id"]: 1 for response, _ in answers})


@pytest.mark.parametrize("with_key", [False, True], ids=["without a key", "with a key"])
async def test_a_lost_answer_retried_by_the_sdk_is_no_false_precondition_failure(
    client: httpx.AsyncClient, proxy: FaultProxy, with_key: bool
) -> None:
    """The SDK's re-send carries the item it first sent, and so the write's key: the client's, or the one the
    service gave the keyless write. It finds that key stored, its own write."""
    key = new_id()
    assert (await client.put(state_path(key), json=state_body(1))).status_code == 200
    lost_before = proxy.answers_lost
    proxy.lose_answers(1)  # DynamoDB writes version 2, the answer is lost, the SDK sends it again
    headers = {"If-Match": '"1"', **keyed(key if with_key else None)}
    response = await client.put(state_path(key), json=state_body(2), headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    assert proxy.answers_lost == lost_before + 1
    await assert_still_stored(client, {key: 2})
    if with_key:  # the client's own retry, its answer lost too: answered as the first was
        retried = await client.put(state_path(key), json=state_body(2), headers=headers)
        assert (retried.status_code, retried.json()) == (200, response.json())


@pytest.mark.parametrize("with_key", [False, True], ids=["without a key", "with a key"])
async def test_a_transaction_retried_after_a_lost_answer_is_no_false_412(
    client: httpx.AsyncClient, proxy: FaultProxy, with_key: bool
) -> None:
    """The SDK sends the transaction again: its unconditional put is what is stored, its delete finds nothing.

    The put, found already done with the transaction's key (the client's, or the service's own), shows the
    retry, so the delete of nothing is done too (app/states/model.py).
    """
    written, deleted = new_id(), new_id()
    assert (await client.put(state_path(deleted), json=state_body(1))).status_code == 200
    lost_before = proxy.answers_lost
    proxy.lose_answers(1)
    operations = [put_op(written, 1), delete_op(deleted, if_match=1)]
    response = await transact(client, *operations, key=written if with_key else None)
    assert response.status_code == 200, response.text
    assert proxy.answers_lost == lost_before + 1
    assert response.json()["results"] == [
        {"persistence_id": written, "version_number": "1", "etag": '"1"'},
        {"persistence_id": deleted},
    ]
    assert await stored_versions(client, [written, deleted]) == {written: "1", deleted: None}


async def test_a_delete_of_nothing_beside_a_put_of_other_content_is_still_412(
    client: httpx.AsyncClient, proxy: FaultProxy
) -> None:
    """No put finds its own state stored: nothing shows a retry, so the missing state is a 412."""
    written, deleted = new_id(), new_id()
    assert (await client.put(state_path(written), json=state_body(1, b"theirs"))).status_code == 200
    response = await transact(client, put_op(written, 1, b"mine"), delete_op(deleted, if_match=1))
    assert (assert_problem(response, 412)["operation_index"]) == 1
    assert await stored_versions(client, [written]) == {written: "1"}


async def test_a_retry_whose_own_states_are_left_unread_is_a_503_not_a_false_412(
    client: httpx.AsyncClient, proxy: FaultProxy
) -> None:
    """A transaction resent after it was applied: its delete finds nothing, so its puts are read back to tell
    a retry. The puts that still hold their own states are all in the read's first call, throttled on every
    attempt; the one put in the second finds another writer's state. Settled on that alone, the retry would
    be a 412; the answer is a 503 that writes nothing, and once the read answers, the retry succeeds."""
    puts, deleted = [new_id() for _ in range(KEYS_PER_FIRST_CALL + 1)], new_id()
    assert (await client.put(state_path(deleted), json=state_body(1))).status_code == 200
    operations = [*(put_op(key, 1) for key in puts), delete_op(deleted, if_match=1)]
    assert (await transact(client, *operations, key=deleted)).status_code == 200
    theirs = state_body(1, b"theirs")
    assert (await client.put(state_path(puts[-1]), json=theirs)).status_code == 200
    with proxy_fault(proxy, "throttle_reads"):
        await assert_unsettled(client, proxy, puts[0], operations, key=deleted)
    assert await stored_versions(client, [*puts, deleted]) == {**dict.fromkeys(puts, "1"), deleted: None}
    assert (await client.get(state_path(puts[-1]))).json()["payload"] == theirs["payload"]
    retried = await transact(client, *operations, key=deleted)
    assert retried.status_code == 200, retried.text
    assert (await client.get(state_path(puts[-1]))).json()["payload"] == state_body(1)["payload"]


async def test_a_transaction_conflict_is_a_503_and_applies_nothing(
    client: httpx.AsyncClient, proxy: FaultProxy
) -> None:
    """DynamoDB cancels a transaction that touches an item another transaction holds; retrying later works."""
    created = new_id()
    updated = next(iter(await write_acknowledged(client, 1)))
    operations = [put_op(created, 1), put_op(updated, 2, if_match=1)]
    conflicts_before = proxy.conflicts  # the proxy serves this module on both DynamoDB paths
    with proxy_fault(proxy, "conflict"):
        response = await transact(client, *operations)
    problem = assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"  # a busy item, not a refusal: soon over
    assert "TransactionConflict" in problem["detail"]
    assert (problem["operation_index"], problem["persistence_id"]) == (0, created)
    assert proxy.conflicts - conflicts_before == 1
    assert await stored_versions(client, [created, updated]) == {created: None, updated: "1"}
    assert (await transact(client, *operations)).status_code == 200


async def test_an_answer_whose_crc32_fails_is_retried_and_never_taken(
    client: httpx.AsyncClient, proxy: FaultProxy, dynamodb_path: str
) -> None:
    """DynamoDB's `x-amz-crc32` is checked on both paths: a damaged answer is sent again (botocore's
    standard retries), so the read gets the stored state. Once every attempt is damaged, the lean path
    answers a 503; botocore's standard mode parses the last answer all the same (docs/operations.md)."""
    persistence_id = new_id()
    assert (await client.put(state_path(persistence_id), json=state_body(3))).status_code == 200
    broken_before = proxy.checksums_broken
    with broken_checksums(proxy, 1):
        read = await client.get(state_path(persistence_id))
    assert read.status_code == 200, read.text
    assert read.json()["version_number"] == "3"
    assert proxy.checksums_broken == broken_before + 1
    if dynamodb_path == "lean":
        with broken_checksums(proxy, None):
            assert_problem(await client.get(state_path(persistence_id)), 503)
        assert proxy.checksums_broken == broken_before + 4  # the first attempt and the SDK's two retries


async def test_a_write_answered_after_a_later_one_does_not_wake_a_waiter_with_the_older_state(
    proxy: FaultProxy, dynamodb_path: str, start_service: ServiceFactory
) -> None:
    """Two unconditional writes of one id, 2 then 3, the answer of the first held back by the proxy until
    the second is acknowledged and a client waits on it: the late report of 2 does not take the watch back
    (before, it did, and the waiter on 3 was answered 200 with version 2 while 3 was stored)."""
    key, waiting_on_3 = new_id(), {"If-None-Match": '"3"'}
    settings = {"dynamodb_endpoint_url": proxy.url, "dynamodb_table": TABLE, "dynamodb_client": dynamodb_path}
    with start_service("moto", watch_poll_ms=60_000, **settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await client.put(state_path(key), json=state_body(1))).status_code == 200
            proxy.holding.clear()
            with proxy_fault(proxy, "slow", delay=0.8):  # within an attempt's read timeout (1 s): no retry
                first = asyncio.ensure_future(client.put(state_path(key), json=state_body(2)))
                assert await asyncio.to_thread(proxy.holding.wait, 10)
                proxy.set("pass")
                second = await client.put(state_path(key), json=state_body(3))
                waiter = asyncio.ensure_future(
                    client.get(state_path(key), params={"wait": 2}, headers=waiting_on_3)
                )
                for _ in range(100):
                    text = (await client.get("/metrics")).text
                    if sample_value(text, "statestore_watch_waiters") == 1:
                        break
                assert not first.done(), "the first write's answer came back before the waiter waited"
                assert (await first).status_code == 200
            answer = await waiter
            stored = await client.get(state_path(key))
    assert second.status_code == 200
    assert stored.json()["version_number"] == "3"
    assert (answer.status_code, answer.headers["etag"]) == (304, '"3"')
