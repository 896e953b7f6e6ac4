"""Traces over OTLP/HTTP, once: `statestore serve` configured only by `OTEL_*` variables exports the spans of
a PUT on DynamoDB (moto) to a collector stand-in on 127.0.0.1, which decodes them as OpenTelemetry's
protocol defines them (`ExportTraceServiceRequest`)."""

from __future__ import annotations

import gzip
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from scripts.servers import LOOPBACK, serving_process
from support.api import state_body, state_path
from support.services import TABLE

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@contextmanager
def collector() -> Iterator[tuple[str, queue.Queue[ExportTraceServiceRequest]]]:
    """An OTLP/HTTP trace receiver: yields its endpoint and the export requests it received."""
    received: queue.Queue[ExportTraceServiceRequest] = queue.Queue()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            assert self.path == "/v1/traces"
            assert self.headers["Content-Type"] == "application/x-protobuf"
            received.put(ExportTraceServiceRequest.FromString(body))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, name="otlp-collector", daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def spans_of(request: ExportTraceServiceRequest) -> list[tuple[dict[str, str], Span]]:
    """Each span with its resource's attributes (string values)."""
    found: list[tuple[dict[str, str], Span]] = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            found.extend((resource, span) for span in scope_spans.spans)
    return found


def test_a_put_on_dynamodb_is_exported_over_otlp_http(dynamodb_endpoint: str, state_id: str) -> None:
    with collector() as (endpoint, received):
        env = {
            "STATESTORE_BACKEND": "dynamodb",
            "STATESTORE_DYNAMODB_ENDPOINT_URL": dynamodb_endpoint,
            "STATESTORE_DYNAMODB_TABLE": TABLE,
            "STATESTORE_LOG_LEVEL": "warning",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_SERVICE_NAME": "states-under-test",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
        with serving_process(env=env) as (url, _):
            response = httpx.put(
                f"{url}{state_path(state_id)}", json=state_body(1), headers={"traceparent": TRACEPARENT}
            )
            assert response.status_code == 200
            spans: dict[str, tuple[dict[str, str], Span]] = {}
            while "PUT /states/{persistence_id}" not in spans or "DynamoDB.PutItem" not in spans:
                for resource, span in spans_of(received.get(timeout=10)):
                    spans[span.name] = (resource, span)
    resource, server = spans["PUT /states/{persistence_id}"]
    _, call = spans["DynamoDB.PutItem"]
    assert resource["service.name"] == "states-under-test"
    assert server.kind == Span.SPAN_KIND_SERVER
    assert server.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert server.parent_span_id.hex() == "b7ad6b7169203331"
    assert call.trace_id == server.trace_id
    assert call.parent_span_id == server.span_id
    attributes = {kv.key: kv.value for kv in call.attributes}
    assert attributes["db.operation.name"].string_value == "PutItem"
    assert attributes["aws.dynamodb.consumed_capacity_units"].double_value > 0
