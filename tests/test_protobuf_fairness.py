"""One client decoding in loops does not starve the others of the protobuf worker (issue 26, item 3).

The service runs as `statestore serve` on SQLite with two API keys. Under one key, many connections loop
over decoded batch reads of states at the rendering cap; under the other, clients decode one state each
and write states whose payloads are checked in the worker. The others are never refused: writes have a
lane of their own, and the reads' lane takes each key's calls in turn, holding at most its share of one
key's calls. The figures of the same scenario at full size: docs/security.md.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from _descriptors import SAMPLE_PROTO, build_descriptor_set

from app.protobuf import MAX_RENDERED_VALUES
from support.api import state_path
from support.messages import ACCOUNT_STATE
from support.processes import serving_sqlite

AT_THE_CAP = b"\x5a\x00" * MAX_RENDERED_VALUES  # that many empty ledger entries
CHECKED_IN_THE_WORKER = b"\x5a\x00" * 10_000  # 20 KB of entries: past what is checked in place
LOOPING_KEY, OTHER_KEY = "looping-client-key-1", "other-clients-key-1"
STATES, LOOPS, ROUNDS_PER_LOOP = 10, 24, 8
OTHER_READERS, OTHER_WRITERS = 10, 10


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("fairness")
    descriptor_set = build_descriptor_set(SAMPLE_PROTO, work / "sample.binpb")
    settings = {
        "STATESTORE_DESCRIPTOR_SETS": str(descriptor_set),
        "STATESTORE_API_KEYS": f"{LOOPING_KEY},{OTHER_KEY}",
    }
    with serving_sqlite(work / "states.db", settings) as (url, _):
        yield url


def body(payload: bytes) -> dict[str, object]:
    return {"manifest": ACCOUNT_STATE, "payload": base64.b64encode(payload).decode(), "version_number": 1}


async def test_a_client_looping_over_decoded_reads_leaves_the_others_served(
    service_url: str, state_id: str
) -> None:
    ids = [f"{state_id}-{n}" for n in range(STATES)]
    looping = httpx.AsyncClient(
        base_url=service_url, timeout=120, headers={"Authorization": f"Bearer {LOOPING_KEY}"}
    )
    others = httpx.AsyncClient(
        base_url=service_url,
        timeout=120,
        headers={"Authorization": f"Bearer {OTHER_KEY}"},
        limits=httpx.Limits(max_connections=OTHER_READERS + OTHER_WRITERS),
    )
    async with looping, others:
        for persistence_id in ids:
            (await others.put(state_path(persistence_id), json=body(AT_THE_CAP))).raise_for_status()
        loop_statuses: Counter[int] = Counter()
        others_done = asyncio.Event()

        async def loop() -> None:
            for _ in range(ROUNDS_PER_LOOP):
                if others_done.is_set():
                    return
                answer = await looping.post(
                    "/states:batchGet", json={"persistence_ids": ids}, params={"decode": "true"}
                )
                loop_statuses[answer.status_code] += 1

        loops = [asyncio.create_task(loop()) for _ in range(LOOPS)]
        await asyncio.sleep(0.5)  # the loops keep the reads' lane busy
        reads = [
            others.get(state_path(ids[n % STATES]), params={"decode": "true"}) for n in range(OTHER_READERS)
        ]
        writes = [
            others.put(state_path(f"{state_id}-written-{n}"), json=body(CHECKED_IN_THE_WORKER))
            for n in range(OTHER_WRITERS)
        ]
        answered = await asyncio.gather(*reads, *writes)
        others_done.set()
        await asyncio.gather(*loops)

    assert [answer.status_code for answer in answered] == [200] * (OTHER_READERS + OTHER_WRITERS), [
        answer.text for answer in answered if answer.status_code != 200
    ]
    assert set(loop_statuses) <= {200, 503}, loop_statuses
