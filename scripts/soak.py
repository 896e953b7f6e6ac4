"""A bounded soak of the service: mixed PUT / GET / compare-and-set PUT / DELETE at a fixed concurrency.

Reports requests, answers by status, errors, lost updates on compare-and-set counters, latency and the
server's RSS at start and end. Talks to 127.0.0.1 only and stops by itself (time and request budget).

    python -m scripts.soak --serve                     # starts `statestore serve` (SQLite in a temp dir)
    python -m scripts.soak --url http://127.0.0.1:8080 --pid 1234
    python -m scripts.soak --serve --seconds 5 --json  # short, machine-readable

With --serve the server takes its settings from the environment (e.g. STATESTORE_BACKEND=dynamodb).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import psutil

from scripts.servers import serving_process

MANIFEST = "soak.v1.Counter"
# Answers that are part of the mix, not errors: 404 for a read after a delete, 412 for a lost race.
EXPECTED = frozenset({200, 201, 204, 404, 412})
KEYS_PER_WORKER = 50


@dataclass
class SoakReport:
    seconds: float
    concurrency: int
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    increments_acknowledged: int = 0
    lost_updates: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    rss_start_mib: float | None = None
    rss_end_mib: float | None = None

    def summary(self) -> dict[str, object]:
        ordered = sorted(self.latencies_ms) or [0.0]
        body = asdict(self)
        del body["latencies_ms"]
        return {
            **body,
            "statuses": dict(sorted(self.statuses.items())),
            "errors": dict(sorted(self.errors.items())),
            "requests_per_second": round(self.requests / self.seconds, 1),
            "latency_ms": {
                quantile: round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 1)
                for quantile, share in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))
            },
        }


def _body(version: int, payload: bytes) -> dict[str, object]:
    return {"manifest": MANIFEST, "payload": base64.b64encode(payload).decode(), "version_number": version}


def _path(key: str) -> str:
    return f"/states/{quote(key, safe='')}"


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes


class Soak:
    def __init__(
        self, session: aiohttp.ClientSession, report: SoakReport, counters: int, budget: int
    ) -> None:
        self._session = session
        self._report = report
        self._counters = [f"soak-counter-{number}" for number in range(counters)]
        self._acknowledged: Counter[str] = Counter()
        self._budget = budget

    async def _send(self, method: str, key: str, **options: Any) -> _Answer | None:
        """One request; its answer, or None when it got none."""
        if self._report.requests >= self._budget:
            raise _BudgetSpent
        self._report.requests += 1
        started = time.monotonic()
        try:
            async with self._session.request(method, _path(key), **options) as response:
                answer = _Answer(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._report.errors[type(exc).__name__] += 1
            return None
        self._report.latencies_ms.append((time.monotonic() - started) * 1000)
        self._report.statuses[str(answer.status)] += 1
        if answer.status not in EXPECTED:
            self._report.errors[str(answer.status)] += 1
        return answer

    async def _increment(self, worker: int, rng: random.Random) -> None:
        """Compare-and-set one counter forward; the payload names the writer, so no two racers agree."""
        key = rng.choice(self._counters)
        read = await self._send("GET", key)
        if read is None or read.status not in (200, 404):
            return
        if read.status == 404:
            version, condition = 1, {"If-None-Match": "*"}
        else:
            current = int(json.loads(read.body)["version_number"])  # a string of decimal digits
            version, condition = current + 1, {"If-Match": f'"{current}"'}
        payload = f"{worker}:{rng.getrandbits(64)}".encode()
        written = await self._send("PUT", key, json=_body(version, payload), headers=condition)
        if written is not None and written.status in (200, 201):
            self._acknowledged[key] += 1

    async def worker(self, number: int, deadline: float) -> None:
        rng = random.Random(number)  # noqa: S311 - a repeatable mix, not a secret
        own = [f"soak-{number}-{key}" for key in range(KEYS_PER_WORKER)]
        try:
            while time.monotonic() < deadline:
                choice = rng.random()
                if choice < 0.3:
                    await self._send("PUT", rng.choice(own), json=_body(rng.getrandbits(63), os.urandom(64)))
                elif choice < 0.6:
                    await self._send("GET", rng.choice(own))
                elif choice < 0.9:
                    await self._increment(number, rng)
                else:
                    await self._send("DELETE", rng.choice(own))
        except _BudgetSpent:
            return

    async def count_lost_updates(self) -> None:
        for key, acknowledged in self._acknowledged.items():
            async with self._session.get(_path(key)) as response:
                stored = int((await response.json())["version_number"])
            # A stored version above the count is an increment whose answer was lost, not a lost update.
            self._report.lost_updates += max(0, acknowledged - stored)
        self._report.increments_acknowledged = sum(self._acknowledged.values())


class _BudgetSpent(Exception):
    """The request budget is spent."""


def _rss_mib(pid: int | None) -> float | None:
    return None if pid is None else round(psutil.Process(pid).memory_info().rss / 2**20, 1)


async def run_soak(
    url: str,
    *,
    seconds: float,
    concurrency: int = 64,
    counters: int = 16,
    max_requests: int = 2_000_000,
    pid: int | None = None,
) -> SoakReport:
    _require_loopback(url)
    report = SoakReport(seconds=seconds, concurrency=concurrency, rss_start_mib=_rss_mib(pid))
    # aiohttp rather than httpx: at concurrency 64 httpx's pool, not the server, was the limit (~150 req/s).
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
        soak = Soak(session, report, counters, max_requests)
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(soak.worker(number, deadline) for number in range(concurrency)))
        await soak.count_lost_updates()
    report.rss_end_mib = _rss_mib(pid)
    return report


def _require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback:
        sys.exit(f"soak: {url} is not on this machine (127.0.0.0/8, ::1 or localhost only)")


@contextmanager
def serving() -> Iterator[tuple[str, int]]:
    """`statestore serve` on a free port (SQLite in a temp dir unless the environment says otherwise)."""
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        defaults = {
            "STATESTORE_SQLITE_PATH": os.path.join(folder, "soak.db"),
            "STATESTORE_LOG_LEVEL": "warning",
        }
        with serving_process(env={**defaults, **os.environ}) as (url, process):
            yield url, process.pid


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running service on 127.0.0.1")
    target.add_argument("--serve", action="store_true", help="start `statestore serve` for the soak")
    parser.add_argument("--pid", type=int, help="the server's process id, for its RSS (with --url)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--counters", type=int, default=16, help="compare-and-set counters shared by all")
    parser.add_argument("--max-requests", type=int, default=2_000_000, help="stop after this many")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args()


def main() -> None:
    arguments = _arguments()
    options = {
        "seconds": arguments.seconds,
        "concurrency": arguments.concurrency,
        "counters": arguments.counters,
        "max_requests": arguments.max_requests,
    }
    if arguments.serve:
        with serving() as (url, pid):
            report = asyncio.run(run_soak(url, pid=pid, **options))
    else:
        report = asyncio.run(run_soak(arguments.url, pid=arguments.pid, **options))
    summary = report.summary()
    print(json.dumps(summary, indent=2) if arguments.json else _text(summary))
    sys.exit(1 if report.errors or report.lost_updates else 0)


def _text(summary: dict[str, object]) -> str:
    return "\n".join(f"{name:>24}: {value}" for name, value in summary.items())


if __name__ == "__main__":
    main()
