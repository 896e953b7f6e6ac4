"""`statestore serve` logs JSON lines: start-up, one per request, shutdown; never a payload or a key."""

from __future__ import annotations

import base64
import json
import signal
import sys
from pathlib import Path

import httpx

from scripts.servers import free_port, running_process, serving_process
from support.api import state_body, state_path
from support.crashing_service import CRASH_MESSAGE, CRASH_PATH
from support.processes import json_lines

KEY = "log-test-secret-key"
PAYLOAD = b"a payload that must never reach a log"


def test_each_request_is_one_json_line_between_start_up_and_shutdown(tmp_path: Path) -> None:
    database = tmp_path / "states.db"
    env = {"STATESTORE_SQLITE_PATH": str(database), "STATESTORE_API_KEYS": KEY}
    with serving_process(env=env, stderr_to=tmp_path / "stderr.log") as (url, process):
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as client:
            path = state_path("account/42")
            written = client.put(path, json=state_body(1, PAYLOAD), headers={"X-Request-ID": "put-1"})
            assert written.status_code == 200
            assert client.get(path, headers={"X-Request-ID": "get-1"}).status_code == 200
        refused = httpx.get(f"{url}{path}")
        assert refused.status_code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        lines = json_lines(tmp_path / "stderr.log")

    everything = json.dumps(lines)
    assert KEY not in everything
    assert base64.b64encode(PAYLOAD).decode() not in everything
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    messages = [line["message"] for line in lines]
    ready = next(i for i, line in enumerate(lines) if line["message"].startswith("statestore ready"))
    assert lines[ready]["backend"] == "sqlite"
    assert lines[ready]["location"] == f"sqlite file {database}"
    assert lines[ready]["api_keys"] == 1
    stopped = messages.index("statestore stopped: backend closed")

    access = [(i, line) for i, line in enumerate(lines) if line["logger"] == "statestore.access"]
    assert [line["request_id"] for _, line in access][-3:] == [
        "put-1",
        "get-1",
        refused.headers["x-request-id"],
    ]
    assert all(ready < i < stopped for i, _ in access)
    put_line = access[-3][1]
    assert set(put_line) == {
        "time", "level", "logger", "message", "request_id", "method", "route", "status", "duration_ms",
        "persistence_id", "client",
    }  # fmt: skip
    assert put_line["level"] == "info"
    assert put_line["message"] == "PUT /states/{persistence_id} 200"
    assert (put_line["method"], put_line["route"], put_line["status"]) == (
        "PUT",
        "/states/{persistence_id}",
        200,
    )
    assert put_line["persistence_id"] == "account/42"
    assert 0 < put_line["duration_ms"] < 10_000
    assert put_line["client"] == "127.0.0.1"
    assert put_line["time"].endswith("Z")
    assert access[-1][1]["status"] == 401
    assert access[-1][1]["route"] == "/states/{persistence_id}"


def test_the_level_setting_silences_the_info_lines(tmp_path: Path) -> None:
    env = {"STATESTORE_SQLITE_PATH": str(tmp_path / "states.db"), "STATESTORE_LOG_LEVEL": "warning"}
    with serving_process(env=env, stderr_to=tmp_path / "stderr.log") as (url, process):
        assert httpx.get(f"{url}/states/x").status_code == 404
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert json_lines(tmp_path / "stderr.log") == []


def test_an_unexpected_error_is_one_log_record_with_its_traceback_and_request_id(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tests.support.crashing_service", str(port)]
    env = {"STATESTORE_SQLITE_PATH": str(tmp_path / "states.db")}
    log = tmp_path / "stderr.log"
    with running_process(command, ready_url=f"{url}/healthz", env=env, stderr_to=log) as process:
        response = httpx.get(f"{url}{CRASH_PATH}", headers={"X-Request-ID": "crash-1"})
        assert response.status_code == 500
        process.send_signal(signal.SIGTERM)
        process.wait(15)
        lines = json_lines(log)

    errors = [line for line in lines if line["level"] == "error"]
    assert len(errors) == 1, errors
    assert errors[0]["request_id"] == "crash-1"
    assert f"RuntimeError: {CRASH_MESSAGE}" in errors[0]["exception"]
    assert [line for line in lines if "exception" in line] == errors
