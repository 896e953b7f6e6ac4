"""`/states/{persistence_id}`: read, write and delete one state, with conditional requests."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.responses import Response

from app.api.conditions import etag, precondition_from_headers
from app.api.deps import DecodeQuery, IfMatch, IfNoneMatch, PersistenceIdDep, ServicesDep
from app.api.problems import problem_responses
from app.api.resources import json_response, state_resource
from app.api.schemas import PutStateRequest, State, StateWritten
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


@router.get(
    _PATH,
    operation_id="get_state",
    summary="Read the latest state",
    response_model=State,
    responses=_READ_RESPONSES,
)
@router.head(
    _PATH,
    operation_id="head_state",
    summary="Check a state's existence and version",
    response_model=State,
    responses=_READ_RESPONSES,
)
async def get_state(
    services: ServicesDep,
    persistence_id: PersistenceIdDep,
    decode: DecodeQuery = False,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    precondition = precondition_from_headers(if_match, None)
    not_modified_if = precondition_from_headers(None, if_none_match)
    record = await services.store.get(persistence_id)
    stored_version = None if record is None else record.version_number
    if not precondition.allows(stored_version):
        raise PreconditionFailed("If-Match does not match the stored state", current_version=stored_version)
    if record is None:
        raise StateNotFound("no state is stored under this persistence id")
    headers = {"ETag": etag(record.version_number), **_CACHE_HEADERS}
    if if_none_match is not None and not not_modified_if.allows(stored_version):
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
)
async def put_state(
    services: ServicesDep,
    persistence_id: PersistenceIdDep,
    body: PutStateRequest,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    precondition = precondition_from_headers(if_match, if_none_match)
    record = record_to_write(persistence_id, body, services.types, services.settings)
    stored = await services.store.put(record, write_precondition(precondition, record, services.settings))
    headers = {"ETag": etag(stored.version_number)}
    if precondition.absent:
        headers["Location"] = f"/states/{quote(persistence_id, safe='')}"
    return json_response(
        state_resource(stored, with_payload=False), 201 if precondition.absent else 200, headers
    )


@router.delete(
    _PATH,
    operation_id="delete_state",
    summary="Delete a state",
    status_code=204,
    responses=problem_responses(400, 412, 422, 503),
)
async def delete_state(
    services: ServicesDep,
    persistence_id: PersistenceIdDep,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    await services.store.delete(persistence_id, precondition_from_headers(if_match, if_none_match))
    return Response(status_code=204)
