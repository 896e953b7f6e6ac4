"""The one middleware of observability: each request gets an id, and is then counted, timed and logged.

It is plain ASGI, as BaseHTTPMiddleware would add a task and a body copy to every request, and it does one
pass over the headers, one wrapper of `send` and one log call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.logging import FIELDS
from app.observability.metrics import Metrics
from app.observability.request_id import HEADER, current_request_id, request_id_of

UNMATCHED = "<unmatched>"
MAX_LOGGED_ID_CHARACTERS = 2048
"""A refused persistence id can be far longer than a valid one; the log line stays bounded."""

access_logger = logging.getLogger("statestore.access")


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
        id_header = (HEADER, request_id.encode("ascii"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        token = current_request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route, path_params = self._route_of(scope)
            self.metrics.observe_request(scope["method"], route, status, seconds)
            if access_logger.isEnabledFor(logging.INFO):
                persistence_id = path_params.get("persistence_id")
                client = scope.get("client")
                fields = {
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "persistence_id": persistence_id and persistence_id[:MAX_LOGGED_ID_CHARACTERS],
                    "client": client[0] if client else None,
                }
                access_logger.info("%s %s %d", scope["method"], route, status, extra={FIELDS: fields})
            current_request_id.reset(token)

    def _route_of(self, scope: Scope) -> tuple[str, dict[str, Any]]:
        """The template of the route that served (or would have served) the request, and its path parameters.

        Requests answered before routing (401, 413, 415) are matched here, so they are counted under
        their route too; only a path that no route knows is `<unmatched>`.
        """
        route: BaseRoute | None = scope.get("route")
        if route is not None:
            return getattr(route, "path_format", UNMATCHED), scope.get("path_params", {})
        partial: tuple[str, dict[str, Any]] | None = None
        for candidate in self.routes:
            match, child_scope = candidate.matches(scope)
            found = (getattr(candidate, "path_format", UNMATCHED), child_scope.get("path_params", {}))
            if match is Match.FULL:
                return found
            if match is Match.PARTIAL and partial is None:
                partial = found
        return partial or (UNMATCHED, {})
