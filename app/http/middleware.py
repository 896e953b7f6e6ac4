"""The service's ASGI middleware, outermost first: the request observer (request id, metrics, access log),
the log of unexpected errors, the API key guard, and the concurrency limit.

Each is plain ASGI: `BaseHTTPMiddleware` would add a task and a body copy to every request.

- `RequestObserver` gives each request an `X-Request-ID` (the client's own when it is safe to echo and to
  log, else a fresh one), then counts, times and logs it, with one pass over the headers, one wrapper of
  `send` and one log call.
- `UnexpectedErrorLog` writes one log record for each unexpected error, with its traceback and the request
  id. Starlette's `ServerErrorMiddleware` answers an unhandled exception with the app's 500 handler, then
  raises it again for the server to log: uvicorn would log it a second time, once the request id is gone.
- `ApiKeyGuard`: with API keys set, every `/states…` call needs one `Authorization: Bearer <key>` header.
  It runs in front of the routes, so a caller without a key learns nothing (not even 413, 415 or 422) and
  costs no body read.
- `ConcurrencyLimit` answers `503` with `Retry-After` once too many requests are in progress, instead of
  queueing them: under overload a queue only makes every answer late, and a quick `503` lets clients back
  off. The probes and `/metrics` are never refused: a busy process is neither dead nor unready. A request
  is in progress from its head until its answer is sent, except while it waits: for its body (clients
  that send slowly cannot use up the slots), or for a change (`waiting`, once the route really waits;
  `STATESTORE_MAX_WAITERS` bounds those). A `wait=` that finds nothing to wait for is a plain read.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app._worker_lane import CALLER
from app.errors import BadRequest, ProblemError, Unauthorized
from app.http.api_keys import KeyRing
from app.http.problems import problem_response, render_problem
from app.observability.logging import FIELDS, current_request_id
from app.observability.metrics import Metrics

UNMATCHED = "<unmatched>"
PERSISTENCE_ID_KEY = "statestore.persistence_id"
"""Where a handler leaves, in the request's scope, the one persistence id it decoded and acted on."""
ROUTE_KEY = "statestore.route"
"""Where the request observer leaves, in the request's scope, the route template it counted the request
under, for the middleware outside it (`app.http.tracing`)."""
MAX_LOGGED_ID_CHARACTERS = 2048
"""A refused persistence id can be far longer than a valid one; the log line stays bounded."""
REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID_LENGTH = 128
PROTECTED_PREFIX = "/states"
RETRY_AFTER_SECONDS = 1
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:=+/@-]{1,%d}" % MAX_REQUEST_ID_LENGTH)
_NEVER_REFUSED = frozenset({"/healthz", "/readyz", "/metrics"})
_LIMIT_KEY = "statestore.concurrency_limit"

access_logger = logging.getLogger("statestore.access")
error_logger = logging.getLogger("statestore.errors")


