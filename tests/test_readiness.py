"""`/readyz` tells what start-up chose and learned: the backend, its table or file, its time to live and the
version guard, and on DynamoDB the compression; a probe reads nothing more of the backend than whether it
answers."""

from __future__ import annotations

import httpx

from support.services import TABLE, ServiceFactory


def test_on_sqlite_it_names_the_file_and_the_services_own_purge(start_service: ServiceFactory) -> None:
    with start_service("sqlite", version_guard="monotonic") as url:
        body = httpx.get(f"{url}/readyz").json()
    assert body.pop("file").endswith("states.db")
    assert body == {
        "status": "ready",
        "backend": "sqlite",
        "ttl": {"status": "enabled", "attribute": "expires_at"},
        "version_guard": "monotonic",
    }


def test_on_dynamodb_it_names_the_table_its_time_to_live_and_the_compression(
    start_service: ServiceFactory,
) -> None:
    with start_service("moto", compression="zstd") as url:  # the fixture's table has no time to live
        body = httpx.get(f"{url}/readyz").json()
    assert body == {
        "status": "ready",
        "backend": "dynamodb",
        "table": TABLE,
        "ttl": {"status": "disabled"},
        "version_guard": "off",
        "compression": "zstd",
    }
