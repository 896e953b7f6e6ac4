"""How the `/states` routes run: `RequestRoute`, and the request parts they read themselves.

FastAPI resolves every declared parameter and body through its dependency machinery on each request,
which cost more CPU than the rest of a read served from SQLite (docs/design.md). So these routes are
`RequestRoute`s: FastAPI documents them from their decorators (parameters and bodies declared in
`openapi_extra` as FastAPI would declare them, with `documented`), and Starlette serves them, calling the
endpoint with the `Request`. The endpoint reads the few parts it needs with the readers below; its body,
with `app.http.bodies`. A request that waits (`while_connected`) ends with a 499 as soon as its client hangs
up.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from app.errors import ClientClosedRequest

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
