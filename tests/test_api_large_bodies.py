"""Bodies of many JSON values are parsed in the protobuf worker, not on the event loop, and answered as a
body parsed in place is (only the worker's own bounds can add a 503, tests/test_protobuf_worker.py).

The service runs as `statestore serve`, a process of its own on SQLite with the tests' descriptor set.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from google.protobuf import wrappers_pb2
from hypothesis import given
from hypothesis import strategies as st

from app.api.bodies import QUICK_BODY_ITEMS, json_items_at_most
from app.http.bodies import MAX_REPORTED_ERRORS
from support.api import assert_problem, state_path
from support.messages import ACCOUNT_STATE
from support.processes import serving_sqlite

MANY = QUICK_BODY_ITEMS + 1  # empty ledger entries: a state of that many values is parsed in the worker
JUNK_VALUES = 2_000_000  # an extra field of that many empty objects: about 6 MB, refused
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def service_url(descriptor_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("large-bodies") / "states.db"
    with serving_sqlite(path, {"STATESTORE_DESCRIPTOR_SETS": str(descriptor_set)}) as (url, _):
        yield url


@pytest.fixture
async def client(service_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service_url, timeout=60) as client:
        yield client


def entries(count: int) -> dict[str, Any]:
    return {"recentEntries": [{}] * count}


def put_body(state: Any, **more: Any) -> dict[str, Any]:
    return {"manifest": ACCOUNT_STATE, "state": state, "version_number": "1", **more}


def junk(values: int) -> list[dict[str, Any]]:
    return [{}] * values


def refusal(response: httpx.Response) -> dict[str, Any]:
    """What a 422 says, without what differs from one request to the next."""
    problem = assert_problem(response, 422)
    return {key: problem[key] for key in ("type", "detail", "errors")}


async def stored_payload(client: httpx.AsyncClient, persistence_id: str) -> bytes:
    response = await client.get(state_path(persistence_id))
    response.raise_for_status()
    return base64.b64decode(response.json()["payload"])


def test_small_bodies_are_parsed_in_place_and_one_of_many_values_in_the_worker(
    descriptor_set: Path, tmp_path: Path
) -> None:
    """The worker starts on first use: a body of few values does not start it, one of many does."""
    settings = {"STATESTORE_DESCRIPTOR_SETS": str(descriptor_set)}
    with serving_sqlite(tmp_path / "states.db", settings) as (url, service):
        few = put_body(entries(10))
        httpx.put(f"{url}/states/few", json=few, timeout=60).raise_for_status()
        ids = {"persistence_ids": [f"id-{n}" for n in range(1000)]}
        httpx.post(f"{url}/states:batchGet", json=ids, timeout=60).raise_for_status()
        assert psutil.Process(service.pid).children(recursive=True) == []

        refused = httpx.post(f"{url}/states:batchGet", json={**ids, "junk": junk(MANY)}, timeout=60)

        assert refused.status_code == 422
        assert psutil.Process(service.pid).children(recursive=True), "no worker parsed the body"


async def test_a_json_state_of_many_escapes_is_stored_as_its_payload(
    client: httpx.AsyncClient, state_id: str
) -> None:
    account_id = '"\\' * QUICK_BODY_ITEMS
    response = await client.put(state_path(state_id), json=put_body({"accountId": account_id}))

    assert response.status_code == 200, response.text
    same_wire_form = wrappers_pb2.StringValue(value=account_id)  # a string as field 1, as AccountState's id
    assert await stored_payload(client, state_id) == same_wire_form.SerializeToString()


async def test_a_json_state_of_many_values_is_stored_as_its_payload(
    client: httpx.AsyncClient, state_id: str
) -> None:
    response = await client.put(state_path(state_id), json=put_body(entries(MANY)))

    assert response.status_code == 200, response.text
    assert await stored_payload(client, state_id) == b"\x5a\x00" * MANY


@pytest.mark.parametrize(
    ("manifest", "small", "large", "fault"),
    [
        (
            ACCOUNT_STATE,
            {"recentEntries": [{"noSuchField": 1}]},
            {"recentEntries": [{"noSuchField": 1}, *junk(MANY)]},
            "noSuchField",
        ),
        (ACCOUNT_STATE, junk(1), junk(MANY), "must be a JSON object"),
        ("acme.billing.v1.NoSuchType", entries(1), entries(MANY), "needs a known manifest"),
    ],
    ids=["a field its type lacks", "not an object", "an unknown manifest"],
)
async def test_a_state_refused_in_a_body_of_many_values_is_refused_as_in_a_small_one(
    client: httpx.AsyncClient, state_id: str, manifest: str, small: Any, large: Any, fault: str
) -> None:
    in_place = await client.put(state_path(state_id), json={**put_body(small), "manifest": manifest})
    in_the_worker = await client.put(state_path(state_id), json={**put_body(large), "manifest": manifest})

    assert fault in refusal(in_place)["detail"]
    assert refusal(in_the_worker) == refusal(in_place)
    assert refusal(in_place)["errors"][0]["loc"] == ["body", "state"]
    assert (await client.get(state_path(state_id))).status_code == 404


@pytest.mark.parametrize(
    "fault",
    [{"junk": None}, {"payload": "AAAA"}, {"version_number": -1}],
    ids=["an unknown field", "payload and state", "a version below zero"],
)
async def test_a_body_of_many_values_that_breaks_the_schema_is_refused_as_a_small_one(
    client: httpx.AsyncClient, state_id: str, fault: dict[str, Any]
) -> None:
    in_place = await client.put(state_path(state_id), json={**put_body(entries(1)), **fault})
    in_the_worker = await client.put(state_path(state_id), json={**put_body(entries(MANY)), **fault})

    assert refusal(in_the_worker) == refusal(in_place)


@pytest.mark.parametrize("keys", [MAX_REPORTED_ERRORS + 1, MANY], ids=["in place", "in the worker"])
async def test_a_body_that_breaks_the_schema_in_many_places_names_the_first_ones(
    client: httpx.AsyncClient, state_id: str, keys: int
) -> None:
    unknown = [f"unknown-{n:05}" for n in range(keys)]
    body = {**put_body(entries(1)), **dict.fromkeys(unknown, 0)}
    response = await client.put(state_path(state_id), json=body)

    named = unknown[:MAX_REPORTED_ERRORS]
    assert refusal(response)["errors"] == [
        {"loc": ["body", key], "msg": "Extra inputs are not permitted"} for key in named
    ]


async def test_a_batch_get_with_an_unknown_field_of_many_values_is_refused_naming_it(
    client: httpx.AsyncClient,
) -> None:
    body = {"persistence_ids": ["a"], "junk": junk(JUNK_VALUES)}
    response = await client.post("/states:batchGet", content=orjson.dumps(body), headers=JSON)

    assert refusal(response)["errors"] == [{"loc": ["body", "junk"], "msg": "Extra inputs are not permitted"}]


async def test_a_transaction_of_many_values_stores_each_state_as_its_payload(
    client: httpx.AsyncClient, state_id: str
) -> None:
    ids = [f"{state_id}-{n}" for n in range(3)]
    operations = [
        {"op": "put", "persistence_id": persistence_id, **put_body(entries(QUICK_BODY_ITEMS // 2))}
        for persistence_id in ids
    ]
    response = await client.post("/states:transact", json={"operations": operations})

    assert response.status_code == 200, response.text
    for persistence_id in ids:
        assert await stored_payload(client, persistence_id) == b"\x5a\x00" * (QUICK_BODY_ITEMS // 2)


async def test_a_transaction_of_many_values_with_one_state_refused_applies_nothing(
    client: httpx.AsyncClient, state_id: str
) -> None:
    fine, refused = f"{state_id}-fine", f"{state_id}-refused"
    operations = [
        {"op": "put", "persistence_id": fine, **put_body(entries(MANY))},
        {"op": "put", "persistence_id": refused, **put_body({"recentEntries": [{"noSuchField": 1}]})},
    ]
    response = await client.post("/states:transact", json={"operations": operations})

    assert refusal(response)["errors"][0]["loc"] == ["body", "operations", 1, "state"]
    assert (await client.get(state_path(fine))).status_code == 404


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
)


@given(JSON_VALUES)
def test_a_body_is_never_said_to_hold_fewer_values_than_it_does(value: Any) -> None:
    values = count_values(value)

    assert not json_items_at_most(orjson.dumps(value), values - 1)


@pytest.mark.parametrize("gap", [0, 1, 100, 254, 255, 256, 300, 5000])
def test_marks_are_counted_exactly_however_far_apart(gap: int) -> None:
    strings = ["x" * gap] * QUICK_BODY_ITEMS  # that many values, and the list's own
    body = orjson.dumps(strings)

    assert json_items_at_most(body, QUICK_BODY_ITEMS + 1)
    assert not json_items_at_most(body, QUICK_BODY_ITEMS)


def test_each_escape_in_a_string_counts_as_an_item() -> None:
    body = orjson.dumps({"accountId": '"' * QUICK_BODY_ITEMS})

    assert not json_items_at_most(body, QUICK_BODY_ITEMS)
    assert json_items_at_most(body, QUICK_BODY_ITEMS + 2)


def test_a_base64_payload_holds_no_values_of_its_own() -> None:
    body = orjson.dumps({"manifest": "m", "payload": "A" * 8_000_000, "version_number": "1"})

    assert json_items_at_most(body, 4)


def count_values(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(count_values(child) for child in value.values())
    if isinstance(value, list):
        return 1 + sum(count_values(child) for child in value)
    return 1
