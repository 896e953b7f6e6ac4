"""SIGTERM: in-flight requests finish, waiting requests answer 304 at once, the DynamoDB client closes, and
the process exits 0."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from scripts.servers import serving_process
from support.api import state_body, state_path
from support.fault_proxy import FaultProxy
from support.metrics import sample_value
from support.processes import json_lines, serving_sqlite
from support.services import TABLE

ANSWER_DELAY_SECONDS = 0.5  # below the DynamoDB client's 1 s read timeout, so no SDK retry muddles it


async def test_a_request_in_flight_at_sigterm_completes_and_the_process_exits_0(
    dynamodb_endpoint: str, tmp_path: Path
) -> None:
    with FaultProxy(urlsplit(dynamodb_endpoint).port or 80).running() as proxy:
        env = {
            "STATESTORE_BACKEND": "dynamodb",
            "STATESTORE_DYNAMODB_ENDPOINT_URL": proxy.url,
            "STATESTORE_DYNAMODB_TABLE": TABLE,
        }
        with serving_process(env=env, stderr_to=tmp_path / "stderr.log") as (url, process):
            path = state_path("shutdown-test")
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                assert (await client.put(path, json=state_body(7))).status_code == 200
                proxy.set("slow", delay=ANSWER_DELAY_SECONDS)
                slow_read = asyncio.create_task(client.get(path, headers={"X-Request-ID": "in-flight"}))
                assert await asyncio.to_thread(proxy.holding.wait, 10), "the read reached the backend"
                process.send_signal(signal.SIGTERM)
                response = await slow_read
            exit_code = await asyncio.to_thread(process.wait, 30)
            lines = json_lines(tmp_path / "stderr.log")

    assert response.status_code == 200
    assert response.json()["version_number"] == "7"
    assert exit_code == 0
    messages = [line["message"] for line in lines]
    in_flight = next(i for i, line in enumerate(lines) if line.get("request_id") == "in-flight")
    assert messages.index("Shutting down") < in_flight < messages.index("statestore stopped: backend closed")


async def test_at_sigterm_every_waiter_answers_304_at_once_and_the_process_exits_0(tmp_path: Path) -> None:
    with serving_sqlite(tmp_path / "states.db") as (url, process):
        path = state_path("waited-on")
        async with httpx.AsyncClient(base_url=url, timeout=90) as client:
            assert (await client.put(path, json=state_body(3))).status_code == 200
            waiters = [
                asyncio.create_task(client.get(path, params={"wait": 60}, headers={"If-None-Match": '"3"'}))
                for _ in range(5)
            ]
            for _ in range(200):
                if sample_value((await client.get("/metrics")).text, "statestore_watch_waiters") == len(
                    waiters
                ):
                    break
                await asyncio.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            answers = await asyncio.gather(*waiters)
            answered_after = time.monotonic() - signalled
        exit_code = await asyncio.to_thread(process.wait, 30)

    assert [answer.status_code for answer in answers] == [304] * len(waiters)
    assert {answer.headers["etag"] for answer in answers} == {'"3"'}
    # Far below both the wait (60 s) and the drain uvicorn would give them (UVICORN_OPTIONS: 20 s).
    assert answered_after < 10
    assert exit_code == 0
