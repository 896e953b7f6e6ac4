"""Churn on the SQLite backend: new states with short TTLs, written for a while; the file must stay flat.

    .venv/bin/python -m benchmarks.expiry_churn [--seconds 60] [--concurrency 16] [--payload 1000]
                                                [--max-ttl 5]

Runs `statestore serve` on a temp file (`scripts.servers`: 127.0.0.1, a free port), writes a new
persistence id each time with `ttl_seconds` of 1 to --max-ttl (0: none, the baseline whose file grows), and
every 5 s prints the file's size, its WAL's, the rows in it and the rows expired but not yet deleted, then
the writes' latency. The README's "Expiry" has a run's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import os
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from scripts.servers import serving_process

SAMPLE_SECONDS = 5.0


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _rows(path: Path) -> tuple[int, int]:
    """All rows, and those already expired by the machine's clock (the service's, here)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        (total,) = connection.execute("SELECT count(*) FROM states").fetchone()
        (expired,) = connection.execute(
            "SELECT count(*) FROM states WHERE expires_at <= ?", (int(time.time()),)
        ).fetchone()
    return int(total), int(expired)


async def _churn(
    url: str, path: Path, seconds: float, concurrency: int, payload: bytes, max_ttl: int
) -> list[float]:
    body = {"manifest": "bench.Churn", "payload": base64.b64encode(payload).decode(), "version_number": 1}
    counter = itertools.count()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def writer() -> None:
            while time.monotonic() < deadline:
                ttl = {"ttl_seconds": random.randint(1, max_ttl)} if max_ttl else {}  # noqa: S311
                started = time.perf_counter()
                answer = await client.put(f"/states/churn-{next(counter)}", json={**body, **ttl})
                latencies.append(time.perf_counter() - started)
                answer.raise_for_status()

        async def sampler() -> None:
            print("   s   file KiB   wal KiB     rows  expired")
            started = time.monotonic()
            while time.monotonic() < deadline:
                await asyncio.sleep(SAMPLE_SECONDS)
                total, expired = _rows(path)
                wal = Path(f"{path}-wal")
                print(
                    f"{time.monotonic() - started:4.0f} {_size(path) / 1024:10.0f} {_size(wal) / 1024:9.0f}"
                    f" {total:8d} {expired:8d}",
                    flush=True,
                )

        await asyncio.gather(sampler(), *(writer() for _ in range(concurrency)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--payload", type=int, default=1000, help="payload bytes")
    parser.add_argument("--max-ttl", type=int, default=5, help="seconds; 0 writes states that never expire")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "churn.db"
        env = {
            "STATESTORE_BACKEND": "sqlite",
            "STATESTORE_SQLITE_PATH": str(path),
            "STATESTORE_LOG_LEVEL": "warning",
        }
        with serving_process(env=env) as (url, _):
            latencies = asyncio.run(
                _churn(
                    url,
                    path,
                    arguments.seconds,
                    arguments.concurrency,
                    os.urandom(arguments.payload),
                    arguments.max_ttl,
                )
            )
        quantiles = statistics.quantiles(latencies, n=100)
        p50, p99, worst = (seconds * 1000 for seconds in (quantiles[49], quantiles[98], max(latencies)))
        rate = len(latencies) / arguments.seconds
        print(f"{len(latencies)} writes, {rate:.0f}/s; latency ms:", end=" ")
        print(f"p50 {p50:.1f}, p99 {p99:.1f}, max {worst:.1f}")


if __name__ == "__main__":
    main()
