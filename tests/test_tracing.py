"""OpenTelemetry traces, with the SDK's in-memory exporter: one server span per request, named by its route
template and child of the caller's `traceparent`, with a span for each backend call, protobuf worker call
and wait under it; and log lines that carry the trace's ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.main import create_app
from app.observability import logging as service_logging
from app.observability.traces import Tracing
from app.settings import Settings
from support.api import state_body, state_path
from support.uvicorn_thread import serving

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
# On DynamoDB both clients: the lean one notes capacity and retries itself, aioboto3's by botocore's events.
TRACED_BACKENDS = [("sqlite", None), ("moto", "lean"), ("moto", "aioboto3")]


@contextmanager
def traced_service(settings: Settings) -> Iterator[tuple[str, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracing = Tracing.processing([SimpleSpanProcessor(exporter)], settings)
    with serving(create_app(settings, tracing=tracing)) as url:
        yield url, exporter


@pytest.fixture(params=TRACED_BACKENDS, ids=["sqlite", "moto-lean", "moto-aioboto3"])
def traced(
    request: pytest.FixtureRequest, settings_for: Callable[..., Settings]
) -> Iterator[tuple[str, InMemorySpanExporter, str]]:
    backend, dynamodb_client = request.param
    client = {} if dynamodb_client is None else {"dynamodb_client": dynamodb_client}
    settings = settings_for(backend, descriptor_sets=(request.getfixturevalue("descriptor_set"),), **client)
    with traced_service(settings) as (url, exporter):
        exporter.clear()  # the start-up checks are no request's
        yield url, exporter, backend


def server_span(spans: tuple[ReadableSpan, ...]) -> ReadableSpan:
    (server,) = [span for span in spans if span.kind is SpanKind.SERVER]
    return server


def children_of(parent: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    assert parent.context is not None
    own = parent.context.span_id
    return [span for span in spans if span.parent is not None and span.parent.span_id == own]


def test_a_put_is_a_server_span_under_the_callers_with_a_backend_span_under_it(
    traced: tuple[str, InMemorySpanExporter, str], state_id: str
) -> None:
    url, exporter, backend = traced
    response = httpx.put(
        f"{url}{state_path(state_id)}",
        json=state_body(1),
        headers={"traceparent": TRACEPARENT, "tracestate": "vendor=1"},
    )
    assert response.status_code == 200
    spans = exporter.get_finished_spans()
    server = server_span(spans)
    assert server.name == "PUT /states/{persistence_id}"
    assert server.context is not None
    assert server.parent is not None
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert f"{server.parent.span_id:016x}" == CALLER_SPAN_ID
    assert server.parent.is_remote
    assert server.context.trace_state.get("vendor") == "1"
    assert dict(server.attributes or {}) == {
        "http.request.method": "PUT",
        "http.route": "/states/{persistence_id}",
        "http.response.status_code": 200,
        "url.scheme": "http",
        "statestore.backend": "sqlite" if backend == "sqlite" else "dynamodb",
        "statestore.outcome": "ok",
    }
    (call,) = children_of(server, spans)
    assert call.kind is SpanKind.CLIENT
    attributes = dict(call.attributes or {})
    if backend == "sqlite":
        assert call.name == "SQLite put"
        assert attributes == {"db.system": "sqlite", "db.operation.name": "put", "statestore.outcome": "ok"}
    else:
        assert call.name == "DynamoDB.PutItem"
        assert attributes["aws.dynamodb.table_names"] == ("states_store",)
        assert attributes["statestore.backend.requests"] == 1
        assert attributes["statestore.backend.retries"] == 0
        assert attributes["aws.dynamodb.consumed_capacity_units"] == 1.0  # one write unit: a small item
        assert attributes["statestore.outcome"] == "ok"
    assert server.start_time is not None
    assert call.start_time is not None
    assert server.end_time is not None
    assert call.end_time is not None
    assert server.start_time <= call.start_time <= call.end_time <= server.end_time
    for span in spans:  # the raw id is in no span's name nor attribute
        assert state_id not in span.name
        assert all(state_id not in str(value) for value in (span.attributes or {}).values())


def test_a_request_without_traceparent_starts_a_trace(traced: tuple[str, InMemorySpanExporter, str]) -> None:
    url, exporter, _ = traced
    assert httpx.get(f"{url}/states/absent-one").status_code == 404
    server = server_span(exporter.get_finished_spans())
    assert server.parent is None
    assert server.name == "GET /states/{persistence_id}"
    assert server.attributes is not None
    assert server.attributes["statestore.outcome"] == "not-found"


def test_a_refused_write_names_the_problem_on_both_spans(
    traced: tuple[str, InMemorySpanExporter, str], state_id: str
) -> None:
    url, exporter, _ = traced
    assert httpx.put(f"{url}{state_path(state_id)}", json=state_body(1)).status_code == 200
    exporter.clear()
    refused = httpx.put(f"{url}{state_path(state_id)}", json=state_body(2), headers={"If-Match": '"7"'})
    assert refused.status_code == 412
    spans = exporter.get_finished_spans()
    server = server_span(spans)
    assert server.attributes is not None
    assert server.attributes["statestore.outcome"] == "precondition-failed"
    assert server.attributes["http.response.status_code"] == 412
    calls = children_of(server, spans)
    assert calls
    assert all(
        (call.attributes or {}).get("statestore.outcome") in {"precondition-failed", "ok"} for call in calls
    )
    assert any((call.attributes or {}).get("statestore.outcome") == "precondition-failed" for call in calls)


def test_a_path_no_route_knows_is_named_by_its_method_alone(
    traced: tuple[str, InMemorySpanExporter, str],
) -> None:
    url, exporter, _ = traced
    assert httpx.get(f"{url}/no/such/path/secret-42").status_code == 404
    server = server_span(exporter.get_finished_spans())
    assert server.name == "GET"
    assert "http.route" not in (server.attributes or {})


def test_a_body_parsed_in_the_worker_is_a_span(
    traced: tuple[str, InMemorySpanExporter, str], state_id: str
) -> None:
    url, exporter, _ = traced
    body = {**state_body(1), "extra": list(range(3000))}  # more items than are parsed in place
    response = httpx.put(f"{url}{state_path(state_id)}", json=body)
    assert response.status_code == 422
    spans = exporter.get_finished_spans()
    server = server_span(spans)
    names = [span.name for span in children_of(server, spans)]
    assert "protobuf parse_in_worker" in names


def test_a_wait_is_a_span(traced: tuple[str, InMemorySpanExporter, str], state_id: str) -> None:
    url, exporter, _ = traced
    assert httpx.put(f"{url}{state_path(state_id)}", json=state_body(1)).status_code == 200
    exporter.clear()
    waited = httpx.get(f"{url}{state_path(state_id)}?wait=1", headers={"If-None-Match": '"1"'})
    assert waited.status_code == 304
    spans = exporter.get_finished_spans()
    server = server_span(spans)
    (wait,) = [span for span in children_of(server, spans) if span.name == "wait for a change"]
    assert dict(wait.attributes or {}) == {"statestore.wait.seconds": 1.0, "statestore.wait.changed": False}


def test_log_lines_carry_the_trace_ids_while_a_span_is_current(
    settings_for: Callable[..., Settings],
) -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing.processing([SimpleSpanProcessor(exporter)], settings_for("sqlite"))
    formatter = service_logging.JsonFormatter()
    record = logging.LogRecord("statestore", logging.INFO, __file__, 1, "hello", None, None)
    assert "trace_id" not in json.loads(formatter.format(record))
    tracing.start()
    try:
        assert "trace_id" not in json.loads(formatter.format(record))  # no span is current
        with tracing.tracer.start_as_current_span("work") as span:
            line: dict[str, Any] = json.loads(formatter.format(record))
        context = span.get_span_context()
        assert line["trace_id"] == f"{context.trace_id:032x}"
        assert line["span_id"] == f"{context.span_id:016x}"
    finally:
        service_logging.trace_ids_of = None
        tracing.provider.shutdown()
