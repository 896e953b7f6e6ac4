"""Small helpers for talking to the service in tests."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote

import httpx

PROBLEM = "application/problem+json"
MANIFEST = "acme.billing.v1.AccountState"


def state_path(persistence_id: str) -> str:
    return f"/states/{quote(persistence_id, safe='')}"


def state_body(
    version: int | str, payload: bytes = b"\x0a\x02hi", manifest: str = MANIFEST, **fields: Any
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


def put_op(
    persistence_id: str, version: int | str, payload: bytes = b"\x0a\x02hi", **fields: Any
) -> dict[str, Any]:
    """A put operation of `POST /states:transact`."""
    return {"op": "put", "persistence_id": persistence_id, **state_body(version, payload), **fields}


def delete_op(persistence_id: str, **fields: Any) -> dict[str, Any]:
    return {"op": "delete", "persistence_id": persistence_id, **fields}


def one_of_each_operation(updated: str, created: str, deleted: str) -> list[dict[str, Any]]:
    """A transaction with a put of each kind and a delete, for `updated` and `deleted` stored at version 1:
    an update if at 1, a create if absent, a delete if at 1."""
    return [
        put_op(updated, 2, b"next", if_match=1),
        put_op(created, 1, if_none_match=True),
        delete_op(deleted, if_match=1),
    ]


def keyed(key: str | None) -> dict[str, str]:
    """The headers of a write that names itself with `key` (an `Idempotency-Key`), none for None."""
    return {} if key is None else {"Idempotency-Key": f'"{key}"'}


async def transact(
    client: httpx.AsyncClient, *operations: dict[str, Any], key: str | None = None
) -> httpx.Response:
    return await client.post("/states:transact", json={"operations": list(operations)}, headers=keyed(key))


async def batch_get(client: httpx.AsyncClient, persistence_ids: list[str], **params: str) -> httpx.Response:
    return await client.post("/states:batchGet", json={"persistence_ids": persistence_ids}, params=params)


async def stored_versions(client: httpx.AsyncClient, persistence_ids: list[str]) -> dict[str, str | None]:
    """The stored version of each id as answered, a string of decimal digits (None when missing), read in
    one batchGet."""
    response = await batch_get(client, persistence_ids)
    assert response.status_code == 200, response.text
    found = {state["persistence_id"]: state["version_number"] for state in response.json()["states"]}
    return {persistence_id: found.get(persistence_id) for persistence_id in persistence_ids}


def assert_decimal_between(answered: object, low: int, high: int) -> None:
    """`answered` is a 64-bit integer as the service writes it (decimal digits), from low to high."""
    assert isinstance(answered, str), answered
    assert re.fullmatch(r"0|-?[1-9][0-9]*", answered), answered
    assert low <= int(answered) <= high, (low, answered, high)
