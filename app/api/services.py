"""What the lifespan opens once per process, and how a route finds it on its request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from starlette.requests import Request

from app.observability.metrics import Metrics
from app.protobuf import TypeRegistry
from app.settings import Settings
from app.store.port import StateStore


@dataclass(frozen=True, slots=True)
class Services:
    """What every request shares."""

    settings: Settings
    store: StateStore
    types: TypeRegistry
    metrics: Metrics


class LifespanState(TypedDict):
    services: Services


def services_of(request: Request) -> Services:
    services: Services = request.state.services
    return services
