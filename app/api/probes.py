"""What orchestrators and monitoring read: liveness, readiness, and the Prometheus metrics.

Each answers HEAD as GET without a body: load balancers and uptime checkers probe with HEAD.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from app.api import services_of
from app.api.startup import StartupFacts
from app.http.problems import problem_responses

router = APIRouter()


class Health(BaseModel):
    status: str


@router.get(
    "/healthz",
    tags=["health"],
    operation_id="get_health",
    summary="Liveness: the process runs",
    response_model=Health,
)
@router.head(
    "/healthz",
    tags=["health"],
    operation_id="head_health",
    summary="Liveness, as GET without a body",
    response_model=Health,
)
async def healthz() -> Health:
    return Health(status="ok")


class Readiness(StartupFacts):
    """`ready`, with what start-up chose and learned; only `status` is read by orchestrators."""

    status: Literal["ready"]


_READINESS: dict[str, Any] = {
    "tags": ["health"],
    "response_model": Readiness,
    "response_model_exclude_none": True,
    "responses": problem_responses(503),
    "description": "Ready once the backend answers (SQLite: its file opens; DynamoDB: DescribeTable finds "
    "the table with the service's key). The body also tells the backend, its table or file, its time to "
    "live and the version guard, as start-up found them: a probe makes no other backend call.",
}


@router.get(
    "/readyz",
    operation_id="get_readiness",
    summary="Readiness: the backend answers and its table exists",
    **_READINESS,
)
@router.head(
    "/readyz",
    operation_id="head_readiness",
    summary="Readiness, as GET without a body",
    **_READINESS,
)
async def readyz(request: Request) -> Readiness:
    services = services_of(request)
    await services.states.ping()
    return Readiness(status="ready", **services.startup.model_dump())


@router.get(
    "/metrics",
    tags=["metrics"],
    operation_id="get_metrics",
    summary="Prometheus metrics",
    description="Prometheus text format, or OpenMetrics when the `Accept` header asks for it.",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
@router.head(
    "/metrics",
    tags=["metrics"],
    operation_id="head_metrics",
    summary="Prometheus metrics, as GET without a body",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    body, media_type = services_of(request).metrics.exposition(request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": media_type})
