"""`X-Request-ID`: the client's own when it is safe to echo and to log, else a fresh one."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from contextvars import ContextVar

HEADER = b"x-request-id"
MAX_LENGTH = 128
_SAFE = re.compile(rb"[A-Za-z0-9._:=+/@-]{1,%d}" % MAX_LENGTH)

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)
"""The id of the request being served, for every log line written while serving it."""


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == HEADER:
            return value.decode("ascii") if _SAFE.fullmatch(value) else new_request_id()
    return new_request_id()


def new_request_id() -> str:
    return str(uuid.uuid4())
