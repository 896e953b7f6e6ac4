"""dynalite, a DynamoDB-compatible server, as a process of its own on 127.0.0.1, in memory.

Unlike moto it locks each item around a conditional write, so concurrent compare-and-set needs no
serialising, and it applies DynamoDB's item size and key size limits exactly (docs/test-backends.md).
It is pinned by tests/dynalite/package-lock.json and installed from it on first use; npm keeps the
download in its own cache (~/.npm), so later installs and every start take about a second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts.servers import free_port, running_process

PROJECT = Path(__file__).resolve().parent.parent / "dynalite"
CLI = PROJECT / "node_modules" / "dynalite" / "cli.js"
INSTALL_TIMEOUT_SECONDS = 300


class DynaliteUnavailable(RuntimeError):
    """node or npm is missing, or the install failed; the message says which."""


def pinned_version() -> str:
    return str(json.loads((PROJECT / "package.json").read_text())["dependencies"]["dynalite"])


def installed_version() -> str | None:
    try:
        return str(json.loads((CLI.parent / "package.json").read_text())["version"])
    except FileNotFoundError:
        return None


def install() -> Path:
    """dynalite's cli.js at the pinned version, `npm ci` from the lockfile when it is missing or stale."""
    if shutil.which("node") is None:
        raise DynaliteUnavailable("dynalite needs node on PATH")
    if installed_version() == pinned_version():
        return CLI
    npm = shutil.which("npm")
    if npm is None:
        raise DynaliteUnavailable(f"dynalite is not installed in {PROJECT}, and npm is not on PATH")
    result = subprocess.run(
        [npm, "ci", "--prefix", str(PROJECT)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0 or installed_version() != pinned_version():
        raise DynaliteUnavailable(f"npm ci in {PROJECT} failed: {result.stderr.strip()[-500:]}")
    return CLI


@contextmanager
def dynalite_server() -> Iterator[str]:
    """Yields the endpoint URL of a fresh, empty, in-memory dynalite; stops it on exit."""
    cli = install()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # Tables are ACTIVE at once, as create-table's waiter would otherwise poll for half a second.
    command = ["node", str(cli), "--host", "127.0.0.1", "--port", str(port), "--createTableMs", "0"]
    with running_process(command, ready_url=endpoint):
        yield endpoint
