"""The serving app freezes its start-up heap out of garbage collection; `create_app` alone does not."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.http.server import YOUNG_GENERATION_THRESHOLD
from app.main import create_app
from app.settings import Settings


@pytest.fixture
def untouched_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("untouched_collector")
@pytest.mark.parametrize("settle", [True, False])
async def test_the_heap_is_settled_once_the_serving_app_has_started(tmp_path: Path, settle: bool) -> None:
    app = create_app(Settings(sqlite_path=tmp_path / "s.db"), settle_heap_when_ready=settle)
    before = gc.get_threshold()[0]
    async with app.router.lifespan_context(app):
        assert (gc.get_freeze_count() > 0) is settle
        assert gc.get_threshold()[0] == (YOUNG_GENERATION_THRESHOLD if settle else before)
