"""Expired rows of the SQLite file: the column that says when a state expires, and their deletion in the
background.

Reads already treat an expired row as absent; deleting it only gives its space back, so that the file
stays the same size under churn (README, "Expiry"). The deletion runs through the group-commit writer,
PURGE_BATCH rows per statement: each batch is one more write in a group, so writes queued meanwhile wait
for one batch at most (its time is measured in the README, "Expiry").
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Awaitable, Callable

from app.clock import Clock, epoch_seconds
from app.errors import BackendUnavailable

logger = logging.getLogger("statestore.sqlite")

PURGE_BATCH = 200
PURGE_INTERVAL_SECONDS = 1.0

# Files written before expiry existed lack the column: NULL, never expires, as every row they hold.
_ADD_COLUMN = "ALTER TABLE states ADD COLUMN expires_at INTEGER"
# Only states that expire are in it, so it costs nothing to the others.
_INDEX = "CREATE INDEX IF NOT EXISTS states_by_expiry ON states (expires_at) WHERE expires_at IS NOT NULL"
_ANY_EXPIRED = "SELECT 1 FROM states WHERE expires_at <= ? LIMIT 1"
_DELETE_EXPIRED = "DELETE FROM states WHERE rowid IN (SELECT rowid FROM states WHERE expires_at <= ? LIMIT ?)"

Write = Callable[[str, Callable[[sqlite3.Connection], int]], Awaitable[int]]


def add_expiry(connection: sqlite3.Connection) -> None:
    """Give the table its expiry column, unless it has it, and the index the purge reads."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(states)")}
    if "expires_at" not in columns:
        connection.execute(_ADD_COLUMN)
    connection.execute(_INDEX)


def any_expired(connection: sqlite3.Connection, now: int) -> bool:
    return connection.execute(_ANY_EXPIRED, (now,)).fetchone() is not None


def delete_expired(connection: sqlite3.Connection, now: int) -> int:
    """Delete at most PURGE_BATCH rows expired at `now`; how many were."""
    return connection.execute(_DELETE_EXPIRED, (now, PURGE_BATCH)).rowcount


async def purge_forever(reader: sqlite3.Connection, write: Write, clock: Clock) -> None:
    """Delete expired rows, a batch at a time, until cancelled. A quick read first, so that a file with
    nothing expired never takes the write lock for it (other processes may share the file)."""
    while True:
        now = epoch_seconds(clock)
        purge = functools.partial(delete_expired, now=now)
        try:
            while any_expired(reader, now):
                if await write("purge_expired", purge) < PURGE_BATCH:
                    break
        except BackendUnavailable:
            pass  # logged by the store; the next round tries again
        except sqlite3.Error as exc:
            logger.warning("SQLite purge of expired states failed: %s", exc)
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)
