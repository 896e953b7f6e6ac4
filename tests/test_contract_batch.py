"""The contract of `POST /states:batchGet` and `POST /states:transact`, on every backend over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from support.api import (
    assert_problem,
    batch_get,
    delete_op,
    one_of_each_operation,
    put_op,
    state_body,
    state_path,
    stored_versions,
    transact,
)
from support.differences import DYNALITE_HAS_NO_TRANSACTIONS, SQLITE_HAS_NO_ITEM_LIMIT
from support.services import ServiceFactory, own_table

TABLE = "batch_states"
PUTS_AT_ONCE = 16
WELL_KNOWN = "google.protobuf.StringValue"


@pytest.fixture(scope="module")
def service_url(backend: str, start_service: ServiceFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    """This module's service; on DynamoDB, with a table of its own.

    moto deep-copies the whole table for each item of a TransactWriteItems call, so its transactions
    slow down with every state that other modules leave in the shared table (a 100-item transaction:
    0.05 s on an empty table, 0.9 s with 300 items stored).
    """
    with start_service(backend, **own_table(backend, request, TABLE)) as url:
        yield url


def ids_of(state_id: str, count: int) -> list[str]:
    return [f"{state_id}/{n}" for n in range(count)]


async def put_all(client: httpx.AsyncClient, persistence_ids: list[str], version: int = 1) -> None:
    """Store a state under every id with plain PUTs, so that batchGet's tests need no transactions."""
    for start in range(0, len(persistence_ids), PUTS_AT_ONCE):
        chunk = persistence_ids[start : start + PUTS_AT_ONCE]
        written = await asyncio.gather(
            *(client.put(state_path(i), json=state_body(version, i.encode())) for i in chunk)
        )
        assert [response.status_code for response in written] == [200] * len(chunk)


# batchGet


