"""The committed OpenAPI document is what the app serves, and every error it documents is a problem."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.processes import service_command

COMMITTED = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(COMMITTED.read_text())
    return loaded


async def test_the_committed_document_is_what_the_app_serves(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    served = (await client.get("/openapi.json")).json()
    assert served == document, (
        "openapi/openapi.json is stale: run `statestore openapi > openapi/openapi.json`"
    )


def test_the_openapi_command_prints_the_committed_document() -> None:
    printed = subprocess.run(
        service_command("openapi"), capture_output=True, text=True, check=True, timeout=60
    )
    assert printed.stdout == COMMITTED.read_text()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_operations_have_readable_unique_ids(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    assert all(id_.replace("_", "").isalpha() and id_.islower() for id_ in ids), ids


def test_every_documented_error_is_problem_json(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert list(response["content"]) == ["application/problem+json"], (path, method, status)
                assert response["content"]["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }


def test_no_operation_documents_fastapis_default_validation_error(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
