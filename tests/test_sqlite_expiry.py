"""Expiry on the SQLite file: files from before expiry gain its column, and expired rows are deleted in
the background, a small batch at a time, while writes go on."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import httpx

from app.main import create_app
from app.settings import Settings
from app.store.sqlite.expiry import PURGE_BATCH, add_expiry, delete_expired
from support.api import state_body, state_path
from support.clock import MovableClock
from support.uvicorn_thread import serving

# The file as every release before expiry created it.
OLD_SCHEMA = """
CREATE TABLE states (
    persistence_id TEXT PRIMARY KEY NOT NULL,
    version_number INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    payload BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    shard INTEGER NOT NULL
)
"""


def expiring_rows(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        (count,) = connection.execute("SELECT count(*) FROM states WHERE expires_at IS NOT NULL").fetchone()
        return int(count)


def wait_until_purged(path: Path, timeout: float = 20.0) -> None:
    """The service purges on its own thread: this one may block while it watches the file."""
    deadline = time.monotonic() + timeout
    while expiring_rows(path):
        assert time.monotonic() < deadline, f"{expiring_rows(path)} expired rows left after {timeout} s"
        time.sleep(0.05)


async def test_a_file_from_before_expiry_gains_the_column_and_its_states_never_expire(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute(OLD_SCHEMA)
        connection.execute("INSERT INTO states VALUES ('old', 3, 'acme.State', x'0a01', 5, 0)")
    clock = MovableClock()
    with serving(create_app(Settings(backend="sqlite", sqlite_path=path), clock=clock)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            clock.move_to(clock.seconds + 100 * 365 * 24 * 3600)
            old = await client.get(state_path("old"))
            assert old.status_code == 200
            assert "expires_at" not in old.json()
            written = await client.put(state_path("new"), json=state_body(1, ttl_seconds=5))
            assert written.json()["expires_at"] == str(clock.seconds + 5)
    with sqlite3.connect(path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(states)")]
        assert columns[-2:] == ["expires_at", "write_key"]
        assert connection.execute(
            "SELECT expires_at FROM states WHERE persistence_id = 'old'"
        ).fetchone() == (None,)


async def test_expired_rows_are_deleted_in_the_background_while_writes_go_on(tmp_path: Path) -> None:
    path = tmp_path / "purged.db"
    clock = MovableClock()
    expiring = 2 * PURGE_BATCH + 7  # three batches
    with serving(create_app(Settings(backend="sqlite", sqlite_path=path), clock=clock)) as url:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            for start in range(0, expiring, 100):
                written = await asyncio.gather(
                    *(
                        client.put(state_path(f"short-{n}"), json=state_body(1, ttl_seconds=10))
                        for n in range(start, min(start + 100, expiring))
                    )
                )
                assert {response.status_code for response in written} == {200}
            assert expiring_rows(path) == expiring
            clock.move_to(clock.seconds + 10)

            steady: list[str] = []

            async def write_steadily(worker: int) -> None:
                for n in range(200):  # bounded: about as long as the purge takes, or less
                    persistence_id = f"steady-{worker}-{n}"
                    answer = await client.put(state_path(persistence_id), json=state_body(n))
                    assert answer.status_code == 200, answer.text
                    steady.append(persistence_id)
                    if not expiring_rows(path):
                        return

            await asyncio.gather(*(write_steadily(worker) for worker in range(8)))
            wait_until_purged(path)
            assert steady
            found = await client.post("/states:batchGet", json={"persistence_ids": steady})
            assert found.json()["missing"] == []


def test_a_batch_of_the_purge_reads_only_the_rows_it_deletes(tmp_path: Path) -> None:
    """What a write queued behind a batch waits for, at most: one batch's DELETE, which finds its rows
    through the expiry index, not by reading the table (its time is measured in the README, "Expiry")."""
    connection = sqlite3.connect(tmp_path / "batches.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(OLD_SCHEMA)
    add_expiry(connection)
    rows = 20 * PURGE_BATCH
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO states VALUES (?, 1, 'acme.State', ?, 0, 0, ?)",
        ((f"state-{n:06d}", b"\x00" * 200, 1000 + n % 7) for n in range(rows)),
    )
    connection.execute("COMMIT")
    statements: list[str] = []
    connection.set_trace_callback(statements.append)
    connection.execute("BEGIN IMMEDIATE")  # as the writer runs it: within a group's transaction
    for _ in range(rows // PURGE_BATCH):
        assert delete_expired(connection, now=2000) == PURGE_BATCH
    assert delete_expired(connection, now=2000) == 0
    connection.execute("COMMIT")
    connection.set_trace_callback(None)
    (purge,) = {statement for statement in statements if statement.startswith("DELETE")}
    plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {purge}")]
    assert any("states_by_expiry" in step for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan
