"""States that do not fit a DynamoDB item even compressed: the payload in S3, the item holding a pointer.

With `STATESTORE_LARGE_STATES_BUCKET` set, such a state's payload is PUT to the bucket first, and then the
item is written as always (every condition in the same one atomic write), with `StatePayloadRef` (a map:
`Bucket`, `Key`, `Size`, `SHA256` of the payload) in place of `StatePayload`. Until the item write
commits, nothing points to the object; once it has, readers follow the pointer and check the size and the
hash, so a missing or altered object is a `502` naming the id, never a wrong state.

The object's key is the prefix and the SHA-256 of the id, the write's key (`WriteKey`) and the payload's
SHA-256: content-addressed per write, so an identical retry (same `Idempotency-Key`) writes the same object,
and only the item of that id, written by that write, can ever point to it. That is what makes the clean-up
safe without a reference count (docs/large-states.md, "Clean-up"): an object is deleted once the item that
pointed to it has been replaced or deleted, or once its own write was refused, never while another item
could point to it.

Every S3 call runs inside `map_s3_errors` (the sibling of `map_dynamodb_errors`): a missing bucket, a
refused call or a timeout is a `503`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.errors import BackendUnavailable, CorruptItem, PayloadTooLarge
from app.observability.logging import FIELDS
from app.states.model import MAX_ITEM_BYTES, Attribute, StateRecord
from app.store import CallObserver, ObservedCall
from app.store.dynamodb._large_states import MAX_STATE_BYTES, STATE_ENCODING, stored_size, unreadable
from app.store.dynamodb.errors import error_code, map_s3_errors

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]

PAYLOAD_REF = "StatePayloadRef"
_BUCKET, _KEY, _SIZE, SHA256 = "Bucket", "Key", "Size", "SHA256"
# An 8 MiB object is one PUT or GET of tens of milliseconds in a region; a second of silence is a stall.
S3_CALL_DEADLINE_SECONDS = 10.0
S3_CLIENT_CONFIG = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"mode": "standard", "max_attempts": 3},
    max_pool_connections=64,
    tcp_keepalive=True,
)
# The pointer's own bytes as DynamoDB counts them, beyond the bucket's name and the key.
_REF_BYTES = len(PAYLOAD_REF) + len(_BUCKET) + len(_KEY) + len(_SIZE) + len(SHA256) + 64 + 8 + 3 * 4
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
logger = logging.getLogger("statestore.store")


@dataclass(frozen=True, slots=True)
class PayloadRef:
    """Where an offloaded payload lies, and what it must be: `size` bytes whose SHA-256 is `sha256` (hex)."""

    bucket: str
    key: str
    size: int
    sha256: str

    def attribute(self) -> AttributeValueTypeDef:
        return {
            "M": {
                _BUCKET: {"S": self.bucket},
                _KEY: {"S": self.key},
                _SIZE: {"N": str(self.size)},
                SHA256: {"S": self.sha256},
            }
        }


def payload_ref(item: Mapping[str, Any]) -> PayloadRef | None:
    """The item's pointer, None when its payload is inline; a 502 naming the id for a malformed one."""
    attribute = item.get(PAYLOAD_REF)
    if attribute is None:
        return None
    fields: Any = attribute.get("M") if isinstance(attribute, Mapping) else None
    try:
        bucket, key = fields[_BUCKET]["S"], fields[_KEY]["S"]
        size, digest = int(fields[_SIZE]["N"]), fields[SHA256]["S"]
    except (KeyError, TypeError, ValueError):
        raise corrupt(item, "is not a map of Bucket, Key, Size and SHA256") from None
    if not (isinstance(bucket, str) and isinstance(key, str) and isinstance(digest, str)):
        raise corrupt(item, "is not a map of Bucket, Key, Size and SHA256")
    if not 0 <= size <= MAX_STATE_BYTES:
        raise corrupt(item, f"gives a size not within 0..{MAX_STATE_BYTES}")
    return PayloadRef(bucket, key, size, digest)


def pointer_item(item: Item, ref: PayloadRef) -> Item:
    """The record's item with its payload offloaded: every attribute but `StatePayload`, and the pointer."""
    size = item_size_with_ref(item, ref)
    if size > MAX_ITEM_BYTES:
        raise PayloadTooLarge(
            f"the state would take {size} bytes as a DynamoDB item even with its payload in S3;"
            f" the limit is {MAX_ITEM_BYTES}"
        )
    kept = {name: value for name, value in item.items() if name not in (Attribute.PAYLOAD, STATE_ENCODING)}
    return {**kept, PAYLOAD_REF: ref.attribute()}


