"""A small Python load generator, used only when wrk is absent (its figures are labelled as such).

It speaks the same scenarios as bench.lua: keep-alive HTTP/1.1 over raw asyncio streams, one task per
connection, closed loop. It is much slower than wrk and shares the cores with the server, so its
ops/s understate what the server can do; CPU µs per op stays meaningful.

Run as `python -m benchmarks._pyload SPEC_JSON`; prints one JSON LoadResult.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks._model import LoadResult, LoadSpec


class _Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.non_2xx = 0
        self.socket_errors = 0
        self.syncs = 0
        self.conflicts = 0


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> tuple[int, dict[str, str]]:
    writer.write(head + body)
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readline()).strip(), 16):
            await reader.readexactly(size + 2)
        await reader.readline()
    return status, headers


def _head(method: str, host: str, path: str, body: bytes, extra: str = "") -> bytes:
    kind = "Content-Type: application/json\r\n" if body else ""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{kind}{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode()


async def _connection(spec: LoadSpec, tid: int, deadline: float, stats: _Stats) -> None:
    url = urlsplit(spec.base_url)
    host = url.netloc
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    payload = spec.payload_file.read_text()
    body_head = f'{{"manifest":"{spec.manifest}","payload":"{payload}","version_number":'.encode()
    ids = [f'"{spec.id_prefix}{(tid * spec.batch_size + i) % spec.n_ids}"' for i in range(spec.batch_size)]
    batch_body = f'{{"persistence_ids":[{",".join(ids)}]}}'.encode()
    seq, version, syncing = 0, None, True
    try:
        while time.monotonic() < deadline:
            seq += 1
            extra, body, method = "", b"", "GET"
            if spec.mode == "get":
                path = f"{spec.prefix}{spec.id_prefix}{(tid * 7 + seq) % spec.n_ids}"
            elif spec.mode == "put":
                path, method = f"{spec.prefix}{spec.id_prefix}{tid}-{seq % 8}", "PUT"
                body = body_head + f"{seq}}}".encode()
            elif spec.mode == "batch":
                path, method, body = spec.batch_path, "POST", batch_body
            else:
                path = f"{spec.prefix}{spec.id_prefix}{tid}"
                if syncing:
                    stats.syncs += 1
                else:
                    method = "PUT"
                    extra = "If-None-Match: *\r\n" if version is None else f'If-Match: "{version}"\r\n'
                    body = body_head + f"{1 if version is None else version + 1}}}".encode()
            started = time.perf_counter()
            status, headers = await _exchange(reader, writer, _head(method, host, path, body, extra), body)
            stats.latencies.append(time.perf_counter() - started)
            if status >= 400:
                stats.non_2xx += 1
            if spec.mode == "cput":
                if status == 404:
                    version, syncing = None, False
                elif status < 300 and "etag" in headers:
                    version, syncing = int(headers["etag"].strip('W/"')), False
                else:
                    stats.conflicts += status in (409, 412)
                    syncing = True
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        stats.socket_errors += 1
    finally:
        writer.close()


async def _run(spec: LoadSpec) -> LoadResult:
    stats = _Stats()
    started = time.monotonic()
    deadline = started + spec.duration
    await asyncio.gather(*(_connection(spec, tid, deadline, stats) for tid in range(spec.connections)))
    elapsed = time.monotonic() - started
    latencies = sorted(stats.latencies) or [0.0]
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return LoadResult(
        requests=len(stats.latencies),
        duration_s=elapsed,
        p50_us=quantiles[49] * 1e6,
        p99_us=quantiles[98] * 1e6,
        non_2xx=stats.non_2xx,
        socket_errors=stats.socket_errors,
        syncs=stats.syncs,
        conflicts=stats.conflicts,
    )


def spec_to_json(spec: LoadSpec) -> str:
    data: dict[str, Any] = asdict(spec)
    data["payload_file"] = str(spec.payload_file)
    return json.dumps(data)


def main() -> None:
    data = json.loads(sys.argv[1])
    data["payload_file"] = Path(data["payload_file"])
    spec = LoadSpec(**data)
    try:
        import uvloop

        result = uvloop.run(_run(spec))
    except ImportError:
        result = asyncio.run(_run(spec))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
