"""Conditional request headers (RFC 9110 §13) as store preconditions, and the ETag of a version.

The ETag of a state is its decimal version number, quoted. `If-Match` compares strongly and also
takes a bare version (`If-Match: 3`), as some clients send it; `If-None-Match` compares weakly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request

from app.errors import BadRequest
from app.http.routing import Parameter, list_header
from app.states.model import MAX_UINT64, Precondition

MAX_TAGS = 100
_NEVER_A_VERSION = -1
_TAG = r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"|([0-9]+)'
# The whole header, as the OpenAPI document states it: `*`, or 1 to MAX_TAGS tags separated by commas.
ENTITY_TAGS_PATTERN = (
    rf"^[ \t]*(?:\*|(?:{_TAG})(?:[ \t]*,[ \t]*(?:{_TAG})){{0,{MAX_TAGS - 1}}}(?:[ \t]*,)?)[ \t]*$"
)
_TAGS = re.compile(ENTITY_TAGS_PATTERN)
_ONE_TAG = re.compile(_TAG)


def _entity_tags(name: str, description: str) -> Parameter:
    return Parameter(name, "header", description, {"type": "string", "pattern": ENTITY_TAGS_PATTERN})


IF_MATCH = _entity_tags("if-match", 'Entity tags (`"3"`, a list, or `*`); also a bare version such as `3`.')
IF_NONE_MATCH = _entity_tags("if-none-match", '`*`, or entity tags such as `"3"`.')


def etag(version: int) -> str:
    return f'"{version}"'


@dataclass(frozen=True, slots=True)
class _EntityTag:
    opaque: str
    weak: bool

    def version(self, *, weak_comparison: bool) -> int:
        if (
            (self.weak and not weak_comparison)
            or not self.opaque.isdigit()
            or self.opaque != str(int(self.opaque))
        ):
            return _NEVER_A_VERSION
        number = int(self.opaque)
        return number if number <= MAX_UINT64 else _NEVER_A_VERSION


def _parse(header: str, value: str) -> list[_EntityTag] | None:
    """The tags of a header, or None for `*`."""
    if not _TAGS.fullmatch(value):
        raise BadRequest(f'{header} must be * or a list of at most {MAX_TAGS} entity tags such as "3"')
    if value.strip(" \t") == "*":
        return None
    return [_EntityTag(opaque or bare, weak=bool(weak)) for weak, opaque, bare in _ONE_TAG.findall(value)]


def _versions(tags: list[_EntityTag], *, weak_comparison: bool) -> frozenset[int]:
    return frozenset(tag.version(weak_comparison=weak_comparison) for tag in tags)


def precondition_from_headers(if_match: str | None, if_none_match: str | None) -> Precondition:
    match: frozenset[int] | None = None
    exists = absent = False
    none_match: frozenset[int] = frozenset()
    if if_match is not None:
        tags = _parse("If-Match", if_match)
        if tags is None:
            exists = True
        else:
            match = _versions(tags, weak_comparison=False)
    if if_none_match is not None:
        tags = _parse("If-None-Match", if_none_match)
        if tags is None:
            absent = True
        else:
            none_match = _versions(tags, weak_comparison=True) - {_NEVER_A_VERSION}
    return Precondition(match=match, exists=exists, absent=absent, none_match=none_match)


def if_match(request: Request) -> str | None:
    return list_header(request, IF_MATCH.name)


def if_none_match(request: Request) -> str | None:
    return list_header(request, IF_NONE_MATCH.name)
