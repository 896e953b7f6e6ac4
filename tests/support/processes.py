"""The separate processes that tests alone talk to: moto, and `statestore serve` on a SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scripts.servers import LOOPBACK, free_port, running_process, serving_process

SUPPORT = Path(__file__).resolve().parent
REPO = SUPPORT.parent.parent


@contextmanager
def moto_process() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A serialised moto server on 127.0.0.1; yields its process and endpoint URL."""
    port = free_port()
    endpoint = f"http://{LOOPBACK}:{port}"
    command = [sys.executable, str(SUPPORT / "serial_moto.py"), str(port)]
    with running_process(command, ready_url=endpoint) as process:
        yield process, endpoint


@contextmanager
def moto_server() -> Iterator[str]:
    with moto_process() as (_, endpoint):
        yield endpoint


@contextmanager
def serving_sqlite(
    path: Path, settings: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`statestore serve` on the file, with these more settings (variables); yields its URL and process."""
    env = {"STATESTORE_SQLITE_PATH": str(path), "STATESTORE_LOG_LEVEL": "warning", **(settings or {})}
    with serving_process(env=env) as served:
        yield served


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of a process's stderr log, each parsed as the JSON object it must be."""
    return [json.loads(line) for line in log.read_text().splitlines()]
