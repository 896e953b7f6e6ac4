"""A request's JSON body: read within its limits, then validated as its model.

A body must be JSON (else 415) and at most `MAX_BODY_BYTES` (else 413, decided from `Content-Length` or
while it streams in, so that no request makes the service hold more), and must arrive in time and at a
minimum rate (`BodyPace`, else 408), so that no client holds a request open by sending slowly. Where a
body is parsed, here or in the protobuf worker, is `app.api.bodies`'s decision.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import Message, Receive

from app.errors import ClientClosedRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType

MAX_BODY_BYTES = 8 * 1024 * 1024
# A body can break the schema in hundreds of thousands of places (one per unknown key, say); the answer
# names the first ones, enough to correct a request, and stays small.
MAX_REPORTED_ERRORS = 100
_UTF8_BOM = b"\xef\xbb\xbf"
_Model = TypeVar("_Model", bound=BaseModel)


def _body_too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body exceeds {MAX_BODY_BYTES} bytes")


@dataclass(frozen=True, slots=True)
class BodyPace:
    """How long a body may take: all of it within `timeout` seconds, and at `min_rate` bytes a second on
    average once the first `RATE_GRACE_SECONDS` have passed (0: no minimum rate)."""

    RATE_GRACE_SECONDS: ClassVar[float] = 5.0

    timeout: float
    min_rate: int

    async def next_message(self, receive: Receive, started: float, received: int) -> Message:
        """The next body message, or a 408 once the body is late or too slow."""
        allowed = self.timeout
        if self.min_rate:
            allowed = min(allowed, max(self.RATE_GRACE_SECONDS, received / self.min_rate))
        try:
            async with asyncio.timeout_at(started + allowed):
                return await receive()
        except TimeoutError:
            raise RequestTimeout(
                f"the request body did not arrive within {self.timeout:g} s"
                f" at {self.min_rate} bytes a second or more"
            ) from None


def _is_json_media_type(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def request_body(request: Request) -> bytes:
    """The body, once it is JSON, within `MAX_BODY_BYTES` and on time; without a UTF-8 byte order mark."""
    if not _is_json_media_type(request.headers.get("content-type", "")):
        raise UnsupportedMediaType("the request body must be application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _body_too_large()
    chunks: list[bytes] = []
    received = 0
    started: float | None = None
    # Messages, not `request.body()`, which would keep the raw body alive on the request until the
    # response, backend call included (docs/design.md).
    message = await request.receive()
    while True:
        if message["type"] == "http.disconnect":
            raise ClientClosedRequest("the client closed the connection before its body arrived")
        chunk: bytes = message.get("body", b"")
        received += len(chunk)
        if received > MAX_BODY_BYTES:
            raise _body_too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            body = b"".join(chunks)
            # RFC 8259 lets a parser ignore a byte order mark, and some writers send one.
            return body[len(_UTF8_BOM) :] if body.startswith(_UTF8_BOM) else body
        if started is None:  # a body still on its way: from now on, it is paced
            started = asyncio.get_running_loop().time()
        pace: BodyPace = request.app.state.body_pace
        message = await pace.next_message(request.receive, started, received)


def body_errors(error: ValidationError) -> list[dict[str, Any]]:
    """A body's first `MAX_REPORTED_ERRORS` validation errors, located under `body` as FastAPI locates them:
    their type, location and message, strings that any process can take (never an input or a context)."""
    errors = error.errors(include_url=False, include_context=False, include_input=False)
    return [
        {"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"]} for e in errors[:MAX_REPORTED_ERRORS]
    ]


def validated_body(model: type[_Model], body: bytes) -> _Model:
    """The JSON `body` as `model`, parsed and validated in one pass."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(body_errors(exc)) from None
