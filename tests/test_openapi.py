"""The committed OpenAPI document is what the app serves, and every error it documents is a problem."""

from __future__ import annotations

import json
import subprocess
import tomllib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx
import pytest

import app
from scripts.servers import service_command
from support.processes import REPO
from support.services import ServiceFactory

COMMITTED = REPO / "openapi" / "openapi.json"
MAX_UINT64 = 2**64 - 1


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


async def test_the_served_version_is_the_one_pyproject_sets(client: httpx.AsyncClient) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    installed = version(project["name"])
    assert installed == project["version"], "the installed metadata is stale: run `pip install -e .`"
    assert (await client.get("/openapi.json")).json()["info"]["version"] == installed


def test_a_source_tree_without_package_metadata_reads_its_version_from_pyproject(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def not_installed(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(app, "version", not_installed)
    assert app._version() == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _references(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [ref for value in node.values() for ref in _references(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    return []


def test_every_reference_names_a_schema_of_the_document(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    prefix = "#/components/schemas/"
    references = set(_references(document))
    assert references
    dangling = {ref for ref in references if not ref.startswith(prefix) or ref[len(prefix) :] not in schemas}
    assert dangling == set()


def test_the_document_does_not_depend_on_the_api_keys(
    document: dict[str, Any], start_service: ServiceFactory
) -> None:
    with start_service("sqlite", api_keys=("some-key-of-16-chars",)) as url:
        assert httpx.get(f"{url}/openapi.json").json() == document


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
            if status.startswith(("4", "5")) and method != "head":
                assert list(response["content"]) == ["application/problem+json"], (path, method, status)
                assert response["content"]["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }


def test_no_operation_documents_fastapis_default_validation_error(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_states_operation_needs_the_bearer_scheme_and_every_other_is_open(
    document: dict[str, Any],
) -> None:
    scheme = document["components"]["securitySchemes"]["HTTPBearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, method, operation in operations(document):
        protected = path.startswith("/states")
        assert operation["security"] == ([{"HTTPBearer": []}] if protected else []), (path, method)
        assert ("401" in operation["responses"]) == protected, (path, method)


def test_the_server_is_wherever_the_document_was_read_from(document: dict[str, Any]) -> None:
    """A relative URL: a fixed address would send clients of every other deployment to the wrong host."""
    assert [server["url"] for server in document["servers"]] == ["/"]


def test_operations_are_grouped_by_tag(document: dict[str, Any]) -> None:
    assert {(operation["tags"][0], operation["operationId"]) for _, _, operation in operations(document)} >= {
        ("states", "get_state"),
        ("states", "head_state"),
        ("states", "put_state"),
        ("states", "delete_state"),
        ("health", "get_health"),
        ("health", "get_readiness"),
        ("metrics", "get_metrics"),
    }


def test_head_answers_document_no_body(document: dict[str, Any]) -> None:
    """RFC 9110 §9.3.2: a HEAD answer has no content; documenting one misleads generated clients."""
    for _, method, operation in operations(document):
        if method == "head":
            assert all("content" not in response for response in operation["responses"].values())


def test_uint64_bounds_are_exact_integers(document: dict[str, Any]) -> None:
    version = document["components"]["schemas"]["PutStateRequest"]["properties"]["version_number"]
    [number] = [form for form in version["oneOf"] if form["type"] == "integer"]
    assert (number["minimum"], number["maximum"]) == (0, MAX_UINT64)
    assert isinstance(number["maximum"], int)
    assert isinstance(number["minimum"], int)
    timestamp = document["components"]["schemas"]["PutStateRequest"]["properties"]["timestamp"]
    [number] = [form for form in timestamp["oneOf"] if form["type"] == "integer"]
    assert (number["minimum"], number["maximum"]) == (-(2**63), 2**63 - 1)
    assert isinstance(number["maximum"], int)
    assert isinstance(number["minimum"], int)


def _reachable(document: dict[str, Any], node: object) -> set[str]:
    """The names of the schemas `node` refers to, directly or through others."""
    prefix = "#/components/schemas/"
    seen: set[str] = set()
    pending = _references(node)
    while pending:
        name = pending.pop().removeprefix(prefix)
        if name not in seen:
            seen.add(name)
            pending += _references(document["components"]["schemas"][name])
    return seen


def _keys(node: object) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {key for value in node.values() for key in _keys(value)}
    if isinstance(node, list):
        return {key for item in node for key in _keys(item)}
    return set()


def test_request_bodies_document_no_defaults(document: dict[str, Any]) -> None:
    """A generator makes a property with a default required in the types it writes (openapi-typescript)."""
    bodies = [
        operation["requestBody"] for _, _, operation in operations(document) if "requestBody" in operation
    ]
    names = _reachable(document, bodies)
    assert {"PutStateRequest", "BatchGetRequest", "TransactRequest", "TransactPut", "TransactDelete"} <= names
    schemas = document["components"]["schemas"]
    assert {name for name in names if "default" in _keys(schemas[name])} == set()


ANSWERED_64_BIT = [
    ("State", "version_number", "uint64"),
    ("State", "timestamp", "int64"),
    ("State", "shard", "uint64"),
    ("StateWritten", "version_number", "uint64"),
    ("StateWritten", "timestamp", "int64"),
    ("StateWritten", "shard", "uint64"),
    ("TransactResult", "version_number", "uint64"),
    ("Problem", "current_version", "uint64"),
]
REQUESTED_64_BIT = [
    ("PutStateRequest", "version_number", "uint64"),
    ("PutStateRequest", "timestamp", "int64"),
    ("PutStateRequest", "shard", "uint64"),
    ("TransactPut", "version_number", "uint64"),
    ("TransactPut", "if_match", "uint64"),
    ("TransactDelete", "if_match", "uint64"),
]
DECIMAL_PATTERNS = {"uint64": "^(0|[1-9][0-9]*)$", "int64": "^(0|-?[1-9][0-9]*)$"}


@pytest.mark.parametrize(("schema", "field", "format_"), ANSWERED_64_BIT)
def test_answers_document_64_bit_integers_as_decimal_strings(
    document: dict[str, Any], schema: str, field: str, format_: str
) -> None:
    documented = document["components"]["schemas"][schema]["properties"][field]
    assert (documented["type"], documented["format"]) == ("string", format_)
    assert documented["pattern"] == DECIMAL_PATTERNS[format_]


def test_the_shard_filter_is_documented_as_a_decimal_string(document: dict[str, Any]) -> None:
    """A query parameter is text on the wire; typed as an integer, it is a JavaScript number in a generated
    client, and a shard above 2^53 is rounded to another shard."""
    [shard] = [
        parameter
        for parameter in document["paths"]["/states"]["get"]["parameters"]
        if parameter["name"] == "shard"
    ]
    schema = shard["schema"]
    assert (schema["type"], schema["format"]) == ("string", "uint64")
    assert schema["pattern"] == DECIMAL_PATTERNS["uint64"]


@pytest.mark.parametrize(("schema", "field", "format_"), REQUESTED_64_BIT)
def test_requests_document_64_bit_integers_as_a_decimal_string_or_a_number(
    document: dict[str, Any], schema: str, field: str, format_: str
) -> None:
    documented = document["components"]["schemas"][schema]["properties"][field]
    [text, number] = documented["oneOf"]
    assert text == {"type": "string", "format": format_, "pattern": DECIMAL_PATTERNS[format_]}
    bounds = {"uint64": (0, MAX_UINT64), "int64": (-(2**63), 2**63 - 1)}[format_]
    assert number == {"type": "integer", "format": format_, "minimum": bounds[0], "maximum": bounds[1]}
