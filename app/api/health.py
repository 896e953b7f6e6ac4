"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from app.api.problems import problem_responses
from app.api.services import services_of

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


@router.get(
    "/healthz", operation_id="get_health", summary="Liveness: the process runs", response_model=Health
)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="get_readiness",
    summary="Readiness: the backend answers and its table exists",
    response_model=Health,
    responses=problem_responses(503),
)
async def readyz(request: Request) -> Health:
    await services_of(request).store.ping()
    return Health(status="ready")
