"""The application factory and the lifespan that owns the backend for the life of the process."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from functools import cache
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from app import __version__
from app.api import LifespanState, Services, batch, listing, probes, states
from app.api.page_tokens import PageTokens
from app.api.schemas import BatchGetRequest, PutStateRequest, TransactRequest
from app.clock import Clock
from app.errors import BackendUnavailable
from app.http.api_keys import KeyRing
from app.http.docs import docs_routes
from app.http.middleware import ApiKeyGuard, ConcurrencyLimit, RequestObserver, UnexpectedErrorLog
from app.http.openapi import build_openapi
from app.http.problems import install_problem_handlers
from app.http.routing import BodyPace
from app.http.server import settle_heap
from app.http.stopping import on_stop_signal
from app.observability.logging import FIELDS
from app.observability.metrics import Metrics
from app.protobuf import DescriptorSetError, TypeRegistry
from app.protobuf_worker import ProtobufWorker
from app.settings import Settings, SettingsError, load_settings, read_api_keys_file, variable_name
from app.states.answers import HeldAnswers
from app.states.service import StatesService
from app.states.watches import Watches
from app.store import CallObserver, StateStore, StoreConfigurationError, ignore_call, open_store

logger = logging.getLogger("statestore")

_ROUTERS = (states.router, listing.router, batch.router, probes.router)
_BODIES = (PutStateRequest, BatchGetRequest, TransactRequest)


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


@contextmanager
def reloading_on_hangup(keys: KeyRing) -> Iterator[None]:
    """SIGHUP re-reads the API key file, so that keys rotate without a restart. Only the main thread of a
    process can take signals: an app served on another thread (as in tests) rotates nothing."""
    if keys.file is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, keys.reload)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def api_keys(settings: Settings) -> KeyRing:
    if settings.api_keys_file is None:
        return KeyRing(settings.api_keys)
    try:  # read again: the file may have changed since the settings were checked
        return KeyRing(read_api_keys_file(settings.api_keys_file), settings.api_keys_file)
    except ValueError as exc:
        raise SettingsError(f"invalid setting {variable_name('api_keys_file')}: {exc}") from None


def load_types(settings: Settings) -> TypeRegistry:
    try:
        return TypeRegistry.load(settings.descriptor_sets)
    except DescriptorSetError as exc:
        raise SettingsError(f"invalid setting {variable_name('descriptor_sets')}: {exc}") from None


def unusable_setting(error: StoreConfigurationError) -> SettingsError:
    """A backend's configuration error in the service's words, naming the variable at fault."""
    if error.setting is None:
        return SettingsError(str(error))
    return SettingsError(f"invalid setting {variable_name(error.setting)}: {error}")


@asynccontextmanager
async def open_backend(
    settings: Settings, observer: CallObserver = ignore_call, clock: Clock = time.time_ns
) -> AsyncIterator[StateStore]:
    """The backend the settings name, open; a backend that cannot be used as configured is a
    `SettingsError` naming the variable at fault."""
    try:
        async with open_store(
            settings.backend,
            sqlite_path=settings.sqlite_path,
            dynamodb_table=settings.dynamodb_table,
            dynamodb_endpoint_url=settings.endpoint_url,
            dynamodb_client=settings.dynamodb_client,
            observer=observer,
            clock=clock,
        ) as store:
            yield store
    except StoreConfigurationError as exc:
        raise unusable_setting(exc) from None


async def _log_readiness(store: StateStore, settings: Settings, keys: KeyRing) -> None:
    """ "ready" once the backend has answered; otherwise a warning that says what is missing."""
    fields = {"backend": settings.backend, "location": store.description, "api_keys": len(keys)}
    try:
        await store.ping()
    except BackendUnavailable as exc:
        logger.warning(
            "statestore started, but its backend is not ready: %s; /readyz answers 503 until it is",
            exc.detail,
            extra={FIELDS: fields},
        )
    else:
        logger.info(
            "statestore ready: backend %s, writing to %s",
            settings.backend,
            store.description,
            extra={FIELDS: fields},
        )
        await _warn_of_lingering_expired_states(store, fields)


def _listed_storage(settings: Settings) -> str:
    """What a listing walks, for its page tokens: the table, or the SQLite file."""
    if settings.backend == "dynamodb":
        return f"dynamodb:{settings.dynamodb_table}"
    return f"sqlite:{settings.sqlite_path.resolve()}"


async def _warn_of_lingering_expired_states(store: StateStore, fields: dict[str, object]) -> None:
    """A warning, never a failure: expired states are absent to the service whatever the backend keeps."""
    try:
        warning = await store.expiry_warning()
    except BackendUnavailable:
        return  # the backend answered the readiness check a moment ago; not worth a second warning
    if warning is not None:
        logger.warning("%s", warning, extra={FIELDS: fields})


def create_app(
    settings: Settings, *, settle_heap_when_ready: bool = False, clock: Clock = time.time_ns
) -> FastAPI:
    """The service; `settle_heap_when_ready` tunes the process's garbage collector once it has started,
    which only a process that serves nothing else should do (`app.main:app`). `clock` is the service's
    "now" (expiry, server-filled timestamps): the tests give one they move by hand."""
    types = load_types(settings)
    app_metrics = Metrics(settings.backend)
    keys = api_keys(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[LifespanState]:
        async with AsyncExitStack() as resources:
            store = await resources.enter_async_context(
                open_backend(settings, app_metrics.observe_backend_call, clock)
            )
            await _log_readiness(store, settings, keys)
            resources.enter_context(reloading_on_hangup(keys))
            if settle_heap_when_ready:
                settle_heap()
            watches = Watches(store, settings.watch_poll_ms / 1000, settings.max_waiters, app_metrics)
            await resources.enter_async_context(watches.running())
            resources.enter_context(on_stop_signal(watches.close))
            protobuf = ProtobufWorker(types, settings.descriptor_sets)
            resources.push_async_callback(protobuf.close)
            states_service = StatesService(
                store,
                protobuf,
                manifest_policy=settings.manifest_policy,
                version_guard=settings.version_guard,
                timestamp_unit=settings.timestamp_unit,
                watches=watches,
                unknown_fields=settings.unknown_fields,
                clock=clock,
            )
            services = Services(
                states=states_service,
                metrics=app_metrics,
                page_tokens=PageTokens(_listed_storage(settings)),
                held_answers=HeldAnswers(),
            )
            yield LifespanState(services=services, send_timeout_seconds=settings.send_timeout_seconds)
        logger.info("statestore stopped: backend closed", extra={FIELDS: {"backend": settings.backend}})

    docs = docs_routes()
    routes = [*(route for router in _ROUTERS for route in router.routes), *docs]
    app = _ObservedFastAPI(
        app_metrics,
        routes,
        title="durable-state-store",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's own pages load their scripts from a CDN; `docs` serves them itself
        redoc_url=None,
    )
    for router in _ROUTERS:
        app.include_router(router)
    app.router.routes.extend(docs)
    install_problem_handlers(app, routes)
    app.state.body_pace = BodyPace(settings.body_timeout_seconds, settings.min_body_bytes_per_second)
    app.add_middleware(ConcurrencyLimit, limit=settings.max_concurrent_requests)
    if keys:  # outermost, so a caller without a key never takes a concurrency slot
        app.add_middleware(ApiKeyGuard, keys=keys)
    app.openapi = lambda: build_openapi(app, _BODIES)  # type: ignore[method-assign]
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
