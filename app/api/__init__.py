"""The HTTP API: the routes, the schemas of their bodies, and what every request shares (`Services`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from starlette.requests import Request

from app.api.page_tokens import PageTokens
from app.api.startup import StartupFacts
from app.observability.metrics import Metrics
from app.states.answers import HeldAnswers
from app.states.service import StatesService


@dataclass(frozen=True, slots=True)
class Services:
    """What the lifespan opens once per process, for every request to share."""

    states: StatesService
    metrics: Metrics
    page_tokens: PageTokens
    startup: StartupFacts
    held_answers: HeldAnswers


class LifespanState(TypedDict):
    services: Services
    send_timeout_seconds: float
    """`STATESTORE_SEND_TIMEOUT_SECONDS`, for the server's connections (`app/http/server.py`)."""


def services_of(request: Request) -> Services:
    services: Services = request.state.services
    return services
