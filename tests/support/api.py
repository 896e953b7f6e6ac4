"""Small helpers for talking to the service in tests."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx

PROBLEM = "application/problem+json"
MANIFEST = "acme.billing.v1.AccountState"


def state_path(persistence_id: str) -> str:
    return f"/states/{quote(persistence_id, safe='')}"


def state_body(
    version: int, payload: bytes = b"\x0a\x02hi", manifest: str = MANIFEST, **fields: Any
) -> dict[str, Any]:
    return {
        "manifest": manifest,
        "payload": base64.b64encode(payload).decode(),
        "version_number": version,
        **fields,
    }


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert {"type", "title", "detail"} <= problem.keys()
    assert "Traceback" not in response.text
    return problem
