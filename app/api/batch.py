"""`POST /states:batchGet` and `POST /states:transact`: several states in one call.

The paths have no `/` after `states`, so the `/states/{persistence_id}` routes never capture them.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.conditions import etag
from app.api.operations import operations_to_apply
from app.api.persistence_ids import check_persistence_id
from app.api.problems import problem_responses
from app.api.request_parts import DECODE, decode_requested, documented, json_body
from app.api.resources import json_response, state_resource
from app.api.schemas import BatchGetRequest, BatchGetResponse, TransactRequest, TransactResponse
from app.api.services import services_of

router = APIRouter(tags=["states"])


@router.post(
    "/states:batchGet",
    operation_id="batch_get_states",
    summary="Read up to 1000 states at once",
    response_model=BatchGetResponse,
    responses=problem_responses(400, 413, 415, 422, 503),
    openapi_extra=documented(DECODE, body=BatchGetRequest),
)
async def batch_get_states(request: Request) -> Response:
    body = await json_body(request, BatchGetRequest)
    decode = decode_requested(request)
    services = services_of(request)
    requested = list(
        dict.fromkeys(
            check_persistence_id(persistence_id, ["body", "persistence_ids", index])
            for index, persistence_id in enumerate(body.persistence_ids)
        )
    )
    found = {record.persistence_id: record for record in await services.store.get_many(requested)}
    decoded_by = services.types if decode else None
    return json_response(
        {
            "states": [state_resource(found[i], decoded_by=decoded_by) for i in requested if i in found],
            "missing": [i for i in requested if i not in found],
        }
    )


@router.post(
    "/states:transact",
    operation_id="transact_states",
    summary="Write and delete up to 100 states atomically",
    description="All operations are applied or none. A failing condition answers 412 (`if_match`,"
    " `if_none_match`) or 409 (the version guard) with `operation_index` and `persistence_id` of the"
    " operation that failed, and `current_version` where a state is stored.",
    response_model=TransactResponse,
    responses=problem_responses(400, 409, 412, 413, 415, 422, 503),
    openapi_extra=documented(body=TransactRequest),
)
async def transact_states(request: Request) -> Response:
    body = await json_body(request, TransactRequest)
    services = services_of(request)
    operations = operations_to_apply(body.operations, services.types, services.settings)
    stored = await services.store.transact(operations)
    return json_response(
        {
            "results": [
                {"persistence_id": operation.persistence_id}
                if record is None
                else {
                    "persistence_id": operation.persistence_id,
                    "version_number": record.version_number,
                    "etag": etag(record.version_number),
                }
                for operation, record in zip(operations, stored, strict=True)
            ]
        }
    )
