"""The HTTP ceiling: the least a FastAPI endpoint can do, served exactly as the service is served.

`GET /min/{size}/{id}` answers a state-shaped JSON document whose payload is `size` bytes (base64),
`PUT /min/{size}/{id}` reads the request body and answers a small document. No validation, no storage.
Serve it with `uvicorn benchmarks.minimal_app:app --loop uvloop --http httptools --no-access-log`.
"""

from __future__ import annotations

import base64
import functools
import os

from fastapi import FastAPI, Request

app = FastAPI(title="benchmark minimal endpoint")


@functools.cache
def _payload(size: int) -> str:
    return base64.b64encode(os.urandom(size)).decode()


@app.get("/min/{size}/{persistence_id}")
async def get_state(size: int, persistence_id: str) -> dict[str, object]:
    return {
        "persistence_id": persistence_id,
        "version_number": 1,
        "manifest": "google.protobuf.BytesValue",
        "payload": _payload(size),
        "timestamp": 1764115200000,
        "shard": 0,
    }


@app.put("/min/{size}/{persistence_id}")
async def put_state(size: int, persistence_id: str, request: Request) -> dict[str, object]:
    body = await request.body()
    return {"persistence_id": persistence_id, "received": len(body)}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
