"""The application factory and the lifespan that owns the backend for the life of the process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from app import __version__
from app.api import LifespanState, Services, batch, listing, probes, states
from app.api.page_tokens import PageTokens
from app.api.schemas import BatchGetRequest, PutStateRequest, TransactRequest
from app.api.startup import LargeStatesFacts, StartupFacts, TimeToLive
from app.clock import Clock
from app.errors import BackendUnavailable
from app.heap import handing_back_freed_memory, settle_heap
from app.http import docs
from app.http.api_keys import KeyRing
from app.http.bodies import BodyPace
from app.http.middleware import ApiKeyGuard, ConcurrencyLimit, RequestObserver, UnexpectedErrorLog
from app.http.openapi import build_openapi
from app.http.problems import install_problem_handlers
from app.http.stopping import on_stop_signal
from app.observability.logging import FIELDS
from app.observability.metrics import Metrics
from app.observability.tracing import exporters_named
from app.protobuf import DescriptorSetError, TypeRegistry
from app.protobuf_worker import ProtobufWorker
from app.settings import Settings, SettingsError, load_settings, read_api_keys_file, variable_name
from app.states.answers import HeldAnswers
from app.states.service import StatesService
from app.states.watches import Watches
from app.store import (
    UNKNOWN_EXPIRY,
    CallObserver,
    Expiry,
    StateStore,
    StoreConfigurationError,
    ignore_call,
    open_store,
)

if TYPE_CHECKING:
    from app.observability.traces import Tracing

logger = logging.getLogger("statestore")

_ROUTERS = (states.router, listing.router, batch.router, probes.router, docs.router)
_BODIES = (PutStateRequest, BatchGetRequest, TransactRequest)


class _ObservedFastAPI(FastAPI):
    """FastAPI with the request observer outside even Starlette's 500 handler (which `add_middleware`
    cannot reach), so that every answer, a crash's included, carries a request id and is counted and logged;
    and, between the two, the one log record of a crash. When the process traces, the server span is
    outside them all, so that their log lines carry its ids.
    """

    def __init__(
        self, metrics: Metrics, routes: list[BaseRoute], tracing: Tracing | None, **options: Any
    ) -> None:
        super().__init__(**options)
        self._metrics = metrics
        self._observed_routes = routes
        self._tracing = tracing

    def build_middleware_stack(self) -> ASGIApp:
        observed = RequestObserver(
            UnexpectedErrorLog(super().build_middleware_stack()), self._metrics, self._observed_routes
        )
        if self._tracing is None:
            return observed
        from app.http.tracing import ServerSpans

        return ServerSpans(observed, self._tracing.tracer, self._tracing.backend)


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
    settings: Settings,
    observer: CallObserver = ignore_call,
    clock: Clock = time.time_ns,
    *,
    call_details: bool = False,
) -> AsyncIterator[StateStore]:
    """The backend the settings name, open; a backend that cannot be used as configured is a
    `SettingsError` naming the variable at fault. `call_details`: see `app.store.call_details`."""
    try:
        async with open_store(
            settings.backend,
            sqlite_path=settings.sqlite_path,
            dynamodb_table=settings.dynamodb_table,
            dynamodb_endpoint_url=settings.endpoint_url,
            compression=settings.compression,
            large_states_bucket=settings.large_states_bucket,
            large_states_prefix=settings.large_states_prefix,
            s3_endpoint_url=settings.s3_endpoint,
            dynamodb_client=settings.dynamodb_client,
            observer=observer,
            clock=clock,
            call_details=call_details,
        ) as store:
            yield store
    except StoreConfigurationError as exc:
        raise unusable_setting(exc) from None


async def _log_readiness(store: StateStore, settings: Settings, keys: KeyRing) -> Expiry:
    """ "ready" once the backend has answered; otherwise a warning that says what is missing. Returns how
    the backend deletes expired states, as far as start-up learned it."""
    fields = {"backend": settings.backend, "location": store.description, "api_keys": len(keys)}
    try:
        await store.ping()
    except BackendUnavailable as exc:
        logger.warning(
            "statestore started, but its backend is not ready: %s; /readyz answers 503 until it is",
            exc.detail,
            extra={FIELDS: fields},
        )
        return UNKNOWN_EXPIRY
    logger.info(
        "statestore ready: backend %s, writing to %s",
        settings.backend,
        store.description,
        extra={FIELDS: fields},
    )
    return await _warn_of_lingering_expired_states(store, fields)


def _listed_storage(settings: Settings) -> str:
    """What a listing walks, for its page tokens: the table, or the SQLite file."""
    if settings.backend == "dynamodb":
        return f"dynamodb:{settings.dynamodb_table}"
    return f"sqlite:{settings.sqlite_path.resolve()}"


async def _warn_of_lingering_expired_states(store: StateStore, fields: dict[str, object]) -> Expiry:
    """A warning, never a failure: expired states are absent to the service whatever the backend keeps."""
    try:
        expiry = await store.expiry()
    except BackendUnavailable:
        return UNKNOWN_EXPIRY  # the backend answered the readiness check a moment ago; not worth a warning
    if expiry.warning is not None:
        logger.warning("%s", expiry.warning, extra={FIELDS: fields})
    return expiry


def startup_facts(settings: Settings, expiry: Expiry) -> StartupFacts:
    """What `/readyz` tells besides the backend's answer: what the settings chose and start-up learned."""
    dynamodb = settings.backend == "dynamodb"
    return StartupFacts(
        backend=settings.backend,
        table=settings.dynamodb_table if dynamodb else None,
        file=None if dynamodb else str(settings.sqlite_path.resolve()),
        ttl=TimeToLive(status=expiry.status, attribute=expiry.attribute),
        version_guard=settings.version_guard,
        compression=settings.compression if dynamodb else None,
        large_states=LargeStatesFacts(
            bucket=settings.large_states_bucket, prefix=settings.large_states_prefix
        )
        if dynamodb
        else None,
    )


