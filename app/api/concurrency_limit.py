"""Answers `503` with `Retry-After` once too many requests are in progress, instead of queueing them.

Under overload a queue only makes every answer late; a quick `503` lets clients back off and lets
a load balancer send them elsewhere. The probes and `/metrics` are never refused: a busy process is
neither dead nor unready, and its metrics are what shows the overload.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api._routing import route_path
from app.api.problems import problem_response

RETRY_AFTER_SECONDS = 1
_NEVER_REFUSED = frozenset({"/healthz", "/readyz", "/metrics"})


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
            self.in_progress += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.in_progress -= 1
