"""The application factory and the lifespan that owns the backend for the life of the process."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from app.api import batch, health, metrics, states
from app.api.auth import ApiKeyGuard
from app.api.concurrency_limit import ConcurrencyLimit
from app.api.openapi import build_openapi
from app.api.problems import install_problem_handlers
from app.api.services import LifespanState, Services
from app.api.unexpected_errors import UnexpectedErrorLog
from app.heap import settle_heap
from app.observability.logging import FIELDS
from app.observability.metrics import Metrics
from app.observability.middleware import RequestObserver
from app.protobuf import DescriptorSetError, TypeRegistry
from app.settings import Settings, SettingsError, load_settings
from app.store import open_store


def _version() -> str:
    try:
        return version("durable-state-store")
    except PackageNotFoundError:  # a source tree run without `pip install`: the same number, from its file
        pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
        return str(pyproject["project"]["version"])


VERSION = _version()
"""The distribution's version, as pyproject.toml sets it; the OpenAPI document's `info.version`."""

logger = logging.getLogger("statestore")

_ROUTERS = (states.router, batch.router, health.router, metrics.router)


class _ObservedFastAPI(FastAPI):
    """FastAPI with the request observer outside even Starlette's 500 handler (which `add_middleware`
    cannot reach), so that every answer, a crash's included, carries a request id and is counted and logged;
    and, between the two, the one log record of a crash.
    """

    def __init__(self, metrics: Metrics, routes: list[BaseRoute], **options: Any) -> None:
        super().__init__(**options)
        self._metrics = metrics
        self._observed_routes = routes

    def build_middleware_stack(self) -> ASGIApp:
        return RequestObserver(
            UnexpectedErrorLog(super().build_middleware_stack()), self._metrics, self._observed_routes
        )


def load_types(settings: Settings) -> TypeRegistry:
    try:
        return TypeRegistry.load(settings.descriptor_sets)
    except DescriptorSetError as exc:
        raise SettingsError(f"invalid setting STATESTORE_DESCRIPTOR_SETS: {exc}") from None


def create_app(settings: Settings, *, settle_heap_when_ready: bool = False) -> FastAPI:
    """The service; `settle_heap_when_ready` tunes the process's garbage collector once it has started,
    which only a process that serves nothing else should do (`app.main:app`)."""
    types = load_types(settings)
    app_metrics = Metrics(settings.backend)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[LifespanState]:
        async with AsyncExitStack() as resources:
            store = await resources.enter_async_context(
                open_store(settings, app_metrics.observe_backend_call)
            )
            logger.info(
                "statestore ready: backend %s, writing to %s",
                settings.backend,
                store.description,
                extra={
                    FIELDS: {
                        "backend": settings.backend,
                        "location": store.description,
                        "api_keys": len(settings.api_keys),
                    }
                },
            )
            if settle_heap_when_ready:
                settle_heap()
            yield LifespanState(
                services=Services(settings=settings, store=store, types=types, metrics=app_metrics)
            )
        logger.info("statestore stopped: backend closed", extra={FIELDS: {"backend": settings.backend}})

    routes = [route for router in _ROUTERS for route in router.routes]
    app = _ObservedFastAPI(
        app_metrics, routes, title="durable-state-store", version=VERSION, lifespan=lifespan, redoc_url=None
    )
    # The routes themselves rather than `include_router`: FastAPI 0.165 keeps an included router as a
    # branch it re-resolves on every request, which cost ~10 % of the handling of a read. Added before
    # the app serves, and the service uses neither FastAPI's schema cache nor dependency overrides.
    app.router.routes.extend(routes)
    install_problem_handlers(app)
    app.add_middleware(ConcurrencyLimit, limit=settings.max_concurrent_requests)
    if settings.api_keys:  # outermost, so a caller without a key never takes a concurrency slot
        app.add_middleware(ApiKeyGuard, keys=settings.api_keys)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app


@cache
def _app_from_environment() -> FastAPI:
    try:
        return create_app(load_settings(), settle_heap_when_ready=True)
    except SettingsError as exc:
        raise SystemExit(str(exc)) from None


def __getattr__(name: str) -> Any:
    # `app.main:app` is built on first use, so importing `create_app` never reads the environment.
    if name == "app":
        return _app_from_environment()
    raise AttributeError(name)
