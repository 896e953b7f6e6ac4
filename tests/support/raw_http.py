"""HTTP over a bare socket, for requests no well-behaved client library would send."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    bytes_sent: int

    def problem(self) -> dict[str, Any]:
        assert self.headers["content-type"] == "application/problem+json", self.headers
        document: dict[str, Any] = json.loads(self.body)
        assert document["status"] == self.status
        return document


def connect(url: str) -> socket.socket:
    address = urlsplit(url)
    return socket.create_connection((address.hostname or "127.0.0.1", address.port or 80), timeout=30)


def send_until_answered(url: str, head: bytes, body: Iterable[bytes] = ()) -> RawResponse:
    """Send `head`, then `body` chunk by chunk until the server answers or hangs up; read the answer."""
    with connect(url) as sock:
        sock.sendall(head)
        sent = 0
        for chunk in body:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        return read_response(sock, sent)


def read_response(sock: socket.socket, sent: int = 0) -> RawResponse:
    """The answer on `sock`, read until the server closes the connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass  # after the whole answer: the server closed with our unread body still in its buffer
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = _parse_head(head)
    length = int(headers.get("content-length", len(body)))
    return RawResponse(status, headers, body[:length], sent)


def read_kept_alive_response(sock: socket.socket) -> RawResponse:
    """One answer on a connection the server keeps open: its head, then as much body as its Content-Length
    says. One `recv` is not enough: the server writes the head and the body separately, and a `recv` may
    return between the two."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection within the head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = _parse_head(head)
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection within the body: {body!r}"
        body += chunk
    return RawResponse(status, headers, body[:length], 0)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


def chunked(chunks: Iterable[bytes]) -> Iterable[bytes]:
    """`Transfer-Encoding: chunked` framing, without the final empty chunk (the sender stops early)."""
    for chunk in chunks:
        yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
