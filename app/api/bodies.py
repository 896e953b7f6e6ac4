"""Request bodies as their models: parsed in place when they are small in values, in the protobuf worker
when they are not.

Parsing JSON costs per value, not per byte: building the Python objects of a write's `state`, or the input
a validation error keeps of a field it refuses, takes about 0.1 µs a value, and an 8 MiB body holds up to
5 million values, over half a second in which the event loop answers nobody else. So a body that may hold
more than `QUICK_BODY_VALUES` values is parsed in the protobuf worker process (`app.protobuf_worker`),
which also serializes the JSON states it finds there: the event loop gets back the model with payloads,
never the values. Base64 payloads are single strings, so the large bodies of ordinary writes stay here.

How many values a body holds is bounded without parsing it: every value but the outermost is either the
first in its array or object, which opens with `[` or `{`, or follows a comma. Those three bytes inside
strings only make the bound looser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, JsonValue, ValidationError
from starlette.requests import Request

from app.api import services_of
from app.http.routing import body_errors, request_body, validated_body
from app.protobuf_worker import release_freed_memory, serialize_json_state

QUICK_BODY_VALUES = 2048
_STRUCTURAL = b",[{"
_COUNTED_WINDOW = 256

_Model = TypeVar("_Model", bound=BaseModel)


@runtime_checkable
class _CarriesStates(Protocol):
    def with_states_serialized(self, serialize: Callable[[str, JsonValue], object]) -> Self: ...


async def parsed_body(request: Request, model: type[_Model]) -> _Model:
    """The request's body as `model`; a body of many values is parsed in the protobuf worker."""
    body = await request_body(request)
    if json_values_at_most(body, QUICK_BODY_VALUES):
        return validated_body(model, body)
    parsed: _Model | list[dict[str, Any]]
    parsed = await services_of(request).states.protobuf.run(_parse_in_worker, model, body)
    if isinstance(parsed, list):
        raise RequestValidationError(parsed)
    return parsed


def json_values_at_most(body: bytes, limit: int) -> bool:
    """Whether the JSON `body` certainly holds at most `limit` values. Quick whatever the body: `find` skips
    a payload's bytes at memchr's speed, and where the marks are dense they are counted a window at a time."""
    if len(body) <= limit:
        return True  # every value takes a byte at least
    values = 1  # the outermost
    for mark in _STRUCTURAL:
        at = body.find(mark)
        while at != -1:
            end = at + _COUNTED_WINDOW
            values += body.count(mark, at, end)
            if values > limit:
                return False
            at = body.find(mark, end)
    return values <= limit


def _parse_in_worker(model: type[_Model], body: bytes) -> _Model | list[dict[str, Any]]:
    """In the worker: the body as `model`, its JSON states serialized; or its errors (`body_errors`). The
    values parsed are all freed by then, and their memory handed back."""
    parsed = _parsed(model, body)
    release_freed_memory()
    return parsed


def _parsed(model: type[_Model], body: bytes) -> _Model | list[dict[str, Any]]:
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        return body_errors(exc)
    if isinstance(parsed, _CarriesStates):
        return parsed.with_states_serialized(serialize_json_state)
    return parsed
