"""A bounded soak of hostile clients beside a normal one: connections that trickle a body without a key,
and keyed requests whose bodies come at a byte a second, while a keyed client reads and writes.

Reports the keyed client's answers and latencies, what the hostile clients were answered, and the server's
open files and RSS. Loopback only; stops by itself after --seconds. The server needs a file per connection:
the soak raises this process's soft RLIMIT_NOFILE (inherited by the server it starts) to fit.

    python scripts/soak_hostile.py                     # 2,000 tricklers, 300 slow bodies, 30 s
    python scripts/soak_hostile.py --seconds 10 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import sys
import time
from collections import Counter
from multiprocessing import Process, Queue
from typing import Any

import httpx
import psutil

from scripts.soak import serving

KEY = secrets.token_urlsafe(24)
CALL_INTERVAL_SECONDS = 0.05
TRICKLE_INTERVAL_SECONDS = 1.0


def raise_file_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def put_head(persistence_id: str, *lines: str) -> bytes:
    head = [f"PUT /states/{persistence_id} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    return ("\r\n".join([*head, *lines, "Content-Length: 100000"]) + "\r\n\r\n").encode()


async def hostile(port: int, head: bytes, until: float, answers: Counter[str]) -> None:
    """Send `head`, then a byte a second, reconnecting whenever the server hangs up, until `until`."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            answers[f"connect failed: {type(exc).__name__}"] += 1
            await asyncio.sleep(TRICKLE_INTERVAL_SECONDS)
            continue
        try:
            writer.write(head)
            status = ""
            while time.monotonic() < until:
                try:
                    data = await asyncio.wait_for(reader.read(65536), TRICKLE_INTERVAL_SECONDS)
                except TimeoutError:
                    writer.write(b" ")
                    continue
                if not data:
                    answers[f"closed after {status or 'no answer'}"] += 1
                    break
                status = status or data.split(b" ", 2)[1].decode()
        except OSError as exc:
            answers[type(exc).__name__] += 1
        finally:
            writer.close()


async def keyed_client(url: str, until: float) -> tuple[Counter[str], list[float]]:
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"manifest": "soak.v1.Counter", "payload": "", "version_number": 1}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
        number = 0
        while time.monotonic() < until:
            number += 1
            started = time.monotonic()
            try:
                if number % 2:
                    response = await client.put(f"/states/victim-{number % 50}", json=body)
                else:
                    response = await client.get(f"/states/victim-{(number - 1) % 50}")
                statuses[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(CALL_INTERVAL_SECONDS)
    return statuses, latencies


async def attack(port: int, seconds: float, tricklers: int, slow_bodies: int) -> dict[str, Counter[str]]:
    until = time.monotonic() + seconds
    answers: dict[str, Counter[str]] = {"without_key": Counter(), "slow_body": Counter()}
    attacks = [
        hostile(port, put_head(f"trickle-{n}"), until, answers["without_key"]) for n in range(tricklers)
    ]
    authorization = f"Authorization: Bearer {KEY}"
    slow = answers["slow_body"]
    attacks += [hostile(port, put_head(f"slow-{n}", authorization), until, slow) for n in range(slow_bodies)]
    await asyncio.gather(*attacks)
    return answers


def attacking(port: int, seconds: float, tricklers: int, slow_bodies: int, results: Queue[Any]) -> None:
    """The hostile clients, in a process of their own: the keyed client's latencies are the server's."""
    results.put(asyncio.run(attack(port, seconds, tricklers, slow_bodies)))


def soak(url: str, pid: int, seconds: float, tricklers: int, slow_bodies: int) -> dict[str, Any]:
    port = int(url.rsplit(":", 1)[1])
    results: Queue[Any] = Queue()
    attacker = Process(target=attacking, args=(port, seconds + 3, tricklers, slow_bodies, results))
    attacker.start()
    time.sleep(3)  # let the attack build up before measuring
    server = psutil.Process(pid)
    open_files_under_attack = server.num_fds()
    statuses, latencies = asyncio.run(keyed_client(url, time.monotonic() + seconds))
    answers = results.get(timeout=seconds + 60)
    attacker.join(30)
    ordered = sorted(latencies) or [0.0]
    return {
        "seconds": seconds,
        "tricklers_without_key": tricklers,
        "slow_keyed_bodies": slow_bodies,
        "keyed_calls": len(latencies),
        "keyed_statuses": dict(statuses),
        "keyed_latency_ms": {
            "p50": round(ordered[len(ordered) // 2] * 1000, 1),
            "p99": round(ordered[int(len(ordered) * 0.99)] * 1000, 1),
            "max": round(ordered[-1] * 1000, 1),
        },
        "without_key_answers": dict(answers["without_key"]),
        "slow_body_answers": dict(answers["slow_body"]),
        "server_open_files_under_attack": open_files_under_attack,
        "server_rss_mib_end": round(server.memory_info().rss / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--tricklers", type=int, default=2000)
    parser.add_argument("--slow-bodies", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    file_limit = raise_file_limit(2 * (arguments.tricklers + arguments.slow_bodies) + 256)
    os.environ["STATESTORE_API_KEYS"] = KEY
    with serving() as (url, pid):
        report = soak(url, pid, arguments.seconds, arguments.tricklers, arguments.slow_bodies)
    report["file_limit"] = file_limit
    answered_in_time = report["keyed_latency_ms"]["max"] < 1000 and set(report["keyed_statuses"]) <= {
        "200",
        "404",
    }
    print(
        json.dumps(report, indent=2)
        if arguments.json
        else "\n".join(f"{k:>32}: {v}" for k, v in report.items())
    )
    sys.exit(0 if answered_in_time else 1)


if __name__ == "__main__":
    main()
