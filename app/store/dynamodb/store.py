"""The production backend: DynamoDB (or any compatible endpoint) through one aioboto3 client.

Items keep ego-contrib's Go layout, so Go actors and HTTP clients can share a table. Every
precondition is a `ConditionExpression`, and a refused write gets the stored item back in the same
call (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), so telling a retry from a conflict costs no
second read. An endpoint that ignores ALL_OLD (dynalite, some other DynamoDB-compatible servers) sends a
refusal without the item; then one consistent read of the key tells what is stored (`_found`), until the
endpoint has once shown that it does send the item, after which a refusal without one means that nothing
is stored (as on DynamoDB). Several states at once: `batch_get` (BatchGetItem) and `transact`
(TransactWriteItems).
Every call runs inside `map_dynamodb_errors`, the adapter's one error boundary.

Each call reads the service's clock once: its conditions and its reading of the items it gets back
treat an item that expired at that second as absent (`app.states.model.present`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, cast

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.clock import Clock, epoch_seconds
from app.errors import BackendUnavailable
from app.settings import Compression
from app.states.answers import BatchRead
from app.states.model import (
    MAX_ITEM_BYTES,
    Operation,
    Page,
    Precondition,
    PutOperation,
    Settled,
    StateRecord,
    present,
    puts_to_read,
    refusal,
    settle_refused_write,
    transaction_results,
)
from app.store import CallObserver, Expiry, ObservedCall, StoreConfigurationError, ignore_call
from app.store.dynamodb import _large_states
from app.store.dynamodb._details import note_call_details
from app.store.dynamodb.batch_get import batch_get
from app.store.dynamodb.codec import condition_arguments, from_item, key_of, to_item
from app.store.dynamodb.errors import error_code, map_dynamodb_errors
from app.store.dynamodb.lean import LeanClient
from app.store.dynamodb.scan import scan_page
from app.store.dynamodb.table import (
    check_table,
    enable_time_to_live,
    expiry,
    request_table,
    wait_for_table,
)
from app.store.dynamodb.transact import cancellation, settle_cancellation, transact_items

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

    from app.store.dynamodb.codec import Item

# A hung, dead or throttling DynamoDB becomes a 503 within CALL_DEADLINE_SECONDS (docs/reliability.md).
# Single-item calls answer in milliseconds, so an attempt silent for a second is retried, three attempts
# at most, with jittered exponential backoff. Not "adaptive" retries: once throttled, their client-side
# rate limiter holds every later call of the process back for seconds after DynamoDB has recovered.
CALL_DEADLINE_SECONDS = 3.0
# A first attempt, then at most two more with the operations found already done pinned; more than
# that means the states keep changing under the transaction, and the client had better retry later.
TRANSACT_ATTEMPTS = 3
# A write refused by an endpoint that ignores ALL_OLD is checked by a read, which may find the state
# changed since, and now allowed: the write is then made again, this many times in all at most.
WRITE_ATTEMPTS = 3
CLIENT_CONFIG = Config(
    connect_timeout=1,
    read_timeout=1,
    retries={"mode": "standard", "max_attempts": 3},
    max_pool_connections=64,
    tcp_keepalive=True,
    parameter_validation=False,
)
ClientKind = Literal["lean", "aioboto3"]
"""What makes the hot calls (`STATESTORE_DYNAMODB_CLIENT`): the lean client (`lean.py`), or aioboto3's."""


