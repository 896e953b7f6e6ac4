"""`json_bytes`: orjson's JSON, held in a buffer of its own size once it is large."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import orjson
import pytest

from app.json_bytes import RIGHT_SIZED_FROM, json_bytes


def held_by(make: Callable[[], bytes]) -> tuple[bytes, int]:
    """What `make()` returns, and the bytes of the heap it still holds once it has returned."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        made = make()
        return made, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("length", [RIGHT_SIZED_FROM, 400_000, 3_000_000])
def test_a_large_json_holds_its_own_size(length: int) -> None:
    value = {"payload": "A" * length, "version_number": "1"}

    encoded, held = held_by(lambda: json_bytes(value))

    assert encoded == orjson.dumps(value)
    assert held < len(encoded) + 1024


def test_a_small_json_is_orjsons_own() -> None:
    value = {"payload": "A" * 200}

    assert json_bytes(value) == orjson.dumps(value)


def test_default_encodes_what_json_does_not() -> None:
    value = {"B": b"\x00" * (RIGHT_SIZED_FROM * 2)}

    encoded = json_bytes(value, default=lambda data: data.hex())

    assert encoded == orjson.dumps({"B": "00" * (RIGHT_SIZED_FROM * 2)})
