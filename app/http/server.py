"""The HTTP server's limits, so that idle, slow or hostile clients cannot take the service down.

uvicorn's httptools parser keeps a request head in memory however long it grows (docs/design.md), and
uvicorn closes a connection that never completes a request head only when the client leaves.
`BoundedHttpToolsProtocol` adds both bounds, and a third on a client that stops taking its answer. Its
own refusals are answered as the app answers (problem+json, request id, access log, metrics), and a
connection whose request body was left unread ends with a lingering close. `UVICORN_OPTIONS` sets the
rest on purpose (each is explained in docs/reliability.md and docs/security.md).
"""

from __future__ import annotations

import asyncio
import re
from itertools import chain
from typing import Any

import httptools
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.http.middleware import UNMATCHED, new_request_id, record_request
from app.http.problems import RENAMED_STATUSES, problem_response, reason_phrase
from app.observability.logging import current_request_id

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_SECONDS = 10.0
SEND_TIMEOUT_SECONDS = 30.0
"""`STATESTORE_SEND_TIMEOUT_SECONDS`'s default; the app's lifespan hands the setting to each connection."""
# A lingering close (nginx's `lingering_close`) reads on for at most 10 s, 2 s without data, and 128 MiB.
LINGER_SECONDS = 10.0
LINGER_IDLE_SECONDS = 2.0
LINGER_MAX_BYTES = 128 * 1024 * 1024

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


# uvicorn writes each status line from its table of `HTTPStatus` phrases, some still RFC 7231's in Python
# 3.11: a 422 would say "Unprocessable Entity" in its status line and "Unprocessable Content" in its title.
httptools_impl.STATUS_LINE.update(
    {status: f"HTTP/1.1 {status} {reason_phrase(status)}\r\n".encode() for status in RENAMED_STATUSES}
)


# httptools tells its parser that a request asking to upgrade the connection (`Connection: Upgrade` and an
# `Upgrade` header) has no body, so the body never reaches the app: every PUT from Java's default HttpClient,
# which offers HTTP/2 with `Upgrade: h2c`, would arrive empty. The service upgrades nothing (RFC 9110 §7.8
# lets a server ignore the header), so a head's `Upgrade` field is renamed before the parser sees it.
_UPGRADE_FIELD = re.compile(rb"\nupgrade:", re.IGNORECASE)
_IGNORED_FIELD = b"\nignored:"  # the same length, so the head's size is unchanged
_END_OF_HEAD = b"\r\n\r\n"
# RFC 3986's `pct-encoded` is "%" HEXDIG HEXDIG, and a request target carries no fragment (RFC 9112 §3.2).
# uvicorn drops a fragment and keeps an invalid escape as written, so `/states/x#y` would act on `x` and
# `/states/x%zz` on the state `/states/x%25zz` names.
_INVALID_IN_TARGET = re.compile(rb"#|%(?![0-9A-Fa-f]{2})")


class _HeadRefused(Exception):
    """Raised in a parser callback to stop the parser once a head is refused."""