async def test_batch_get_answers_states_and_missing_in_request_order(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """150 ids, 50 of them missing: on DynamoDB that is two BatchGetItem chunks (moto refuses > 100 keys)."""
    stored = ids_of(state_id, 100)
    await put_all(client, stored)
    requested = stored + ids_of(f"{state_id}-missing", 50)
    random.Random(5).shuffle(requested)
    response = await batch_get(client, requested)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert [state["persistence_id"] for state in body["states"]] == [i for i in requested if i in stored]
    assert body["missing"] == [i for i in requested if i not in stored]
    assert body["unprocessed"] == []
    first = body["states"][0]
    assert first == {
        **first,
        "version_number": "1",
        "payload": base64.b64encode(first["persistence_id"].encode()).decode(),
    }
    assert first.keys() == {"persistence_id", "version_number", "manifest", "payload", "timestamp", "shard"}


async def test_batch_get_of_the_most_ids_allowed(client: httpx.AsyncClient, state_id: str) -> None:
    requested = ids_of(state_id, 1000)
    stored = requested[::50]
    await put_all(client, stored)
    body = (await batch_get(client, requested)).json()
    assert [state["persistence_id"] for state in body["states"]] == stored
    assert body["missing"] == [i for i in requested if i not in stored]


async def test_batch_get_answers_like_get(client: httpx.AsyncClient, state_id: str) -> None:
    persistence_id = f"{state_id}:ü|a b/c"
    await client.put(
        state_path(persistence_id), json=state_body(7, b"\x00\xff", timestamp=5, shard=2**64 - 1)
    )
    got = (await client.get(state_path(persistence_id))).json()
    assert (await batch_get(client, [persistence_id])).json() == {
        "states": [got],
        "missing": [],
        "unprocessed": [],
    }


async def test_batch_get_folds_duplicate_ids(client: httpx.AsyncClient, state_id: str) -> None:
    await put_all(client, [state_id])
    missing = f"{state_id}-missing"
    body = (await batch_get(client, [state_id, missing, state_id, missing, state_id])).json()
    assert [state["persistence_id"] for state in body["states"]] == [state_id]
    assert body["missing"] == [missing]


async def test_batch_get_decodes_like_get(client: httpx.AsyncClient, state_id: str) -> None:
    """`google.protobuf.StringValue` is always known; its JSON mapping is the bare string."""
    known, unknown = ids_of(state_id, 2)
    await client.put(state_path(known), json=state_body(1, b"\x0a\x02hi", manifest=WELL_KNOWN))
    await client.put(state_path(unknown), json=state_body(1))
    decoded = (await batch_get(client, [known, unknown], decode="true")).json()["states"]
    assert [state["state"] for state in decoded] == ["hi", None]
    assert decoded[0] == (await client.get(state_path(known), params={"decode": "true"})).json()
    assert "state" not in (await batch_get(client, [known])).json()["states"][0]


@pytest.mark.parametrize("count", [0, 1001])
async def test_batch_get_takes_1_to_1000_ids(client: httpx.AsyncClient, state_id: str, count: int) -> None:
    problem = assert_problem(await batch_get(client, ids_of(state_id, count)), 422)
    assert problem["errors"][0]["loc"] == ["body", "persistence_ids"]


@pytest.mark.parametrize("bad_id", ["", "x" * 2049, "line\nbreak", "nul\x00"])
async def test_batch_get_checks_each_id_like_the_path(
    client: httpx.AsyncClient, state_id: str, bad_id: str
) -> None:
    problem = assert_problem(await batch_get(client, [state_id, bad_id]), 422)
    assert problem["errors"][0]["loc"] == ["body", "persistence_ids", 1]


@pytest.mark.parametrize(
    "body", [{}, {"persistence_ids": "a"}, {"persistence_ids": [1]}, {"persistence_ids": ["a"], "x": 1}]
)
async def test_batch_get_refuses_bodies_off_the_schema(client: httpx.AsyncClient, body: object) -> None:
    assert_problem(await client.post("/states:batchGet", json=body), 422)


async def test_batch_routes_are_not_taken_for_state_ids(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/states:batchGet"), 405)
    assert_problem(await client.post("/states:transact", content=b"{}"), 415)
    assert (await client.post("/states%3AbatchGet", json={"persistence_ids": ["x"]})).status_code == 200
    assert_problem(await client.post("/states/:batchGet", json={"persistence_ids": ["x"]}), 405)


# transact


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_transact_applies_puts_and_deletes(client: httpx.AsyncClient, state_id: str) -> None:
    kept, replaced, deleted, never = ids_of(state_id, 4)
    await put_all(client, [kept, replaced, deleted])
    response = await transact(
        client,
        put_op(replaced, 2, b"two", if_match=1),
        delete_op(deleted, if_match=1),
        put_op(f"{state_id}-new", 1, if_none_match=True),
        delete_op(never),
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "results": [
            {"persistence_id": replaced, "version_number": "2", "etag": '"2"'},
            {"persistence_id": deleted},
            {"persistence_id": f"{state_id}-new", "version_number": "1", "etag": '"1"'},
            {"persistence_id": never},
        ]
    }
    assert await stored_versions(client, [kept, replaced, deleted, never, f"{state_id}-new"]) == {
        kept: "1",
        replaced: "2",
        deleted: None,
        never: None,
        f"{state_id}-new": "1",
    }
    assert (await client.get(state_path(replaced))).json()["payload"] == base64.b64encode(b"two").decode()


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_failing_last_operation_leaves_every_state_untouched(
    client: httpx.AsyncClient, state_id: str
) -> None:
    ids = ids_of(state_id, 6)
    await put_all(client, ids[:5])
    before = (await batch_get(client, ids)).json()
    response = await transact(
        client,
        put_op(ids[0], 2, b"changed"),
        put_op(ids[1], 2, b"changed", if_match=1),
        delete_op(ids[2]),
        delete_op(ids[3], if_match=1),
        put_op(ids[5], 1, if_none_match=True),
        put_op(ids[4], 2, b"changed", if_match=7),
    )
    problem = assert_problem(response, 412)
    assert (problem["operation_index"], problem["persistence_id"], problem["current_version"]) == (
        5,
        ids[4],
        "1",
    )
    assert "operation 5" in problem["detail"]
    assert (await batch_get(client, ids)).json() == before


@DYNALITE_HAS_NO_TRANSACTIONS
@pytest.mark.parametrize(
    "operation",
    [
        put_op("x", 3, b"new", if_match=2),
        put_op("x", 3, b"new", if_none_match=True),
        delete_op("x", if_match=2),
    ],
    ids=["put-if-match", "put-if-none-match", "delete-if-match"],
)
async def test_a_failing_condition_is_412_naming_the_operation(
    client: httpx.AsyncClient, state_id: str, operation: dict[str, object]
) -> None:
    other = f"{state_id}-other"
    await put_all(client, [state_id])
    response = await transact(client, put_op(other, 1), {**operation, "persistence_id": state_id})
    problem = assert_problem(response, 412)
    assert problem["operation_index"] == 1
    assert problem["persistence_id"] == state_id
    assert problem["current_version"] == "1"
    assert await stored_versions(client, [state_id, other]) == {state_id: "1", other: None}


@DYNALITE_HAS_NO_TRANSACTIONS
@pytest.mark.parametrize("operation", [put_op("x", 2, if_match=1), delete_op("x", if_match=1)])
async def test_if_match_on_a_missing_state_is_412_without_a_version(
    client: httpx.AsyncClient, state_id: str, operation: dict[str, object]
) -> None:
    problem = assert_problem(await transact(client, {**operation, "persistence_id": state_id}), 412)
    assert "current_version" not in problem
    assert problem["operation_index"] == 0


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_retried_transaction_succeeds(client: httpx.AsyncClient, state_id: str) -> None:
    """The same transaction sent again with its key after a lost response answers as the first time."""
    updated, created, deleted = ids_of(state_id, 3)
    await put_all(client, [updated, deleted])
    operations = one_of_each_operation(updated, created, deleted)
    first = await transact(client, *operations, key=state_id)
    retried = await transact(client, *operations, key=state_id)
    assert (first.status_code, retried.status_code) == (200, 200)
    assert retried.json() == first.json()
    assert await stored_versions(client, [updated, created, deleted]) == {
        updated: "2",
        created: "1",
        deleted: None,
    }


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_repeated_unconditional_put_shows_a_retry_for_a_delete_of_nothing(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """The put finds its own write (its key) stored, so the delete that finds nothing is already done; the
    same transaction without its key proves nothing, and is the delete's 412."""
    written, deleted = ids_of(state_id, 2)
    await put_all(client, [deleted])
    operations = [put_op(written, 1), delete_op(deleted, if_match=1)]
    first = await transact(client, *operations, key=state_id)
    retried = await transact(client, *operations, key=state_id)
    assert (first.status_code, retried.status_code) == (200, 200), retried.text
    assert retried.json() == first.json()
    assert assert_problem(await transact(client, *operations), 412)["operation_index"] == 1


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_conditional_delete_of_nothing_alone_is_412(client: httpx.AsyncClient, state_id: str) -> None:
    """Without a put found already done, a missing state proves no retry: 412 as for DELETE."""
    await put_all(client, [state_id])
    operations = [delete_op(state_id, if_match=1)]
    assert (await transact(client, *operations)).status_code == 200
    assert "current_version" not in assert_problem(await transact(client, *operations), 412)


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_put_of_another_writers_identical_state_is_412_and_nothing_applies(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """Another writer already stored exactly this put's state: that is no retry of this transaction."""
    done, pending = ids_of(state_id, 2)
    await put_all(client, [done, pending])
    await transact(client, put_op(done, 2, b"same", if_match=1))
    response = await transact(client, put_op(done, 2, b"same", if_match=1), put_op(pending, 2, if_match=1))
    assert assert_problem(response, 412)["operation_index"] == 0
    assert await stored_versions(client, [done, pending]) == {done: "2", pending: "1"}


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_put_found_done_by_its_own_key_lets_the_rest_apply(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """A retry whose put was applied (alone, by an earlier transaction of the same key) applies the rest."""
    done, pending = ids_of(state_id, 2)
    await put_all(client, [done, pending])
    await transact(client, put_op(done, 2, b"same", if_match=1), key=state_id)
    response = await transact(
        client, put_op(done, 2, b"same", if_match=1), put_op(pending, 2, if_match=1), key=state_id
    )
    assert response.status_code == 200, response.text
    assert await stored_versions(client, [done, pending]) == {done: "2", pending: "2"}


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_a_put_with_other_content_at_the_same_version_is_412(
    client: httpx.AsyncClient, state_id: str
) -> None:
    done, pending = ids_of(state_id, 2)
    await put_all(client, [done, pending])
    await transact(client, put_op(done, 2, b"theirs", if_match=1))
    response = await transact(client, put_op(done, 2, b"mine", if_match=1), put_op(pending, 2, if_match=1))
    assert assert_problem(response, 412)["current_version"] == "2"
    assert await stored_versions(client, [done, pending]) == {done: "2", pending: "1"}


@pytest.mark.parametrize("count", [0, 101])
async def test_transact_takes_1_to_100_operations(
    client: httpx.AsyncClient, state_id: str, count: int
) -> None:
    ids = ids_of(state_id, count)
    problem = assert_problem(await transact(client, *(put_op(i, 1) for i in ids)), 422)
    assert problem["errors"][0]["loc"] == ["body", "operations"]
    if ids:
        assert set((await stored_versions(client, ids[:100])).values()) == {None}


@pytest.fixture
def empty_table_url(
    backend: str, start_service: ServiceFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A service whose DynamoDB table is new and empty: on moto, a transaction's cost grows with the states
    stored in its table (see `service_url`), and one of 100 operations on the module's table, filled by
    the tests before it, took long enough on a loaded machine to run into the service's call deadline."""
    table = f"{TABLE}_{uuid.uuid4().hex[:12]}"
    with start_service(backend, **own_table(backend, request, table)) as url:
        yield url


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_transact_takes_100_operations(empty_table_url: str, state_id: str) -> None:
    ids = ids_of(state_id, 100)
    async with httpx.AsyncClient(base_url=empty_table_url, timeout=30) as client:
        assert (await transact(client, *(put_op(i, 1) for i in ids))).status_code == 200
        assert set((await stored_versions(client, ids)).values()) == {"1"}


async def test_transact_names_each_id_once(client: httpx.AsyncClient, state_id: str) -> None:
    other = f"{state_id}-other"
    response = await transact(client, put_op(state_id, 1), put_op(other, 1), delete_op(state_id))
    problem = assert_problem(response, 422)
    assert problem["errors"] == [
        {
            "loc": ["body", "operations", 2, "persistence_id"],
            "msg": "is already the persistence id of operation 0",
        }
    ]
    assert await stored_versions(client, [state_id, other]) == {state_id: None, other: None}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("payload", "Q"),
        ("manifest", "acme..State"),
        ("version_number", -1),
        ("version_number", 2**64),
        ("if_match", "01"),
        ("if_match", "+1"),
        ("if_match", -1),
        ("if_match", "18446744073709551616"),
        ("version_number", "1.0"),
        ("if_none_match", False),
        ("op", "upsert"),
        ("unknown", 1),
    ],
)
async def test_transact_puts_are_validated_like_put(
    client: httpx.AsyncClient, state_id: str, field: str, value: object
) -> None:
    other = f"{state_id}-other"
    response = await transact(client, put_op(other, 1), {**put_op(state_id, 1), field: value})
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"][:3] == ["body", "operations", 1]
    assert await stored_versions(client, [state_id, other]) == {state_id: None, other: None}


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_transact_takes_the_decimal_string_of_every_64_bit_field(
    client: httpx.AsyncClient, state_id: str
) -> None:
    created, replaced, deleted = ids_of(state_id, 3)
    await put_all(client, [replaced, deleted])
    response = await transact(
        client,
        put_op(
            created, "18446744073709551615", timestamp="1764115200123456789", shard="18446744073709551615"
        ),
        put_op(replaced, "2", timestamp="-62135596800", shard="7", if_match="1"),
        delete_op(deleted, if_match="1"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"] == [
        {
            "persistence_id": created,
            "version_number": "18446744073709551615",
            "etag": '"18446744073709551615"',
        },
        {"persistence_id": replaced, "version_number": "2", "etag": '"2"'},
        {"persistence_id": deleted},
    ]
    states = (await batch_get(client, [created, replaced, deleted])).json()
    assert [(s["version_number"], s["timestamp"], s["shard"]) for s in states["states"]] == [
        ("18446744073709551615", "1764115200123456789", "18446744073709551615"),
        ("2", "-62135596800", "7"),
    ]
    assert states["missing"] == [deleted]


@pytest.mark.parametrize("op", ["put", "delete"])
@pytest.mark.parametrize(
    "if_match", ["+1", "01", "-0", "1.0", "1e0", " 1", "", "-1", "18446744073709551616", -1, 2.0**60]
)
async def test_a_transaction_if_match_refuses_every_other_form_naming_the_field(
    client: httpx.AsyncClient, state_id: str, op: str, if_match: object
) -> None:
    other = f"{state_id}-other"
    await put_all(client, [state_id])
    operation = put_op(state_id, 2) if op == "put" else delete_op(state_id)
    response = await transact(client, put_op(other, 1), {**operation, "if_match": if_match})
    problem = assert_problem(response, 422)
    assert [error["loc"] for error in problem["errors"]] == [["body", "operations", 1, op, "if_match"]]
    assert await stored_versions(client, [state_id, other]) == {state_id: "1", other: None}


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_transact_puts_take_a_json_state_like_put(client: httpx.AsyncClient, state_id: str) -> None:
    operation = {
        "op": "put",
        "persistence_id": state_id,
        "manifest": WELL_KNOWN,
        "state": "hi",
        "version_number": 1,
    }
    assert (await transact(client, operation)).status_code == 200
    assert (await client.get(state_path(state_id))).json()["payload"] == base64.b64encode(
        b"\x0a\x02hi"
    ).decode()


async def test_transact_puts_check_payloads_of_known_types(client: httpx.AsyncClient, state_id: str) -> None:
    other = f"{state_id}-other"
    response = await transact(client, put_op(other, 1), put_op(state_id, 1, b"\xff\xff", manifest=WELL_KNOWN))
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["body", "operations", 1, "payload"]
    assert (problem["operation_index"], problem["persistence_id"]) == (1, state_id)
    assert await stored_versions(client, [state_id, other]) == {state_id: None, other: None}


@pytest.mark.parametrize("bad_id", ["", "x" * 2049, "tab\tbreak"])
async def test_transact_checks_each_id_like_the_path(
    client: httpx.AsyncClient, state_id: str, bad_id: str
) -> None:
    problem = assert_problem(await transact(client, put_op(state_id, 1), delete_op(bad_id)), 422)
    assert problem["errors"][0]["loc"] == ["body", "operations", 1, "persistence_id"]
    assert await stored_versions(client, [state_id]) == {state_id: None}


@SQLITE_HAS_NO_ITEM_LIMIT
async def test_an_item_over_the_size_limit_is_413_naming_the_operation(
    client: httpx.AsyncClient, state_id: str
) -> None:
    other = f"{state_id}-other"
    response = await transact(client, put_op(other, 1), put_op(state_id, 1, b"x" * 400 * 1024))
    problem = assert_problem(response, 413)
    assert (problem["operation_index"], problem["persistence_id"]) == (1, state_id)
    assert await stored_versions(client, [state_id, other]) == {state_id: None, other: None}


@SQLITE_HAS_NO_ITEM_LIMIT
async def test_a_transaction_over_4_mb_is_413(client: httpx.AsyncClient, state_id: str) -> None:
    ids = ids_of(state_id, 11)
    response = await transact(client, *(put_op(i, 1, b"x" * 390 * 1024) for i in ids))
    assert "4194304" in assert_problem(response, 413)["detail"]
    assert set((await stored_versions(client, ids)).values()) == {None}


@DYNALITE_HAS_NO_TRANSACTIONS
async def test_concurrent_transactions_never_leave_a_half_applied_state(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """Workers move units between three accounts, each move one compare-and-set transaction on two of them.

    Every payload is unique, so no transaction can pass as "already done" by coincidence. A half-applied
    move would break the total, and each account's version must count exactly the moves acknowledged on it.
    """
    accounts = ids_of(state_id, 3)
    await transact(client, *(put_op(a, 1, json.dumps([100, "opening"]).encode()) for a in accounts))
    acknowledged: Counter[str] = Counter()

    async def move_units(worker: int, moves: int) -> None:
        chooser = random.Random(worker)
        for move in range(moves):
            source, target = chooser.sample(accounts, 2)
            states = {
                s["persistence_id"]: s for s in (await batch_get(client, [source, target])).json()["states"]
            }
            operations = []
            for account, change in ((source, -1), (target, +1)):
                version = int(states[account]["version_number"])
                balance = json.loads(base64.b64decode(states[account]["payload"]))[0]
                payload = json.dumps([balance + change, f"{worker}-{move}"]).encode()
                operations.append(put_op(account, version + 1, payload, if_match=version))
            response = await transact(client, *operations)
            assert response.status_code in (200, 412), response.text
            if response.status_code == 200:
                acknowledged.update([source, target])

    async with asyncio.timeout(60):
        await asyncio.gather(*(move_units(worker, 12) for worker in range(4)))

    final = {s["persistence_id"]: s for s in (await batch_get(client, accounts)).json()["states"]}
    balances = [json.loads(base64.b64decode(final[a]["payload"]))[0] for a in accounts]
    assert sum(balances) == 300
    versions = {a: final[a]["version_number"] for a in accounts}
    assert versions == {a: str(1 + acknowledged[a]) for a in accounts}
    assert acknowledged.total() > 0


async def test_an_id_that_is_not_utf8_is_refused_not_a_crash(client: httpx.AsyncClient) -> None:
    body = b'{"persistence_ids": ["\\ud800"]}'
    response = await client.post(
        "/states:batchGet", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)
