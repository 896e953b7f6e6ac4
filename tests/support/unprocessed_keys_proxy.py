"""An HTTP proxy in front of moto that makes BatchGetItem leave keys unprocessed, as DynamoDB does.

DynamoDB answers part of a BatchGetItem and hands back the rest as `UnprocessedKeys` when it
throttles or when the answer would pass 16 MB; moto never does. This proxy on 127.0.0.1 forwards
every request to moto unchanged, except the BatchGetItem calls it is told to degrade: those ask moto
for the first half of their keys only and answer the other half as `UnprocessedKeys`, with the
request's own `ConsistentRead`, exactly as DynamoDB shapes them. No client code is mocked.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

_BATCH_GET = "DynamoDB_20120810.BatchGetItem"
_HOP_BY_HOP = frozenset({"host", "content-length", "connection", "transfer-encoding"})


class UnprocessedKeysProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.degraded = 0
        self._to_degrade: int | None = 0
        self._lock = threading.Lock()

    def leave_unprocessed(self, calls: int | None) -> None:
        """Degrade the next `calls` BatchGetItem calls; None: every one from now on."""
        with self._lock:
            self._to_degrade = calls
            self.degraded = 0

    def _take_one(self) -> bool:
        with self._lock:
            if self._to_degrade == 0:
                return False
            if self._to_degrade is not None:
                self._to_degrade -= 1
            self.degraded += 1
            return True

    def exchange(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if headers.get("x-amz-target") == _BATCH_GET and self._take_one():
            return self._degraded_batch_get(headers, json.loads(body))
        return self._forward(headers, body)

    def _forward(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        sent = {name: value for name, value in headers.items() if name not in _HOP_BY_HOP}
        answer = httpx.post(self.upstream, headers=sent, content=body, timeout=30)
        received = {name: value for name, value in answer.headers.items() if name not in _HOP_BY_HOP}
        return answer.status_code, received, answer.content

    def _degraded_batch_get(
        self, headers: dict[str, str], request: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        asked: dict[str, Any] = {}
        left: dict[str, Any] = {}
        for table, wanted in request["RequestItems"].items():
            half = len(wanted["Keys"]) // 2
            if half:
                asked[table] = {**wanted, "Keys": wanted["Keys"][:half]}
            left[table] = {**wanted, "Keys": wanted["Keys"][half:]}
        answer: dict[str, Any] = {"Responses": {table: [] for table in left}}
        status, received = 200, {"content-type": "application/x-amz-json-1.0"}
        if asked:
            status, received, body = self._forward(
                headers, json.dumps({**request, "RequestItems": asked}).encode()
            )
            if status != 200:
                return status, received, body
            answer = json.loads(body)
        answer["UnprocessedKeys"] = left
        body = json.dumps(answer).encode()
        # botocore checks DynamoDB's CRC32 of the body, so a rewritten body needs its own.
        return status, {**received, "x-amz-crc32": str(zlib.crc32(body))}, body


@contextmanager
def unprocessed_keys_proxy(upstream: str) -> Iterator[tuple[str, UnprocessedKeysProxy]]:
    """Runs the proxy on a thread; yields its URL and the proxy to steer."""
    proxy = UnprocessedKeysProxy(upstream)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status, headers, answer = proxy.exchange({k.lower(): v for k, v in self.headers.items()}, body)
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its deadline passed); nothing is left to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="unprocessed-keys-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
