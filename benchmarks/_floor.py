"""Runs the client floor (benchmarks/client_floor.py) in its own process and turns its output into cells."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks._model import Cell
from benchmarks._processes import run_bounded

REPO = Path(__file__).resolve().parent.parent


def run_client_floor(
    endpoint: str,
    sizes: list[int],
    concurrencies: list[int],
    duration: float,
    manifest: str,
    client: str = "aioboto3",
) -> list[Cell]:
    """The floor of `client`: `aioboto3`, or `lean` (the lean client, app/store/dynamodb/lean.py)."""
    argv = [
        sys.executable,
        "-m",
        "benchmarks.client_floor",
        "--endpoint",
        endpoint,
        "--sizes",
        ",".join(map(str, sizes)),
        "--concurrency",
        ",".join(map(str, concurrencies)),
        "--duration",
        str(duration),
        "--manifest",
        manifest,
        "--client",
        client,
    ]
    cells = 2 * len(sizes) * len(concurrencies)
    done = run_bounded(argv, timeout=60 + cells * (duration + 10), cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"client floor failed: {done.stderr.strip()[-800:]}")
    return [
        Cell(
            "floor",
            client,
            r["op"],
            r["payload"],
            r["concurrency"],
            r["ops_per_s"],
            r["p50_ms"],
            r["p99_ms"],
            r["cpu_us_per_op"],
            r["requests"],
            peak_rss_mb=r.get("peak_rss_mb"),
            note="client process CPU (time.process_time); RSS: the process's peak so far",
        )
        for r in json.loads(done.stdout.strip().splitlines()[-1])
    ]
