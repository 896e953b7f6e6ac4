"""What large answers cost the service: peak memory of concurrent batchGets, and how long a decode holds
up `/healthz`. Prints the figures that docs/bounded-answers.md quotes; not part of the unit suite.

    .venv/bin/python -m scripts.bounded_answers [--states 1000] [--backends sqlite,dynalite]

batchGet: `--states` states of 400 KB are written, then 8 clients at once each read 1,000 ids (the
states, and missing ids to make up 1,000) with batchGet, following `unprocessed` until it is empty. The
service's peak resident set (VmHWM) is read from /proc before and after.

decode (SQLite, with the tests' descriptor set): 40 states of 200,000 empty sub-messages (over the
rendering cap, so a 422), then 40 states of 50,000 (at the cap) decoded in one batchGet, and a 395 KB
state of 3,800 ledger entries read with and without `decode=true`; meanwhile a probe asks `/healthz`
every 10 ms and the longest answer is the stall (also measured for 3 s with nothing else running, since
on a busy machine the scheduler alone makes some answers slow).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import _dynalite, _service, aws_config
from benchmarks._procstat import peak_rss_mb

STATE_BYTES = 400_000
IDS_PER_BATCH = 1000
CLIENTS = 8
WRITERS = 8
MAX_FOLLOW_UPS = 200  # a batchGet followed through `unprocessed` ends well before this
CALL_SECONDS = 120.0
ACCOUNT_STATE = "acme.billing.v1.AccountState"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


async def write_states(client: httpx.AsyncClient, ids: list[str], payload: bytes, manifest: str) -> None:
    body = {"manifest": manifest, "payload": base64.b64encode(payload).decode(), "version_number": 1}
    for start in range(0, len(ids), WRITERS):
        answers = await asyncio.gather(
            *(client.put(f"/states/{i}", json=body) for i in ids[start : start + WRITERS])
        )
        for answer in answers:
            answer.raise_for_status()


async def read_all(client: httpx.AsyncClient, ids: list[str]) -> tuple[int, int, list[str]]:
    """Follow one batchGet through `unprocessed`, as a client would (a 503 is retried after `Retry-After`):
    the states read, the calls it took, and the details of the 503s."""
    asked, read, calls, refusals = ids, 0, 0, []
    while asked and calls < MAX_FOLLOW_UPS:
        answer = await client.post("/states:batchGet", json={"persistence_ids": asked})
        calls += 1
        if answer.status_code == 503:
            refusals.append(answer.json()["detail"])
            await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
            continue
        answer.raise_for_status()
        body = answer.json()
        read, asked = read + len(body["states"]), body["unprocessed"]
    return read, calls, refusals


async def batch_get_memory(pid: int, url: str, states: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=CALL_SECONDS) as client:
        stored = [f"big-{n}" for n in range(states)]
        started = time.monotonic()
        await write_states(client, stored, os.urandom(STATE_BYTES), "acme.opaque.v1.Blob")
        written = time.monotonic() - started
        ids = stored + [f"missing-{n}" for n in range(IDS_PER_BATCH - states)]
        before = (rss_mb(pid), peak_rss_mb(pid))
        started = time.monotonic()
        results = await asyncio.gather(*(read_all(client, ids) for _ in range(CLIENTS)))
        elapsed = time.monotonic() - started
    return {
        "states": states,
        "seconds_to_write": round(written, 1),
        "rss_before_mb": round(before[0]),
        "peak_before_mb": round(before[1]),
        "peak_after_mb": round(peak_rss_mb(pid)),
        "seconds_for_8_batch_gets": round(elapsed, 2),
        "states_read_per_client": sorted({read for read, _, _ in results}),
        "calls_per_client": sorted({calls for _, calls, _ in results}),
        "503s": sorted({detail for _, _, details in results for detail in details}),
    }


async def longest_stall(url: str, stop: asyncio.Event) -> float:
    longest = 0.0
    async with httpx.AsyncClient(base_url=url, timeout=30) as probe:
        while not stop.is_set():
            started = time.perf_counter()
            (await probe.get("/healthz")).raise_for_status()
            longest = max(longest, time.perf_counter() - started)
            await asyncio.sleep(0.01)
    return longest


async def while_probed(url: str, call: Any) -> tuple[Any, float, float]:
    """The call's answer, its seconds, and the longest /healthz answer while it ran."""
    stop = asyncio.Event()
    probe = asyncio.create_task(longest_stall(url, stop))
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    answer = await call
    elapsed = time.perf_counter() - started
    stop.set()
    return answer, elapsed, await probe


