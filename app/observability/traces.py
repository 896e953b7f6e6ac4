"""The process's traces, once `app.observability.tracing` found them asked for: the tracer provider and its
exporters, and the spans of what a request waits on besides the HTTP layer (whose server span is
`app.http.tracing`): each backend call, each protobuf worker call, each wait for a change.

A backend call's span is made when its `ObservedCall` reports it, with the start it measured, so the
adapters know nothing of tracing; the consumed capacity and retries come from `app.store.call_details`.
Only calls made while serving a request are traced: the watch poller's and the expiry purge's are not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from app import __version__
from app.errors import ProblemError
from app.observability import logging as service_logging
from app.protobuf import TypeRegistry
from app.protobuf_worker import ProtobufWorker
from app.settings import Settings
from app.states.watches import Look, Unchanged, Wanted, Watch, Watches, WatchMeter
from app.store import CallObserver, StateStore, call_details

SERVICE = "durable-state-store"
INSTRUMENTATION = "statestore"
_Result = TypeVar("_Result")


class Tracing:
    """One app's tracer, from its own provider (not the global one: a process may hold several apps)."""

    def __init__(self, provider: TracerProvider, settings: Settings) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer(INSTRUMENTATION, __version__)
        self.backend = settings.backend
        self._table = settings.dynamodb_table

    @classmethod
    def exporting(cls, exporters: Sequence[str], settings: Settings) -> Tracing:
        """Spans batched to each exporter named (`otlp`, `console`), configured by the `OTEL_*` variables."""
        return cls.processing([BatchSpanProcessor(_exporter(name)) for name in exporters], settings)

    @classmethod
    def processing(cls, processors: Sequence[SpanProcessor], settings: Settings) -> Tracing:
        # The sampler comes from OTEL_TRACES_SAMPLER; the resource from OTEL_SERVICE_NAME and
        # OTEL_RESOURCE_ATTRIBUTES, over the service's own name and version.
        provider = TracerProvider(resource=_resource())
        for processor in processors:
            provider.add_span_processor(processor)
        return cls(provider, settings)

    def start(self) -> None:
        service_logging.trace_ids_of = current_trace_ids

    async def close(self) -> None:
        service_logging.trace_ids_of = None
        await asyncio.to_thread(self.provider.shutdown)  # exports what is still batched

    def backend_observer(self, metrics: CallObserver) -> CallObserver:
        """`metrics`, and a span for each backend call made while serving a request."""
        system = "dynamodb" if self.backend == "dynamodb" else "sqlite"
        name_prefix = "DynamoDB." if self.backend == "dynamodb" else "SQLite "
        table = self._table
        tracer = self.tracer

        def observe(operation: str, seconds: float, error: Exception | None) -> None:
            metrics(operation, seconds, error)
            details = call_details.take()
            if not trace.get_current_span().get_span_context().is_valid:
                return
            ended = time.time_ns()
            attributes: dict[str, Any] = {"db.system": system, "db.operation.name": operation}
            if system == "dynamodb":
                attributes["aws.dynamodb.table_names"] = (table,)
            if details is not None:
                attributes["statestore.backend.requests"] = details.requests
                attributes["statestore.backend.retries"] = details.retries
                if details.consumed_capacity is not None:
                    attributes["aws.dynamodb.consumed_capacity_units"] = details.consumed_capacity
            span = tracer.start_span(
                f"{name_prefix}{operation}",
                kind=SpanKind.CLIENT,
                start_time=ended - round(seconds * 1e9),
                attributes=attributes,
            )
            if error is not None:
                slug = error.slug if isinstance(error, ProblemError) else ProblemError.slug
                span.set_attribute("statestore.outcome", slug)
                span.set_status(StatusCode.ERROR, slug)
            else:
                span.set_attribute("statestore.outcome", "ok")
            span.end(end_time=ended)

        return observe

    def protobuf_worker(self, types: TypeRegistry, descriptor_sets: Sequence[Path]) -> ProtobufWorker:
        return _TracedProtobufWorker(types, descriptor_sets, self.tracer)

    def watches(self, store: StateStore, poll_seconds: float, max_waiters: int, meter: WatchMeter) -> Watches:
        return _TracedWatches(store, poll_seconds, max_waiters, meter, self.tracer)


def current_trace_ids() -> dict[str, str]:
    """The ids a log line carries while a span is current: hexadecimal, as W3C `traceparent` writes them."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


class _TracedProtobufWorker(ProtobufWorker):
    def __init__(self, types: TypeRegistry, descriptor_sets: Sequence[Path], tracer: Tracer) -> None:
        super().__init__(types, descriptor_sets)
        self._tracer = tracer

    async def run(self, function: Callable[..., _Result], *arguments: Any) -> _Result:
        with self._tracer.start_as_current_span(
            f"protobuf {function.__name__.lstrip('_')}", attributes={"statestore.worker": "protobuf"}
        ):
            return await super().run(function, *arguments)


class _TracedWatches(Watches):
    def __init__(
        self, store: StateStore, poll_seconds: float, max_waiters: int, meter: WatchMeter, tracer: Tracer
    ) -> None:
        super().__init__(store, poll_seconds, max_waiters, meter)
        self._tracer = tracer

    async def wait(self, watch: Watch, wanted: Wanted, since: Unchanged, seconds: float) -> Look:
        with self._tracer.start_as_current_span(
            "wait for a change", attributes={"statestore.wait.seconds": seconds}
        ) as span:
            found = await super().wait(watch, wanted, since, seconds)
            span.set_attribute("statestore.wait.changed", not isinstance(found, Unchanged))
            return found


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _resource() -> Resource:
    detected = Resource.create()
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        detected = detected.merge(Resource({SERVICE_NAME: SERVICE}))
    return Resource({SERVICE_VERSION: __version__}).merge(detected)
