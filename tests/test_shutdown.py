"""SIGTERM: in-flight requests finish, the DynamoDB client closes, and the process exits 0."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from scripts.servers import serving_process
from support.api import state_body, state_path
from support.fault_proxy import FaultProxy
from support.processes import json_lines
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
