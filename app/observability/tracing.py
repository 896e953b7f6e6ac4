"""Whether the process traces: OpenTelemetry's own switches, read without loading the SDK.

Tracing is on when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`, or both, comma-separated),
and `OTEL_SDK_DISABLED=true` turns it off whatever else is set. Every other `OTEL_*` variable (endpoint,
headers, sampler, service name, batch sizes) means what the OpenTelemetry SDK says it means; the SDK reads
them itself (`app.observability.traces`). Off, nothing of OpenTelemetry is even imported.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.settings import SettingsError

EXPORTERS = ("otlp", "console")
_NONE = "none"
_OTLP_PROTOCOL = "http/protobuf"
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")


def exporters_named(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The span exporters the environment asks for: none means tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    names = [name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [name for name in names if name and name != _NONE]
    for name in names:
        if name not in EXPORTERS:
            raise SettingsError(
                f"invalid setting OTEL_TRACES_EXPORTER: {name!r} is not one of {', '.join(EXPORTERS)}, none"
            )
    if "otlp" in names:
        _check_protocol(environ)
    return tuple(dict.fromkeys(names))


def _check_protocol(environ: Mapping[str, str]) -> None:
    for variable in _PROTOCOL_VARIABLES:
        protocol = environ.get(variable, "").strip()
        if protocol:
            if protocol != _OTLP_PROTOCOL:
                raise SettingsError(
                    f"invalid setting {variable}: the service exports OTLP as {_OTLP_PROTOCOL} only"
                    f" (got {protocol!r})"
                )
            return