class _LingeringTransport:
    """The connection's transport, whose `close` hands over to the protocol's lingering close: uvicorn
    closes the transport itself after a `Connection: close` answer, with the client's body still coming."""

    def __init__(self, transport: asyncio.Transport, protocol: BoundedHttpToolsProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        # uvicorn calls these on every request: bound here, not looked up through `__getattr__`.
        self.write = transport.write
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading
        self.get_extra_info = transport.get_extra_info

    def close(self) -> None:
        self._protocol.close_lingering()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools' protocol, with bounds on the size of a request head and on the time to send it, answers of
    its own as the service's (problem+json, request id, access log, metrics), a lingering close, and no
    connection upgrades.

    One timer per connection, armed when a head starts and re-armed only when it fires: arming and
    cancelling one per request would cost every request two timer operations.
    """

    max_head_bytes = MAX_HEAD_BYTES
    head_timeout = HEAD_TIMEOUT_SECONDS
    linger_seconds = LINGER_SECONDS
    linger_idle_seconds = LINGER_IDLE_SECONDS
    linger_max_bytes = LINGER_MAX_BYTES
    lingering = False
    _socket: asyncio.Transport  # the transport itself, under the lingering wrapper uvicorn is given
    _whole_chunks_of_head = 0  # bytes of the reads that held nothing but the head being read
    _head_began_in_read = False
    _head_started: float | None = None  # the loop time the head being read began, if one is
    _head_timer: asyncio.TimerHandle | None = None
    _in_body = False
    _lost = False
    _held_back = b""  # the end of a chunk that may be the start of an `Upgrade` field name
    _linger_until = 0.0
    _last_read = 0.0
    _lingered_bytes = 0
    _linger_timer: asyncio.TimerHandle | None = None
    _send_timer: asyncio.TimerHandle | None = None
    _unsent = 0  # the bytes the transport still held for the client when the send timer was last armed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._socket = transport
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        self._begin_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        for timer in (self._head_timer, self._linger_timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._linger_timer = self._send_timer = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The transport holds more than its high-water mark for the client: uvicorn's sends wait for it to
        drain, so that a connection queues at most one chunk of an answer beyond that mark. A client that
        takes nothing of it for the send timeout is cut off (its unsent bytes dropped), so that one that
        never reads cannot hold the answer, its request's slot and the states read for it."""
        super().pause_writing()
        self._watch_send()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_timer is not None and not self._socket.is_closing():
            self._send_timer.cancel()
            self._send_timer = None

    def _watch_send(self) -> None:
        if self._send_timer is None and not self._lost:
            self._unsent = self._socket.get_write_buffer_size()
            timeout: float = self.app_state.get("send_timeout_seconds", SEND_TIMEOUT_SECONDS)
            self._send_timer = self.loop.call_later(timeout, self._check_send)

    def _check_send(self) -> None:
        self._send_timer = None
        unsent = self._socket.get_write_buffer_size()
        if unsent == 0:
            return
        if unsent >= self._unsent:  # no byte taken since the timer was armed
            self._socket.abort()
        else:
            self._watch_send()

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self._discard(len(data))
            return
        received = len(data)
        if not self._in_body:
            data = self._without_upgrade(self._held_back + data)
        self._head_began_in_read = False
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:  # as uvicorn's, but answered as the service (or already refused)
            self._refuse(400, "the request is not valid HTTP/1.1")
            return
        except httptools.HttpParserUpgrade:
            pass  # `CONNECT`: the service tunnels nothing, and the app answers it as any unknown route
        if self._head_started is not None and not self._head_began_in_read and not self.lingering:
            self._whole_chunks_of_head += received
            if self._whole_chunks_of_head > self.max_head_bytes:
                self._refuse_head_size()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begin_head()
        self._head_began_in_read = True

    def on_headers_complete(self) -> None:
        # What the parser found: the target, the fields, and the method, separators and line ends around them.
        size = len(self.url) + sum(map(len, chain.from_iterable(self.headers)))
        size += (
            len(self.headers) * len(b": \r\n") + len(self.parser.get_method()) + len(b"  HTTP/1.1\r\n\r\n")
        )
        if size > self.max_head_bytes:
            self._refuse_head_size()
            raise _HeadRefused  # stops the parser before the app sees the request
        if _INVALID_IN_TARGET.search(self.url):
            self._refuse(400, "the request target holds a `#` or a `%` not followed by two hex digits")
            raise _HeadRefused
        self._head_started = None
        self._in_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._in_body:  # answered before the whole body came: the rest would be read for nothing
            self.close_lingering()
        super().on_response_complete()

    def close_lingering(self) -> None:
        """Close as nginx's lingering close does: send the answer and the end of our side, then read and
        discard what the client still sends for a bounded time and size, so that a client still sending
        its body reads the answer instead of a connection reset."""
        transport = self._socket
        if self.lingering or self._lost:
            return
        if transport.get_write_buffer_size():
            self._watch_send()  # a close waits for the client to take what is unsent
        if not (self._in_body or self._head_started is not None) or not transport.can_write_eof():
            transport.close()  # nothing more is coming: a plain close loses nothing
            return
        self.lingering = True
        self._head_started = None
        now = self.loop.time()
        self._linger_until = now + self.linger_seconds
        self._last_read = now
        transport.write_eof()
        transport.resume_reading()
        self._linger_timer = self.loop.call_later(self.linger_idle_seconds, self._check_linger)

    def _discard(self, size: int) -> None:
        self._lingered_bytes += size
        self._last_read = self.loop.time()
        if self._lingered_bytes > self.linger_max_bytes:
            self._socket.close()

    def _check_linger(self) -> None:
        now = self.loop.time()
        due = min(self._linger_until, self._last_read + self.linger_idle_seconds)
        if now >= due:
            self._linger_timer = None
            self._socket.close()
        else:
            self._linger_timer = self.loop.call_later(due - now, self._check_linger)

    def _refuse_head_size(self) -> None:
        self._refuse(431, f"the request line and headers exceed {self.max_head_bytes} bytes")

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
        self._whole_chunks_of_head = 0
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
        """Answer below the ASGI app as the app would: a problem with a request id, logged and counted."""
        if self.lingering or self._lost:
            return
        started = self._head_started
        request_id = new_request_id()
        response = problem_response(
            status, detail, headers={"Connection": "close", "X-Request-ID": request_id}
        )
        lines = [f"HTTP/1.1 {status} {reason_phrase(status)}".encode()]
        lines += [name + b": " + value for name, value in response.raw_headers]
        self.transport.write(b"\r\n".join([*lines, b"", bytes(response.body)]))
        self.close_lingering()
        services = self.app_state.get("services")
        if services is not None:
            token = current_request_id.set(request_id)
            record_request(
                services.metrics,
                self._method(),
                UNMATCHED,
                status,
                self.loop.time() - (started or self.loop.time()),
                persistence_id=None,
                client=self.client[0] if self.client else None,
            )
            current_request_id.reset(token)

    def _method(self) -> str:
        """The method of the request refused, once the parser has reached its target (before, httptools
        names the method numbered 0, DELETE)."""
        return str(self.parser.get_method().decode("ascii")) if getattr(self, "url", b"") else "-"
