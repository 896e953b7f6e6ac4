"""The dependencies routes declare, as named `Annotated` aliases."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, TypedDict
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Header, Path, Query, Request
from pydantic import WithJsonSchema

from app.api.conditions import ENTITY_TAGS_PATTERN
from app.errors import InvalidState
from app.observability.metrics import Metrics
from app.protobuf import TypeRegistry
from app.settings import Settings
from app.store.port import StateStore

MAX_ID_BYTES = 2048
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_CONTROL_CHARACTERS = re.compile(rf"[{_CONTROL}]")
# JSON Schema counts characters, not bytes: the document states what it can, the description the rest.
DOCUMENTED_ID = {"minLength": 1, "maxLength": MAX_ID_BYTES, "pattern": rf"^[^{_CONTROL}]+$"}
_STATES_PREFIX = b"/states/"


@dataclass(frozen=True, slots=True)
class Services:
    """What the lifespan opens once per process and every request shares."""

    settings: Settings
    store: StateStore
    types: TypeRegistry
    metrics: Metrics


class LifespanState(TypedDict):
    services: Services


# One dependency for all of them, and `async def`: each dependency costs FastAPI a resolution per
# request, and a plain `def` one also a trip through its thread pool.
async def _services(request: Request) -> Services:
    services: Services = request.state.services
    return services


def _id_problem(value: str) -> str | None:
    try:
        size = len(value.encode())
    except UnicodeEncodeError:  # a lone surrogate, which a JSON body's \ud800 escape can carry
        return "must be valid UTF-8"
    if not value:
        return "must not be empty"
    if size > MAX_ID_BYTES:
        return f"must be at most {MAX_ID_BYTES} bytes of UTF-8"
    if _CONTROL_CHARACTERS.search(value):
        return "must not contain control characters"
    return None


def check_persistence_id(value: str, loc: list[str | int]) -> str:
    problem = _id_problem(value)
    if problem:
        raise InvalidState(f"persistence_id {problem}", errors=[{"loc": loc, "msg": problem}])
    return value


async def _path_persistence_id(
    request: Request,
    persistence_id: Annotated[
        str,
        Path(
            description="Percent-encoded persistence id: 1 to 2048 bytes of UTF-8, no control characters.",
            examples=["account-42"],
            json_schema_extra=DOCUMENTED_ID,
        ),
    ],
) -> str:
    # The server's decoded path replaces invalid UTF-8 silently; decode the raw path strictly instead.
    raw_path: bytes = request.scope.get("raw_path") or b""
    _, found, encoded = raw_path.partition(_STATES_PREFIX)
    if found:
        try:
            persistence_id = unquote_to_bytes(encoded).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidState(
                "persistence_id must be percent-encoded UTF-8",
                errors=[{"loc": ["path", "persistence_id"], "msg": "must be UTF-8"}],
            ) from None
    return check_persistence_id(persistence_id, ["path", "persistence_id"])


ServicesDep = Annotated[Services, Depends(_services)]
DecodeQuery = Annotated[
    bool,
    Query(description="Add `state`: the message in protobuf's JSON mapping (null when its type is unknown)."),
]
PersistenceIdDep = Annotated[str, Depends(_path_persistence_id)]


def _documented_tags(description: str) -> WithJsonSchema:
    # A header is absent or a string: FastAPI would document `str | None` as possibly `null`.
    return WithJsonSchema({"type": "string", "pattern": ENTITY_TAGS_PATTERN, "description": description})


_IF_MATCH = 'Entity tags (`"3"`, a list, or `*`); also a bare version such as `3`.'
_IF_NONE_MATCH = '`*`, or entity tags such as `"3"`.'
IfMatch = Annotated[str | None, Header(description=_IF_MATCH), _documented_tags(_IF_MATCH)]
IfNoneMatch = Annotated[str | None, Header(description=_IF_NONE_MATCH), _documented_tags(_IF_NONE_MATCH)]
