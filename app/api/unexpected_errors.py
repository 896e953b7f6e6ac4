"""One log record for each unexpected error, with its traceback and the request id.

Starlette's `ServerErrorMiddleware` answers an unhandled exception with the app's 500 handler, then
raises it again for the server to log: uvicorn would log it a second time, once the request id is
gone. This layer, just outside that middleware and inside the request observer, logs it and ends it.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("statestore.errors")


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
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
