"""schemathesis against the live server's OpenAPI document: no server error, no answer off the schema.

Every operation is fuzzed with data that fits its schema and data that does not, with every check
schemathesis has, on a fixed seed and a bounded number of examples.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.schemas import OpenApiSchema

from app.states.model import MAX_INT64, MAX_UINT64
from support.processes import REPO
from support.services import ServiceFactory

EXAMPLES_PER_OPERATION = 40
API_KEY = "fuzz-test-api-key"
BOUNDS = {
    "version_number": (0, MAX_UINT64),
    "shard": (0, MAX_UINT64),
    "timestamp": (-MAX_INT64 - 1, MAX_INT64),
    "if_match": (0, MAX_UINT64),
}
DECIMAL = re.compile(r"0|-?[1-9][0-9]*")
_DOCUMENT = json.loads((REPO / "openapi" / "openapi.json").read_text())
# Negative data needs some input to break; the probes take none.
CASES = [
    (method.upper(), path, mode)
    for path, item in _DOCUMENT["paths"].items()
    for method, operation in item.items()
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or operation.get("parameters") or operation.get("requestBody")
]


# Valid requests may still find the state other than they require: 412 is an answer about the stored
# state, like the 404 and 409 schemathesis already expects, not a refusal of the request's form.
# The document requires the bearer key on /states calls, so the server has one and valid data carries
# it; negative data may drop it, and must then be answered 401.
CONFIG = SchemathesisConfig.from_dict(
    {
        "auth": {"openapi": {"HTTPBearer": {"bearer": API_KEY}}},
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]
            }
        },
    }
)


@pytest.fixture(scope="module")
def live_schema(start_service: ServiceFactory) -> Iterator[OpenApiSchema]:
    with start_service("sqlite", api_keys=(API_KEY,)) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json", config=CONFIG)


def within_the_rules_json_schema_cannot_state(case: schemathesis.Case[Any]) -> None:
    """A body's id equals the path's, a transaction names each id once, a transaction's put carries
    exactly one of `payload` and `state` (its schema says so in words only), a `state` needs a manifest
    the server knows, and a page token must be one the server issued. A wait is kept to a second, so that
    a generated `If-None-Match` that matches holds the test that long only."""
    if case.query:
        case.query.pop("page_token", None)
        if "wait" in case.query:
            case.query["wait"] = 1
    if not isinstance(case.body, dict):
        return
    if case.body.get("persistence_id") is not None and case.path_parameters:
        # schemathesis holds path parameters percent-encoded, as they go on the wire.
        case.body["persistence_id"] = unquote(case.path_parameters["persistence_id"])
    writes = [case.body]
    if isinstance(operations := case.body.get("operations"), list):
        writes = [operation for operation in operations if isinstance(operation, dict)]
        for index, operation in enumerate(writes):
            operation["persistence_id"] = f"{index}-{operation.get('persistence_id', '')}"
    for write in writes:
        keep_valid(write)


def keep_valid(write: dict[str, Any]) -> None:
    if write.get("op") == "put" and ("payload" in write) == ("state" in write):
        write.pop("state", None)
        write.setdefault("payload", "")
    if "state" in write:
        write["manifest"] = "google.protobuf.Value"  # a well-known type that any JSON value maps to
    # schemathesis reads bounds past 2^53 as floats and may generate one past them, and a pattern cannot
    # bound the number a string of decimal digits spells (its `format` does, in words): keep "valid" valid.
    for name, (minimum, maximum) in BOUNDS.items():
        if isinstance(number := write.get(name), int):
            write[name] = max(min(number, maximum), minimum)
        elif isinstance(number, str) and DECIMAL.fullmatch(number):
            write[name] = str(max(min(int(number), maximum), minimum))


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[" ".join(case) for case in CASES])
def test_an_operation_keeps_to_its_documented_schema(
    live_schema: OpenApiSchema, method: str, path: str, mode: GenerationMode
) -> None:
    operation = live_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def keeps_to_schema(case: schemathesis.Case[Any]) -> None:
        if mode is GenerationMode.POSITIVE:
            within_the_rules_json_schema_cannot_state(case)
        case.call_and_validate()

    keeps_to_schema()
