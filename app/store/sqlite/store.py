"""The embedded backend: one SQLite file in WAL mode, shared safely by several processes.

Every write checks its precondition and writes inside one transaction that holds the file's write
lock (`BEGIN IMMEDIATE`), so the check and the write are atomic across processes too. Writes run on
one thread that commits the writes queued at the same moment together (`writer`), and
`synchronous=FULL` makes an acknowledged write survive a crash of the process or of the machine.
Reads run on the event loop itself, on a connection of their own: in WAL mode a read never waits for
a writer, and a point read costs less than handing it to a thread. Reads of several states run in
one read transaction, so they see one snapshot of the file.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from app.errors import BackendUnavailable
from app.states.answers import AnswerBudget, BatchRead
from app.states.model import (
    DeleteOperation,
    Operation,
    Precondition,
    StateRecord,
    puts_to_read,
    refusal,
    refused_operations,
    settle_refused,
    settle_refused_write,
    transaction_results,
)
from app.store import CallObserver, ObservedCall, StoreConfigurationError, ignore_call
from app.store.sqlite.writer import GroupCommitWriter, savepoint

T = TypeVar("T")

logger = logging.getLogger("statestore.sqlite")

BUSY_TIMEOUT_SECONDS = 5.0
# A read waits for a lock only in rare cases (another process recovering the WAL); never block the loop long.
READ_BUSY_TIMEOUT_SECONDS = 0.5
# Below SQLITE_MAX_VARIABLE_NUMBER in every SQLite build, old ones included (docs/design.md).
IDS_PER_SELECT = 500
_UINT64_OFFSET = 2**64
_SCHEMA = """
CREATE TABLE IF NOT EXISTS states (
    persistence_id TEXT PRIMARY KEY NOT NULL,
    version_number INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    payload BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    shard INTEGER NOT NULL
)
"""
_SELECT_FROM = "SELECT persistence_id, version_number, manifest, payload, timestamp, shard FROM states"
_SELECT = f"{_SELECT_FROM} WHERE persistence_id = ?"
_SELECT_MANY = _SELECT_FROM + " WHERE persistence_id IN ({})"
_DELETE = "DELETE FROM states WHERE persistence_id = ?"
_UPSERT = (
    "INSERT OR REPLACE INTO states (persistence_id, version_number, manifest, payload, timestamp, shard)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def _to_signed(value: int) -> int:
    """SQLite integers are signed 64-bit; uint64 values above 2^63-1 wrap around and back."""
    return value - _UINT64_OFFSET if value >= 2**63 else value


def _to_unsigned(value: int) -> int:
    return value + _UINT64_OFFSET if value < 0 else value


def _row_to_record(row: tuple[str, int, str, bytes, int, int]) -> StateRecord:
    persistence_id, version, manifest, payload, timestamp, shard = row
    return StateRecord(
        persistence_id, _to_unsigned(version), manifest, bytes(payload), timestamp, _to_unsigned(shard)
    )


def _record_to_row(record: StateRecord) -> tuple[str, int, str, bytes, int, int]:
    return (
        record.persistence_id,
        _to_signed(record.version_number),
        record.manifest,
        record.payload,
        record.timestamp,
        _to_signed(record.shard),
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
        connection.execute(_SCHEMA)
    except sqlite3.Error:
        connection.close()
        raise
    return connection


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
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._path = path
        self._observer = observer

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path, observer: CallObserver = ignore_call) -> AsyncIterator[SQLiteStore]:
        try:
            writer = GroupCommitWriter(_connect_writer(path))
        except (sqlite3.Error, OSError) as exc:
            raise _unusable(path, exc) from exc
        try:
            reader = _connect_reader(path)
        except sqlite3.Error as exc:
            writer.close()
            raise _unusable(path, exc) from exc
        try:
            yield cls(reader, writer, path, observer)
        finally:
            reader.close()
            writer.close()

    @property
    def description(self) -> str:
        return f"sqlite file {self._path.resolve()}"

    async def _write(self, operation: str, work: Callable[[sqlite3.Connection], T]) -> T:
        with ObservedCall(self._observer, operation), _map_sqlite_errors(operation):
            return await self._writer.run(work)

    async def get(self, persistence_id: str) -> StateRecord | None:
        with ObservedCall(self._observer, "get"), _map_sqlite_errors("get"):
            return _read(self._reader, persistence_id)

    async def put(self, record: StateRecord, precondition: Precondition) -> StateRecord:
        def write(connection: sqlite3.Connection) -> StateRecord:
            if not precondition.is_unconditional:
                stored = _read(connection, record.persistence_id)
                if not precondition.allows_state(stored):
                    return settle_refused_write(precondition, record, stored)
            connection.execute(_UPSERT, _record_to_row(record))
            return record

        return await self._write("put", write)

    async def delete(self, persistence_id: str, precondition: Precondition) -> None:
        def remove(connection: sqlite3.Connection) -> None:
            if not precondition.is_unconditional:
                stored = _read(connection, persistence_id)
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
            return _read_answer(self._reader, persistence_ids)

    async def transact(self, operations: Sequence[Operation]) -> list[StateRecord | None]:
        def apply(connection: sqlite3.Connection) -> list[StateRecord | None]:
            stored = _read_many(connection, [operation.persistence_id for operation in operations])
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

    async def ping(self) -> None:
        with ObservedCall(self._observer, "ping"), _map_sqlite_errors("ping"):
            self._reader.execute("SELECT 1 FROM states LIMIT 1").fetchall()


def _read(connection: sqlite3.Connection, persistence_id: str) -> StateRecord | None:
    row = connection.execute(_SELECT, (persistence_id,)).fetchone()
    return None if row is None else _row_to_record(row)


def _read_many(connection: sqlite3.Connection, persistence_ids: Sequence[str]) -> dict[str, StateRecord]:
    found: dict[str, StateRecord] = {}
    for start in range(0, len(persistence_ids), IDS_PER_SELECT):
        chunk = persistence_ids[start : start + IDS_PER_SELECT]
        rows = connection.execute(_SELECT_MANY.format(", ".join(["?"] * len(chunk))), chunk)
        found.update((row[0], _row_to_record(row)) for row in rows)
    return found


def _read_answer(connection: sqlite3.Connection, persistence_ids: Sequence[str]) -> BatchRead:
    """The states of the ids, row by row, until the answer is full: the ids not read yet are unprocessed."""
    budget = AnswerBudget()
    for start in range(0, len(persistence_ids), IDS_PER_SELECT):
        chunk = persistence_ids[start : start + IDS_PER_SELECT]
        for row in connection.execute(_SELECT_MANY.format(", ".join(["?"] * len(chunk))), chunk):
            if not budget.admit(_row_to_record(row)):
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
