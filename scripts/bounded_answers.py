"""What large answers cost the service: peak memory of concurrent batchGets, and how long a decode holds
up `/healthz`. Prints the figures that docs/bounded-answers.md quotes; not part of the unit suite.

    .venv/bin/python -m scripts.bounded_answers [--states 1000] [--backends sqlite,dynalite]

batchGet: `--states` states of 400 KB are written, then 8 clients at once each read 1,000 ids (the
states, and missing ids to make up 1,000) with batchGet, following `unprocessed` until it is empty. The
service's peak resident set (VmHWM) is read from /proc before and after.

decode (SQLite, with the tests' descriptor set): meanwhile a probe asks `/healthz` every 10 ms, and the
median and longest answers say how much each call held up the service (measured for 3 s with nothing
else running too, since on a busy machine the scheduler alone makes some answers slow). The calls: 40
states of 200,000 empty sub-messages (over the rendering cap, so a 422), then 40 states of 50,000 (at
the cap) read with `decode=true` by one GET each, by batchGet (following `unprocessed`) and by listing
(following the pages); a JSON state of 49,998 values written, and one of 1,000,000 (refused, after the
body is parsed); a transaction of 100 JSON states of 15,000 values; a batchGet whose body carries an
unknown field of 2,700,000 empty objects (8 MiB, refused); and a 395 KB state of 3,800 ledger entries
read with and without `decode=true`. The peak and final resident sets of the service and of its
protobuf worker close the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from threading import Event as EventType
from typing import Any

import httpx
import orjson

from benchmarks import _dynalite, _service, aws_config
from benchmarks._procstat import descendants, peak_rss_mb

STATE_BYTES = 400_000
IDS_PER_BATCH = 1000
CLIENTS = 8
WRITERS = 8
MAX_FOLLOW_UPS = 200  # a batchGet followed through `unprocessed` ends well before this
CALL_SECONDS = 120.0
ACCOUNT_STATE = "acme.billing.v1.AccountState"
AT_CAP_SHARD = 7


def status_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


async def write_states(
    client: httpx.AsyncClient, ids: list[str], payload: bytes, manifest: str, shard: int = 0
) -> None:
    body = {
        "manifest": manifest,
        "payload": base64.b64encode(payload).decode(),
        "version_number": 1,
        "shard": shard,
    }
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
        before = (status_mb(pid), peak_rss_mb(pid))
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


def probe_latencies(url: str, stop: EventType, probing: EventType) -> list[float]:
    """Runs in a process of its own: the calls' client parses large answers, which would hold up a probe
    sharing its event loop and pass for a stall of the service."""
    latencies = []
    with httpx.Client(base_url=url, timeout=30) as probe:
        probing.set()
        while not stop.is_set():
            started = time.perf_counter()
            probe.get("/healthz").raise_for_status()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.01)
    return latencies


async def while_probed(url: str, calls: Any) -> dict[str, Any]:
    """The last answer's status, the seconds the calls took, and the /healthz answers meanwhile."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(1, mp_context=context) as prober:
        stop, probing = manager.Event(), manager.Event()
        probe = prober.submit(probe_latencies, url, stop, probing)
        await asyncio.to_thread(probing.wait, 30)
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        status = await calls
        elapsed = time.perf_counter() - started
        stop.set()
        latencies = sorted(await asyncio.to_thread(probe.result))
    return {
        "status": status,
        "seconds": round(elapsed, 3),
        "healthz_median_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "healthz_longest_ms": round(latencies[-1] * 1000, 1),
        "probes": len(latencies),
    }


async def idle() -> None:
    await asyncio.sleep(3)


async def get_each(client: httpx.AsyncClient, ids: list[str]) -> int:
    status = 0
    for persistence_id in ids:
        status = (await client.get(f"/states/{persistence_id}", params={"decode": "true"})).status_code
    return status


async def batch_get_all(client: httpx.AsyncClient, ids: list[str]) -> int:
    asked, answer = ids, None
    for _ in range(MAX_FOLLOW_UPS):
        answer = await client.post(
            "/states:batchGet", json={"persistence_ids": asked}, params={"decode": "true"}
        )
        if answer.status_code != 200 or not answer.json()["unprocessed"]:
            break
        asked = answer.json()["unprocessed"]
    return answer.status_code if answer else 0


