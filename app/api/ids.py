"""What a persistence id may be, and the one in a request's path, decoded strictly."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes

from starlette.requests import Request

from app.errors import InvalidState
from app.http.middleware import PERSISTENCE_ID_KEY
from app.http.routing import Parameter

MAX_ID_BYTES = 2048
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_CONTROL_CHARACTERS = re.compile(rf"[{_CONTROL}]")
# JSON Schema counts characters, not bytes: the document states what it can, the description the rest.
DOCUMENTED_ID = {"minLength": 1, "maxLength": MAX_ID_BYTES, "pattern": rf"^[^{_CONTROL}]+$"}
_STATES_PREFIX = b"/states/"

PERSISTENCE_ID = Parameter(
    "persistence_id",
    "path",
    "Percent-encoded persistence id: 1 to 2048 bytes of UTF-8, no control characters. A `%` not followed by"
    " two hex digits (a `%` itself is `%25`) or a `#` in the request target is a `400`.",
    {"type": "string", "examples": ["account-42"], **DOCUMENTED_ID},
    required=True,
)


def _id_problem(value: str) -> str | None:
    try:
        size = len(value.encode())
    except UnicodeEncodeError:  # a lone surrogate; the JSON parser refuses them, a direct caller may not
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


def path_persistence_id(request: Request) -> str:
    """The `{persistence_id}` of a `/states/...` path, decoded once from the path as sent, or a 422.

    The router matched the decoded path, in which `/states%2Fa/states/b` and `/%73tates/b` both read
    `/states/...`: only a path whose `/states/` is spelled out is the path of a state, and its id is all
    that follows. The id is kept on the request, for the access log to name the state acted on.
    """
    scope = request.scope
    # The server's decoded path replaces invalid UTF-8 silently; decode the raw path strictly instead.
    raw_path: bytes = scope.get("raw_path") or quote(scope["path"]).encode()
    root = scope.get("root_path", "").encode()
    if root and raw_path.startswith(root):
        raw_path = raw_path[len(root) :]
    if not raw_path.startswith(_STATES_PREFIX):
        raise InvalidState(
            "the path must begin with /states/ as written, not percent-encoded",
            errors=[{"loc": ["path"], "msg": "must begin with /states/, not percent-encoded"}],
        )
    try:
        persistence_id = unquote_to_bytes(raw_path[len(_STATES_PREFIX) :]).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidState(
            "persistence_id must be percent-encoded UTF-8",
            errors=[{"loc": ["path", "persistence_id"], "msg": "must be UTF-8"}],
        ) from None
    scope[PERSISTENCE_ID_KEY] = check_persistence_id(persistence_id, ["path", "persistence_id"])
    return persistence_id