def item_size_with_ref(item: Item, ref: PayloadRef) -> int:
    """The bytes of `item` (an inline one) once its payload is replaced by the pointer `ref`."""
    payload: Any = item.get(Attribute.PAYLOAD, {})
    plain = stored_size(item) - len(Attribute.PAYLOAD) - len(payload.get("B", b""))
    return plain + _REF_BYTES + len(ref.bucket.encode()) + len(ref.key.encode())


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def object_key(prefix: str, record: StateRecord, payload_sha256: str) -> str:
    """The object of one write of one state: the same for a retry of that write, for no other."""
    name = "\0".join([record.persistence_id, record.write_key or "", payload_sha256])
    return prefix + hashlib.sha256(name.encode()).hexdigest()


def corrupt(item: Mapping[str, Any], problem: str) -> CorruptItem:
    return unreadable(item, PAYLOAD_REF, problem)


class LargeStates:
    """The S3 side of offloaded states: one aioboto3 client, its calls observed and their errors mapped.

    `bucket` is None when offload is off: the client then still reads the objects that items written by
    other replicas (or before the setting changed) point to, and writes none.
    """

    def __init__(
        self,
        client: Any,
        bucket: str | None,
        prefix: str,
        observer: CallObserver,
        deadline: float = S3_CALL_DEADLINE_SECONDS,
    ) -> None:
        self._client = client
        self.bucket = bucket
        self._prefix = prefix
        self._observer = observer
        self._deadline = deadline

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        session: aioboto3.Session,
        bucket: str | None,
        prefix: str,
        endpoint_url: str | None,
        observer: CallObserver,
    ) -> AsyncIterator[LargeStates]:
        """`endpoint_url` None: botocore's own resolution, which reads `AWS_ENDPOINT_URL_S3`."""
        async with session.client("s3", endpoint_url=endpoint_url, config=S3_CLIENT_CONFIG) as client:
            yield cls(client, bucket, prefix, observer)

    @property
    def endpoint(self) -> str:
        return str(self._client.meta.endpoint_url)

    @asynccontextmanager
    async def _call(self, operation: str) -> AsyncIterator[None]:
        with ObservedCall(self._observer, operation), map_s3_errors(operation, self._deadline):
            async with asyncio.timeout(self._deadline):
                yield

    async def ref_for(self, record: StateRecord) -> PayloadRef:
        """The pointer the record's item will hold (the payload hashed off the event loop)."""
        assert self.bucket is not None
        sha256 = await asyncio.to_thread(digest, record.payload)
        return PayloadRef(self.bucket, object_key(self._prefix, record, sha256), len(record.payload), sha256)

    async def write(self, record: StateRecord, ref: PayloadRef) -> None:
        """PUT the record's payload where `ref` points; S3 checks the SHA-256 on arrival."""
        async with self._call("PutObject"):
            await self._client.put_object(
                Bucket=ref.bucket,
                Key=ref.key,
                Body=record.payload,
                ContentType="application/octet-stream",
                ChecksumSHA256=base64.b64encode(bytes.fromhex(ref.sha256)).decode("ascii"),
            )

    async def read(self, item: Mapping[str, Any], ref: PayloadRef) -> bytes:
        """The payload the item points to, checked: a `502` naming the id when missing or altered."""
        async with self._call("GetObject"):
            try:
                response = await self._client.get_object(Bucket=ref.bucket, Key=ref.key)
            except ClientError as exc:
                if error_code(exc) in _MISSING:
                    raise corrupt(item, f"names the object {ref.key}, which is missing") from None
                raise
            async with response["Body"] as body:
                payload: bytes = await body.read()
        if len(payload) != ref.size or await asyncio.to_thread(digest, payload) != ref.sha256:
            raise corrupt(item, f"names the object {ref.key}, whose bytes are not the state's")
        return payload

    async def listed(self) -> dict[str, datetime]:
        """Every object under the prefix, by key, with when it was last written."""
        assert self.bucket is not None
        found: dict[str, datetime] = {}
        token: dict[str, str] = {}
        while True:
            async with self._call("ListObjectsV2"):
                page = await self._client.list_objects_v2(Bucket=self.bucket, Prefix=self._prefix, **token)
            found.update((entry["Key"], entry["LastModified"]) for entry in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return found
            token = {"ContinuationToken": page["NextContinuationToken"]}

    async def discard(self, ref: PayloadRef) -> None:
        """Delete an object no item points to any more; a failure is logged, not raised: the write it
        follows has committed, and the sweep (`statestore sweep-large-states`) or lifecycle rule remains."""
        try:
            async with self._call("DeleteObject"):
                await self._client.delete_object(Bucket=ref.bucket, Key=ref.key)
        except BackendUnavailable as exc:
            logger.warning(
                "an S3 object no state points to any more was left behind: %s",
                exc.detail,
                extra={FIELDS: {"bucket": ref.bucket, "key": ref.key}},
            )
