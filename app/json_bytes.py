"""JSON as bytes, by orjson, in a buffer of the JSON's own size.

orjson (from 3.12) returns its output in the buffer it reserved, and for a string it reserves four bytes a
character, rounded up: the JSON of a large state sits in an allocation about ten times its size. Such JSON
is held while it is in flight (a request until DynamoDB has answered, an answer until the client has taken
it), and the pages of a heap block that was written before are resident, so what the service holds under
load is counted in those allocations (docs/bounded-answers.md). From `RIGHT_SIZED_FROM` on, the JSON is
copied at once into a buffer of its size; below it, what orjson reserves is a few KiB, and short-lived.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

RIGHT_SIZED_FROM = 16 * 1024


def json_bytes(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    encoded = orjson.dumps(value, default=default)
    if len(encoded) < RIGHT_SIZED_FROM:
        return encoded
    return bytes(memoryview(encoded))
