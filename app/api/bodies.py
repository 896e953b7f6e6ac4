"""Request bodies as their models: parsed in place when they are quick to parse, in the protobuf worker when
they may not be.

Parsing JSON costs per item, not per byte: per value (the Python objects of a write's `state`, or the
errors of a body that breaks the schema in many places) and, far less, per escape sequence in a string;
an 8 MiB body holds millions of them, and on the event loop that time answers nobody else. So a body
that may hold more than `QUICK_BODY_ITEMS` items is parsed in the protobuf worker process
(`app.protobuf_worker`), which also serializes the JSON states it finds there: the event loop gets back
the model with payloads, or the first errors, never the values. Base64 payloads are single strings with
neither, so the large bodies of ordinary writes stay here. The figures: docs/bounded-answers.md.

How many items a body holds is bounded without parsing it: every value but the outermost is either the
first in its array or object, which opens with `[` or `{`, or follows a comma, and every escape sequence
starts with a backslash. Those bytes inside strings, or within an escape, only make the bound looser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, JsonValue
from starlette.requests import Request

from app.api import services_of
from app.heap import release_freed_memory
from app.http.bodies import request_body, validated_body
from app.protobuf_worker import SerializedState, serialize_json_state

QUICK_BODY_ITEMS = 2048
_ITEM_MARKS = b",[{\\"
_COUNTED_WINDOW = 256

_Model = TypeVar("_Model", bound=BaseModel)


@runtime_checkable
class _CarriesStates(Protocol):
    def with_states_serialized(self, serialize: Callable[[str, JsonValue], SerializedState]) -> Self: ...


async def parsed_body(request: Request, model: type[_Model]) -> _Model:
    """The request's body as `model`; a body of many items is parsed in the protobuf worker."""
    body = await request_body(request)
    if json_items_at_most(body, QUICK_BODY_ITEMS):
        return validated_body(model, body)
    parsed: _Model | list[dict[str, Any]]
    parsed = await services_of(request).states.protobuf.run(_parse_in_worker, model, body)
    if isinstance(parsed, list):
        raise RequestValidationError(parsed)
    return parsed


def json_items_at_most(body: bytes, limit: int) -> bool:
    """Whether the JSON `body` certainly holds at most `limit` items, its values and escape sequences. Quick
    whatever the body: `find` skips a payload's bytes at memchr's speed, and where the marks are dense they
    are counted a window at a time."""
    if len(body) <= limit:
        return True  # every item takes a byte at least
    items = 1  # the outermost value
    for mark in _ITEM_MARKS:
        at = body.find(mark)
        while at != -1:
            end = at + _COUNTED_WINDOW
            items += body.count(mark, at, end)
            if items > limit:
                return False
            at = body.find(mark, end)
    return items <= limit


def _parse_in_worker(model: type[_Model], body: bytes) -> _Model | list[dict[str, Any]]:
    """In the worker: the body as `model`, its JSON states serialized; or its errors, as `validated_body`
    reports them. The values parsed are all freed by then, and their memory handed back."""
    parsed = _parsed(model, body)
    release_freed_memory()
    return parsed


def _parsed(model: type[_Model], body: bytes) -> _Model | list[dict[str, Any]]:
    try:
        parsed = validated_body(model, body)
    except RequestValidationError as refused:
        return list(refused.errors())
    if isinstance(parsed, _CarriesStates):
        return parsed.with_states_serialized(serialize_json_state)
    return parsed
