"""The SQLite adapter: durability across `kill -9`, several processes on one file, uint64 storage."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import httpx

from support.api import state_body, state_path
from support.processes import free_port, running_process, service_command, stop


def serve_sqlite(path: Path) -> tuple[list[str], dict[str, str], str]:
    port = free_port()
    env = {"STATESTORE_BACKEND": "sqlite", "STATESTORE_SQLITE_PATH": str(path), "STATESTORE_PORT": str(port)}
    return service_command("serve"), env, f"http://127.0.0.1:{port}"


async def write_versions(url: str, persistence_id: str, versions: range) -> list[int]:
    acknowledged = []
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for version in versions:
            response = await client.put(state_path(persistence_id), json=state_body(version))
            assert response.status_code == 200
            acknowledged.append(version)
    return acknowledged


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "states.db"
    command, env, url = serve_sqlite(path)
    with running_process(command, env=env, ready_url=f"{url}/healthz") as process:
        writers = [write_versions(url, f"crash-{n}", range(1, 26)) for n in range(8)]
        acknowledged = await asyncio.gather(*writers)
        stop(process, signal.SIGKILL)
    assert path.exists()
    command, env, url = serve_sqlite(path)
    with running_process(command, env=env, ready_url=f"{url}/healthz"):
        async with httpx.AsyncClient(base_url=url) as client:
            for n, versions in enumerate(acknowledged):
                read = await client.get(state_path(f"crash-{n}"))
                assert read.json()["version_number"] == versions[-1]


async def test_two_processes_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first_command, first_env, first_url = serve_sqlite(path)
    second_command, second_env, second_url = serve_sqlite(path)
    with (
        running_process(first_command, env=first_env, ready_url=f"{first_url}/healthz"),
        running_process(second_command, env=second_env, ready_url=f"{second_url}/healthz"),
    ):
        async with (
            httpx.AsyncClient(base_url=first_url) as first,
            httpx.AsyncClient(base_url=second_url) as second,
        ):
            assert (await first.put(state_path("shared"), json=state_body(1))).status_code == 200
            assert (await second.get(state_path("shared"))).headers["etag"] == '"1"'
            cas = await second.put(state_path("shared"), json=state_body(2), headers={"If-Match": '"1"'})
            assert cas.status_code == 200
            stale = await first.put(
                state_path("shared"), json=state_body(2, b"other"), headers={"If-Match": '"1"'}
            )
            assert stale.status_code == 412
            assert stale.json()["current_version"] == 2


async def test_versions_above_int64_are_stored_losslessly(start_service: object, tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    command, env, url = serve_sqlite(path)
    big = 2**64 - 1
    with running_process(command, env=env, ready_url=f"{url}/healthz"):
        async with httpx.AsyncClient(base_url=url) as client:
            await client.put(state_path("big"), json=state_body(big, shard=2**63))
            stale = await client.put(
                state_path("big"), json=state_body(1), headers={"If-Match": f'"{big - 1}"'}
            )
            assert stale.json()["current_version"] == big
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("SELECT version_number FROM states").fetchone() == (-1,)
