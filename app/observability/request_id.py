"""`X-Request-ID`: the client's own when it is safe to echo and to log, else a fresh one."""

from __future__ import annotations

import random
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
    # A version 4 UUID from the process's own generator (seeded from os.urandom in each worker process):
    # uuid4() reads os.urandom, whose system call lets go of the GIL on every request, and with the
    # SQLite writer thread busy, taking it back is a thread switch (~6 % of a PUT's CPU). An id needs
    # uniqueness, not secrecy, and nothing in the service draws secrets from `random`.
    return str(uuid.UUID(int=random.getrandbits(128), version=4))
