"""The servers under test, started as `scripts.servers` starts every server: the service (`python -m
app.cli serve`, or a given command) and the minimal endpoint; and the requests that seed the service."""

from __future__ import annotations

import http.client
import importlib.util
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from benchmarks import aws_config
from scripts.servers import (
    LOOPBACK,
    ServerFailed,
    check_running,
    free_port,
    running_process,
    service_command,
    serving_process,
)

UVICORN_FLAGS = ["--loop", "uvloop", "--http", "httptools", "--workers", "1", "--no-access-log"]
START_SECONDS = 30.0
Served = tuple[subprocess.Popen[bytes], str]
"""A server's process, and its base URL."""


def service_argv(command: str | None) -> list[str] | None:
    """The command that serves the service, or None when the checkout has no `app.cli` yet."""
    if command:
        return shlex.split(command)
    if importlib.util.find_spec("app.cli") is None:
        return None
    return service_command("serve")


def minimal_argv(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "benchmarks.minimal_app:app",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--log-level",
        "warning",
        *UVICORN_FLAGS,
    ]


@contextmanager
def minimal(log_dir: Path) -> Iterator[Served]:
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    log = log_dir / "minimal.log"
    with running_process(
        minimal_argv(port), ready_url=f"{base}/healthz", timeout=START_SECONDS, stderr_to=log
    ) as process:
        yield process, base


@contextmanager
def service(
    argv: Sequence[str],
    backend: str,
    log_dir: Path,
    dynamodb_endpoint: str | None,
    log_level: str,
    settings: Mapping[str, str] | None = None,
) -> Iterator[Served]:
    """The service on `backend`, once it is ready (`/readyz`); `settings`: more STATESTORE_* variables."""
    env = {
        "STATESTORE_BACKEND": backend,
        "STATESTORE_LOG_LEVEL": log_level,
        "STATESTORE_SQLITE_PATH": str(log_dir / "sqlite" / "statestore.db"),
        "STATESTORE_DYNAMODB_TABLE": aws_config.TABLE,
        **(settings or {}),
    }
    if dynamodb_endpoint:
        env["STATESTORE_DYNAMODB_ENDPOINT_URL"] = dynamodb_endpoint
    log = log_dir / f"service-{backend}.log"
    with serving_process(command=argv, env=env, stderr_to=log, timeout=START_SECONDS) as (base, process):
        _wait_ready(process, base, log)
        yield process, base


def request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        sent = {"Content-Type": "application/json"} if body else {}
        conn.request(method, path, body=body, headers=sent | (headers or {}))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _wait_ready(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    port = port_of(base)
    deadline = time.monotonic() + START_SECONDS
    while True:
        check_running(process, log)
        status, body = request(port, "GET", "/readyz")
        if status == 200:
            return
        if time.monotonic() > deadline:
            raise ServerFailed(f"the service is not ready: {status} {body[:300]!r}")
        time.sleep(0.2)


def port_of(base: str) -> int:
    return int(base.rpartition(":")[2])


def seed(port: int, id_prefix: str, count: int, payload_b64: str, manifest: str) -> None:
    """PUT `count` states, then read each back once (this also warms the service's code paths up)."""
    body = json.dumps({"manifest": manifest, "payload": payload_b64, "version_number": 1}).encode()
    for i in range(count):
        status, answer = request(port, "PUT", f"/states/{id_prefix}{i}", body)
        if status not in (200, 201):
            raise RuntimeError(f"seeding PUT /states/{id_prefix}{i} answered {status}: {answer[:300]!r}")
        status, answer = request(port, "GET", f"/states/{id_prefix}{i}")
        if status != 200:
            raise RuntimeError(f"seeding GET /states/{id_prefix}{i} answered {status}: {answer[:300]!r}")


def batch_get_present(port: int, ids: list[str]) -> tuple[bool, str]:
    """Whether POST /states:batchGet exists (404/405 mean not yet), with a note when it does not."""
    status, answer = request(port, "POST", "/states:batchGet", json.dumps({"persistence_ids": ids}).encode())
    if status in (404, 405):
        return False, f"POST /states:batchGet answered {status}: not implemented yet, scenario skipped"
    if status != 200:
        raise RuntimeError(f"POST /states:batchGet answered {status}: {answer[:300]!r}")
    return True, ""
