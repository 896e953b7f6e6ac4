"""What orchestrators and monitoring read: liveness, readiness, and the Prometheus metrics.

Each answers HEAD as GET without a body: load balancers and uptime checkers probe with HEAD.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from app.api import services_of
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


@router.get(
    "/readyz",
    tags=["health"],
    operation_id="get_readiness",
    summary="Readiness: the backend answers and its table exists",
    response_model=Health,
    responses=problem_responses(503),
)
@router.head(
    "/readyz",
    tags=["health"],
    operation_id="head_readiness",
    summary="Readiness, as GET without a body",
    response_model=Health,
    responses=problem_responses(503),
)
async def readyz(request: Request) -> Health:
    await services_of(request).states.ping()
    return Health(status="ready")


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