async def list_all(client: httpx.AsyncClient, shard: int) -> int:
    params: dict[str, Any] = {"decode": "true", "shard": shard}
    answer = None
    for _ in range(MAX_FOLLOW_UPS):
        answer = await client.get("/states", params=params)
        if answer.status_code != 200 or answer.json()["next_page_token"] is None:
            break
        params["page_token"] = answer.json()["next_page_token"]
    return answer.status_code if answer else 0


async def put_json(client: httpx.AsyncClient, persistence_id: str, entries: int) -> int:
    body = {"manifest": ACCOUNT_STATE, "state": {"recentEntries": [{}] * entries}, "version_number": 1}
    return (await client.put(f"/states/{persistence_id}", json=body)).status_code


async def batch_get_unknown_field(client: httpx.AsyncClient, values: int) -> int:
    """A batchGet whose body carries an unknown field of `values` empty objects: refused, once parsed."""
    body = orjson.dumps({"persistence_ids": ["a"], "junk": [{}] * values})
    headers = {"content-type": "application/json"}
    return (await client.post("/states:batchGet", content=body, headers=headers)).status_code


async def transact_json(client: httpx.AsyncClient, puts: int, entries: int) -> int:
    state: dict[str, Any] = {"recentEntries": [{}] * entries}
    operations = [
        {
            "op": "put",
            "persistence_id": f"json-{n}",
            "manifest": ACCOUNT_STATE,
            "state": state,
            "version_number": 1,
        }
        for n in range(puts)
    ]
    return (await client.post("/states:transact", json={"operations": operations})).status_code


async def decode_costs(pid: int, url: str) -> dict[str, Any]:
    figures: dict[str, Any] = {"idle": await while_probed(url, idle())}
    async with httpx.AsyncClient(base_url=url, timeout=CALL_SECONDS) as client:
        over = [f"over-the-cap-{n}" for n in range(40)]
        await write_states(client, over, b"\x5a\x00" * 200_000, ACCOUNT_STATE)
        figures["batch_get_40_over_the_cap"] = await while_probed(url, batch_get_all(client, over))
        at_cap = [f"at-the-cap-{n}" for n in range(40)]
        await write_states(client, at_cap, b"\x5a\x00" * 50_000, ACCOUNT_STATE, shard=AT_CAP_SHARD)
        figures["get_40_at_the_cap_one_by_one"] = await while_probed(url, get_each(client, at_cap))
        figures["batch_get_40_at_the_cap"] = await while_probed(url, batch_get_all(client, at_cap))
        figures["list_40_at_the_cap"] = await while_probed(url, list_all(client, AT_CAP_SHARD))
        figures["put_json_49998_values"] = await while_probed(url, put_json(client, "json-at-cap", 49_998))
        figures["put_json_1000000_values"] = await while_probed(url, put_json(client, "json-over", 1_000_000))
        figures["transact_100_json_states_of_15000_values"] = await while_probed(
            url, transact_json(client, 100, 15_000)
        )
        figures["batch_get_unknown_field_of_2700000_values"] = await while_probed(
            url, batch_get_unknown_field(client, 2_700_000)
        )
        entry = b"\x5a\x66" + b"\x1a\x64" + b"m" * 100  # a ledger entry with a 100-byte memo
        await write_states(client, ["ledger"], entry * 3_800, ACCOUNT_STATE)
        for decode in ("false", "true"):
            timings = []
            for _ in range(20):
                started = time.perf_counter()
                (await client.get("/states/ledger", params={"decode": decode})).raise_for_status()
                timings.append(time.perf_counter() - started)
            figures[f"get_400_kb_decode_{decode}_median_ms"] = round(sorted(timings)[10] * 1000, 1)
    workers = [member for member in descendants(pid) if member != pid]
    figures["peak_mb"] = {
        "service": round(status_mb(pid, "VmHWM")),
        "protobuf_worker_and_resource_tracker": [round(status_mb(member, "VmHWM")) for member in workers],
    }
    figures["resident_mb_at_the_end"] = {
        "service": round(status_mb(pid)),
        "protobuf_worker_and_resource_tracker": [round(status_mb(member)) for member in workers],
    }
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
                dynalite = (
                    servers.enter_context(_dynalite.started(log_dir)) if backend == "dynalite" else None
                )
                if backend == "dynalite" and dynalite is None:
                    continue
                endpoint = dynalite[1] if dynalite else None
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
