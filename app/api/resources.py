"""The JSON representation of a stored state, and the JSON responses that carry it.

Decoding (`?decode=true`) renders states in the protobuf worker process (`app.protobuf_worker`), which
caps what one state, and one answer, may render; the answer embeds the JSON it sends back as it is.

A batchGet answer is streamed state by state, and each state's record is dropped once sent, so that
the answer's JSON (a third larger than its states, in base64) is never held whole beside the states.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.api.schemas import encode_base64
from app.http.routing import Parameter, query_flag
from app.json_bytes import json_bytes
from app.protobuf_worker import ProtobufWorker, Rendered
from app.states.answers import Holding
from app.states.model import StateRecord

DECODE = Parameter(
    "decode",
    "query",
    "Add `state`: the message in protobuf's JSON mapping (null when its type is unknown).",
    {"type": "boolean", "default": False},
)


def decode_requested(request: Request) -> bool:
    return query_flag(request, DECODE)


def state_resource(
    record: StateRecord, *, with_payload: bool = True, rendered: Rendered | None = None
) -> dict[str, Any]:
    """The resource, its 64-bit integers as strings of decimal digits (JavaScript rounds a number above 2^53);
    with `rendered`, also `state`, the message in protobuf's JSON mapping (or null), `unknown_fields`
    when the payload holds fields its type does not define (the JSON leaves them out), and `decode_error`
    when it could not be rendered."""
    body: dict[str, Any] = {
        "persistence_id": record.persistence_id,
        "version_number": str(record.version_number),
        "manifest": record.manifest,
        "timestamp": str(record.timestamp),
        "shard": str(record.shard),
    }
    if record.expires_at is not None:
        body["expires_at"] = str(record.expires_at)
    if with_payload:
        body["payload"] = encode_base64(record.payload)
    if rendered is not None:
        body["state"] = None if rendered.json is None else orjson.Fragment(rendered.json)
        if rendered.unknown_fields:
            body["unknown_fields"] = True
        if rendered.error is not None:
            body["decode_error"] = rendered.error
    return body


def json_response(
    body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(json_bytes(body), status, headers, media_type="application/json")


def state_json(record: StateRecord, rendered: Rendered | None = None) -> bytes:
    return json_bytes(state_resource(record, rendered=rendered))


async def render_states(records: Sequence[StateRecord], protobuf: ProtobufWorker) -> list[Rendered]:
    """The records' states in protobuf's JSON mapping, in order: as many as one answer may render, at least
    the first (`app.protobuf_worker`)."""
    return await protobuf.render([(record.manifest, record.payload) for record in records])


def streamed_answer(
    states: deque[StateRecord | bytes], tail: Mapping[str, Any], holding: Holding
) -> StreamingResponse:
    """`{"states": [...], **tail}`, sent one state at a time; `states` are records or their JSON.

    uvicorn hands a chunk to the transport once the client has taken what came before it (down to the
    transport's high-water mark): each state is made JSON only after the separator before it went that
    way, so a connection holds one state's JSON at most, and the state stays in `holding` until then."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"states":['
        for number in range(len(states)):
            if number:
                yield b","
                holding.release_next()
            yield _json_of(states.popleft())
        yield b"]," + orjson.dumps(tail).removeprefix(b"{")

    return _HeldAnswer(chunks(), holding)


def _json_of(state: StateRecord | bytes) -> bytes:
    return state if isinstance(state, bytes) else state_json(state)


class _HeldAnswer(StreamingResponse):
    """A streamed answer that gives back what it holds however it ends: sent, cut off, or never begun."""

    def __init__(self, content: AsyncIterator[bytes], holding: Holding) -> None:
        super().__init__(content, media_type="application/json")
        self.holding = holding

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.holding.release()
