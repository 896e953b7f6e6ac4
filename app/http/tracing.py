"""The server span of each request, when the process traces (`app.observability.traces`).

Outermost of the middleware, so that the request observer's access log line, and every line written while
serving, carries the trace's ids. The span's parent is the caller's, read from the W3C `traceparent` and
`tracestate` headers (the propagators `OTEL_PROPAGATORS` names). It is named by the method and the route
template, `PUT /states/{persistence_id}`: never by the raw path, whose ids are unbounded in number and may be
personal data. Its attributes tell the status, the backend, and the outcome: `ok` below 400, else the
problem's type (`precondition-failed`, `overloaded`, ...).
"""

from __future__ import annotations

import json

from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.middleware import ROUTE_KEY, UNMATCHED
from app.http.problems import PROBLEM_MEDIA_TYPE

Headers = list[tuple[bytes, bytes]]
_PROBLEM_CONTENT_TYPE = PROBLEM_MEDIA_TYPE.encode("ascii")


class _HeaderGetter(Getter[Headers]):
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for found, value in carrier if found == name]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [name.decode("latin-1") for name, _ in carrier]


_HEADERS = _HeaderGetter()


class ServerSpans:
    def __init__(self, app: ASGIApp, tracer: Tracer, backend: str) -> None:
        self.app = app
        self.tracer = tracer
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        span = self.tracer.start_span(
            method,
            context=extract(scope["headers"], getter=_HEADERS),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.scheme": scope.get("scheme", "http"),
                "statestore.backend": self.backend,
            },
        )
        status = 500
        problem = False
        outcome = "error"

        async def send_traced(message: Message) -> None:
            nonlocal status, problem, outcome
            if message["type"] == "http.response.start":
                status = message["status"]
                problem = any(
                    name == b"content-type" and value == _PROBLEM_CONTENT_TYPE
                    for name, value in message.get("headers", ())
                )
                outcome = "ok" if status < 400 else "error"
            elif problem and message["type"] == "http.response.body":
                outcome = _problem_slug(message.get("body", b"")) or outcome
                problem = False
            await send(message)

        with trace.use_span(span, end_on_exit=True):
            try:
                await self.app(scope, receive, send_traced)
            finally:
                route = scope.get(ROUTE_KEY, UNMATCHED)
                if route != UNMATCHED:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                span.set_attribute("statestore.outcome", outcome)
                if status >= 500:
                    span.set_status(StatusCode.ERROR, outcome)


def _problem_slug(body: bytes) -> str | None:
    """`precondition-failed` from a problem document's `urn:statestore:problem:precondition-failed`."""
    try:
        kind = json.loads(body).get("type")
    except (ValueError, AttributeError):
        return None
    return kind.rpartition(":")[2] if isinstance(kind, str) and kind.startswith("urn:") else None
