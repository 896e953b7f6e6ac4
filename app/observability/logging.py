"""One JSON object per log line on stderr: the service's own lines, uvicorn's, and libraries' warnings,
each with the id of the request being served when it was written (and its trace's ids, when traced)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

FIELDS = "fields"
"""The `extra` key under which a log call passes its structured fields: `extra={FIELDS: {...}}`."""

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)
"""The id of the request being served, for every log line written while serving it."""

trace_ids_of: Callable[[], dict[str, str]] | None = None
"""While the process traces (`app.observability.traces`): the current span's `trace_id` and `span_id`."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id.get()
        if request_id is not None:
            entry["request_id"] = request_id
        if trace_ids_of is not None:
            entry.update(trace_ids_of())
        entry.update(getattr(record, FIELDS, {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` document, for uvicorn's `log_config`.

    Only the service's and uvicorn's loggers follow `level`; every other library stays at warning, because
    botocore's debug lines carry request bodies (payloads) and signed headers.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "loggers": {"statestore": {"level": level.upper()}, "uvicorn": {"level": level.upper()}},
        "root": {"level": "WARNING", "handlers": ["stderr"]},
    }
