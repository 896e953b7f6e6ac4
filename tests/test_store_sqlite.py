"""The SQLite adapter's storage: WAL mode, and uint64 values in SQLite's signed integers.

Crash durability and sharing one file between processes are in test_crash_sqlite.py.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from pathlib import Path

import httpx

from scripts.servers import free_port, service_command
from support.api import state_body, state_path
from support.processes import serving_sqlite


async def test_versions_above_int64_are_stored_losslessly(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "big.db"
    big = 2**64 - 1
    with serving_sqlite(path) as (url, _):
        async with httpx.AsyncClient(base_url=url) as client:
            written = await client.put(
                state_path("big"), json=state_body(big, shard=2**63, timestamp=-62135596800)
            )
            assert written.status_code == 200, written.text
            stale = await client.put(
                state_path("big"), json=state_body(1), headers={"If-Match": f'"{big - 1}"'}
            )
            assert stale.json()["current_version"] == "18446744073709551615"
            read = (await client.get(state_path("big"))).json()
            assert (read["version_number"], read["shard"], read["timestamp"]) == (
                "18446744073709551615",
                "9223372036854775808",
                "-62135596800",
            )
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("SELECT version_number, shard, timestamp FROM states").fetchone() == (
            -1,
            -(2**63),
            -62135596800,  # a timestamp is int64 already: stored as it is
        )


async def test_writes_committed_together_stay_independent(tmp_path: Path) -> None:
    """A burst of writes shares commits; a refused one must undo only itself."""
    with serving_sqlite(tmp_path / "burst.db") as (url, _):
        async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=64)) as client:
            writes = [
                client.put(
                    state_path(f"burst-{n}"),
                    json=state_body(1),
                    headers={"If-Match": '"7"'} if n % 5 == 0 else {},
                )
                for n in range(100)
            ]
            answers = await asyncio.gather(*writes)
            assert [answer.status_code for answer in answers] == [
                412 if n % 5 == 0 else 200 for n in range(100)
            ]
            reads = await asyncio.gather(*(client.get(state_path(f"burst-{n}")) for n in range(100)))
            assert [read.status_code for read in reads] == [404 if n % 5 == 0 else 200 for n in range(100)]


def test_a_device_or_a_fifo_is_refused_before_any_file_is_made(tmp_path: Path) -> None:
    fifo = tmp_path / "states.fifo"
    os.mkfifo(fifo)
    null_journal_before = os.path.exists("/dev/null-journal")
    for path in (fifo, Path("/dev/null")):
        result = subprocess.run(
            service_command("serve"),
            env={**os.environ, "STATESTORE_SQLITE_PATH": str(path), "STATESTORE_PORT": str(free_port())},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert result.stderr.startswith("statestore: invalid setting STATESTORE_SQLITE_PATH: ")
        assert "not a regular file" in result.stderr
    assert sorted(tmp_path.iterdir()) == [fifo]
    if not null_journal_before:
        assert not os.path.exists("/dev/null-journal")
        assert not os.path.exists("/dev/null-wal")
