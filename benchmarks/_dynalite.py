"""dynalite, the DynamoDB-compatible server of the benchmark: the tests' pinned copy, run with node on a
free port with its data on disk in a temp dir, and its table created as an operator would create it
(`statestore create-table`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import aws_config
from benchmarks._processes import run_bounded
from scripts.servers import LOOPBACK, REPO, free_port, running_process, service_command

INSTALLED_CLI = REPO / "tests" / "dynalite" / "node_modules" / "dynalite" / "cli.js"
"""The tests' copy, pinned by tests/dynalite/package-lock.json; `npm ci --prefix tests/dynalite`."""


def locate(cli: Path) -> tuple[Path | None, str]:
    """dynalite's `cli.js`, or None and the reason it cannot run."""
    if shutil.which("node") is None:
        return None, "node not found"
    if not cli.exists():
        return None, f"dynalite is not installed: no {cli} (benchmarks/README.md, Prerequisites)"
    return cli, ""


def version(cli: Path) -> str:
    try:
        return str(json.loads((cli.parent / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "?"


@contextmanager
def running(cli: Path, log_dir: Path) -> Iterator[tuple[int, str]]:
    """dynalite on a free loopback port, its data in a fresh temp dir, the table created; yields its
    process id and endpoint."""
    data_dir = tempfile.mkdtemp(prefix="dynalite-", dir=log_dir)
    port = free_port()
    endpoint = f"http://{LOOPBACK}:{port}"
    argv = [
        "node",
        str(cli),
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--path",
        data_dir,
        "--createTableMs",
        "0",
    ]
    with running_process(
        argv, ready_url=f"{endpoint}/", timeout=30, stderr_to=log_dir / "dynalite.log"
    ) as node:
        _create_table(endpoint)
        yield node.pid, endpoint


def say_skipped(why: str) -> None:
    print(f"dynalite skipped: {why}", flush=True)


@contextmanager
def started(
    log_dir: Path, cli: Path = INSTALLED_CLI, skipped: Callable[[str], None] = say_skipped
) -> Iterator[tuple[int, str] | None]:
    """The one way benchmarks and scripts start dynalite: `cli` located and `running`, yielding its
    process id and endpoint; or, when it cannot run, None, once `skipped` is told why (printed by default)."""
    found, why = locate(cli)
    if found is None:
        skipped(why)
        yield None
        return
    with running(found, log_dir) as pid_and_endpoint:
        yield pid_and_endpoint


def _create_table(endpoint: str) -> None:
    env = {
        **os.environ,
        "STATESTORE_BACKEND": "dynamodb",
        "STATESTORE_DYNAMODB_ENDPOINT_URL": endpoint,
        "STATESTORE_DYNAMODB_TABLE": aws_config.TABLE,
    }
    done = run_bounded(service_command("create-table"), timeout=60, env=env, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"statestore create-table on dynalite failed: {done.stderr.strip()[-500:]}")
