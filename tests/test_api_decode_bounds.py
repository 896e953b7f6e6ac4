"""Decoding over HTTP, bounded: one answer renders at most MAX_ANSWER_VALUES values, and the service keeps
answering while the protobuf worker renders or parses.

The service runs as `statestore serve`, a process of its own on SQLite, as it runs in production: a
stall of its event loop shows as probes that wait, whatever the test process does meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from _descriptors import SAMPLE_PROTO, build_descriptor_set

from app.protobuf import MAX_RENDERED_VALUES
from app.protobuf_worker import MAX_ANSWER_VALUES
from support.api import state_path
from support.messages import ACCOUNT_STATE
from support.processes import serving_sqlite

AT_THE_CAP = b"\x5a\x00" * MAX_RENDERED_VALUES  # that many empty ledger entries
STATES_PER_ANSWER = MAX_ANSWER_VALUES // MAX_RENDERED_VALUES
MAX_PROBES = 10_000


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("decode-bounds")
    descriptor_set = build_descriptor_set(SAMPLE_PROTO, work / "sample.binpb")
    with serving_sqlite(work / "states.db", {"STATESTORE_DESCRIPTOR_SETS": str(descriptor_set)}) as (url, _):
        yield url


@pytest.fixture
async def client(service_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service_url, timeout=60) as client:
        yield client


async def write_at_the_cap(client: httpx.AsyncClient, ids: list[str], shard: int = 0) -> None:
    body = {
        "manifest": ACCOUNT_STATE,
        "payload": base64.b64encode(AT_THE_CAP).decode(),
        "version_number": 1,
        "shard": shard,
    }
    for persistence_id in ids:
        (await client.put(state_path(persistence_id), json=body)).raise_for_status()


async def probes_answered_during(client: httpx.AsyncClient, call: Awaitable[httpx.Response]) -> int:
    """How many `/healthz` calls, one after another, were answered before `call` was."""
    running = asyncio.ensure_future(call)
    answered = 0
    while not running.done() and answered < MAX_PROBES:
        (await client.get("/healthz")).raise_for_status()
        answered += 1
    (await running).raise_for_status()
    return answered


async def test_a_batch_get_answers_what_one_rendering_may_and_leaves_the_rest_unprocessed(
    client: httpx.AsyncClient, state_id: str
) -> None:
    ids = [f"{state_id}-{n}" for n in range(STATES_PER_ANSWER + 2)]
    await write_at_the_cap(client, ids)

    first = await client.post("/states:batchGet", json={"persistence_ids": ids}, params={"decode": "true"})
    answer = first.json()
    rest = await client.post(
        "/states:batchGet", json={"persistence_ids": answer["unprocessed"]}, params={"decode": "true"}
    )

    assert [state["persistence_id"] for state in answer["states"]] == ids[:STATES_PER_ANSWER]
    assert answer["unprocessed"] == ids[STATES_PER_ANSWER:]
    assert answer["missing"] == []
    assert [state["persistence_id"] for state in rest.json()["states"]] == ids[STATES_PER_ANSWER:]
    assert all(len(state["state"]["recentEntries"]) == MAX_RENDERED_VALUES for state in answer["states"])


async def test_a_listing_page_ends_where_one_rendering_must_and_the_next_goes_on(
    client: httpx.AsyncClient, state_id: str
) -> None:
    shard = 1_000_001
    ids = sorted(f"{state_id}-{n}" for n in range(STATES_PER_ANSWER + 1))
    await write_at_the_cap(client, ids, shard)
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"decode": "true", "shard": shard}
    while len(pages) < len(ids):
        pages.append((await client.get("/states", params=params)).json())
        if pages[-1]["next_page_token"] is None:
            break
        params["page_token"] = pages[-1]["next_page_token"]

    assert [len(page["states"]) for page in pages] == [STATES_PER_ANSWER, 1]
    assert [state["persistence_id"] for page in pages for state in page["states"]] == ids
    assert pages[0]["states"][0]["state"]["recentEntries"][0] == {}


async def test_probes_are_answered_while_a_listing_renders(client: httpx.AsyncClient, state_id: str) -> None:
    """Before the worker, a listing rendered on the event loop: no probe was answered until it was."""
    shard = 1_000_002
    await write_at_the_cap(client, [f"{state_id}-{n}" for n in range(STATES_PER_ANSWER)], shard)

    listing = client.get("/states", params={"decode": "true", "shard": shard})

    assert await probes_answered_during(client, listing) >= 5


async def test_probes_are_answered_while_a_json_state_is_parsed(
    client: httpx.AsyncClient, state_id: str
) -> None:
    """Before the worker, a JSON state was parsed on the event loop."""
    body = {"manifest": ACCOUNT_STATE, "state": {"recentEntries": [{}] * (MAX_RENDERED_VALUES - 2)}}
    write = client.put(state_path(state_id), json={**body, "version_number": 1})

    assert await probes_answered_during(client, write) >= 5
    assert (await client.get(state_path(state_id))).json()["payload"] == base64.b64encode(
        b"\x5a\x00" * (MAX_RENDERED_VALUES - 2)
    ).decode()


async def test_a_json_state_of_too_many_values_is_a_422_that_points_at_the_payload(
    client: httpx.AsyncClient, state_id: str
) -> None:
    body = {"manifest": ACCOUNT_STATE, "state": {"recentEntries": [{}] * MAX_RENDERED_VALUES}}
    answer = await client.put(state_path(state_id), json={**body, "version_number": 1})

    assert answer.status_code == 422
    assert answer.json()["errors"][0]["loc"] == ["body", "state"]
    assert "send its serialized payload instead" in answer.json()["detail"]


async def test_a_listing_answers_a_state_it_cannot_render_with_why(
    client: httpx.AsyncClient, state_id: str
) -> None:
    shard = 1_000_003
    over, fine = f"{state_id}-over", f"{state_id}-fine"
    await write_at_the_cap(client, [fine], shard)
    body = {
        "manifest": ACCOUNT_STATE,
        "payload": base64.b64encode(AT_THE_CAP * 2).decode(),
        "version_number": 1,
    }
    (await client.put(state_path(over), json={**body, "shard": shard})).raise_for_status()

    page = (await client.get("/states", params={"decode": "true", "shard": shard})).json()

    listed = {state["persistence_id"]: state for state in page["states"]}
    assert "read its payload instead" in listed[over]["decode_error"]
    assert listed[over]["state"] is None
    assert len(listed[fine]["state"]["recentEntries"]) == MAX_RENDERED_VALUES
    assert page["next_page_token"] is None


def test_the_worker_leaves_with_a_service_killed_outright(tmp_path: Path) -> None:
    """SIGKILL (or the OOM killer) gives the service no chance to stop its worker, which must not be left
    behind waiting for work for ever."""
    descriptor_set = build_descriptor_set(SAMPLE_PROTO, tmp_path / "sample.binpb")
    settings = {"STATESTORE_DESCRIPTOR_SETS": str(descriptor_set)}
    with serving_sqlite(tmp_path / "states.db", settings) as (url, service):
        body = {
            "manifest": ACCOUNT_STATE,
            "payload": base64.b64encode(AT_THE_CAP).decode(),
            "version_number": 1,
        }
        httpx.put(f"{url}/states/a", json=body, timeout=60).raise_for_status()
        httpx.get(f"{url}/states/a", params={"decode": "true"}, timeout=60).raise_for_status()
        children = psutil.Process(service.pid).children(recursive=True)
        assert children, "the decode started no worker"

        service.kill()
        service.wait(timeout=30)
        for _ in range(300):  # at most about 30 s
            if not any(_running(child) for child in children):
                break
            time.sleep(0.1)

    assert not any(_running(child) for child in children)


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
