"""The service under test: started with `python -m app.cli serve` (or a given command) from the repo."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import aws_config
from benchmarks._processes import LOOPBACK, Child, ChildFailedError, Children, free_port

REPO = Path(__file__).resolve().parent.parent
UVICORN_FLAGS = ["--loop", "uvloop", "--http", "httptools", "--workers", "1", "--no-access-log"]


def service_argv(command: str | None) -> list[str] | None:
    """The command that serves the service, or None when the checkout has no `app.cli` yet."""
    if command:
        return shlex.split(command)
    if importlib.util.find_spec("app.cli") is None:
        return None
    return [sys.executable, "-m", "app.cli", "serve"]


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


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STATESTORE_", "AWS_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def start_minimal(children: Children, log_dir: Path) -> tuple[Child, str]:
    port = free_port()
    child = children.start(
        "minimal endpoint", minimal_argv(port), log_dir / "minimal.log", _clean_env(), REPO
    )
    base = f"http://{LOOPBACK}:{port}"
    child.wait_http(base + "/healthz")
    return child, base


def start_service(
    children: Children,
    argv: Sequence[str],
    backend: str,
    log_dir: Path,
    dynamodb_endpoint: str | None,
    log_level: str,
) -> tuple[Child, str]:
    port = free_port()
    env = (
        _clean_env()
        | aws_config.AWS_ENV
        | {
            "STATESTORE_BACKEND": backend,
            "STATESTORE_HOST": LOOPBACK,
            "STATESTORE_PORT": str(port),
            "STATESTORE_LOG_LEVEL": log_level,
            "STATESTORE_SQLITE_PATH": str(log_dir / "sqlite" / "statestore.db"),
            "STATESTORE_DYNAMODB_TABLE": aws_config.TABLE,
        }
    )
    if dynamodb_endpoint:
        env["STATESTORE_DYNAMODB_ENDPOINT_URL"] = dynamodb_endpoint
    child = children.start(f"service ({backend})", argv, log_dir / f"service-{backend}.log", env, REPO)
    base = f"http://{LOOPBACK}:{port}"
    child.wait_http(base + "/healthz")
    wait_ready(child, port)
    return child, base


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


def wait_ready(child: Child, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        child.check_alive()
        status, body = request(port, "GET", "/readyz")
        if status == 200:
            return
        if time.monotonic() > deadline:
            raise ChildFailedError(f"{child.name} not ready: {status} {body[:300]!r}\n{child.log_tail()}")
        time.sleep(0.2)


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
