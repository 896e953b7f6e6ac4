"""The client floor: a direct aioboto3 loop (one shared client, `aws_config.BOTOCORE_CONFIG`) doing
GetItem (strongly consistent) and PutItem (items made by the service's own codec) against the
benchmark's DynamoDB-compatible server, closed loop at a given concurrency, on uvloop like the service.

CPU per call is this process's own CPU time (`time.process_time`) over the measured window divided
by the calls completed in it. Run as
`python -m benchmarks.client_floor --endpoint URL --sizes 200,10240 --concurrency 1,32 --duration 3`;
prints one JSON list of results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aioboto3
import uvloop

from app.states.model import StateRecord
from app.store.dynamodb.codec import key_of, to_item
from app.store.dynamodb.lean import LeanClient
from benchmarks import aws_config

N_IDS = 64


def _record(persistence_id: str, version: int, manifest: str, payload: bytes) -> StateRecord:
    return StateRecord(persistence_id, version, manifest, payload, timestamp=1764115200000, shard=0)


async def _window(
    call: Callable[[int, int], Awaitable[Any]], concurrency: int, duration: float
) -> tuple[int, float, float, list[float]]:
    """Run `concurrency` workers until the deadline; (calls, seconds, CPU seconds, latencies)."""
    latencies: list[float] = []

    async def worker(wid: int, deadline: float) -> None:
        seq = 0
        while time.perf_counter() < deadline:
            seq += 1
            started = time.perf_counter()
            await call(wid, seq)
            latencies.append(time.perf_counter() - started)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(w, wall0 + duration) for w in range(concurrency)))
    return len(latencies), time.perf_counter() - wall0, time.process_time() - cpu0, latencies


async def measure(
    endpoint: str,
    sizes: list[int],
    concurrencies: list[int],
    duration: float,
    manifest: str,
    lean: bool = False,
) -> list[dict[str, Any]]:
    session = aioboto3.Session()
    results: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        client: Any = await stack.enter_async_context(
            session.client(
                "dynamodb",
                endpoint_url=endpoint,
                region_name=aws_config.REGION,
                config=aws_config.BOTOCORE_CONFIG,
            )
        )
        if lean:  # the same calls, signed and sent as the service's lean client sends them
            credentials = await session.get_credentials()
            client = await stack.enter_async_context(
                LeanClient.open(client, credentials, aws_config.BOTOCORE_CONFIG)
            )
        for size in sizes:
            payload = os.urandom(size)
            for i in range(N_IDS):
                await client.put_item(
                    TableName=aws_config.TABLE, Item=to_item(_record(f"fg{size}-{i}", 1, manifest, payload))
                )

            async def get(wid: int, seq: int, size: int = size) -> Any:
                key = key_of(f"fg{size}-{(wid * 7 + seq) % N_IDS}")
                return await client.get_item(TableName=aws_config.TABLE, Key=key, ConsistentRead=True)

            async def put(wid: int, seq: int, size: int = size, payload: bytes = payload) -> Any:
                item = to_item(_record(f"fp{size}-{wid}-{seq % 8}", seq, manifest, payload))
                return await client.put_item(TableName=aws_config.TABLE, Item=item)

            for op, call in (("GetItem", get), ("PutItem", put)):
                for concurrency in concurrencies:
                    await _window(call, concurrency, min(0.3, duration / 4))  # warm the pool up
                    calls, wall, cpu, latencies = await _window(call, concurrency, duration)
                    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
                    results.append(
                        {
                            "op": op,
                            "payload": size,
                            "concurrency": concurrency,
                            "requests": calls,
                            "ops_per_s": calls / wall,
                            "cpu_us_per_op": cpu / calls * 1e6,
                            "p50_ms": cuts[49] * 1e3,
                            "p99_ms": cuts[98] * 1e3,
                            # ru_maxrss (KiB): this process's peak so far, cells run in growing sizes
                            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
                        }
                    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--sizes", default="200,10240,307200")
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--manifest", default="google.protobuf.BytesValue")
    parser.add_argument("--client", choices=("aioboto3", "lean"), default="aioboto3")
    args = parser.parse_args()
    for key, value in aws_config.AWS_ENV.items():
        os.environ.setdefault(key, value)
    sizes = [int(s) for s in args.sizes.split(",")]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    results = uvloop.run(
        measure(args.endpoint, sizes, concurrencies, args.duration, args.manifest, lean=args.client == "lean")
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
