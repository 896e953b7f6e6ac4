"""The service's Prometheus metrics: HTTP requests, backend calls, conditional-check failures, the process.

Each app has its own registry, so that several apps can live in one process. Under multiprocess mode (see
`app.observability.multiprocess`) every worker writes its samples to the shared folder and a scrape of any
worker answers for all of them; the process collectors are then left out, as they would describe only the
one worker that happened to answer the scrape.
"""

from __future__ import annotations

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from app.errors import PreconditionFailed, ProblemError, VersionConflict
from app.observability.multiprocess import multiprocess_mode

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})
"""Any other method is counted as `OTHER`: clients choose methods, and every label value is a time series."""

# The `*_created` series would double what a scrape carries and tell nothing a restart's reset does not.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.multiprocess = multiprocess_mode()
        self.registry = CollectorRegistry()
        if not self.multiprocess:
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self.registry.register(collector)
        self._requests = Counter(
            "statestore_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._request_seconds = Histogram(
            "statestore_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._backend_seconds = Histogram(
            "statestore_backend_call_duration_seconds",
            "Duration of each backend call (SDK retries included), by backend and operation.",
            ["backend", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._backend_errors = Counter(
            "statestore_backend_errors",
            "Backend calls that failed, by backend, operation and the problem type they answered with.",
            ["backend", "operation", "error"],
            registry=self.registry,
        )
        # Each request's series, looked up once: `labels()` validates and locks on every call.
        self._request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._backend_series: dict[str, Histogram] = {}
        self._conditional_failures = Counter(
            "statestore_conditional_check_failures",
            "Writes and deletes the backend refused on their condition: "
            "precondition-failed (412) or version-conflict (409).",
            ["backend", "operation", "reason"],
            registry=self.registry,
        )

        self._waiters = Gauge(
            "statestore_watch_waiters",
            "Requests waiting for a state to change (`GET /states/{id}?wait=`), now.",
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self._ids_polled = Counter(
            "statestore_watch_polled_ids",
            "Watched ids read by the poller: one consistent read each, however many clients wait on one.",
            registry=self.registry,
        )
        self._changes_delivered = Counter(
            "statestore_watch_changes_delivered",
            "Waiting requests answered with a change (200, 404 or 412) rather than 304.",
            registry=self.registry,
        )

    def waiters_changed(self, delta: int) -> None:
        self._waiters.inc(delta)

    def ids_polled(self, count: int) -> None:
        self._ids_polled.inc(count)

    def change_delivered(self) -> None:
        self._changes_delivered.inc()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in KNOWN_METHODS else "OTHER"
        key = (route, method, status)
        series = self._request_series.get(key)
        if series is None:
            series = (
                self._requests.labels(route, method, str(status)),
                self._request_seconds.labels(route, method),
            )
            self._request_series[key] = series
        count, duration = series
        count.inc()
        duration.observe(seconds)

    def observe_backend_call(self, operation: str, seconds: float, error: Exception | None) -> None:
        duration = self._backend_series.get(operation)
        if duration is None:
            duration = self._backend_series[operation] = self._backend_seconds.labels(self.backend, operation)
        duration.observe(seconds)
        if isinstance(error, PreconditionFailed | VersionConflict):
            self._conditional_failures.labels(self.backend, operation, error.slug).inc()
        elif error is not None:
            slug = error.slug if isinstance(error, ProblemError) else ProblemError.slug
            self._backend_errors.labels(self.backend, operation, slug).inc()

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The samples in the format `accept` asks for (Prometheus text or OpenMetrics), and its type."""
        registry = self.registry
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        encoder, media_type = choose_encoder(accept)
        return encoder(registry), media_type
