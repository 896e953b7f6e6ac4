"""The serving process: the HTTP server's limits, so that idle, slow or hostile clients cannot take the
service down, and the garbage collector tuned for a heap that is mostly what start-up loaded.

uvicorn's httptools parser keeps a request head in memory however long it grows (docs/design.md), and
uvicorn closes a connection that never completes a request head only when the client leaves.
`BoundedHttpToolsProtocol` adds both bounds; `UVICORN_OPTIONS` sets the rest on purpose (each is
explained in docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import gc
import re
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.http.problems import problem_response

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_SECONDS = 10.0
# Collect the youngest generation after 10,000 net allocations, not 700: with many requests in flight,
# most young objects are still alive at a collection, so frequent ones rescan the same objects.
YOUNG_GENERATION_THRESHOLD = 10_000

UVICORN_OPTIONS: dict[str, Any] = {
    "http": "app.http.server:BoundedHttpToolsProtocol",
    # Longer than a load balancer's idle timeout (60 s on AWS ALB), so that it never sends a request
    # on a connection we are closing; an idle connection costs a socket and a few KiB.
    "timeout_keep_alive": 65,
    # None: uvicorn's limit counts idle keep-alive connections too and answers in plain text;
    # `ConcurrencyLimit` bounds requests in progress instead and answers problem+json.
    "limit_concurrency": None,
    # Connections waiting to be accepted; the event loop accepts at once unless it is stuck.
    "backlog": 1024,
    # Requests in progress get this long to finish on SIGTERM, within a 30 s Kubernetes grace period.
    "timeout_graceful_shutdown": 20,
}


# httptools tells its parser that a request asking to upgrade the connection (`Connection: Upgrade` and an
# `Upgrade` header) has no body, so the body never reaches the app: every PUT from Java's default HttpClient,
# which offers HTTP/2 with `Upgrade: h2c`, would arrive empty. The service upgrades nothing (RFC 9110 §7.8
# lets a server ignore the header), so a head's `Upgrade` field is renamed before the parser sees it.
_UPGRADE_FIELD = re.compile(rb"\nupgrade:", re.IGNORECASE)
_IGNORED_FIELD = b"\nignored:"  # the same length, so the head's size is unchanged
_END_OF_HEAD = b"\r\n\r\n"


def _raw_problem(status: int, detail: str) -> bytes:
    """A whole HTTP/1.1 problem response that closes the connection, for answers below the ASGI app."""
    response = problem_response(status, detail, headers={"Connection": "close"})
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
    lines += [name + b": " + value for name, value in response.raw_headers]
    return b"\r\n".join([*lines, b"", bytes(response.body)])


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools' protocol, with a bound on the size of a request head and on the time to send it, and
    without connection upgrades.

    One timer per connection, armed when a head starts and re-armed only when it fires: arming and
    cancelling one per request would cost every request two timer operations.
    """

    max_head_bytes = MAX_HEAD_BYTES
    head_timeout = HEAD_TIMEOUT_SECONDS
    _head_bytes = 0
    _head_started: float | None = None  # the loop time the head being read began, if one is
    _head_timer: asyncio.TimerHandle | None = None
    _in_body = False
    _held_back = b""  # the end of a chunk that may be the start of an `Upgrade` field name

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._begin_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        received = len(data)
        if not self._in_body:
            data = self._without_upgrade(self._held_back + data)
        super().data_received(data)
        # Counted once parsed: a chunk that leaves the head incomplete is all head, bar the tail of a
        # previous request, so the count is exact to within one read.
        if self._head_started is not None:
            self._head_bytes += received
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431, f"the request line and headers exceed {self.max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begin_head()

    def on_headers_complete(self) -> None:
        self._head_started = None
        self._in_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def _without_upgrade(self, data: bytes) -> bytes:
        """The head part of `data` with any `Upgrade` field renamed; a tail that may be the start of one is
        held back for the next chunk."""
        self._held_back = b""
        end = data.find(_END_OF_HEAD)
        if end >= 0:
            end += len(_END_OF_HEAD)
            return _UPGRADE_FIELD.sub(_IGNORED_FIELD, data[:end]) + data[end:]
        line_start = data.rfind(b"\n")
        if line_start >= 0 and b"\nupgrade:".startswith(data[line_start:].lower()):
            data, self._held_back = data[:line_start], data[line_start:]
        return _UPGRADE_FIELD.sub(_IGNORED_FIELD, data)

    def _begin_head(self) -> None:
        self._head_bytes = 0
        self._head_started = self.loop.time()
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._check_head)

    def _check_head(self) -> None:
        self._head_timer = None
        if self._head_started is None:
            return  # between heads: the next one arms the timer again
        waited = self.loop.time() - self._head_started
        if waited < self.head_timeout:
            self._head_timer = self.loop.call_later(self.head_timeout - waited, self._check_head)
        else:
            self._refuse(408, f"the request head did not arrive within {self.head_timeout:g} s")

    def _refuse(self, status: int, detail: str) -> None:
        self._head_started = None
        if not self.transport.is_closing():
            self.transport.write(_raw_problem(status, detail))
            self.transport.close()


def settle_heap() -> None:
    """Freeze what start-up allocated (modules, models, clients) out of every later collection.

    Without this each full collection walks again the objects that FastAPI, pydantic, protobuf and
    botocore leave behind, a cost that every request shares (docs/design.md).
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)
