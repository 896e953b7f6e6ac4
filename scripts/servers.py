"""A server in a process of its own, as tests, benchmarks and scripts start one: on a free port of
127.0.0.1, ready once a URL answers, and stopped with whatever it started.

It lives in `scripts/` because this is the package that tests, benchmarks and scripts can all import
from the repository root; `tests/support` is on the tests' import path only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 10.0


class ServerFailed(RuntimeError):
    """A server exited, or never answered; the message ends with the last lines of its stderr."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def service_command(*arguments: str) -> list[str]:
    """`statestore ARGUMENTS`, run by this interpreter from the source tree."""
    return [sys.executable, "-m", "app.cli", *arguments]


def check_running(process: subprocess.Popen[bytes], stderr_to: Path | None = None) -> None:
    if process.poll() is not None:
        raise ServerFailed(f"{process.args!r} exited with {process.returncode}{_stderr_tail(stderr_to)}")


@contextmanager
def running_process(
    command: Sequence[str],
    *,
    ready_url: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
    stderr_to: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`command`, run from the repository with `env` on top of this process's environment, once
    `ready_url` answers with any status; stopped on exit.

    It runs in a session of its own, so that stopping it stops what it started too. Its stderr goes to
    `stderr_to` or nowhere, never to a pipe that nobody reads: a full pipe would block it at its next
    log line.
    """
    with stderr_to.open("wb") if stderr_to else open(os.devnull, "wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - a command of the repository's own tools
            list(command),
            env={**os.environ, **(env or {})},
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        _wait_until_answers(process, ready_url, timeout, stderr_to)
        yield process
    finally:
        _stop(process)


@contextmanager
def serving_process(
    *arguments: str,
    env: Mapping[str, str] | None = None,
    stderr_to: Path | None = None,
    command: Sequence[str] | None = None,
    timeout: float = 20.0,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`statestore serve ARGUMENTS` (or `command`, which must bind where `STATESTORE_HOST` and
    `STATESTORE_PORT` say, as it does) on a free port of 127.0.0.1; yields its URL and process once
    `/healthz` answers."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    bind = {"STATESTORE_HOST": LOOPBACK, "STATESTORE_PORT": str(port)}
    with running_process(
        service_command("serve", *arguments) if command is None else command,
        ready_url=f"{url}/healthz",
        env={**(env or {}), **bind},
        timeout=timeout,
        stderr_to=stderr_to,
    ) as process:
        yield url, process


def _wait_until_answers(
    process: subprocess.Popen[bytes], url: str, timeout: float, stderr_to: Path | None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_running(process, stderr_to)
        try:
            httpx.get(url, timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return
    raise ServerFailed(f"{process.args!r} did not answer {url} within {timeout:g} s{_stderr_tail(stderr_to)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, SIGKILL if it is still running `STOP_GRACE_SECONDS` later, then SIGKILL for whatever it
    left behind in its session."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _stderr_tail(stderr_to: Path | None, lines: int = 15) -> str:
    if stderr_to is None:
        return ""
    try:
        tail = stderr_to.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return ":\n" + "\n".join(tail)
