"""RFC 9457 problem documents: the one renderer, and the handlers that route every error through it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from app.errors import InvalidState, ProblemError

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_PREFIX = "urn:statestore:problem:"
RENAMED_STATUSES = {413: "Content Too Large", 422: "Unprocessable Content"}
"""RFC 9110's names of the statuses the service answers with whose `HTTPStatus` phrase (in Python 3.11)
is still RFC 7231's ("Request Entity Too Large", "Unprocessable Entity")."""
_DESCRIPTIONS = {
    502: "Bad Gateway: the call read a stored item that the service cannot read (on DynamoDB, an item it did"
    " not write: a number out of range, a missing key, an attribute of another type); `detail` names the"
    " attribute. A write or delete reads the stored item only when its condition fails.",
}


def reason_phrase(status: int) -> str:
    """A status's name, in a status line and as a problem's default title: RFC 9110's."""
    return RENAMED_STATUSES.get(status) or HTTPStatus(status).phrase


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> Response:
    body = {
        "type": f"{_TYPE_PREFIX}{slug}" if slug else "about:blank",
        "title": title or reason_phrase(status),
        "status": status,
        "detail": detail,
        **{name: value for name, value in extensions.items() if value is not None},
    }
    return Response(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def render_problem(error: ProblemError) -> Response:
    return problem_response(
        error.status,
        error.detail,
        slug=error.slug,
        title=error.title,
        headers=error.headers,
        **error.extensions,
    )


def field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors as `{loc, msg}` only: never the input, which may be a payload or a secret."""
    return [{"loc": list(error["loc"]), "msg": error["msg"]} for error in errors]


async def _problem_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return render_problem(exc)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(
        InvalidState.status,
        "the request does not match the documented schema",
        slug=InvalidState.slug,
        title=InvalidState.title,
        errors=field_errors(exc.errors()),
    )


def _http_error_handler(routes: Sequence[BaseRoute]) -> Callable[[Request, Exception], Awaitable[Response]]:
    def allowed_methods(scope: Scope) -> str:
        """Every method some route takes for this path: Starlette names only the first route's."""
        methods: set[str] = set()
        for route in routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                methods.update(getattr(route, "methods", None) or ())
        return ", ".join(sorted(methods))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = HTTPStatus(exc.status_code)
        detail = (
            exc.detail if isinstance(exc.detail, str) and exc.detail != status.phrase else status.description
        )
        headers = dict(exc.headers or {})
        if status is HTTPStatus.METHOD_NOT_ALLOWED:
            headers["Allow"] = allowed_methods(request.scope)
        return problem_response(exc.status_code, detail, headers=headers)

    return http_error


async def _unexpected_error(_: Request, __: Exception) -> Response:
    """The answer to a crash; `UnexpectedErrorLog` logs it."""
    return problem_response(500, "the server met an unexpected error", slug="internal")


def install_problem_handlers(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Every error as a problem document; a 405's `Allow` lists the methods of every one of `routes` that
    matches the path."""
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error_handler(routes))
    app.add_exception_handler(Exception, _unexpected_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the problems an operation can answer with."""
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, reason_phrase(status)),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
