"""The JSON representation of a stored state, and the JSON responses that carry it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

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
    with `decoded_by`, also `state`, the message in protobuf's JSON mapping (or null)."""
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
        body["state"] = decoded_by.to_json(record.manifest, record.payload)
    return body


def json_response(
    body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")
