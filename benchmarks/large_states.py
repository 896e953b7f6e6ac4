"""PUT and GET of states beyond 400 KB on DynamoDB: offloaded to S3, and compressed, with their latencies.

    .venv/bin/python -m benchmarks.large_states [--runs 5]

Starts moto (DynamoDB and S3 on one local server, 127.0.0.1, a free port) and `statestore serve` on it
with a bucket for large states, then for each size times, over HTTP, a PUT and a GET of an incompressible
state (offloaded) and of a compressible one (compressed, when it fits), and prints the median and the
slowest of --runs each. 8 MiB is more than a JSON body carries (about 6 MiB of payload), so that size is
timed through the store itself, in process. With --memory, it then writes 50 offloaded states of 8 MiB
through the store and has 8 clients read all of them at once over HTTP with batchGet (following
`unprocessed`), sampling the service's resident memory. docs/large-states.md has a run's figures: they
measure the service's own work and a local server's, not a region's network.
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
import psutil

from app.states.model import Precondition, StateRecord
from app.store.dynamodb import DynamoDBStore
from scripts.servers import LOOPBACK, free_port, running_process, serving_process

KB = 1024
MB = 1024 * KB
TABLE = "large_states_bench"
BUCKET = "large-states-bench"
HTTP_SIZES = (MB, 6 * MB - 4 * KB)
STORE_SIZE = 8 * MB
MEMORY_STATES, MEMORY_CLIENTS, MAX_ANSWERS_PER_CLIENT = 50, 8, 200


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


async def write_for_memory(endpoint: str) -> list[str]:
    ids = [f"memory-{uuid.uuid4()}" for _ in range(MEMORY_STATES)]
    async with DynamoDBStore.open(
        TABLE, endpoint, large_states_bucket=BUCKET, s3_endpoint_url=endpoint
    ) as store:
        for persistence_id in ids:
            state = StateRecord(persistence_id, 1, "m", incompressible(STORE_SIZE), 1, 0, write_key="memory")
            await store.put(state, Precondition())
    return ids


async def read_all_at_once(url: str, pid: int, ids: list[str]) -> None:
    """MEMORY_CLIENTS clients batch-read every id, following `unprocessed`; the service's RSS sampled."""
    service = psutil.Process(pid)
    before = service.memory_info().rss
    peak = before
    answers: list[int] = []
    statuses: dict[int, int] = {}

    async def sample(done: asyncio.Event) -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, service.memory_info().rss)
            await asyncio.sleep(0.05)

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            left, count = list(ids), 0
            while left and count < MAX_ANSWERS_PER_CLIENT:
                response = await http.post("/states:batchGet", json={"persistence_ids": left})
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                count += 1
                if response.status_code == 200:
                    left = response.json()["unprocessed"]
                else:
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            answers.append(count)

    done = asyncio.Event()
    sampler = asyncio.create_task(sample(done))
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(MEMORY_CLIENTS)))
    seconds = time.perf_counter() - started
    done.set()
    await sampler
    await asyncio.sleep(2)
    after = service.memory_info().rss
    print(
        f"memory: {MEMORY_CLIENTS} clients x batchGet of {MEMORY_STATES} offloaded states of"
        f" {STORE_SIZE // MB} MiB: RSS before {before / MB:.0f} MiB, peak {peak / MB:.0f} MiB,"
        f" 2 s after {after / MB:.0f} MiB; {seconds:.1f} s, answers per client {sorted(answers)},"
        f" statuses {statuses}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--memory", action="store_true", help="then the memory of 8 batchGets of 50 x 8 MiB")
    arguments = parser.parse_args()
    runs = arguments.runs
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
        if arguments.memory:
            ids = asyncio.run(write_for_memory(endpoint))
            with serving_process(env=env) as (url, process):
                asyncio.run(read_all_at_once(url, process.pid, ids))


if __name__ == "__main__":
    main()
