"""Waiting for a change, measured: how long after a write its waiter answers, what thousands of waiters
cost other clients, and how many backend reads they cost. Bounded: a few hundred rounds and a 20 s window
per backend, about two minutes in all.

    .venv/bin/python -m benchmarks.watch [--backends sqlite,dynamodb] [--waiters 2000] [--ids 200]

For each backend (SQLite, and DynamoDB on dynalite) it starts two service processes on one store, then:
1. write → answer latency: a client waits on a state, and the state is written through the waiter's own
   replica (answered at once) or through the other replica (seen by the poller within an interval);
2. GET latency for other clients, idle and then with `--waiters` requests waiting on `--ids` states;
3. the poller's reads over that window: ids read (read units) and backend calls, per waiter per minute;
4. on SQLite, the memory of waiting: the service's resident set with `--memory-waiters` requests waiting
   on as many distinct 395 KB states (freed memory handed back at once: `MALLOC_MMAP_THRESHOLD_`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import _dynalite, aws_config
from benchmarks._procstat import rss_mb
from benchmarks._service import service, service_argv

OWN_ROUNDS = 200
OTHER_ROUNDS = 40
GETS = 2000
GET_CONCURRENCY = 8
RAMP = 100
WINDOW_SECONDS = 20.0
POLL_SECONDS = 0.5  # the service's default STATESTORE_WATCH_POLL_MS
MANIFEST = "acme.billing.v1.AccountState"
LARGE_STATE_BYTES = 395_000
# glibc would keep the peak of a herd's reads for reuse; handed back, the resident set shows what is held.
HAND_BACK_FREED = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def body(version: int) -> dict[str, object]:
    return {"manifest": MANIFEST, "payload": "CgJoaQ==", "version_number": version}


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms   (n={len(ordered)})"


def metric(exposition: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def until_waiting(client: httpx.AsyncClient, count: int) -> None:
    for _ in range(600):
        if metric((await client.get("/metrics")).text, "statestore_watch_waiters") >= count:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{count} waiters never registered")


async def write_to_answer(watcher: httpx.AsyncClient, writer: httpx.AsyncClient, rounds: int) -> list[float]:
    """Seconds from sending a write to its waiter's answer, round after round on one state."""
    path = "/states/bench-watched"
    version = int(time.time())
    await writer.put(path, json=body(version))
    samples = []
    for _ in range(rounds):
        waiter = asyncio.create_task(
            watcher.get(path, params={"wait": 30}, headers={"If-None-Match": f'"{version}"'})
        )
        await until_waiting(watcher, 1)
        # At a random moment of the poll interval: rounds would otherwise fall into step with the poller.
        await asyncio.sleep(random.uniform(0, POLL_SECONDS))  # noqa: S311 - a delay, not a secret
        version += 1
        sent = time.perf_counter()
        await writer.put(path, json=body(version))
        answer = await waiter
        samples.append(time.perf_counter() - sent)
        if answer.status_code != 200 or answer.json()["version_number"] != str(version):
            raise RuntimeError(f"the waiter answered {answer.status_code}: {answer.text[:200]}")
    return samples


async def get_latencies(base: str) -> list[float]:
    samples: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def reader(worker: int) -> None:
            for i in range(worker, GETS, GET_CONCURRENCY):
                started = time.perf_counter()
                response = await client.get(f"/states/bench-read-{i % 100}")
                samples.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"GET answered {response.status_code}")

        await asyncio.gather(*(reader(worker) for worker in range(GET_CONCURRENCY)))
    return samples


