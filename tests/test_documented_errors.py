"""Every 4xx answer that the OpenAPI document lists for an operation is provoked here, against
`statestore serve` with API keys and the monotonic version guard, and every 502 (a stored item the service
cannot read) against the service on moto, whose table holds such an item; and each operation documents
exactly the 4xx and 502 answers provoked for it, so that a status can be neither documented without a cause
nor caused without being documented. (test_fuzz_openapi.py checks that whatever schemathesis provokes is
documented.)"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest

from support.api import state_body
from support.processes import REPO, serving_sqlite
from support.raw_http import send_until_answered
from support.services import ServiceFactory, own_table, server_endpoint

KEY = "documented-errors-key"
STORED = "/states/stored-at-version-5"
MISSING = "/states/never-stored"
CORRUPT = "/states/stored-unreadable"
"""On DynamoDB alone: an item at version 5 whose ShardNumber is a fraction, as no writer of the service's
items writes it. Reads meet it, and so do writes and deletes whose condition fails (they read it back); a
listing leaves it out (test_store_dynamodb.py), so GET /states has no 502."""
NO_ID = "/states/"
BATCH_GET = "/states:batchGet"
TRANSACT = "/states:transact"
NOT_A_TAG = {"If-Match": "not an entity tag"}
IF_MATCH_3 = {"If-Match": '"3"'}
OVER_THE_BODY_CAP = 64 * 1024 * 1024

Provocation = Callable[[str, str], int]
"""Sends one request to the service at a URL with a method, and returns the status of the answer."""


def call(
    path: str,
    body: object = None,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    content_type: str = "application/json",
    with_key: bool = True,
) -> Provocation:
    def send(url: str, method: str) -> int:
        sent = {"Content-Type": content_type, **(headers or {})}
        if with_key:
            sent["Authorization"] = f"Bearer {KEY}"
        data = json.dumps(body).encode() if body is not None else content
        return httpx.request(method, f"{url}{path}", headers=sent, content=data, timeout=30).status_code

    return send


def raw_head(method: str, path: str, *lines: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *lines]).encode() + b"\r\n"


def body_over_the_cap(path: str) -> Provocation:
    """A body declared far larger than the service reads; it answers before reading any of it."""

    def send(url: str, method: str) -> int:
        lines = ["Content-Type: application/json", f"Authorization: Bearer {KEY}"]
        head = raw_head(method, path, *lines, f"Content-Length: {OVER_THE_BODY_CAP}") + b"\r\n"
        return send_until_answered(url, head, [b"{"]).status

    return send


def head_over_the_cap(path: str) -> Provocation:
    """A header that never ends, sent until the server refuses it."""

    def send(url: str, method: str) -> int:
        head = raw_head(method, path, f"Authorization: Bearer {KEY}") + b"X-Endless: "
        return send_until_answered(url, head, itertools.repeat(b"a" * 16384, 64)).status

    return send


def two_keys(path: str, body: object) -> Provocation:
    """Two `Authorization` headers, each with the key."""

    def send(url: str, method: str) -> int:
        headers = [("Content-Type", "application/json"), *[("Authorization", f"Bearer {KEY}")] * 2]
        return httpx.request(method, f"{url}{path}", headers=headers, json=body, timeout=30).status_code

    return send


def body_too_slow(path: str) -> Provocation:
    """A body that stops coming after its first byte."""

    def send(url: str, method: str) -> int:
        lines = ["Content-Type: application/json", f"Authorization: Bearer {KEY}", "Content-Length: 100"]
        return send_until_answered(url, raw_head(method, path, *lines) + b"\r\n", [b"{"]).status

    return send


def fragment_in_target(path: str) -> Provocation:
    """A request target with a fragment, which the server refuses before any route sees it."""

    def send(url: str, method: str) -> int:
        return send_until_answered(url, raw_head(method, f"{path}#fragment") + b"\r\n").status

    return send


LATE_HEADS = (
    ("GET", MISSING),
    ("HEAD", MISSING),
    ("DELETE", MISSING),
    ("GET", "/states"),
    *((method, probe) for probe in ("/healthz", "/readyz", "/metrics") for method in ("GET", "HEAD")),
)
"""The operations without a body: their 408 is a head that stops coming."""
_late_heads: dict[str, dict[tuple[str, str], int]] = {}


def head_too_slow(path: str) -> Provocation:
    """A head that stops coming after its first line. The server waits 10 s for a head, so the first call
    sends one for each of `LATE_HEADS` at once, and the others take their answer."""

    def send(url: str, method: str) -> int:
        if url not in _late_heads:

            def late(late_method: str, late_path: str) -> int:
                return send_until_answered(url, raw_head(late_method, late_path)).status

            with ThreadPoolExecutor(len(LATE_HEADS)) as pool:
                statuses = pool.map(late, *zip(*LATE_HEADS, strict=True))
                _late_heads[url] = dict(zip(LATE_HEADS, statuses, strict=True))
        return _late_heads[url][method, path]

    return send


def put_operation(path: str, version: int, **fields: object) -> dict[str, object]:
    return {"op": "put", "persistence_id": path.removeprefix("/states/"), **state_body(version), **fields}


READ = {
    400: call(MISSING, headers=NOT_A_TAG),
    401: call(MISSING, with_key=False),
    404: call(MISSING),
    412: call(MISSING, headers=IF_MATCH_3),
    408: head_too_slow(MISSING),
    422: call(NO_ID),
    431: head_over_the_cap(MISSING),
    502: call(CORRUPT),
}
PROVOCATIONS: dict[tuple[str, str], dict[int, Provocation]] = {
    ("get", "/states/{persistence_id}"): READ,
    ("head", "/states/{persistence_id}"): READ,
    ("put", "/states/{persistence_id}"): {
        400: call(MISSING, state_body(1), headers=NOT_A_TAG),
        401: call(MISSING, state_body(1), with_key=False),
        409: call(STORED, state_body(4)),
        408: body_too_slow(MISSING),
        412: call(MISSING, state_body(1), headers=IF_MATCH_3),
        413: body_over_the_cap(MISSING),
        415: call(MISSING, content=b"manifest=x", content_type="application/x-www-form-urlencoded"),
        422: call(MISSING, content=b"{"),
        431: head_over_the_cap(MISSING),
        502: call(CORRUPT, state_body(1), headers=IF_MATCH_3),
    },
    ("delete", "/states/{persistence_id}"): {
        400: call(MISSING, headers=NOT_A_TAG),
        401: call(MISSING, with_key=False),
        408: head_too_slow(MISSING),
        412: call(MISSING, headers=IF_MATCH_3),
        422: call(NO_ID),
        431: head_over_the_cap(MISSING),
        502: call(CORRUPT, headers=IF_MATCH_3),
    },
    ("post", BATCH_GET): {
        400: two_keys(BATCH_GET, {"persistence_ids": ["a"]}),
        401: call(BATCH_GET, {"persistence_ids": ["a"]}, with_key=False),
        408: body_too_slow(BATCH_GET),
        413: body_over_the_cap(BATCH_GET),
        415: call(BATCH_GET, content=b"a", content_type="text/plain"),
        422: call(BATCH_GET, {"persistence_ids": []}),
        431: head_over_the_cap(BATCH_GET),
        502: call(BATCH_GET, {"persistence_ids": [CORRUPT.removeprefix("/states/")]}),
    },
    ("post", TRANSACT): {
        400: two_keys(TRANSACT, {"operations": [put_operation(MISSING, 1)]}),
        401: call(TRANSACT, {"operations": [put_operation(MISSING, 1)]}, with_key=False),
        408: body_too_slow(TRANSACT),
        409: call(TRANSACT, {"operations": [put_operation(STORED, 4)]}),
        412: call(TRANSACT, {"operations": [put_operation(MISSING, 1, if_match=3)]}),
        413: body_over_the_cap(TRANSACT),
        415: call(TRANSACT, content=b"a", content_type="text/plain"),
        422: call(TRANSACT, {"operations": []}),
        431: head_over_the_cap(TRANSACT),
        502: call(TRANSACT, {"operations": [put_operation(CORRUPT, 1, if_match=3)]}),
    },
    ("get", "/states"): {
        400: call("/states?page_token=never-issued"),
        401: call("/states", with_key=False),
        408: head_too_slow("/states"),
        422: call("/states?limit=0"),
        431: head_over_the_cap("/states"),
    },
    **{
        (method, probe): {
            400: fragment_in_target(probe),
            408: head_too_slow(probe),
            431: head_over_the_cap(probe),
        }
        for probe in ("/healthz", "/readyz", "/metrics")
        for method in ("get", "head")
    },
}
ON_DYNAMODB = {502}
"""The statuses provoked against the service on moto (`dynamodb_url`); the others against `url`."""
CASES = [
    (method, path, status) for (method, path), provocations in PROVOCATIONS.items() for status in provocations
]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("errors") / "states.db"
    settings = {
        "STATESTORE_API_KEYS": KEY,
        "STATESTORE_VERSION_GUARD": "monotonic",
        "STATESTORE_BODY_TIMEOUT_SECONDS": "1",
    }
    with serving_sqlite(database, settings) as (served, _):
        assert call(STORED, state_body(5))(served, "PUT") == 200
        yield served


@pytest.fixture(scope="module")
def dynamodb_url(request: pytest.FixtureRequest, start_service: ServiceFactory) -> Iterator[str]:
    """The service on moto, with a table of its own holding the CORRUPT item, written the way any other
    writer of the table could."""
    table = own_table("moto", request, "documented-errors")
    raw = boto3.client("dynamodb", endpoint_url=server_endpoint("moto", request), region_name="us-east-1")
    item = {
        "PersistenceID": {"S": CORRUPT.removeprefix("/states/")},
        "VersionNumber": {"N": "5"},
        "StateManifest": {"S": "google.protobuf.Empty"},
        "StatePayload": {"B": b""},
        "Timestamp": {"N": "1"},
        "ShardNumber": {"N": "1.5"},
    }
    raw.put_item(TableName=table["dynamodb_table"], Item=item)
    with start_service("moto", api_keys=KEY, **table) as served:
        yield served


def documented_errors(document: Path) -> dict[tuple[str, str], set[int]]:
    """The 4xx and 502 answers of each operation: those this module provokes."""
    paths = json.loads(document.read_text())["paths"]
    return {
        (method, path): {
            int(status) for status in operation["responses"] if status.startswith("4") or status == "502"
        }
        for path, item in paths.items()
        for method, operation in item.items()
    }


def test_each_operation_documents_exactly_the_errors_provoked_here() -> None:
    provoked = {operation: set(provocations) for operation, provocations in PROVOCATIONS.items()}
    assert documented_errors(REPO / "openapi" / "openapi.json") == provoked


@pytest.mark.parametrize(("method", "path", "status"), CASES, ids=[" ".join(map(str, c)) for c in CASES])
def test_a_documented_error_is_answered(
    request: pytest.FixtureRequest, method: str, path: str, status: int
) -> None:
    served: str = request.getfixturevalue("dynamodb_url" if status in ON_DYNAMODB else "url")
    assert PROVOCATIONS[method, path][status](served, method.upper()) == status
