"""Start and stop the separate processes that tests talk to."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

SUPPORT = Path(__file__).resolve().parent
REPO = SUPPORT.parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_answers(
    url: str, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextmanager
def running_process(
    command: Sequence[str],
    *,
    ready_url: str,
    env: dict[str, str] | None = None,
    timeout: float = 20.0,
    stderr_to: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """The process, answering on `ready_url`. Its stderr goes to a file, never to a pipe that nobody
    reads: a full pipe would block the process at its next log line."""
    with stderr_to.open("wb") if stderr_to else open(os.devnull, "wb") as stderr:
        process = subprocess.Popen(
            list(command),
            env={**os.environ, **(env or {})},
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        wait_until_answers(ready_url, timeout, process)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@contextmanager
def moto_process() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A serialised moto server on 127.0.0.1; yields its process and endpoint URL."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(SUPPORT / "serial_moto.py"), str(port)]
    with running_process(command, ready_url=endpoint) as process:
        yield process, endpoint


@contextmanager
def moto_server() -> Iterator[str]:
    with moto_process() as (_, endpoint):
        yield endpoint


def service_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *arguments]


@contextmanager
def serving_sqlite(
    path: Path, settings: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`statestore serve` on the file, with these more settings (variables); yields its URL and process."""
    env = {"STATESTORE_SQLITE_PATH": str(path), "STATESTORE_LOG_LEVEL": "warning", **(settings or {})}
    with serving_process(env=env) as served:
        yield served


@contextmanager
def serving_process(
    *arguments: str, env: dict[str, str], stderr_to: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`statestore serve` on a free port of 127.0.0.1; yields its URL and the process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = service_command("serve", *arguments)
    with running_process(
        command, ready_url=f"{url}/healthz", env={"STATESTORE_PORT": str(port), **env}, stderr_to=stderr_to
    ) as process:
        yield url, process


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of a process's stderr log, each parsed as the JSON object it must be."""
    return [json.loads(line) for line in log.read_text().splitlines()]