class DynamoDBStore:
    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        deadline: float = CALL_DEADLINE_SECONDS,
        observer: CallObserver = ignore_call,
        clock: Clock = time.time_ns,
        client_kind: ClientKind = "aioboto3",
        compression: Compression = "off",
    ) -> None:
        self._client = client
        self._client_kind = client_kind
        self._table = table
        self._deadline = deadline
        self._observer = observer
        self._clock = clock
        self._compression = compression
        # Set once a refused condition came back with the stored item: this endpoint honours ALL_OLD.
        self._returns_old_items = False

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        table: str,
        endpoint_url: str | None = None,
        deadline: float = CALL_DEADLINE_SECONDS,
        observer: CallObserver = ignore_call,
        clock: Clock = time.time_ns,
        client: ClientKind = "lean",
        *,
        call_details: bool = False,
        compression: Compression = "off",
    ) -> AsyncIterator[DynamoDBStore]:
        """`deadline` bounds each call in seconds, SDK retries and a batch read's own retries included;
        `client` names what makes the hot calls, the control plane being aioboto3's either way;
        `call_details` notes each request's consumed capacity and retries (`app.store.call_details`)."""
        # botocore reads only AWS_DEFAULT_REGION; AWS_REGION is what the other AWS SDKs and Lambda set.
        session = aioboto3.Session(region_name=os.environ.get("AWS_REGION") or None)
        if session.region_name is None:
            raise StoreConfigurationError(
                "no AWS region is configured: set AWS_REGION (or a profile with a region)"
            )
        async with session.client("dynamodb", endpoint_url=endpoint_url, config=CLIENT_CONFIG) as sdk:
            if call_details:
                note_call_details(sdk)
            if client == "aioboto3":
                yield cls(sdk, table, deadline, observer, clock, client, compression)
                return
            credentials = await session.get_credentials()
            async with LeanClient.open(sdk, credentials, CLIENT_CONFIG, call_details=call_details) as lean:
                # The lean client answers the hot calls as the SDK's client does, and hands it the rest.
                yield cls(cast("DynamoDBClient", lean), table, deadline, observer, clock, client, compression)

    @property
    def item_limit(self) -> int | None:
        return MAX_ITEM_BYTES if self._compression == "off" else None

    @property
    def description(self) -> str:
        endpoint = self._client.meta.endpoint_url
        return f"dynamodb table {self._table} at {endpoint} ({self._client_kind} client)"

    @asynccontextmanager
    async def _call(self, operation: str) -> AsyncIterator[None]:
        """One call, SDK retries included: reported, its errors mapped, and bounded by the deadline."""
        with (
            ObservedCall(self._observer, operation),
            map_dynamodb_errors(self._table, operation, self._deadline),
        ):
            async with asyncio.timeout(self._deadline):
                yield

    def _now(self) -> int:
        return epoch_seconds(self._clock)

    async def get(self, persistence_id: str) -> StateRecord | None:
        return await self._read(persistence_id, self._now())

    async def _read(self, persistence_id: str, now: int) -> StateRecord | None:
        """One consistent GetItem: the state stored at `now` (None: none, or an expired one)."""
        async with self._call("GetItem"):
            response = await self._client.get_item(
                TableName=self._table, Key=key_of(persistence_id), ConsistentRead=True
            )
        item = response.get("Item")
        return None if item is None else present(from_item(item), now)

    async def put(self, record: StateRecord, precondition: Precondition) -> StateRecord:
        now = self._now()
        item, condition = await self._stored_item(record), condition_arguments(precondition, now)

        async def write() -> None:
            await self._client.put_item(TableName=self._table, Item=item, **condition)

        async with self._call("PutItem"):
            written, found = await self._write_if(write, record.persistence_id, precondition, now)
            if not written:
                return settle_refused_write(precondition, record, found)
        return record

    async def delete(self, persistence_id: str, precondition: Precondition) -> None:
        now = self._now()
        key, condition = key_of(persistence_id), condition_arguments(precondition, now)

        async def write() -> None:
            await self._client.delete_item(TableName=self._table, Key=key, **condition)

        async with self._call("DeleteItem"):
            written, found = await self._write_if(write, persistence_id, precondition, now)
            if not written:
                raise refusal(precondition, found)

    async def get_many(self, persistence_ids: Sequence[str]) -> BatchRead:
        now = self._now()
        async with self._call("BatchGetItem"):
            read = await batch_get(self._client, self._table, persistence_ids, self._deadline)
        return BatchRead([record for record in read.found if not record.expired(now)], read.unprocessed)

    async def transact(self, operations: Sequence[Operation]) -> list[StateRecord | None]:
        now = self._now()
        answer_by = asyncio.get_running_loop().time() + self._deadline
        settled: Settled = {}
        puts = {
            index: await self._stored_item(operation.record)
            for index, operation in enumerate(operations)
            if isinstance(operation, PutOperation)
        }
        _large_states.check_transaction(list(puts.values()))
        async with self._call("TransactWriteItems"):
            for _ in range(TRANSACT_ATTEMPTS):
                items: Any = transact_items(self._table, operations, settled, now, puts)
                try:
                    await self._client.transact_write_items(TransactItems=items)
                except ClientError as exc:
                    if error_code(exc) != "TransactionCanceledException":
                        raise
                    reasons: Any = exc.response.get("CancellationReasons") or []
                    cancelled = cancellation(self._table, operations, reasons, now)
                    if cancelled.came_with_items:
                        self._returns_old_items = True
                    elif cancelled.refused and not self._returns_old_items:
                        found = await self._stored(operations, list(cancelled.refused), now, answer_by)
                        cancelled = cancelled.finding(found)
                    unrefused_puts = await self._stored(
                        operations, puts_to_read(operations, cancelled.refused), now, answer_by
                    )
                    settled = settle_cancellation(self._table, operations, cancelled, settled, unrefused_puts)
                    if len(settled) < len(operations):
                        continue
                return transaction_results(operations, settled)
            raise BackendUnavailable(
                "the states changed under the transaction on every attempt; retry later", retry_after=1
            )

    async def list_page(self, limit: int, after: str | None, shard: int | None, *, payloads: bool) -> Page:
        now = self._now()
        async with self._call("Scan"):
            return await scan_page(self._client, self._table, limit, after, shard, payloads=payloads, now=now)

    async def changed_since_last_check(self) -> bool:
        return True  # DynamoDB can tell only by reading the states

    async def _stored_item(self, record: StateRecord) -> Item:
        """The record's item in its stored form, compressed off the event loop when it needs to be."""
        item = to_item(record)
        if self._compression == "off" or not _large_states.needs_encoding(record):
            return item
        packed = await asyncio.to_thread(_large_states.compressed, record.payload)
        return _large_states.encode(item, record, packed)

    async def _stored(
        self, operations: Sequence[Operation], indexes: Sequence[int], now: int, answer_by: float
    ) -> dict[int, StateRecord | None]:
        """What is stored at `now` for these operations, every one of them read by `answer_by` (the event
        loop's clock): a read that fills its answer (16 MiB) is followed by another for the rest, each within
        what is left of the time. A read that reads none of its ids (throttled, or given up at 80% of that
        time) is a 503, so that an unread state is never taken for "nothing stored"."""
        loop = asyncio.get_running_loop()
        found: dict[str, StateRecord] = {}
        unread = [operations[i].persistence_id for i in indexes]
        while unread:
            read = await batch_get(self._client, self._table, unread, answer_by - loop.time())
            found.update((record.persistence_id, record) for record in read.found)
            unread = read.unprocessed
        return {i: present(found.get(operations[i].persistence_id), now) for i in indexes}

    async def _write_if(
        self,
        write: Callable[[], Awaitable[None]],
        persistence_id: str,
        precondition: Precondition,
        now: int,
    ) -> tuple[bool, StateRecord | None]:
        """`write`, a conditional write: (True, None) once it went through, else (False, the state its failed
        condition found). Any error other than a failed condition goes on up.

        Only a state read after a refusal, from an endpoint that ignores ALL_OLD, may have changed since and
        now be allowed by the precondition; only then is the write made again.
        """
        for _ in range(WRITE_ATTEMPTS):
            try:
                await write()
            except ClientError as refused:
                found, read_after = await self._found(refused, persistence_id, now)
                if not read_after or not precondition.allows_state(found):
                    return False, found
            else:
                return True, None
        raise BackendUnavailable(
            "the state kept changing while a refused write was checked; retry later", retry_after=1
        )

    async def _found(
        self, refused: ClientError, persistence_id: str, now: int
    ) -> tuple[StateRecord | None, bool]:
        """The state a failed condition found (None: none, or an expired one), and whether it had to be read
        after the refusal: the item comes with the refusal (ALL_OLD) unless the endpoint ignores that."""
        if error_code(refused) != "ConditionalCheckFailedException":
            raise refused
        item: Any = refused.response.get("Item")
        if item is not None:
            self._returns_old_items = True
            return present(from_item(item), now), False
        if self._returns_old_items:
            return None, False
        return await self._read(persistence_id, now), True

    async def ping(self) -> None:
        async with self._call("DescribeTable"):
            response = await self._client.describe_table(TableName=self._table)
        check_table(self._table, response["Table"])

    async def expiry(self) -> Expiry:
        async with self._call("DescribeTimeToLive"):
            return await expiry(self._client, self._table)

    async def enable_time_to_live(self) -> str | None:
        """Have DynamoDB delete expired states (`create-table`); a warning when the endpoint will not."""
        async with self._call("UpdateTimeToLive"):
            return await enable_time_to_live(self._client, self._table)

    async def create_table(self) -> bool:
        """Create the table unless it exists, wait until it is ACTIVE, check its key. True when created."""
        async with self._call("CreateTable"):
            created = await request_table(self._client, self._table)
        await wait_for_table(self._client, self._table)
        await self.ping()
        return created
