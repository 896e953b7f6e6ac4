"""The production backend: DynamoDB (or any compatible endpoint) through one aioboto3 client.

Items keep ego-contrib's Go layout, so Go actors and HTTP clients can share a table. Every
precondition is a `ConditionExpression`, and a refused write gets the stored item back in the same
call (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), so telling a retry from a conflict costs no
second read. An endpoint that ignores ALL_OLD (dynalite, some other DynamoDB-compatible servers) sends a
refusal without the item; then one consistent read of the key tells what is stored (`_found`), until the
endpoint has once shown that it does send the item, after which a refusal without one means that nothing
is stored (as on DynamoDB). Several states at once: `batch_get` (BatchGetItem) and `transact`
(TransactWriteItems).
Every call runs inside `map_dynamodb_errors`, the adapter's one error boundary. States too large for an
item even compressed go to S3 when a bucket is set (`_offload.py`), read back through the same calls.

Each call reads the service's clock once: its conditions and its reading of the items it gets back
treat an item that expired at that second as absent (`app.states.model.present`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.clock import Clock, epoch_seconds
from app.errors import BackendUnavailable, CorruptItem, ProblemError
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
from app.store.dynamodb._offload import (
    PAYLOAD_REF,
    LargeStates,
    PayloadRef,
    corrupt,
    payload_ref,
    pointer_item,
)
from app.store.dynamodb.batch_get import Pointing, batch_get
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
# Payloads read from S3 at once for one answer: its 16 MiB bound holds either way, this bounds connections.
CONCURRENT_OBJECT_READS = 4
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


@dataclass(frozen=True, slots=True)
class Swept:
    """What a sweep of the large states' bucket found and did (`DynamoDBStore.sweep_large_states`)."""

    listed: int
    referenced: int
    deleted: int
    young: int
    """Objects no item points to, kept because they are younger than the grace: a write may still commit."""


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
        large_states: LargeStates | None = None,
    ) -> None:
        self._client = client
        self._large_states = large_states
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
        large_states_bucket: str | None = None,
        large_states_prefix: str = "states/",
        s3_endpoint_url: str | None = None,
    ) -> AsyncIterator[DynamoDBStore]:
        """`deadline` bounds each call in seconds, SDK retries and a batch read's own retries included;
        `client` names what makes the hot calls, the control plane being aioboto3's either way;
        `call_details` notes each request's consumed capacity and retries (`app.store.call_details`).
        The S3 client is opened whatever `large_states_bucket` says, to read the states that items
        written by other replicas point to; only with a bucket does this store offload states."""
        # botocore reads only AWS_DEFAULT_REGION; AWS_REGION is what the other AWS SDKs and Lambda set.
        session = aioboto3.Session(region_name=os.environ.get("AWS_REGION") or None)
        if session.region_name is None:
            raise StoreConfigurationError(
                "no AWS region is configured: set AWS_REGION (or a profile with a region)"
            )
        async with AsyncExitStack() as clients:
            sdk = await clients.enter_async_context(
                session.client("dynamodb", endpoint_url=endpoint_url, config=CLIENT_CONFIG)
            )
            large_states = await clients.enter_async_context(
                LargeStates.open(session, large_states_bucket, large_states_prefix, s3_endpoint_url, observer)
            )
            if call_details:
                note_call_details(sdk)
            hot: Any = sdk
            if client == "lean":
                credentials = await session.get_credentials()
                # The lean client answers the hot calls as the SDK's client does, and hands it the rest.
                hot = await clients.enter_async_context(
                    LeanClient.open(sdk, credentials, CLIENT_CONFIG, call_details=call_details)
                )
            yield cls(hot, table, deadline, observer, clock, client, compression, large_states)

    @property
    def item_limit(self) -> int | None:
        offloads = self._offloading() is not None
        return MAX_ITEM_BYTES if self._compression == "off" and not offloads else None

    @property
    def description(self) -> str:
        endpoint = self._client.meta.endpoint_url
        where = f"dynamodb table {self._table} at {endpoint} ({self._client_kind} client)"
        large = self._offloading()
        if large is None:
            return where
        return f"{where}, large states in s3 bucket {large.bucket} at {large.endpoint}"

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
        return None if item is None else present(await self._record(item), now)

    async def _record(self, item: Mapping[str, Any]) -> StateRecord:
        """The state an item holds, its payload read from S3 when the item points to it."""
        ref = payload_ref(item)
        if ref is None:
            return from_item(item)
        return from_item(item, await self._offloaded(item, ref))

    async def _offloaded(self, item: Mapping[str, Any], ref: PayloadRef) -> bytes:
        if self._large_states is None:
            raise corrupt(item, "points to S3, and this store was opened without an S3 client")
        return await self._large_states.read(item, ref)

    async def put(self, record: StateRecord, precondition: Precondition) -> StateRecord:
        now = self._now()
        item, ref = await self._stored_item(record)
        condition = condition_arguments(precondition, now)
        replaced: dict[str, Any] = {}
        # The item it replaces tells which object (if any) no item points to once this write commits.
        returns: Any = "ALL_OLD" if self._offloading() else "NONE"

        async def write() -> None:
            response = await self._client.put_item(
                TableName=self._table, Item=item, ReturnValues=returns, **condition
            )
            replaced.update(response.get("Attributes") or {})

        refused, found = False, None
        try:
            # The refusal is settled inside the call, so that the call is observed as refused (412, 409).
            async with self._call("PutItem"):
                written, found = await self._write_if(write, record.persistence_id, precondition, now)
                refused = not written
                if refused:
                    return settle_refused_write(precondition, record, found)
        finally:
            if refused and ref is not None and not _same_write(record, found):
                await self._discard(ref)  # no item points to it (only a retry of this write could)
        await self._discard_replaced(replaced, ref)
        return record

    async def delete(self, persistence_id: str, precondition: Precondition) -> None:
        now = self._now()
        key, condition = key_of(persistence_id), condition_arguments(precondition, now)
        replaced: dict[str, Any] = {}
        returns: Any = "ALL_OLD" if self._offloading() else "NONE"

        async def write() -> None:
            response = await self._client.delete_item(
                TableName=self._table, Key=key, ReturnValues=returns, **condition
            )
            replaced.update(response.get("Attributes") or {})

        async with self._call("DeleteItem"):
            written, found = await self._write_if(write, persistence_id, precondition, now)
            if not written:
                raise refusal(precondition, found)
        await self._discard_replaced(replaced, None)

    def _offloading(self) -> LargeStates | None:
        """The S3 side, when this store offloads states (a bucket is set); None when it only reads them."""
        large = self._large_states
        return large if large is not None and large.bucket is not None else None

    async def _discard(self, ref: PayloadRef) -> None:
        if self._large_states is not None:
            await self._large_states.discard(ref)

    async def _discard_replaced(self, replaced: Mapping[str, Any], kept: PayloadRef | None) -> None:
        """Delete the object the replaced item pointed to, now that no item does: its key names one write
        of one id (`_offload.object_key`), so only a retry of that same write, which `kept` is then, could
        point to it again."""
        try:
            old = payload_ref(replaced) if replaced else None
        except CorruptItem:
            return
        if old is not None and old != kept:
            await self._discard(old)

    async def get_many(self, persistence_ids: Sequence[str]) -> BatchRead:
        now = self._now()
        async with self._call("BatchGetItem"):
            read, pointing = await batch_get(self._client, self._table, persistence_ids, self._deadline)
        found = [record for record in read.found if not record.expired(now)]
        return BatchRead(await self._with_payloads(found, pointing), read.unprocessed)

    async def _with_payloads(
        self, records: list[StateRecord], pointing: Pointing, *, skip_unreadable: bool = False
    ) -> list[StateRecord]:
        """`records`, those read without their payload (`pointing`) given it, from S3, a few at a time; an
        unreadable one is a 502 naming it, or, with `skip_unreadable`, left out (logged)."""
        if not pointing:
            return records
        gate = asyncio.Semaphore(CONCURRENT_OBJECT_READS)

        async def complete(record: StateRecord) -> StateRecord | None:
            item = pointing.get(record.persistence_id)
            if item is None:
                return record
            async with gate:
                try:
                    return await self._record(item)
                except CorruptItem:
                    if skip_unreadable:
                        return None
                    raise

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(complete(record)) for record in records]
        except BaseExceptionGroup as failed:  # the first error as is, as a single read would raise it
            raise failed.exceptions[0] from None
        return [record for task in tasks if (record := task.result()) is not None]

    async def transact(self, operations: Sequence[Operation]) -> list[StateRecord | None]:
        now = self._now()
        answer_by = asyncio.get_running_loop().time() + self._deadline
        settled: Settled = {}
        stored = {
            index: await self._stored_item(operation.record)
            for index, operation in enumerate(operations)
            if isinstance(operation, PutOperation)
        }
        puts = {index: item for index, (item, _) in stored.items()}
        refs = {index: ref for index, (_, ref) in stored.items() if ref is not None}
        # Whether the last call may have written the transaction: not once it came back cancelled.
        in_doubt = False
        try:
            _large_states.check_transaction(list(puts.values()))
            async with self._call("TransactWriteItems"):
                for _ in range(TRANSACT_ATTEMPTS):
                    build = (self._table, operations, settled, now, puts)
                    # A pin on a state stored compressed or in S3 compresses and hashes its payload again.
                    large = any(r is not None and _large_states.needs_encoding(r) for r in settled.values())
                    items: Any = (
                        await asyncio.to_thread(transact_items, *build) if large else transact_items(*build)
                    )
                    in_doubt = True
                    try:
                        await self._client.transact_write_items(TransactItems=items)
                    except ClientError as exc:
                        if error_code(exc) != "TransactionCanceledException":
                            raise
                        in_doubt = False
                        reasons: Any = exc.response.get("CancellationReasons") or []
                        cancelled = cancellation(
                            self._table, operations, reasons, now, await self._offloaded_in(reasons)
                        )
                        if cancelled.came_with_items:
                            self._returns_old_items = True
                        elif cancelled.refused and not self._returns_old_items:
                            found = await self._stored(operations, list(cancelled.refused), now, answer_by)
                            cancelled = cancelled.finding(found)
                        unrefused_puts = await self._stored(
                            operations, puts_to_read(operations, cancelled.refused), now, answer_by
                        )
                        settled = settle_cancellation(
                            self._table, operations, cancelled, settled, unrefused_puts
                        )
                        if len(settled) < len(operations):
                            continue
                    return transaction_results(operations, settled)
                raise BackendUnavailable(
                    "the states changed under the transaction on every attempt; retry later", retry_after=1
                )
        except ProblemError:
            if not in_doubt:
                # Never written: no item points to these objects, but for a put found already done, whose
                # object (the same write's) its item holds.
                for index, ref in refs.items():
                    if index not in settled:
                        await self._discard(ref)
            raise

    async def _offloaded_in(self, reasons: Sequence[Mapping[str, Any]]) -> dict[int, bytes]:
        """The payloads of the offloaded items that came with a cancellation's reasons, by operation."""
        payloads: dict[int, bytes] = {}
        for index, reason in enumerate(reasons):
            item = reason.get("Item")
            ref = None if item is None else payload_ref(item)
            if item is not None and ref is not None:
                payloads[index] = await self._offloaded(item, ref)
        return payloads

    async def list_page(self, limit: int, after: str | None, shard: int | None, *, payloads: bool) -> Page:
        now = self._now()
        async with self._call("Scan"):
            page, pointing = await scan_page(
                self._client, self._table, limit, after, shard, payloads=payloads, now=now
            )
        return Page(await self._with_payloads(page.records, pointing, skip_unreadable=True), page.last_id)

    async def changed_since_last_check(self) -> bool:
        return True  # DynamoDB can tell only by reading the states

    async def _stored_item(self, record: StateRecord) -> tuple[Item, PayloadRef | None]:
        """The record's item in its stored form: compressed off the event loop when it needs to be, and
        when even that does not fit (or compression is off), its payload PUT to S3 first, the item holding
        the pointer."""
        item = to_item(record)
        if not _large_states.needs_encoding(record):
            return item, None
        large = self._offloading()
        if self._compression == "zstd":
            packed = await asyncio.to_thread(_large_states.compressed, record.payload)
            if large is None or _large_states.encoded_size(record, packed) <= MAX_ITEM_BYTES:
                return _large_states.encode(item, record, packed), None
        if large is None:
            return item, None  # the service refused it already (`item_limit`); DynamoDB would too
        ref = await large.ref_for(record)
        pointer = pointer_item(item, ref)  # a 413, before the PUT, when even the pointer does not fit
        await large.write(record, ref)
        return pointer, ref

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
            read, pointing = await batch_get(self._client, self._table, unread, answer_by - loop.time())
            records = await self._with_payloads(read.found, pointing)
            found.update((record.persistence_id, record) for record in records)
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
            return present(await self._record(item), now), False
        if self._returns_old_items:
            return None, False
        return await self._read(persistence_id, now), True

    async def sweep_large_states(self, grace_seconds: float) -> Swept:
        """Delete the objects under the prefix that no item points to and that were written more than
        `grace_seconds` ago (docs/large-states.md, "Clean-up"). The objects are listed before the table is
        scanned, so an object the scan finds no item for was either replaced, or PUT by a write whose item
        never came (within the grace, it is left for the next sweep: that write may still commit)."""
        large = self._offloading()
        if large is None or large.bucket is None:
            raise StoreConfigurationError(
                "no bucket to sweep: set STATESTORE_LARGE_STATES_BUCKET", setting="large_states_bucket"
            )
        bucket = large.bucket
        listed = await large.listed()
        started = datetime.now(UTC)
        referenced: set[str] = set()
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "ConsistentRead": True,
            "ProjectionExpression": "#r",
            "ExpressionAttributeNames": {"#r": PAYLOAD_REF},
        }
        while True:
            async with self._call("Scan"):
                page: Any = await self._client.scan(**arguments)
            for item in page.get("Items", []):
                with suppress(CorruptItem):
                    ref = payload_ref(item)
                    if ref is not None and ref.bucket == bucket:
                        referenced.add(ref.key)
            if "LastEvaluatedKey" not in page:
                break
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        deleted = young = 0
        for key, written in listed.items():
            if key in referenced:
                continue
            if (started - written).total_seconds() < grace_seconds:
                young += 1
                continue
            await large.discard(PayloadRef(bucket, key, 0, ""))
            deleted += 1
        return Swept(len(listed), len(referenced & listed.keys()), deleted, young)

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


def _same_write(record: StateRecord, found: StateRecord | None) -> bool:
    """Whether `found` was stored by an earlier attempt of the write of `record` (so points to its object)."""
    return found is not None and found.write_key == record.write_key and found.same_state_as(record)