async def raw_waiter(host: str, port: int, path: str) -> int:
    """One waiting request on a connection of its own, as a plain socket: httpx's pool slows down with
    thousands of connections, and the client, not the service, would be measured. Returns the status."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = f'GET {path}?wait=60 HTTP/1.1\r\nHost: {host}\r\nIf-None-Match: "1"\r\n\r\n'
        writer.write(head.encode())
        status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()


async def held_waiters(client: httpx.AsyncClient, base: str, paths: list[str]) -> list[asyncio.Task[int]]:
    """A waiting request on each path, once all wait. Clients arrive RAMP at a time, so that a herd stays
    within the concurrency limit while it takes its first look."""
    host, port = base.removeprefix("http://").split(":")
    held: list[asyncio.Task[int]] = []
    for start in range(0, len(paths), RAMP):
        arriving = paths[start : start + RAMP]
        held += [asyncio.create_task(raw_waiter(host, int(port), path)) for path in arriving]
        await asyncio.sleep(0.05)
    await until_waiting(client, len(paths))
    return held


async def hang_up(held: list[asyncio.Task[int]]) -> None:
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)


async def under_waiters(base: str, waiters: int, ids: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        for i in range(max(ids, 100)):
            await client.put(f"/states/bench-read-{i}", json=body(1))
            await client.put(f"/states/bench-waited-{i}", json=body(1))
        print(f"  GET, idle:              {percentiles(await get_latencies(base))}")
        held = await held_waiters(client, base, [f"/states/bench-waited-{i % ids}" for i in range(waiters)])
        before = (await client.get("/metrics")).text
        started = time.monotonic()
        gets = await get_latencies(base)
        await asyncio.sleep(max(0.0, WINDOW_SECONDS - (time.monotonic() - started)))
        after = (await client.get("/metrics")).text
        minutes = (time.monotonic() - started) / 60
        print(f"  GET, {waiters} waiting:     {percentiles(gets)}")
        polled = metric(after, "statestore_watch_polled_ids_total") - metric(
            before, "statestore_watch_polled_ids_total"
        )
        calls = sum(
            metric(after, "statestore_backend_call_duration_seconds_count", operation=operation)
            - metric(before, "statestore_backend_call_duration_seconds_count", operation=operation)
            for operation in ("BatchGetItem", "get_many")
        )
        print(
            f"  poller over {minutes * 60:.0f} s: {polled:.0f} ids read"
            f" ({polled / minutes / ids:.0f} per id per minute, {polled / minutes / waiters:.1f} per waiter"
            f" per minute), {calls:.0f} batch reads ({calls / minutes / waiters:.2f} per waiter per minute)"
        )
        early = [task.result() for task in held if task.done()]
        if early:
            raise RuntimeError(f"{len(early)} waiters answered before the window ended: {early[:5]}")
        await hang_up(held)


async def waiting_memory(base: str, pid: int, waiters: int) -> None:
    """The service's resident set before and while `waiters` requests wait on as many large states."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for i in range(waiters):
            payload = base64.b64encode(os.urandom(LARGE_STATE_BYTES)).decode()
            large = {"manifest": MANIFEST, "payload": payload, "version_number": 1}
            stored = await client.put(f"/states/bench-large-{i}", json=large)
            if stored.status_code != 200:
                raise RuntimeError(f"PUT answered {stored.status_code}: {stored.text[:200]}")
        before = rss_mb(pid)
        held = await held_waiters(client, base, [f"/states/bench-large-{i}" for i in range(waiters)])
        during = rss_mb(pid)
        grown = during - before
        print(
            f"  {waiters} waiting on distinct {LARGE_STATE_BYTES // 1000} KB states: resident {before:.0f} MB"
            f" -> {during:.0f} MB (+{grown:.0f} MB, {grown * 1000 / waiters:.0f} KB a waiter)"
        )
        await hang_up(held)


async def measure(bases: list[str], waiters: int, ids: int) -> None:
    first, second = bases
    async with (
        httpx.AsyncClient(base_url=first, timeout=60) as watcher,
        httpx.AsyncClient(base_url=second, timeout=60) as other,
    ):
        own = await write_to_answer(watcher, watcher, OWN_ROUNDS)
        print(f"  write → answer, same replica:  {percentiles(own)}")
        elsewhere = await write_to_answer(watcher, other, OTHER_ROUNDS)
        print(f"  write → answer, other replica: {percentiles(elsewhere)}   (poll interval 500 ms)")
    await under_waiters(first, waiters, ids)


def run(backend: str, waiters: int, ids: int, memory_waiters: int, work: Path) -> None:
    print(f"{backend}:")
    work.mkdir(parents=True)
    argv = service_argv(None)
    assert argv is not None
    with ExitStack() as running:
        dynalite = running.enter_context(_dynalite.started(work)) if backend == "dynamodb" else None
        if backend == "dynamodb" and dynalite is None:
            return
        endpoint = dynalite[1] if dynalite else None
        bases = [
            running.enter_context(service(argv, backend, work, endpoint, "warning"))[1] for _ in range(2)
        ]
        asyncio.run(measure(bases, waiters, ids))
    if backend == "sqlite" and memory_waiters:
        (work / "memory").mkdir()
        with service(argv, backend, work / "memory", None, "warning", HAND_BACK_FREED) as (process, base):
            asyncio.run(waiting_memory(base, process.pid, memory_waiters))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,dynamodb")
    parser.add_argument("--waiters", type=int, default=2000)
    parser.add_argument("--ids", type=int, default=200)
    parser.add_argument("--memory-waiters", type=int, default=500, help="0: no memory measurement")
    parser.add_argument("--logs", help="a new folder for the services' logs (default: a temporary one)")
    arguments = parser.parse_args()
    os.environ.update(aws_config.AWS_ENV)  # dynalite takes any credentials; the services inherit these
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as temporary:
        work = Path(arguments.logs or temporary)
        for backend in arguments.backends.split(","):
            run(backend, arguments.waiters, arguments.ids, arguments.memory_waiters, work / backend)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
