"""The embedded backend: one SQLite file in WAL mode, shared safely by several processes.

Every write checks its precondition and writes inside one transaction that holds the file's write
lock (`BEGIN IMMEDIATE`), so the check and the write are atomic across processes too. Writes run on
one thread that commits the writes queued at the same moment together (`writer`), and
`synchronous=FULL` makes an acknowledged write survive a crash of the process or of the machine.
Reads run on the event loop itself, on a connection of their own: in WAL mode a read never waits for
a writer, and a point read costs less than handing it to a thread. Reads of several states run in
one read transaction, so they see one snapshot of the file.

A row whose `expires_at` has passed is absent to every read and every precondition at once, and is
deleted in the background (`expiry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from app.clock import Clock, epoch_seconds
from app.errors import BackendUnavailable
from app.states.answers import AnswerBudget, BatchRead
from app.states.model import (
    MAX_PAGE_READ_BYTES,
    DeleteOperation,
    Operation,
    Page,
    Precondition,
    StateRecord,
    item_size,
    present,
    puts_to_read,
    refusal,
    refused_operations,
    settle_refused,
    settle_refused_write,
    transaction_results,
)
from app.store import CallObserver, Expiry, ObservedCall, StoreConfigurationError, ignore_call
from app.store.sqlite.expiry import add_expiry, purge_forever
from app.store.sqlite.writer import GroupCommitWriter, savepoint

T = TypeVar("T")

logger = logging.getLogger("statestore.sqlite")

BUSY_TIMEOUT_SECONDS = 5.0
# A read waits for a lock only in rare cases (another process recovering the WAL); never block the loop long.
READ_BUSY_TIMEOUT_SECONDS = 0.5
# Below SQLITE_MAX_VARIABLE_NUMBER in every SQLite build, old ones included (docs/design.md).
IDS_PER_SELECT = 500
SQLITE_EXPIRY = Expiry("enabled", "expires_at", None)
"""Expired rows are deleted in the background (`app.store.sqlite.expiry`), by their `expires_at`."""
_UINT64_OFFSET = 2**64
_SCHEMA = """
CREATE TABLE IF NOT EXISTS states (
    persistence_id TEXT PRIMARY KEY NOT NULL,
    version_number INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    payload BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    expires_at INTEGER,
    write_key TEXT
)
"""
# Listing one shard is a range of this index, not a walk of the whole table.
_SHARD_INDEX = "CREATE INDEX IF NOT EXISTS states_by_shard ON states (shard, persistence_id)"
_SELECT_FROM = (
    "SELECT persistence_id, version_number, manifest, payload, timestamp, shard, expires_at, write_key"
    " FROM states"
)
_SELECT = f"{_SELECT_FROM} WHERE persistence_id = ?"
_SELECT_MANY = _SELECT_FROM + " WHERE persistence_id IN ({})"
_PAGE = (
    "SELECT persistence_id, version_number, manifest, {payload}, timestamp, shard, expires_at, write_key"
    " FROM states"
    " WHERE persistence_id > ?{shard} AND (expires_at IS NULL OR expires_at > ?)"
    " ORDER BY persistence_id LIMIT ?"
)
_DELETE = "DELETE FROM states WHERE persistence_id = ?"
_UPSERT = (
    "INSERT OR REPLACE INTO states"
    " (persistence_id, version_number, manifest, payload, timestamp, shard, expires_at, write_key)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# Files written before v3 lack the column: NULL, the key of no write, so that no retry matches such a row.
_ADD_WRITE_KEY = "ALTER TABLE states ADD COLUMN write_key TEXT"
_Row = tuple[str, int, str, bytes, int, int, int | None, str | None]


def _to_signed(value: int) -> int:
    """SQLite integers are signed 64-bit; uint64 values above 2^63-1 wrap around and back."""
    return value - _UINT64_OFFSET if value >= 2**63 else value


def _to_unsigned(value: int) -> int:
    return value + _UINT64_OFFSET if value < 0 else value


def _row_to_record(row: _Row) -> StateRecord:
    persistence_id, version, manifest, payload, timestamp, shard, expires_at, write_key = row
    return StateRecord(
        persistence_id,
        _to_unsigned(version),
        manifest,
        bytes(payload),
        timestamp,
        _to_unsigned(shard),
        expires_at,
        write_key,
    )


def _record_to_row(record: StateRecord) -> _Row:
    return (
        record.persistence_id,
        _to_signed(record.version_number),
        record.manifest,
        record.payload,
        record.timestamp,
        _to_signed(record.shard),
        record.expires_at,
        record.write_key,
    )


def _connect_writer(path: Path) -> sqlite3.Connection:
    # SQLite writes `<path>-wal` and `<path>-journal` beside its file: a device or a FIFO is refused before
    # anything is created (`/dev/null` would leave `/dev/null-journal` behind).
    if path.exists() and not path.is_file():
        raise OSError(f"{path} is not a regular file")
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_SECONDS
    )
    try:
        (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode != "wal":
            raise sqlite3.OperationalError(f"its file system does not support WAL (journal mode {mode})")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("BEGIN IMMEDIATE")  # another process may be creating or migrating it too
        connection.execute(_SCHEMA)
        connection.execute(_SHARD_INDEX)
        add_expiry(connection)
        _add_write_key(connection)
        connection.execute("COMMIT")
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def _add_write_key(connection: sqlite3.Connection) -> None:
    if "write_key" not in {row[1] for row in connection.execute("PRAGMA table_info(states)")}:
        connection.execute(_ADD_WRITE_KEY)


def _unusable(path: Path, error: Exception) -> StoreConfigurationError:
    return StoreConfigurationError(f"cannot use {path}: {error}", setting="sqlite_path")


def _connect_reader(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, timeout=READ_BUSY_TIMEOUT_SECONDS)
    connection.execute("PRAGMA query_only=ON")
    return connection


class _map_sqlite_errors:  # noqa: N801 - used as a `with` statement, like a contextlib function
    """The adapter's one error boundary: a sqlite3 error of one call becomes the service's 503."""

    __slots__ = ("_operation",)

    def __init__(self, operation: str) -> None:
        self._operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, raised: BaseException | None, _: TracebackType | None
    ) -> None:
        if isinstance(raised, sqlite3.OperationalError):
            logger.warning("SQLite %s failed: %s", self._operation, raised)
            raise BackendUnavailable("the SQLite file is busy or unavailable") from raised
        if isinstance(raised, sqlite3.DatabaseError):
            logger.error("SQLite %s failed", self._operation, exc_info=raised)
            raise BackendUnavailable("the SQLite file cannot be used", retry_after=30) from raised


class SQLiteStore:
    def __init__(
        self,
        reader: sqlite3.Connection,
        writer: GroupCommitWriter,
        path: Path,
        observer: CallObserver = ignore_call,
        clock: Clock = time.time_ns,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._path = path
        self._observer = observer
        self._data_version: int | None = None
        self._clock = clock

    @classmethod
    @asynccontextmanager
    async def open(
        cls, path: Path, observer: CallObserver = ignore_call, clock: Clock = time.time_ns
    ) -> AsyncIterator[SQLiteStore]:
        try:
            writer = GroupCommitWriter(_connect_writer(path))
        except (sqlite3.Error, OSError) as exc:
            raise _unusable(path, exc) from exc
        try:
            reader = _connect_reader(path)
        except sqlite3.Error as exc:
            writer.close()
            raise _unusable(path, exc) from exc
        store = cls(reader, writer, path, observer, clock)
        purge = asyncio.create_task(purge_forever(reader, store._write, clock), name="sqlite-purge")
        try:
            yield store
        finally:
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            reader.close()
            writer.close()

    @property
    def item_limit(self) -> int | None:
        return None  # any state the request cap lets in

    @property
    def description(self) -> str:
        return f"sqlite file {self._path.resolve()}"

    def _now(self) -> int:
        return epoch_seconds(self._clock)

    async def _write(self, operation: str, work: Callable[[sqlite3.Connection], T]) -> T:
        with ObservedCall(self._observer, operation), _map_sqlite_errors(operation):
            return await self._writer.run(work)

    async def get(self, persistence_id: str) -> StateRecord | None:
        with ObservedCall(self._observer, "get"), _map_sqlite_errors("get"):
            return _read(self._reader, persistence_id, self._now())

    async def put(self, record: StateRecord, precondition: Precondition) -> StateRecord:
        def write(connection: sqlite3.Connection) -> StateRecord:
            if not precondition.is_unconditional:
                stored = _read(connection, record.persistence_id, self._now())
                if not precondition.allows_state(stored):
                    return settle_refused_write(precondition, record, stored)
            connection.execute(_UPSERT, _record_to_row(record))
            return record

        return await self._write("put", write)

    async def delete(self, persistence_id: str, precondition: Precondition) -> None:
        def remove(connection: sqlite3.Connection) -> None:
            if not precondition.is_unconditional:
                stored = _read(connection, persistence_id, self._now())
                if not precondition.allows_state(stored):
                    raise refusal(precondition, stored)
            connection.execute(_DELETE, (persistence_id,))

        await self._write("delete", remove)

    async def get_many(self, persistence_ids: Sequence[str]) -> BatchRead:
        with (
            ObservedCall(self._observer, "get_many"),
            _map_sqlite_errors("get_many"),
            _transaction(self._reader),
        ):
            return _read_answer(self._reader, persistence_ids, self._now())

    async def transact(self, operations: Sequence[Operation]) -> list[StateRecord | None]:
        def apply(connection: sqlite3.Connection) -> list[StateRecord | None]:
            persistence_ids = [operation.persistence_id for operation in operations]
            stored = _read_many(connection, persistence_ids, self._now())
            refused = refused_operations(operations, stored)
            unrefused_puts = {
                index: stored.get(operations[index].persistence_id)
                for index in puts_to_read(operations, refused)
            }
            settled = settle_refused(operations, refused, unrefused_puts=unrefused_puts)
            with savepoint(connection):
                for index, operation in enumerate(operations):
                    if index in settled:
                        continue
                    if isinstance(operation, DeleteOperation):
                        connection.execute(_DELETE, (operation.persistence_id,))
                    else:
                        connection.execute(_UPSERT, _record_to_row(operation.record))
            return transaction_results(operations, settled)

        return await self._write("transact", apply)

    async def list_page(self, limit: int, after: str | None, shard: int | None, *, payloads: bool) -> Page:
        query = _PAGE.format(
            payload="payload" if payloads else "x''", shard="" if shard is None else " AND shard = ?"
        )
        parameters = [after or "", *([] if shard is None else [_to_signed(shard)]), self._now(), limit]
        records: list[StateRecord] = []
        read = 0
        with (
            ObservedCall(self._observer, "list"),
            _map_sqlite_errors("list"),
            closing(self._reader.execute(query, parameters)) as rows,
        ):
            for row in rows:
                records.append(_row_to_record(row))
                read += item_size(records[-1])
                if read >= MAX_PAGE_READ_BYTES:
                    break
        full = len(records) == limit or read >= MAX_PAGE_READ_BYTES
        return Page(records, records[-1].persistence_id if full and records else None)

    async def changed_since_last_check(self) -> bool:
        """`PRAGMA data_version` of the reader moves on each commit of another connection: the writer's,
        or another process's."""
        with ObservedCall(self._observer, "data_version"), _map_sqlite_errors("data_version"):
            (version,) = self._reader.execute("PRAGMA data_version").fetchone()
        changed: bool = version != self._data_version
        self._data_version = version
        return changed

    async def ping(self) -> None:
        with ObservedCall(self._observer, "ping"), _map_sqlite_errors("ping"):
            self._reader.execute("SELECT 1 FROM states LIMIT 1").fetchall()

    async def expiry(self) -> Expiry:
        return SQLITE_EXPIRY


