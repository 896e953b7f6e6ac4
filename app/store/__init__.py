"""Storage backends behind one port, `StateStore`, the one way to open the configured backend, and how an
adapter reports each of its calls (operation, duration, outcome) without knowing who listens.

Adapters translate their own library's exceptions into the service's errors at one visible boundary
each (`app.store.dynamodb.errors`, `app.store.sqlite.store`); nothing above this package ever sees a
boto3 or sqlite3 exception.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from app.clock import Clock
from app.settings import Compression
from app.states.answers import BatchRead
from app.states.model import Operation, Page, Precondition, StateRecord

if TYPE_CHECKING:
    from app.store.dynamodb.store import ClientKind

CallObserver = Callable[[str, float, Exception | None], None]
"""Told of every backend call: its operation, its seconds, and the service error it ended with, if any."""


def ignore_call(operation: str, seconds: float, error: Exception | None) -> None:
    """The observer of a store nobody watches, such as the one `statestore create-table` opens."""


class ObservedCall:
    """One backend call as a `with` block that may await inside: timed, and reported to the observer with
    the error it ended with. Adapters map their library's errors inside it, so the observer sees the
    service's error. A class rather than a generator-based context manager: it wraps every backend call."""

    __slots__ = ("_observer", "_operation", "_started")

    def __init__(self, observer: CallObserver, operation: str) -> None:
        self._observer = observer
        self._operation = operation
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(
        self, kind: type[BaseException] | None, raised: BaseException | None, _: TracebackType | None
    ) -> None:
        if raised is not None and not isinstance(raised, Exception):
            return  # cancelled: the call has no outcome to report
        self._observer(self._operation, time.perf_counter() - self._started, raised)


@dataclass(frozen=True, slots=True)
class Expiry:
    """How a backend deletes expired states: `status` is DynamoDB's time-to-live status in lower case
    (`enabled`, `enabling`, `disabled`, `disabling`), or `unknown` when the endpoint would not say;
    `attribute` is the attribute (column) it reads; `warning` says why expired states would stay stored."""

    status: str
    attribute: str | None
    warning: str | None


UNKNOWN_EXPIRY = Expiry("unknown", None, None)
"""What start-up knows of expiry when the backend did not answer."""


class StoreConfigurationError(Exception):
    """A backend cannot be used as configured; `setting` names the setting at fault (a `Settings` field),
    or is None when the fault lies outside the service's settings (the AWS SDK's own chain)."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class StateStore(Protocol):
    """One backend. Adapters are async context managers that own their connections."""

    @property
    def item_limit(self) -> int | None:
        """The largest item (`item_size`) the backend stores, or None when it takes larger states and
        refuses, itself, those it cannot store (SQLite: none; DynamoDB with compression: a state that does
        not fit an item even compressed)."""
        ...

    @property
    def description(self) -> str:
        """Where this store writes, for the start-up log line."""
        ...

    # Every read and every precondition treats a state that has expired by the store's clock as absent.
    async def get(self, persistence_id: str) -> StateRecord | None: ...

    async def put(self, record: StateRecord, precondition: Precondition) -> StateRecord:
        """Store `record` if `precondition` holds; returns what is stored, or raises 412/409."""
        ...

    async def delete(self, persistence_id: str, precondition: Precondition) -> None: ...

    async def get_many(self, persistence_ids: Sequence[str]) -> BatchRead:
        """The stored states of distinct ids, in no particular order, as many as fit in one answer
        (`app.states.answers`); ids with none are left out, ids not read are listed as unprocessed."""
        ...

    async def transact(self, operations: Sequence[Operation]) -> list[StateRecord | None]:
        """Apply every operation or none (each id at most once).

        Returns, for each operation in order, what its put left stored (None for a delete); raises
        412/409 naming the first operation that fails, per `app.states.model.settle_refused`.
        """
        ...

    async def list_page(self, limit: int, after: str | None, shard: int | None, *, payloads: bool) -> Page:
        """One page of the stored states after the id `after` (None: from the start), in the backend's own
        order, with their payloads only when asked: at most `limit` states and about 1 MB read, only those
        of `shard` when one is given. A page may hold fewer states than `limit`, even none, and still
        have a next one."""
        ...

    async def changed_since_last_check(self) -> bool:
        """Whether any state may have been written, by any process, since the last call: True when the
        backend cannot tell without reading the states."""
        ...

    async def ping(self) -> None:
        """Raise `BackendUnavailable` unless the backend answers and its table exists."""
        ...

    async def expiry(self) -> Expiry:
        """How the backend deletes expired states, and a warning when they would stay in storage for good."""
        ...


@asynccontextmanager
async def open_store(
    backend: str,
    *,
    sqlite_path: Path,
    dynamodb_table: str,
    dynamodb_endpoint_url: str | None,
    dynamodb_client: ClientKind = "lean",
    compression: Compression = "off",
    observer: CallObserver = ignore_call,
    clock: Clock = time.time_ns,
    call_details: bool = False,
) -> AsyncIterator[StateStore]:
    """The backend named, open for the life of the process, reporting its calls to `observer`, telling
    expired states by `clock`, noting what each call cost when asked (`app.store.call_details`); on
    DynamoDB, `dynamodb_client` makes the hot calls."""
    if backend == "dynamodb":
        from app.store.dynamodb import DynamoDBStore

        async with DynamoDBStore.open(
            dynamodb_table,
            dynamodb_endpoint_url,
            observer=observer,
            clock=clock,
            client=dynamodb_client,
            call_details=call_details,
            compression=compression,
        ) as dynamodb:
            yield dynamodb
    else:
        from app.store.sqlite import SQLiteStore

        async with SQLiteStore.open(sqlite_path, observer, clock) as sqlite:
            yield sqlite
