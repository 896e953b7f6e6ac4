"""Refuses request bodies that are not JSON (415) or too large (413) before anything reads them.

A declared `Content-Length` above the limit is answered at once; a body sent without one is counted
while it streams in, so no request can make the service buffer more than the limit.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import render_problem
from app.errors import PayloadTooLarge, UnsupportedMediaType

MAX_BODY_BYTES = 8 * 1024 * 1024
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


_TOO_LARGE = f"the request body exceeds {MAX_BODY_BYTES} bytes"


class _BodyTooLarge(PayloadTooLarge, HTTPException):
    """The 413 problem, raisable inside a body read, where FastAPI lets only an HTTPException through."""

    status_code = PayloadTooLarge.status

    def __init__(self) -> None:
        PayloadTooLarge.__init__(self, _TOO_LARGE)

    @property
    def headers(self) -> dict[str, str]:  # type: ignore[override]
        # The rest of the body is never read, so the connection cannot carry another request.
        return {"Connection": "close"}


class BodyGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS_WITH_BODY:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        declared = headers.get(b"content-length", b"")
        if not is_json_media_type(content_type):
            refusal = render_problem(UnsupportedMediaType("the request body must be application/json"))
            await refusal(scope, receive, send)
        elif declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await render_problem(_BodyTooLarge())(scope, receive, send)
        else:
            await self.app(scope, _counted(receive), send)


def _counted(receive: Receive) -> Receive:
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > MAX_BODY_BYTES:
            raise _BodyTooLarge
        return message

    return receive_within_limit
