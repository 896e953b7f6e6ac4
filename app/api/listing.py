"""`GET /states`: every stored state, page by page, without payloads; one shard's only, when asked.

Each page is one bounded backend read (a consistent `Scan` call on DynamoDB, a keyset query in id order on
SQLite), which stops at `limit` states or about 1 MB read, so no page holds more than that in memory.
Where the next page begins travels in a signed page token (`app.api.page_tokens`).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api import services_of
from app.api.resources import DECODE, decode_requested, json_response, render_states, state_resource
from app.api.schemas import StatePage
from app.http.openapi import DECIMAL_PATTERNS
from app.http.problems import problem_responses
from app.http.routing import Parameter, RequestRoute, documented, query_integer
from app.protobuf_worker import Rendered
from app.states.model import MAX_UINT64

MAX_PAGE_STATES = 1000
DEFAULT_PAGE_STATES = 100

LIMIT = Parameter(
    "limit",
    "query",
    f"At most this many states in the page: 1 to {MAX_PAGE_STATES}; {DEFAULT_PAGE_STATES} when absent.",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_STATES},
)
PAGE_TOKEN = Parameter(
    "page_token",
    "query",
    "The `next_page_token` of the previous page, with the same `shard`; absent for the first page. A token"
    " the service did not issue for this listing and filter is a `400`.",
    {"type": "string", "minLength": 1},
)
SHARD = Parameter(
    "shard",
    "query",
    "Only the states of this shard (0 to 2^64-1, in decimal digits).",
    # A string, as 64-bit integers are in bodies: generated clients then keep every shard exact, where an
    # integer would be a JavaScript number, rounded above 2^53. On the wire a query is text either way.
    {"type": "string", "format": "uint64", "pattern": DECIMAL_PATTERNS["uint64"], "examples": ["3"]},
)

router = APIRouter(tags=["states"], route_class=RequestRoute)


@router.get(
    "/states",
    operation_id="list_states",
    summary="List the stored states, page by page",
    description="Pages through every stored state, without payloads (`decode=true` adds `state`). Follow"
    " `next_page_token` until it is null: a walk that runs while nothing is written returns each state"
    " exactly once; under concurrent writes a state may be missed or seen twice, never half-written.",
    response_model=StatePage,
    responses=problem_responses(400, 422, 503),
    openapi_extra=documented(LIMIT, PAGE_TOKEN, SHARD, DECODE),
)
async def list_states(request: Request) -> Response:
    services = services_of(request)
    limit = query_integer(request, LIMIT, 1, MAX_PAGE_STATES) or DEFAULT_PAGE_STATES
    shard = query_integer(request, SHARD, 0, MAX_UINT64)
    decode = decode_requested(request)
    token = request.query_params.get(PAGE_TOKEN.name)
    tokens = services.page_tokens
    after = None if token is None else tokens.read(token, shard)
    page = await services.states.list_page(limit, after, shard, payloads=decode)
    records, last_id = page.records, page.last_id
    rendered: Sequence[Rendered | None] = [None] * len(records)
    if decode:
        rendered = await render_states(records, services.states.protobuf)
        if len(rendered) < len(records):  # the page ends where one answer's rendering must
            records, last_id = records[: len(rendered)], records[len(rendered) - 1].persistence_id
    return json_response(
        {
            "states": [
                state_resource(record, with_payload=False, rendered=one)
                for record, one in zip(records, rendered, strict=True)
            ],
            "next_page_token": None if last_id is None else tokens.issue(last_id, shard),
        }
    )