def route_path(scope: Scope) -> str:
    """The request path without the server's root path (`--root-path`), as Starlette routes it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def is_protected(path: str) -> bool:
    return path.startswith(PROTECTED_PREFIX)


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            return value.decode("ascii") if _SAFE_REQUEST_ID.fullmatch(value) else new_request_id()
    return new_request_id()


def new_request_id() -> str:
    # A version 4 UUID from the process's own generator (seeded from os.urandom in each worker process):
    # uuid4() reads os.urandom, whose system call lets go of the GIL on every request (docs/design.md).
    # An id needs uniqueness, not secrecy, and nothing in the service draws secrets from `random`.
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


class RequestObserver:
    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope["headers"])
        id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        token = current_request_id.set(request_id)
        # Whose share of the protobuf worker this request takes: its connection's, or its key's (ApiKeyGuard).
        CALLER.set(("connection", scope.get("client")))
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client = scope.get("client")
            route = scope[ROUTE_KEY] = self._route_of(scope)
            record_request(
                self.metrics,
                scope["method"],
                route,
                status,
                time.perf_counter() - started,
                persistence_id=scope.get(PERSISTENCE_ID_KEY),
                client=client[0] if client else None,
            )
            current_request_id.reset(token)

    def _route_of(self, scope: Scope) -> str:
        """The template of the route that served (or would have served) the request.

        Requests answered before routing (401, 413, 415) are matched here, so they are counted under
        their route too; only a path that no route knows is `<unmatched>`.
        """
        route: BaseRoute | None = scope.get("route")
        if route is not None:
            return getattr(route, "path_format", UNMATCHED)
        partial: str | None = None
        for candidate in self.routes:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                return getattr(candidate, "path_format", UNMATCHED)
            if match is Match.PARTIAL and partial is None:
                partial = getattr(candidate, "path_format", UNMATCHED)
        return partial or UNMATCHED


def record_request(
    metrics: Metrics,
    method: str,
    route: str,
    status: int,
    seconds: float,
    *,
    persistence_id: str | None,
    client: str | None,
) -> None:
    """Count, time and log one answered request: every answer the service gives, the server's own included."""
    metrics.observe_request(method, route, status, seconds)
    if access_logger.isEnabledFor(logging.INFO):
        fields = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "persistence_id": persistence_id and persistence_id[:MAX_LOGGED_ID_CHARACTERS],
            "client": client,
        }
        access_logger.info("%s %s %d", method, route, status, extra={FIELDS: fields})


class UnexpectedErrorLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception:
            error_logger.exception("unhandled error on %s %s", scope["method"], scope["path"])


def _has_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(
        (name == b"content-length" and value.strip() != b"0") or name == b"transfer-encoding"
        for name, value in headers
    )


class ApiKeyGuard:
    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_protected(route_path(scope)):
            presented = self._presented(scope["headers"])
            if isinstance(presented, ProblemError):
                response = render_problem(presented)
                if _has_body(scope["headers"]):  # left unread: the connection cannot carry another request
                    response.headers["Connection"] = "close"
                await response(scope, receive, send)
                return
            CALLER.set(("key", presented))
        await self.app(scope, receive, send)

    def _presented(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes | ProblemError:
        """The digest of the valid API key the request presents, or why it is refused."""
        found = [value for name, value in headers if name == b"authorization"]
        if not found:
            return Unauthorized("this call needs the header `Authorization: Bearer <API key>`")
        if len(found) > 1:
            # Proxies and frameworks disagree on which of two wins; one that checks the first and passes on
            # the last would let a second key through unchecked.
            return BadRequest("the request carries more than one Authorization header")
        scheme, _, token = found[0].partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            return Unauthorized("the Authorization header must use the Bearer scheme: `Bearer <API key>`")
        matched = self.keys.match(token)
        return Unauthorized("the API key is not valid", invalid_token=True) if matched is None else matched


class ConcurrencyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) in _NEVER_REFUSED:
            await self.app(scope, receive, send)
        elif self.in_progress >= self.limit:
            await problem_response(
                503,
                f"the service is handling {self.limit} requests already; retry later",
                slug="overloaded",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )(scope, receive, send)
        else:
            body_read = False

            async def receive_uncounted() -> Message:
                # A request waiting for its body holds no slot: slow senders must not lock out the rest. Once
                # the body is in, a receive is a wait for the client to leave (a streamed answer's listener):
                # the request keeps its slot until its answer is sent.
                nonlocal body_read
                if body_read:
                    return await receive()
                self.in_progress -= 1
                try:
                    message = await receive()
                finally:
                    self.in_progress += 1
                body_read = message["type"] != "http.request" or not message.get("more_body", False)
                return message

            self.in_progress += 1
            scope[_LIMIT_KEY] = self
            try:
                await self.app(scope, receive_uncounted, send)
            finally:
                self.in_progress -= 1


@contextmanager
def waiting(scope: Scope) -> Iterator[None]:
    """While the block runs, the request waits for a change and holds no slot of the concurrency limit."""
    limit: ConcurrencyLimit | None = scope.get(_LIMIT_KEY)
    if limit is None:
        yield
        return
    limit.in_progress -= 1
    try:
        yield
    finally:
        limit.in_progress += 1