def _read(connection: sqlite3.Connection, persistence_id: str, now: int) -> StateRecord | None:
    """The state stored at `now` (epoch seconds), None when there is none or it has expired."""
    row = connection.execute(_SELECT, (persistence_id,)).fetchone()
    return None if row is None else present(_row_to_record(row), now)


def _read_many(
    connection: sqlite3.Connection, persistence_ids: Sequence[str], now: int
) -> dict[str, StateRecord]:
    """The states stored at `now` (epoch seconds), by id; expired ones are left out."""
    found: dict[str, StateRecord] = {}
    for start in range(0, len(persistence_ids), IDS_PER_SELECT):
        chunk = persistence_ids[start : start + IDS_PER_SELECT]
        rows = connection.execute(_SELECT_MANY.format(", ".join(["?"] * len(chunk))), chunk)
        records = (_row_to_record(row) for row in rows)
        found.update((record.persistence_id, record) for record in records if not record.expired(now))
    return found


def _read_answer(connection: sqlite3.Connection, persistence_ids: Sequence[str], now: int) -> BatchRead:
    """The states of the ids stored at `now`, row by row, until the answer is full: the ids not read yet
    are unprocessed; expired states are left out, as missing."""
    budget = AnswerBudget()
    for start in range(0, len(persistence_ids), IDS_PER_SELECT):
        chunk = persistence_ids[start : start + IDS_PER_SELECT]
        for row in connection.execute(_SELECT_MANY.format(", ".join(["?"] * len(chunk))), chunk):
            record = _row_to_record(row)
            if record.expired(now):
                continue
            if not budget.admit(record):
                answered = {record.persistence_id for record in budget.found}
                unread = (i for i in persistence_ids[start:] if i not in answered)
                return budget.answer(persistence_ids, unread)
    return budget.answer(persistence_ids, ())


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """A read transaction: one snapshot for several reads."""
    connection.execute("BEGIN")
    try:
        yield
    finally:
        connection.execute("COMMIT")
