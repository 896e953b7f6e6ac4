"""The OpenAPI document: FastAPI's, plus the problem schema every error response refers to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, SkipJsonSchema
from pydantic_core import core_schema

from app.http.middleware import is_protected
from app.http.problems import problem_responses
from app.http.server import HEAD_TIMEOUT_SECONDS, MAX_HEAD_BYTES
from app.states.model import MAX_INT64, MAX_UINT64

SECURITY_SCHEME = "HTTPBearer"
DECIMAL_PATTERNS = {"uint64": "^(0|[1-9][0-9]*)$", "int64": "^(0|-?[1-9][0-9]*)$"}
"""64-bit integers as JSON strings of decimal digits, as protobuf's JSON mapping writes them."""

DESCRIPTION = f"""\
Keeps the latest durable state of each persistence id, the way eGo's durable state store does:
a protobuf message (base64 `payload` plus its `manifest`, the message's full name) with a version number.

Conditional requests use the version as a strong ETag (`"3"`): `If-Match` for compare-and-set writes and
deletes, `If-None-Match: *` to create only, `If-None-Match` on reads for `304`. Every error is an
RFC 9457 `application/problem+json` document.

Several states at once: `POST /states:batchGet` reads up to 1000, and `POST /states:transact` applies up
to 100 puts and deletes atomically, each with the same conditions as a single write.

When the server is configured with API keys, every `/states` call needs `Authorization: Bearer <key>`.
Every response carries an `X-Request-ID` header: the client's own when it sent a safe one (1-128 of
`A-Z a-z 0-9 . _ : = + / @ -`), else a fresh one; the server's log lines carry the same id.

Every operation can answer `431` (a request line and headers beyond {MAX_HEAD_BYTES // 1024} KiB) and
`408` (a head that takes longer than {HEAD_TIMEOUT_SECONDS:g} s to arrive, or a body late or too slow):
the server answers them before any route sees the request. A client that hangs up before its body has
arrived, or while its request waits for a change, gets no answer: the access log and the metrics count
the request as `499` (nginx's "Client Closed Request"), the client's doing rather than the server's,
so no operation lists it.
"""

_EXACT_BOUNDS = {float(bound): bound for bound in (MAX_UINT64, MAX_INT64)}
# Relative, so that it names wherever the service is deployed: a reference resolved against the address the
# document was read from (Swagger UI's "Try it out" calls the service that served the page).
SERVERS = [{"url": "/", "description": "The service that serves this document."}]


def integer_answer(format_: str, description: str, *, optional: bool = False) -> Any:
    """How an answer documents a 64-bit integer: always a string of decimal digits, which every language
    keeps exact (JavaScript rounds a JSON number above 2^53)."""
    schema: JsonDict = {"format": format_, "pattern": DECIMAL_PATTERNS[format_], "examples": ["3"]}
    if optional:
        return Field(None, description=description, json_schema_extra=schema)
    return Field(description=description, json_schema_extra=schema)


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None
    current_version: str | SkipJsonSchema[None] = integer_answer(
        "uint64", "The version stored when a condition failed, if a state is stored.", optional=True
    )
    operation_index: int | None = Field(None, description="The failing operation of a transaction.")
    persistence_id: str | None = Field(None, description="The persistence id of that operation.")


class _BodySchema(GenerateJsonSchema):
    """Schemas of request bodies without `default`s: a generator makes a property with a default required
    in the types it writes (openapi-typescript does), so a field's description says what its absence means."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        json_schema.pop("default", None)
        return json_schema


def build_openapi(app: FastAPI, bodies: Sequence[type[BaseModel]]) -> dict[str, Any]:
    """The document, built once; `bodies` are the models of the bodies that `RequestRoute`s read
    themselves, which FastAPI does not see (nor the problem every error answers with)."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=DESCRIPTION,
            routes=app.routes,
            servers=SERVERS,
            tags=[
                {
                    "name": "states",
                    "description": "The latest state of persistence ids, one or several at once.",
                },
                {"name": "health", "description": "Probes for orchestrators."},
                {"name": "metrics", "description": "Prometheus metrics."},
            ],
        )
        document["info"]["license"] = {"name": "Apache 2.0", "identifier": "Apache-2.0"}
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        models: list[type[BaseModel]] = [Problem, *bodies]
        for model in models:
            schema = model.model_json_schema(
                ref_template="#/components/schemas/{model}", schema_generator=_BodySchema
            )
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        _declare_bearer_keys(document)
        _declare_head_refusals(document)
        _restore_integer_bounds(document)
        _bodiless_head_responses(document)
        app.openapi_schema = document
    return app.openapi_schema


def _declare_bearer_keys(document: dict[str, Any]) -> None:
    document["components"]["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "One of the server's API keys (`STATESTORE_API_KEYS`), when it has any.",
        }
    }
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if is_protected(path):
                operation["security"] = [{SECURITY_SCHEME: []}]
                _add_problems(operation, 400, 401)  # 400: two `Authorization` headers
            else:  # said outright: an operation without `security` would take a top-level requirement
                operation["security"] = []


def _declare_head_refusals(document: dict[str, Any]) -> None:
    """`BoundedHttpToolsProtocol` refuses a request head that is too large or too slow, or whose target holds
    a fragment or an invalid percent escape, before any route sees it; a body that is late or too slow is a
    408 too."""
    for operations in document["paths"].values():
        for operation in operations.values():
            _add_problems(operation, 400, 408, 431)


def _add_problems(operation: dict[str, Any], *statuses: int) -> None:
    problems = {str(status): response for status, response in problem_responses(*statuses).items()}
    operation["responses"] = dict(sorted({**operation["responses"], **problems}.items()))


def _bodiless_head_responses(document: dict[str, Any]) -> None:
    """A HEAD answer has headers only; a body in the document would make clients parse nothing as JSON."""
    for operations in document["paths"].values():
        for response in operations.get("head", {}).get("responses", {}).values():
            response.pop("content", None)


def _restore_integer_bounds(node: object) -> None:
    """FastAPI's OpenAPI model holds `minimum` and `maximum` as floats, and a float rounds 2^64-1 up to 2^64,
    so generated clients and schema-based fuzzers would take an out-of-range version for a valid one."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("minimum", "maximum") and isinstance(value, float) and value.is_integer():
                node[key] = _EXACT_BOUNDS.get(value, int(value))
            else:
                _restore_integer_bounds(value)
    elif isinstance(node, list):
        for item in node:
            _restore_integer_bounds(item)
