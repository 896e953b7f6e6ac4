"""API keys: with `STATESTORE_API_KEYS` set, every `/states…` call needs `Authorization: Bearer <key>`.

The check is a middleware in front of the routes, so a caller without a key learns
nothing (not even 413, 415 or 422) and costs the service no body read. The presented token's digest is
compared with the digest of every key, each in constant time, so the time a refusal takes tells neither
which key came closest nor how long the keys are.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api._routing import route_path
from app.api.problems import render_problem
from app.errors import Unauthorized

PROTECTED_PREFIX = "/states"
SECURITY_SCHEME = "HTTPBearer"


def is_protected(path: str) -> bool:
    return path.startswith(PROTECTED_PREFIX)


def _digest(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


class ApiKeyGuard:
    def __init__(self, app: ASGIApp, keys: Sequence[str]) -> None:
        self.app = app
        self._key_digests = tuple(_digest(key.encode()) for key in keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_protected(route_path(scope)):
            refusal = self._refusal(scope["headers"])
            if refusal is not None:
                await render_problem(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, headers: Iterable[tuple[bytes, bytes]]) -> Unauthorized | None:
        credentials = next((value for name, value in headers if name == b"authorization"), None)
        if credentials is None:
            return Unauthorized("this call needs the header `Authorization: Bearer <API key>`")
        scheme, _, token = credentials.partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            return Unauthorized("the Authorization header must use the Bearer scheme: `Bearer <API key>`")
        presented = _digest(token)
        matched = False
        for key_digest in self._key_digests:
            matched |= hmac.compare_digest(presented, key_digest)
        return None if matched else Unauthorized("the API key is not valid", invalid_token=True)
