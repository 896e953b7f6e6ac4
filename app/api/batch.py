"""`POST /states:batchGet` and `POST /states:transact`: several states in one call.

The paths have no `/` after `states`, so the `/states/{persistence_id}` routes never capture them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api import services_of
from app.api.bodies import parsed_body
from app.api.conditions import etag
from app.api.idempotency import IDEMPOTENCY_KEY, idempotency_key
from app.api.ids import check_persistence_id
from app.api.resources import (
    DECODE,
    decode_requested,
    json_response,
    render_states,
    state_json,
    streamed_answer,
)
from app.api.schemas import (
    BatchGetRequest,
    BatchGetResponse,
    TransactDelete,
    TransactPut,
    TransactRequest,
    TransactResponse,
)
from app.errors import InvalidState
from app.http.problems import problem_responses
from app.http.routing import RequestRoute, documented
from app.states.model import DeleteOperation, Precondition, StateRecord
from app.states.service import PlannedPut

router = APIRouter(tags=["states"], route_class=RequestRoute)


@router.post(
    "/states:batchGet",
    operation_id="batch_get_states",
    summary="Read up to 1000 states at once",
    response_model=BatchGetResponse,
    responses=problem_responses(413, 415, 422, 502, 503),
    openapi_extra=documented(DECODE, body=BatchGetRequest),
)
async def batch_get_states(request: Request) -> Response:
    body = await parsed_body(request, BatchGetRequest)
    decode = decode_requested(request)
    services = services_of(request)
    states = services.states
    requested = list(
        dict.fromkeys(
            check_persistence_id(persistence_id, ["body", "persistence_ids", index])
            for index, persistence_id in enumerate(body.persistence_ids)
        )
    )
    services.held_answers.check_room()
    read = await states.get_many(requested)
    found = {record.persistence_id: record for record in read.found}
    read.found.clear()  # only the streamed answer keeps the records, each until it is sent
    unread = set(read.unprocessed)
    answered = [found[i] for i in requested if i in found]
    missing = [i for i in requested if i not in found and i not in unread]
    del found
    holding = services.held_answers.hold(answered)
    # What the held answers leave no room for, or the answer could not render, is not read yet, as
    # DynamoDB leaves keys unprocessed.
    unprocessed = [record.persistence_id for record in answered[len(holding) :]] + read.unprocessed
    del answered[len(holding) :]
    states_to_send: deque[StateRecord | bytes] = deque(answered)
    if decode:
        try:
            rendered = await render_states(answered, states.protobuf)
        except BaseException:
            holding.release()
            raise
        holding.keep(len(rendered))
        unprocessed = [record.persistence_id for record in answered[len(rendered) :]] + unprocessed
        states_to_send = deque(map(state_json, answered, rendered))  # map stops with the shorter
    answered.clear()
    return streamed_answer(states_to_send, {"missing": missing, "unprocessed": unprocessed}, holding)


@router.post(
    "/states:transact",
    operation_id="transact_states",
    summary="Write and delete up to 100 states atomically",
    description="All operations are applied or none. A failing condition answers 412 (`if_match`,"
    " `if_none_match`) or 409 (the version guard) with `operation_index` and `persistence_id` of the"
    " operation that failed, and `current_version` where a state is stored. One `Idempotency-Key` names the"
    " whole transaction: a retry with it after a lost answer is answered as the first attempt was.",
    response_model=TransactResponse,
    responses=problem_responses(400, 409, 412, 413, 415, 422, 502, 503),
    openapi_extra=documented(IDEMPOTENCY_KEY, body=TransactRequest),
)
async def transact_states(request: Request) -> Response:
    body = await parsed_body(request, TransactRequest)
    key = idempotency_key(request)
    operations = _planned_operations(body.operations)
    stored = await services_of(request).states.transact(operations, key)
    return json_response(
        {
            "results": [
                _result(operation.persistence_id, record)
                for operation, record in zip(operations, stored, strict=True)
            ]
        }
    )


def _result(persistence_id: str, stored: StateRecord | None) -> dict[str, str]:
    """What one operation left: a put's version (and expiry), nothing more for a delete."""
    result = {"persistence_id": persistence_id}
    if stored is not None:
        result["version_number"] = str(stored.version_number)
        result["etag"] = etag(stored.version_number)
        if stored.expires_at is not None:
            result["expires_at"] = str(stored.expires_at)
    return result


def _planned_operations(
    requested: Sequence[TransactPut | TransactDelete],
) -> list[PlannedPut | DeleteOperation]:
    """The operations of a transaction, once each names a valid id that no other operation names."""
    first_use: dict[str, int] = {}
    planned: list[PlannedPut | DeleteOperation] = []
    for index, operation in enumerate(requested):
        loc: list[str | int] = ["body", "operations", index, "persistence_id"]
        persistence_id = check_persistence_id(operation.persistence_id, loc)
        earlier = first_use.setdefault(persistence_id, index)
        if earlier != index:
            raise InvalidState(
                "a transaction may name each persistence id in one operation only",
                errors=[{"loc": loc, "msg": f"is already the persistence id of operation {earlier}"}],
            )
        match = None if operation.if_match is None else frozenset({operation.if_match})
        if isinstance(operation, TransactDelete):
            planned.append(DeleteOperation(persistence_id, Precondition(match=match)))
        else:
            precondition = Precondition(match=match, absent=bool(operation.if_none_match))
            planned.append(PlannedPut(persistence_id, operation, precondition))
    return planned