def create_app(
    settings: Settings,
    *,
    settle_heap_when_ready: bool = False,
    clock: Clock = time.time_ns,
    tracing: Tracing | None = None,
) -> FastAPI:
    """The service; `settle_heap_when_ready` tunes the process's garbage collector once it has started,
    and hands freed memory back to the system while it serves (`app.heap`), which only a process that
    serves nothing else should do (`app.main:app`). `clock` is the service's "now" (expiry, server-filled
    timestamps): the tests give one they move by hand. With `tracing`, each request is traced
    (`app.observability.traces`); without, nothing of it is on the request's path."""
    types = load_types(settings)
    app_metrics = Metrics(settings.backend)
    keys = api_keys(settings)
    observer: CallObserver = app_metrics.observe_backend_call
    if tracing is not None:
        observer = tracing.backend_observer(observer)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[LifespanState]:
        async with AsyncExitStack() as resources:
            if tracing is not None:
                tracing.start()
                resources.push_async_callback(tracing.close)
            store = await resources.enter_async_context(
                open_backend(settings, observer, clock, call_details=tracing is not None)
            )
            expiry = await _log_readiness(store, settings, keys)
            resources.enter_context(reloading_on_hangup(keys))
            if settle_heap_when_ready:
                settle_heap()
                await resources.enter_async_context(handing_back_freed_memory())
            watching = Watches if tracing is None else tracing.watches
            watches = watching(store, settings.watch_poll_ms / 1000, settings.max_waiters, app_metrics)
            await resources.enter_async_context(watches.running())
            resources.enter_context(on_stop_signal(watches.close))
            protobuf = (ProtobufWorker if tracing is None else tracing.protobuf_worker)(
                types, settings.descriptor_sets
            )
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
                startup=startup_facts(settings, expiry),
                held_answers=HeldAnswers(),
            )
            yield LifespanState(services=services, send_timeout_seconds=settings.send_timeout_seconds)
        logger.info("statestore stopped: backend closed", extra={FIELDS: {"backend": settings.backend}})

    routes = [route for router in _ROUTERS for route in router.routes]
    app = _ObservedFastAPI(
        app_metrics,
        routes,
        tracing,
        title="durable-state-store",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's own pages load their scripts from a CDN; `docs` serves them itself
        redoc_url=None,
        # FastAPI's own OpenTelemetry spans follow the process's global providers, and would ask them about
        # every request: the service traces with a provider of its own (`tracing`), or not at all.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    # Flat on the app's own router, as `@app.get` puts them: an included router stays a node of its own that
    # every request matches through twice (docs/design.md).
    app.router.routes.extend(routes)
    install_problem_handlers(app, routes)
    app.state.body_pace = BodyPace(settings.body_timeout_seconds, settings.min_body_bytes_per_second)
    app.add_middleware(ConcurrencyLimit, limit=settings.max_concurrent_requests)
    if keys:  # outermost, so a caller without a key never takes a concurrency slot
        app.add_middleware(ApiKeyGuard, keys=keys)
    app.openapi = lambda: build_openapi(app, _BODIES)  # type: ignore[method-assign]
    return app


def tracing_from_environment(settings: Settings) -> Tracing | None:
    """The traces the `OTEL_*` variables ask for (`app.observability.tracing`), or None: off."""
    exporters = exporters_named(os.environ)
    if not exporters:
        return None
    from app.observability.traces import Tracing

    return Tracing.exporting(exporters, settings)


@cache
def _app_from_environment() -> FastAPI:
    try:
        settings = load_settings()
        return create_app(settings, settle_heap_when_ready=True, tracing=tracing_from_environment(settings))
    except SettingsError as exc:
        raise SystemExit(str(exc)) from None


def __getattr__(name: str) -> Any:
    # `app.main:app` is built on first use, so importing `create_app` never reads the environment.
    if name == "app":
        return _app_from_environment()
    raise AttributeError(name)
