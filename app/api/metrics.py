"""`/metrics`: the Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.services import services_of

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    operation_id="get_metrics",
    summary="Prometheus metrics",
    description="Prometheus text format, or OpenMetrics when the `Accept` header asks for it.",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    body, media_type = services_of(request).metrics.exposition(request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": media_type})
