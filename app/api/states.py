"""`/states/{persistence_id}`: read, write and delete one state, with conditional requests."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.responses import Response

from app.api.conditions import etag, precondition_from_headers
from app.api.persistence_ids import path_persistence_id
from app.api.problems import problem_responses
from app.api.request_parts import (
    DECODE,
    IF_MATCH,
    IF_NONE_MATCH,
    PERSISTENCE_ID,
    decode_requested,
    documented,
    if_match,
    if_none_match,
    json_body,
)
from app.api.resources import json_response, state_resource
from app.api.schemas import PutStateRequest, State, StateWritten
from app.api.services import services_of
from app.api.writes import record_to_write, write_precondition
from app.errors import PreconditionFailed, StateNotFound


class _AnyPathConvertor(PathConvertor):
    """Like `path`, but also matches line breaks, so an id holding one gets a 422, not a 404."""

    regex = r"[\s\S]*"


register_url_convertor("any_path", _AnyPathConvertor())

router = APIRouter(prefix="/states", tags=["states"])

_PATH = "/{persistence_id:any_path}"
_CACHE_HEADERS = {"Cache-Control": "no-cache"}
_ETAG_HEADER = {"ETag": {"description": "The version number, quoted.", "schema": {"type": "string"}}}
_READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": _ETAG_HEADER},
    304: {"description": "Not Modified: `If-None-Match` matches the stored version."},
    **problem_responses(400, 404, 412, 422, 503),
}
_READ_PARAMETERS = documented(PERSISTENCE_ID, DECODE, IF_MATCH, IF_NONE_MATCH)


@router.get(
    _PATH,
    operation_id="get_state",
    summary="Read the latest state",
    response_model=State,
    responses=_READ_RESPONSES,
    openapi_extra=_READ_PARAMETERS,
)
@router.head(
    _PATH,
    operation_id="head_state",
    summary="Check a state's existence and version",
    response_model=State,
    responses=_READ_RESPONSES,
    openapi_extra=_READ_PARAMETERS,
)
async def get_state(request: Request) -> Response:
    services = services_of(request)
    persistence_id = path_persistence_id(request)
    decode = decode_requested(request)
    found_if = precondition_from_headers(if_match(request), None)
    modified_if = precondition_from_headers(None, if_none_match(request))
    record = await services.store.get(persistence_id)
    stored_version = None if record is None else record.version_number
    if not found_if.allows(stored_version):
        raise PreconditionFailed("If-Match does not match the stored state", current_version=stored_version)
    if record is None:
        raise StateNotFound("no state is stored under this persistence id")
    headers = {"ETag": etag(record.version_number), **_CACHE_HEADERS}
    if not modified_if.allows(stored_version):
        return Response(status_code=304, headers=headers)
    return json_response(state_resource(record, decoded_by=services.types if decode else None), 200, headers)


@router.put(
    _PATH,
    operation_id="put_state",
    summary="Write the latest state",
    response_model=StateWritten,
    responses={
        200: {"headers": _ETAG_HEADER, "description": "Stored."},
        201: {"model": StateWritten, "headers": _ETAG_HEADER, "description": "Created (`If-None-Match: *`)."},
        **problem_responses(400, 409, 412, 413, 415, 422, 503),
    },
    openapi_extra=documented(PERSISTENCE_ID, IF_MATCH, IF_NONE_MATCH, body=PutStateRequest),
)
async def put_state(request: Request) -> Response:
    persistence_id = path_persistence_id(request)
    body = await json_body(request, PutStateRequest)
    written_if = precondition_from_headers(if_match(request), if_none_match(request))
    services = services_of(request)
    record = record_to_write(persistence_id, body, services.types, services.settings)
    stored = await services.store.put(record, write_precondition(written_if, record, services.settings))
    created = written_if.absent  # the one precondition that a success proves created the state
    headers = {"ETag": etag(stored.version_number)}
    if created:
        headers["Location"] = f"/states/{quote(persistence_id, safe='')}"
    return json_response(state_resource(stored, with_payload=False), 201 if created else 200, headers)


@router.delete(
    _PATH,
    operation_id="delete_state",
    summary="Delete a state",
    status_code=204,
    responses=problem_responses(400, 412, 422, 503),
    openapi_extra=documented(PERSISTENCE_ID, IF_MATCH, IF_NONE_MATCH),
)
async def delete_state(request: Request) -> Response:
    services = services_of(request)
    persistence_id = path_persistence_id(request)
    deleted_if = precondition_from_headers(if_match(request), if_none_match(request))
    await services.store.delete(persistence_id, deleted_if)
    return Response(status_code=204)
