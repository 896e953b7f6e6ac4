"""Conditional request headers (RFC 9110 §13) as store preconditions, and the ETag of a version.

The ETag of a state is its decimal version number, quoted. `If-Match` compares strongly and also
takes a bare version (`If-Match: 3`), as some clients send it; `If-None-Match` compares weakly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.errors import BadRequest
from app.store.port import Precondition

MAX_UINT64 = 2**64 - 1
MAX_TAGS = 100
_NEVER_A_VERSION = -1
_TAG = re.compile(r'\s*(?:(?P<weak>W/)?"(?P<opaque>[\x21\x23-\x7e\x80-\xff]*)"|(?P<bare>[0-9]+))\s*(?:,|$)')


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
    if value.strip() == "*":
        return None
    tags: list[_EntityTag] = []
    position = 0
    while position < len(value) and len(tags) <= MAX_TAGS:
        found = _TAG.match(value, position)
        if found is None or found.end() == position:
            break
        tags.append(_EntityTag(found["opaque"] or found["bare"], weak=bool(found["weak"])))
        position = found.end()
    if not tags or position < len(value) or len(tags) > MAX_TAGS:
        raise BadRequest(f'{header} must be * or a list of at most {MAX_TAGS} entity tags such as "3"')
    return tags


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
