"""The application factory and the lifespan that owns the backend for the life of the process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import cache
from typing import Any

from fastapi import FastAPI

from app.api import batch, health, states
from app.api.auth import ApiKeyGuard
from app.api.body_guard import BodyGuard
from app.api.concurrency_limit import ConcurrencyLimit
from app.api.deps import LifespanState
from app.api.openapi import build_openapi
from app.api.problems import install_problem_handlers
from app.protobuf import DescriptorSetError, TypeRegistry
from app.settings import Settings, SettingsError, load_settings
from app.store import open_store
from app.store.observed import ignore_call

VERSION = "1.0.0"

logger = logging.getLogger("statestore")


def load_types(settings: Settings) -> TypeRegistry:
    try:
        return TypeRegistry.load(settings.descriptor_sets)
    except DescriptorSetError as exc:
        raise SettingsError(f"invalid setting STATESTORE_DESCRIPTOR_SETS: {exc}") from None


def create_app(settings: Settings) -> FastAPI:
    types = load_types(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[LifespanState]:
        async with AsyncExitStack() as resources:
            store = await resources.enter_async_context(open_store(settings, ignore_call))
            logger.info("statestore ready: backend %s, writing to %s", settings.backend, store.description)
            yield LifespanState(settings=settings, store=store, types=types)
        logger.info("statestore stopped: backend closed")

    app = FastAPI(title="durable-state-store", version=VERSION, lifespan=lifespan, redoc_url=None)
    app.include_router(states.router)
    app.include_router(batch.router)
    app.include_router(health.router)
    install_problem_handlers(app)
    app.add_middleware(BodyGuard)
    app.add_middleware(ConcurrencyLimit, limit=settings.max_concurrent_requests)
    if settings.api_keys:  # outermost, so a caller without a key never takes a concurrency slot
        app.add_middleware(ApiKeyGuard, keys=settings.api_keys)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app


@cache
def _app_from_environment() -> FastAPI:
    try:
        return create_app(load_settings())
    except SettingsError as exc:
        raise SystemExit(str(exc)) from None


def __getattr__(name: str) -> Any:
    # `app.main:app` is built on first use, so importing `create_app` never reads the environment.
    if name == "app":
        return _app_from_environment()
    raise AttributeError(name)
