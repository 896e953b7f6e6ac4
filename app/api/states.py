"""`/states/{persistence_id}`: read, write and delete one state, with conditional requests; and wait for it
to change (`wait`, through `app.states.watches`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.responses import Response

from app.api import services_of
from app.api.bodies import parsed_body
from app.api.conditions import (
    IF_MATCH,
    IF_NONE_MATCH,
    etag,
    if_match,
    if_none_match,
    precondition_from_headers,
)
from app.api.idempotency import IDEMPOTENCY_KEY, idempotency_key
from app.api.ids import PERSISTENCE_ID, path_persistence_id
from app.api.resources import DECODE, decode_requested, json_response, render_states, state_resource
from app.api.schemas import PutStateRequest, State, StateWritten
from app.errors import InvalidState, PreconditionFailed, StateNotFound
from app.http.middleware import waiting
from app.http.problems import problem_responses
from app.http.routing import Parameter, RequestRoute, documented, query_integer, while_connected
from app.states.service import StatesService
from app.states.watches import Look, Unchanged, Version


class _AnyPathConvertor(PathConvertor):
    """Like `path`, but also matches line breaks, so an id holding one gets a 422, not a 404."""

    regex = r"[\s\S]*"


register_url_convertor("any_path", _AnyPathConvertor())

router = APIRouter(prefix="/states", tags=["states"], route_class=RequestRoute)

_PATH = "/{persistence_id:any_path}"
_CACHE_HEADERS = {"Cache-Control": "no-cache"}
_ETAG_HEADER = {"ETag": {"description": "The version number, quoted.", "schema": {"type": "string"}}}
MAX_WAIT_SECONDS = 60
WAIT = Parameter(
    "wait",
    "query",
    "Wait for a change: while the answer would be `304` (the stored version matches `If-None-Match`), hold"
    " the request up to this many seconds until it would not be. Answers `200` with the state as soon as it"
    " differs, `404` once it is deleted, and `304` when the time runs out (or the server is stopping)."
    " Changes by this server, other replicas and other programs writing the table are all seen: this"
    " server's own at once, others' within the poll interval (`STATESTORE_WATCH_POLL_MS`, 500 ms by"
    " default). Beyond `STATESTORE_MAX_WAITERS` waiting requests the answer is `503` with `Retry-After`.",
    {"type": "integer", "minimum": 1, "maximum": MAX_WAIT_SECONDS},
)
_READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": _ETAG_HEADER},
    304: {
        "description": "Not Modified: `If-None-Match` matches the stored version (with `wait`: still, after"
        " that many seconds)."
    },
    **problem_responses(400, 404, 412, 422, 502, 503),
}
_READ_PARAMETERS = documented(PERSISTENCE_ID, DECODE, WAIT, IF_MATCH, IF_NONE_MATCH)


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
    states = services_of(request).states
    persistence_id = path_persistence_id(request)
    decode = decode_requested(request)
    found_if = precondition_from_headers(if_match(request), None)
    modified_if = precondition_from_headers(None, if_none_match(request))
    wait = query_integer(request, WAIT, 1, MAX_WAIT_SECONDS)

    def not_modified(version: Version) -> bool:
        """What the answer would be 304 for."""
        return version is not None and found_if.allows(version) and not modified_if.allows(version)

    if wait is None:
        record = await states.get(persistence_id)
    else:
        waited = await _until_modified(request, states, persistence_id, not_modified, wait)
        if isinstance(waited, Unchanged):
            return Response(status_code=304, headers={"ETag": etag(waited.version), **_CACHE_HEADERS})
        record = waited
    stored_version = None if record is None else record.version_number
    if not found_if.allows(stored_version):
        raise PreconditionFailed("If-Match does not match the stored state", current_version=stored_version)
    if record is None:
        raise StateNotFound("no state is stored under this persistence id")
    headers = {"ETag": etag(record.version_number), **_CACHE_HEADERS}
    if not modified_if.allows(stored_version):
        return Response(status_code=304, headers=headers)
    rendered = (await render_states([record], states.protobuf))[0] if decode else None
    if rendered is not None and rendered.error is not None:
        raise InvalidState(rendered.error)  # asked for one state's JSON, which cannot be given
    return json_response(state_resource(record, rendered=rendered), 200, headers)


async def _until_modified(
    request: Request,
    states: StatesService,
    persistence_id: str,
    not_modified: Callable[[Version], bool],
    seconds: int,
) -> Look:
    """The state once the answer to it would not be 304, or `Unchanged` after `seconds`.

    A watch that already shows the version the client has spares the read: the poller or this replica's
    writes will show a change. Otherwise the state is read (one read for the waiters that arrive
    together), and answered at once if it changed. A client that hangs up while it waits gives its place
    back at once (a 499), not when `seconds` run out.
    """

    def wanted(version: Version) -> bool:
        return not not_modified(version)

    async with states.watches.watching(persistence_id) as watch:
        found = await states.watches.look(watch, wanted)
        if not isinstance(found, Unchanged):
            return found
        with waiting(request.scope):
            return await while_connected(request, states.watches.wait(watch, wanted, found, seconds))


@router.put(
    _PATH,
    operation_id="put_state",
    summary="Write the latest state",
    response_model=StateWritten,
    responses={
        200: {"headers": _ETAG_HEADER, "description": "Stored."},
        201: {"model": StateWritten, "headers": _ETAG_HEADER, "description": "Created (`If-None-Match: *`)."},
        **problem_responses(400, 409, 412, 413, 415, 422, 502, 503),
    },
    openapi_extra=documented(PERSISTENCE_ID, IF_MATCH, IF_NONE_MATCH, IDEMPOTENCY_KEY, body=PutStateRequest),
)
async def put_state(request: Request) -> Response:
    persistence_id = path_persistence_id(request)
    body = await parsed_body(request, PutStateRequest)
    if body.persistence_id is not None and body.persistence_id != persistence_id:
        raise InvalidState(
            "the body's persistence_id differs from the path's",
            errors=[{"loc": ["body", "persistence_id"], "msg": "must equal the persistence id in the path"}],
        )
    written_if = precondition_from_headers(if_match(request), if_none_match(request))
    key = idempotency_key(request)
    stored = await services_of(request).states.put(persistence_id, body, written_if, key)
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
    responses=problem_responses(400, 412, 422, 502, 503),
    openapi_extra=documented(PERSISTENCE_ID, IF_MATCH, IF_NONE_MATCH),
)
async def delete_state(request: Request) -> Response:
    states = services_of(request).states
    persistence_id = path_persistence_id(request)
    deleted_if = precondition_from_headers(if_match(request), if_none_match(request))
    await states.delete(persistence_id, deleted_if)
    return Response(status_code=204)
