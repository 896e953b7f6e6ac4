"""PUT and GET of states beyond 400 KB on DynamoDB: offloaded to S3, and compressed, with their latencies.

    .venv/bin/python -m benchmarks.large_states [--runs 5]

Starts moto (DynamoDB and S3 on one local server, 127.0.0.1, a free port) and `statestore serve` on it
with a bucket for large states, then for each size times, over HTTP, a PUT and a GET of an incompressible
state (offloaded) and of a compressible one (compressed, when it fits), and prints the median and the
slowest of --runs each. 8 MiB is more than a JSON body carries (about 6 MiB of payload), so that size is
timed through the store itself, in process. docs/large-states.md has a run's figures: they measure the
service's own work and a local server's, not a region's network.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import boto3
import httpx

from app.states.model import Precondition, StateRecord
from app.store.dynamodb import DynamoDBStore
from scripts.servers import LOOPBACK, free_port, running_process, serving_process

KB = 1024
MB = 1024 * KB
TABLE = "large_states_bench"
BUCKET = "large-states-bench"
HTTP_SIZES = (MB, 6 * MB - 4 * KB)
STORE_SIZE = 8 * MB


def incompressible(size: int) -> bytes:
    return os.urandom(size)


def compressible(size: int) -> bytes:
    rng = random.Random(size)  # noqa: S311 - bytes to compress, not secrets
    return b"".join(
        b"entry account=%d kind=%d;" % (rng.randrange(2), rng.randrange(2)) for _ in range(size // 20 + 1)
    )[:size]


async def timed(runs: int, call: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    seconds = []
    for run in range(runs):
        started = time.perf_counter()
        await call(run)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000, max(seconds) * 1000


def report(what: str, size: int, put: tuple[float, float], get: tuple[float, float]) -> None:
    print(
        f"{what:<17} {size / MB:5.2f} MiB   PUT {put[0]:7.1f} ms (max {put[1]:7.1f})"
        f"   GET {get[0]:7.1f} ms (max {get[1]:7.1f})"
    )


async def over_http(url: str, runs: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for size in HTTP_SIZES:
            for what, payload in (("offloaded", incompressible(size)), ("compressed", compressible(size))):
                path = f"/states/bench-{uuid.uuid4()}"
                body = {"manifest": "m", "payload": base64.b64encode(payload).decode(), "version_number": 1}

                async def put(run: int, path: str = path, body: dict[str, object] = body) -> None:
                    response = await client.put(path, json={**body, "version_number": run + 1})
                    response.raise_for_status()

                async def get(_: int, path: str = path) -> None:
                    (await client.get(path)).raise_for_status()

                report(f"HTTP {what}", size, await timed(runs, put), await timed(runs, get))


async def in_store(endpoint: str, runs: int) -> None:
    async with DynamoDBStore.open(
        TABLE, endpoint, large_states_bucket=BUCKET, s3_endpoint_url=endpoint, compression="zstd"
    ) as store:
        for what, payload in (
            ("offloaded", incompressible(STORE_SIZE)),
            ("compressed", compressible(STORE_SIZE)),
        ):
            persistence_id = f"bench-{uuid.uuid4()}"

            async def put(run: int, persistence_id: str = persistence_id, payload: bytes = payload) -> None:
                await store.put(
                    StateRecord(persistence_id, run + 1, "m", payload, 1, 0, write_key=str(run)),
                    Precondition(),
                )

            async def get(_: int, persistence_id: str = persistence_id) -> None:
                assert await store.get(persistence_id) is not None

            report(f"store {what}", STORE_SIZE, await timed(runs, put), await timed(runs, get))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    port = free_port()
    endpoint = f"http://{LOOPBACK}:{port}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    with running_process([sys.executable, "-m", "moto.server", "-p", str(port)], ready_url=endpoint):
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)

        async def create() -> None:
            async with DynamoDBStore.open(TABLE, endpoint) as store:
                await store.create_table()

        asyncio.run(create())
        env = {
            "STATESTORE_BACKEND": "dynamodb",
            "STATESTORE_DYNAMODB_ENDPOINT_URL": endpoint,
            "STATESTORE_DYNAMODB_TABLE": TABLE,
            "STATESTORE_LARGE_STATES_BUCKET": BUCKET,
            "STATESTORE_S3_ENDPOINT_URL": endpoint,
            "STATESTORE_COMPRESSION": "zstd",
            "STATESTORE_LOG_LEVEL": "warning",
        }
        with serving_process(env=env) as (url, _):
            asyncio.run(over_http(url, runs))
        asyncio.run(in_store(endpoint, runs))


if __name__ == "__main__":
    main()