async def decode_costs(pid: int, url: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, timeout=CALL_SECONDS) as client:
        _, _, idle = await while_probed(url, asyncio.sleep(3))
        figures["longest_healthz_ms_while_idle"] = round(idle * 1000, 1)
        for name, entries in (("over_the_cap", 200_000), ("at_the_cap", 50_000)):
            ids = [f"{name}-{n}" for n in range(40)]
            await write_states(client, ids, b"\x5a\x00" * entries, ACCOUNT_STATE)
            batch = client.post("/states:batchGet", json={"persistence_ids": ids}, params={"decode": "true"})
            answer, elapsed, stall = await while_probed(url, batch)
            figures[f"40_states_{name}"] = {
                "status": answer.status_code,
                "seconds": round(elapsed, 3),
                "longest_healthz_ms": round(stall * 1000, 1),
                "peak_mb": round(peak_rss_mb(pid)),
            }
        entry = b"\x5a\x66" + b"\x1a\x64" + b"m" * 100  # a ledger entry with a 100-byte memo
        await write_states(client, ["ledger"], entry * 3_800, ACCOUNT_STATE)
        for decode in ("false", "true"):
            timings = []
            for _ in range(20):
                started = time.perf_counter()
                (await client.get("/states/ledger", params={"decode": decode})).raise_for_status()
                timings.append(time.perf_counter() - started)
            figures[f"get_400_kb_decode_{decode}_median_ms"] = round(sorted(timings)[10] * 1000, 1)
    return figures


def sample_descriptor_set(path: Path) -> Path:
    """The tests' sample types (tests/protos/sample.proto), compiled by grpcio-tools' protoc."""
    protos = Path(__file__).resolve().parent.parent / "tests" / "protos"
    subprocess.run(  # noqa: S603 - the repository's own proto file, compiled by the test dependencies' protoc
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={protos}",
            "--include_imports",
            f"--descriptor_set_out={path}",
            str(protos / "sample.proto"),
        ],
        check=True,
        timeout=60,
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--states", type=int, default=1000, help="400 KB states stored (at most 1000)")
    parser.add_argument("--backends", default="sqlite,dynalite")
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument("--skip-batch-get", action="store_true")
    options = parser.parse_args()
    argv = _service.service_argv(None)
    assert argv is not None
    os.environ.update(aws_config.AWS_ENV)
    with tempfile.TemporaryDirectory(prefix="bounded-") as work:
        log_dir = Path(work)
        for backend in [] if options.skip_batch_get else options.backends.split(","):
            with contextlib.ExitStack() as servers:
                endpoint = None
                if backend == "dynalite":
                    cli, why = _dynalite.locate(_dynalite.INSTALLED_CLI)
                    if cli is None:
                        print(f"dynalite: skipped, {why}")
                        continue
                    _, endpoint = servers.enter_context(_dynalite.running(cli, log_dir))
                service_backend = "dynamodb" if backend == "dynalite" else backend
                process, url = servers.enter_context(
                    _service.service(argv, service_backend, log_dir, endpoint, "warning")
                )
                figures = asyncio.run(batch_get_memory(process.pid, url, options.states))
                print(f"batchGet on {backend}:", figures, flush=True)
        if not options.skip_decode:
            descriptors = sample_descriptor_set(log_dir / "sample.binpb")
            settings = {"STATESTORE_DESCRIPTOR_SETS": str(descriptors)}
            (log_dir / "decode").mkdir()
            with _service.service(argv, "sqlite", log_dir / "decode", None, "warning", settings) as (
                process,
                url,
            ):
                print("decode on sqlite:", asyncio.run(decode_costs(process.pid, url)), flush=True)


if __name__ == "__main__":
    main()
