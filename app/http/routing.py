"""How the `/states` routes run: `RequestRoute`, and the request parts they read themselves.

FastAPI resolves every declared parameter and body through its dependency machinery on each request,
which cost more CPU than the rest of a read served from SQLite (docs/design.md). So these routes are
`RequestRoute`s: FastAPI documents them from their decorators (parameters and bodies declared in
`openapi_extra` as FastAPI would declare them, with `documented`), and Starlette serves them, calling the
endpoint with the `Request`. The endpoint reads the few parts it needs with the readers below.
A body must be JSON (else 415) and at most `MAX_BODY_BYTES` (else 413, decided from `Content-Length` or
while it streams in, so that no request makes the service hold more), and must arrive in time and at a
minimum rate (`BodyPace`, else 408), so that no client holds a request open by sending slowly.
A request that waits (`while_connected`) ends with a 499 as soon as its client hangs up.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive

from app.errors import ClientClosedRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType

MAX_BODY_BYTES = 8 * 1024 * 1024
# A body can break the schema in hundreds of thousands of places (one per unknown key, say); the answer
# names the first ones, enough to correct a request, and stays small.
MAX_REPORTED_ERRORS = 100
_UTF8_BOM = b"\xef\xbb\xbf"
_Model = TypeVar("_Model", bound=BaseModel)
_T = TypeVar("_T")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")  # up to 2^64-1: a longer number is refused before int() reads it
# What pydantic reads as a boolean from a string, as FastAPI would for a `bool` query parameter.
_BOOLEANS = {
    **dict.fromkeys(("1", "on", "t", "true", "y", "yes"), True),
    **dict.fromkeys(("0", "off", "f", "false", "n", "no"), False),
}


Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class RequestRoute(APIRoute):
    """A route whose endpoint takes the `Request` and returns the `Response` itself: FastAPI's documented
    way to change how a route runs (`route_class`). The endpoint is the whole handler; errors it raises
    reach the app's exception handlers as any route's do."""

    def get_route_handler(self) -> Endpoint:
        endpoint: Endpoint = self.endpoint
        return endpoint


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    location: Literal["path", "query", "header"]
    description: str
    schema: Mapping[str, Any] = field(default_factory=dict)
    required: bool = False

    def openapi(self) -> dict[str, Any]:
        title = self.name.replace("_", " ").title()
        return {
            "name": self.name,
            "in": self.location,
            "required": self.required,
            "schema": {**self.schema, "description": self.description, "title": title},
            "description": self.description,
        }


def documented(*parameters: Parameter, body: type[BaseModel] | None = None) -> dict[str, Any]:
    """The `openapi_extra` of an operation that reads these parameters (and this JSON body)."""
    extra: dict[str, Any] = {}
    if parameters:
        extra["parameters"] = [parameter.openapi() for parameter in parameters]
    if body is not None:
        schema = {"$ref": f"#/components/schemas/{body.__name__}"}
        extra["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    return extra


def query_flag(request: Request, parameter: Parameter) -> bool:
    """A boolean query parameter, read as FastAPI would read a `bool`; absent is false."""
    if not request.scope["query_string"]:  # the common case, without parsing anything
        return False
    value = request.query_params.get(parameter.name)
    if value is None:
        return False
    flag = _BOOLEANS.get(value.lower())
    if flag is None:
        raise RequestValidationError(
            [
                {
                    "type": "bool_parsing",
                    "loc": ("query", parameter.name),
                    "msg": "Input should be a valid boolean, unable to interpret input",
                }
            ]
        )
    return flag


def list_header(request: Request, name: str) -> str | None:
    """A list-valued header: repeated fields mean their values joined by commas (RFC 9110 §5.3)."""
    values = request.headers.getlist(name)
    return ", ".join(values) if values else None


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


async def while_connected(request: Request, waiting: Coroutine[Any, Any, _T]) -> _T:
    """What `waiting` returns, unless the client hangs up first: then `waiting` is cancelled and the answer
    is a 499, so that a request nobody will read holds nothing (a waiter's place) for the rest of its time."""
    answer = asyncio.create_task(waiting)
    gone = asyncio.create_task(_disconnect(request.receive))
    try:
        done, _ = await asyncio.wait((answer, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        answer.cancel()
        gone.cancel()
    if answer in done:
        return answer.result()
    gone.result()  # raises whatever stopped the reading, if it was not the disconnect
    raise ClientClosedRequest("the client closed the connection while its request waited")


async def _disconnect(receive: Receive) -> None:
    """Returns once the client has gone; a body nobody reads is read and dropped on the way."""
    while (await receive())["type"] != "http.disconnect":
        pass


def query_integer(request: Request, parameter: Parameter, minimum: int, maximum: int) -> int | None:
    """An integer query parameter in decimal digits, from `minimum` to `maximum`; None when absent."""
    if not request.scope["query_string"]:
        return None
    value = request.query_params.get(parameter.name)
    if value is None:
        return None
    if not _DECIMAL.fullmatch(value) or not minimum <= int(value) <= maximum:
        raise RequestValidationError(
            [
                {
                    "type": "int_parsing",
                    "loc": ("query", parameter.name),
                    "msg": f"Input should be an integer from {minimum} to {maximum}, in decimal digits",
                }
            ]
        )
    return int(value)
