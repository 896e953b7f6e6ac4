"""Storage backends behind one port (`app.store.port.StateStore`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.settings import Settings
from app.store.observed import CallObserver, ignore_call
from app.store.port import StateStore


@asynccontextmanager
async def open_store(settings: Settings, observer: CallObserver) -> AsyncIterator[StateStore]:
    """The backend the settings name, open for the life of the process, reporting its calls to `observer`."""
    if settings.backend == "dynamodb":
        from app.store.dynamodb import DynamoDBStore

        async with DynamoDBStore.open(
            settings.dynamodb_table, settings.endpoint_url, observer=observer
        ) as dynamodb:
            yield dynamodb
    else:
        from app.store.sqlite import SQLiteStore

        async with SQLiteStore.open(settings.sqlite_path, observer) as sqlite:
            yield sqlite


async def check_backend(settings: Settings) -> None:
    """Open the backend once and ping it, so a misconfiguration stops start-up with one line."""
    async with open_store(settings, ignore_call) as store:
        await store.ping()
