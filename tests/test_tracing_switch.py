"""Tracing is on only when `OTEL_TRACES_EXPORTER` names an exporter, `OTEL_SDK_DISABLED=true` wins, and off
it costs nothing: the service's own request path makes no call into OpenTelemetry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import httpx
import pytest

from app.main import create_app, tracing_from_environment
from app.observability.tracing import exporters_named
from app.settings import Settings, SettingsError
from support.api import state_body, state_path
from support.uvicorn_thread import serving


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({}, ()),
        ({"OTEL_TRACES_EXPORTER": "none"}, ()),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": " OTLP , console,otlp"}, ("otlp", "console")),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, ()),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, ("otlp",)),
    ],
)
def test_the_exporters_the_environment_names(environ: dict[str, str], exporters: tuple[str, ...]) -> None:
    assert exporters_named(environ) == exporters


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: 'zipkin' is not one of otlp, console"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: the service exports OTLP as http/protobuf only",
        ),
    ],
)
def test_an_exporter_the_service_lacks_is_a_settings_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        exporters_named(environ)


def test_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert tracing_from_environment(Settings()) is None


def test_untraced_the_service_calls_no_opentelemetry_code_while_serving(
    settings_for: Callable[..., Settings], state_id: str
) -> None:
    """Every call made on the server's thread into OpenTelemetry, from outside OpenTelemetry and FastAPI
    (whose routing looks up its own context keys, tracing or not: `create_app` turns its telemetry off)."""
    callers: list[str] = []
    served: list[str] = []

    def profile(frame: FrameType, event: str, _: Any) -> None:
        if event == "call" and frame.f_code.co_name == "put_state":
            served.append(frame.f_code.co_name)
        if event == "call" and "/opentelemetry/" in frame.f_code.co_filename:
            caller = frame.f_back.f_code.co_filename if frame.f_back else ""
            if "/opentelemetry/" not in caller and "/fastapi/" not in caller:
                callers.append(f"{caller} -> {frame.f_code.co_name}")

    app = create_app(settings_for("sqlite"))
    threading.setprofile(profile)  # for the server's thread, started next
    try:
        with serving(app) as url, httpx.Client(base_url=url) as http:
            http.put(state_path(state_id), json=state_body(1)).raise_for_status()
            http.get(state_path(state_id)).raise_for_status()
            http.get("/readyz").raise_for_status()
    finally:
        threading.setprofile(None)
    assert served  # the profile watched the request's handling
    assert callers == []
