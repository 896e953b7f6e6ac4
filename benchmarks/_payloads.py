"""Payloads of the benchmark: serialized `google.protobuf.BytesValue` messages of an exact size.

A known manifest makes the service do what it does for real states (check that the payload parses),
and the bytes are random so that nothing along the way can compress them.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from google.protobuf import wrappers_pb2

MANIFEST = "google.protobuf.BytesValue"


def message_bytes(size: int) -> bytes:
    """A serialized BytesValue of exactly `size` bytes (size ≥ 2)."""
    for inner in range(max(0, size - 6), size):
        data = wrappers_pb2.BytesValue(value=os.urandom(inner)).SerializeToString()
        if len(data) == size:
            return data
    raise ValueError(f"no BytesValue serializes to {size} bytes")


def write_payload_file(directory: Path, size: int) -> Path:
    """The base64 text of a `size`-byte payload, in a file the load generators read."""
    path = directory / f"payload-{size}.b64"
    path.write_text(base64.b64encode(message_bytes(size)).decode())
    return path


def batch_size(size: int, default: int = 10, budget: int = 1 << 20) -> int:
    """Ids per batchGet: `default`, or as many payloads as fit in `budget` bytes (3 at 300 KB)."""
    return max(1, min(default, budget // size))
