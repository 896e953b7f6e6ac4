"""The JSON representation of a stored state, and the JSON responses that carry it.

Decoding (`?decode=true`) runs on a worker thread: rendering a large message in protobuf's JSON mapping is
pure Python and may take many milliseconds, which on the event loop would hold up every other request
(`/healthz` included). The registry caps what one state's rendering may cost (`app.protobuf`).

A batchGet answer is streamed state by state, and each state's record is dropped once sent, so that
the answer's JSON (a third larger than its states, in base64) is never held whole beside the states.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from app.api.schemas import encode_base64
from app.http.routing import Parameter, query_flag
from app.protobuf import TypeRegistry
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
    record: StateRecord, *, with_payload: bool = True, decoded_by: TypeRegistry | None = None
) -> dict[str, Any]:
    """The resource, its 64-bit integers as strings of decimal digits (JavaScript rounds a number above 2^53);
    with `decoded_by`, also `state`, the message in protobuf's JSON mapping (or null), and `unknown_fields`
    when the payload holds fields its type does not define (the JSON leaves them out)."""
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
    if decoded_by is not None:
        decoded = decoded_by.decode(record.manifest, record.payload)
        body["state"] = None if decoded is None else decoded.state
        if decoded is not None and decoded.unknown_fields:
            body["unknown_fields"] = True
    return body


def json_response(
    body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def state_json(record: StateRecord, decoded_by: TypeRegistry | None = None) -> bytes:
    return orjson.dumps(state_resource(record, decoded_by=decoded_by))


async def decoded_state_json(records: Iterable[StateRecord], types: TypeRegistry) -> list[bytes]:
    """Each record's resource with its decoded `state`, as JSON, rendered off the event loop."""
    return await asyncio.to_thread(lambda: [state_json(record, types) for record in records])


def streamed_answer(states: deque[StateRecord | bytes], tail: Mapping[str, Any]) -> StreamingResponse:
    """`{"states": [...], **tail}`, sent one state at a time; `states` are records or their JSON."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"states":['
        separator = b""
        while states:
            state = states.popleft()
            yield separator + (state if isinstance(state, bytes) else state_json(state))
            separator = b","
        yield b"]," + orjson.dumps(tail).removeprefix(b"{")

    return StreamingResponse(chunks(), media_type="application/json")
