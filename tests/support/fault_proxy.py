"""A TCP proxy on 127.0.0.1 in front of a backend, whose faults a test switches while requests flow.

Modes, read per chunk so that they also hit connections opened before the switch:
- `pass`: forward both ways.
- `hang`: accept and read, never forward nor answer (a backend that stopped answering).
- `refuse`: nothing listens on the port any more (a dead backend); open connections are dropped.
- `reset`: answer every request with a TCP reset.
- `slow`: forward, but hold each chunk of every answer back for `delay` seconds; `holding` is set once
  one is held, so a test knows a request is in flight.
- `throttle`: answer each request with DynamoDB's throttling error, as DynamoDB sends it (HTTP 400).
- `conflict`: answer each TransactWriteItems with the TransactionCanceledException DynamoDB sends when
  another transaction holds its first item (reason `TransactionConflict`), and forward the other calls.
  moto closes its connection after each answer, so each connection carries one call.
- `throttle_reads`: answer each BatchGetItem that asks for one of `throttled_ids` with DynamoDB's throttling
  error (`throttle_code`), as often as it is sent (the SDK's retries too), and forward the other calls.
- `drop_old_items`: forward, but take the stored item out of each refused condition's answer (`Item` of a
  ConditionalCheckFailedException, of each cancellation reason), as endpoints that ignore
  ReturnValuesOnConditionCheckFailure=ALL_OLD answer; `on_refusal`, when set, runs before such an answer
  is passed on (to change the state in between). A BatchGetItem that asks for one of `throttled_ids` is
  throttled as in `throttle_reads` (to fail the read that settles a refusal).
- `bad_checksum`: forward, but send each answer with an `x-amz-crc32` that its body does not have (an
  answer damaged on the way), as long as `checksums_to_break` is above 0 (it counts down; None: all).
- `check_signatures`: forward each request whose SigV4 signature holds for what arrived (`sigv4.problem`,
  with the tests' credentials from the environment), and answer any other as DynamoDB does, with
  `InvalidSignatureException` (HTTP 400); `signatures_checked` counts the requests that held,
  `signature_problems` says what was wrong with the others, and `user_agents` keeps each request's
  `User-Agent` (None: it sent none).
Besides the mode, `lose_answers(n)` forwards the next n requests but resets instead of answering: the
backend acted, the client never heard.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Literal

from support import sigv4

Mode = Literal[
    "pass",
    "hang",
    "refuse",
    "reset",
    "slow",
    "throttle",
    "conflict",
    "throttle_reads",
    "drop_old_items",
    "bad_checksum",
    "check_signatures",
]

_CHUNK = 65536
_THROTTLE_MESSAGES = {
    "ProvisionedThroughputExceededException": "The level of configured provisioned throughput for the table "
    "was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
    "ThrottlingException": "Rate of requests exceeds the allowed throughput.",
}


_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
_TRANSACT_WRITE_ITEMS = b"DynamoDB_20120810.TransactWriteItems"
_BATCH_GET_ITEM = b"DynamoDB_20120810.BatchGetItem"


def _error_response(code: str, **fields: object) -> bytes:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", **fields}).encode()
    head = (
        "HTTP/1.1 400 Bad Request\r\n"
        "Content-Type: application/x-amz-json-1.0\r\n"
        f"Content-Length: {len(body)}\r\n"
        "x-amzn-RequestId: FAULTPROXY\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode() + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: SO_LINGER on, with a zero timeout."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _conflict_response(transaction: bytes) -> bytes:
    items = len(json.loads(transaction)["TransactItems"])
    reasons = [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]
    reasons += [{"Code": "None"}] * (items - 1)
    codes = ", ".join(reason["Code"] for reason in reasons)
    return _error_response(
        "TransactionCanceledException",
        Message=f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
        CancellationReasons=reasons,
    )


def _header(head: bytes, wanted: bytes) -> bytes | None:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == wanted:
            return value.strip()
    return None


def _with_body_headers(head: bytes, body: bytes, crc32: int | None = None) -> bytes:
    """An answer's head for a rewritten body: its length, and the CRC32 botocore checks against it (the
    body's own unless `crc32` is given)."""
    lines = [
        line
        for line in head.rstrip(b"\r\n").split(b"\r\n")
        if line.partition(b":")[0].strip().lower() not in (b"content-length", b"x-amz-crc32")
    ]
    checksum = zlib.crc32(body) if crc32 is None else crc32
    lines += [b"Content-Length: %d" % len(body), b"x-amz-crc32: %d" % checksum]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """Read one whole HTTP request: its head and its Content-Length body; None when the client left."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.readexactly(int(_header(head, b"content-length") or 0))
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    return head, body


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.mode: Mode = "pass"
        self.delay = 0.0
        self.holding = threading.Event()
        self.throttle_code = "ProvisionedThroughputExceededException"
        self.conflicts = 0
        self.throttled_ids: frozenset[str] = frozenset()
        self.reads_throttled = 0
        self.old_items_dropped = 0
        self.on_refusal: Callable[[], None] | None = None
        self.answers_lost = 0
        self._answers_to_lose = 0
        self.checksums_to_break: int | None = None
        self.checksums_broken = 0
        self.signatures_checked = 0
        self.signature_problems: list[str] = []
        self.user_agents: list[bytes | None] = []
        self._upstream_port = upstream_port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextmanager
    def running(self) -> Iterator[FaultProxy]:
        thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        thread.start()
        self._call(self._listen())
        try:
            yield self
        finally:
            self._call(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(5)

    def set(self, mode: Mode, *, delay: float = 0.0, code: str | None = None) -> None:
        """Switch the fault; returns once the proxy acts on it."""
        self._call(self._switch(mode, delay, code))

    def lose_answers(self, count: int) -> None:
        self._answers_to_lose = count

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)  # type: ignore[arg-type]

    async def _switch(self, mode: Mode, delay: float, code: str | None) -> None:
        self.delay = delay
        self.throttle_code = code or self.throttle_code
        if mode == "refuse":
            await self._close()
        elif self._server is None:
            await self._listen()
        self.mode = mode

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self.mode in ("pass", "slow"):
                await self._forward(reader, writer)
            elif self.mode == "conflict":
                await self._conflict(reader, writer)
            elif self.mode == "throttle_reads":
                await self._throttle_reads(reader, writer)
            elif self.mode == "drop_old_items":
                await self._drop_old_items(reader, writer)
            elif self.mode == "bad_checksum":
                await self._break_checksums(reader, writer)
            elif self.mode == "check_signatures":
                await self._check_signatures(reader, writer)
            else:
                await self._misbehave(reader, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _misbehave(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request per connection, so that a switch back to `pass` takes effect on the next one."""
        if await _read_request(reader) is None:
            return
        if self.mode == "throttle":
            writer.write(_error_response(self.throttle_code, message=_THROTTLE_MESSAGES[self.throttle_code]))
            await writer.drain()
        elif self.mode == "reset":
            _reset(writer)
        elif self.mode == "hang":
            await reader.read()  # until the client gives up

    async def _conflict(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        if request is None:
            return
        head, body = request
        if _header(head, b"x-amz-target") != _TRANSACT_WRITE_ITEMS:
            await self._forward(reader, writer, already_read=head + body)
            return
        self.conflicts += 1
        writer.write(_conflict_response(body))
        await writer.drain()

    async def _throttle_reads(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        if request is None:
            return
        head, body = request
        if not await self._throttled(head, body, writer):
            await self._forward(reader, writer, already_read=head + body)

    async def _throttled(self, head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        """Answer a BatchGetItem that asks for one of `throttled_ids` with DynamoDB's throttling error, and
        return True; any other request is left to the caller."""
        if _header(head, b"x-amz-target") != _BATCH_GET_ITEM or not self._asks_for_throttled_ids(body):
            return False
        self.reads_throttled += 1
        code = self.throttle_code
        writer.write(_error_response(code, message=_THROTTLE_MESSAGES[code]))
        await writer.drain()
        return True

    def _asks_for_throttled_ids(self, batch_get: bytes) -> bool:
        tables = json.loads(batch_get)["RequestItems"].values()
        ids = {key["PersistenceID"]["S"] for table in tables for key in table["Keys"]}
        return not ids.isdisjoint(self.throttled_ids)

    async def _drop_old_items(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        if request is None or await self._throttled(*request, writer):
            return
        answer = await self._exchange(request)
        if answer is None:
            return
        head, body = answer
        if head.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")):
            error = json.loads(body)
            reasons = error.get("CancellationReasons") or []
            dropped = [found for found in (error, *reasons) if found.pop("Item", None) is not None]
            if dropped:
                self.old_items_dropped += 1
                if self.on_refusal is not None:
                    self.on_refusal()
                body = json.dumps(error).encode()
                head = _with_body_headers(head, body)
        writer.write(head + body)
        await writer.drain()

    async def _break_checksums(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        if request is None:
            return
        answer = await self._exchange(request)
        if answer is None:
            return
        head, body = answer
        if self.checksums_to_break is None or self.checksums_to_break > 0:
            if self.checksums_to_break is not None:
                self.checksums_to_break -= 1
            self.checksums_broken += 1
            head = _with_body_headers(head, body, crc32=(zlib.crc32(body) + 1) & 0xFFFFFFFF)
        writer.write(head + body)
        await writer.drain()

    async def _check_signatures(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Every request of the connection, each checked before it is forwarded on a connection of its own."""
        while (request := await _read_request(reader)) is not None:
            self.user_agents.append(_header(request[0], b"user-agent"))
            credentials = {os.environ["AWS_ACCESS_KEY_ID"]: os.environ["AWS_SECRET_ACCESS_KEY"]}  # conftest's
            problem = sigv4.problem(*request, credentials)
            if problem is not None:
                self.signature_problems.append(problem)
                writer.write(_error_response("InvalidSignatureException", message=_BAD_SIGNATURE))
                await writer.drain()
                return
            self.signatures_checked += 1
            answer = await self._exchange(request)
            if answer is None:
                return
            head, body = answer
            # Keep the client's connection open (the upstream's answer may say otherwise), as DynamoDB does.
            lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
            writer.write(b"\r\n".join(lines) + body)
            await writer.drain()

    async def _exchange(self, request: tuple[bytes, bytes]) -> tuple[bytes, bytes] | None:
        """One request sent upstream on a connection of its own, and its whole answer."""
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        try:
            upstream_writer.write(b"".join(request))
            await upstream_writer.drain()
            return await _read_request(upstream_reader)  # an answer is framed as a request is
        finally:
            upstream_writer.transport.abort()

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, already_read: bytes = b""
    ) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        upstream_writer.write(already_read)
        try:
            await asyncio.gather(
                self._pipe(reader, upstream_writer, answers=False),
                self._pipe(upstream_reader, writer, answers=True),
            )
        finally:
            upstream_writer.transport.abort()

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, answers: bool) -> None:
        while chunk := await source.read(_CHUNK):
            if self.mode == "hang":
                continue
            if self.mode == "reset":
                _reset(sink)
                return
            if answers and self._answers_to_lose > 0:
                self._answers_to_lose -= 1
                self.answers_lost += 1
                _reset(sink)
                return
            if answers and self.mode == "slow":
                self.holding.set()
                await asyncio.sleep(self.delay)
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
