"""The `Idempotency-Key` request header (the IETF httpapi draft's): the identity of one write, so that its
retry is told from another client's identical write (app/states/model.py).

The draft makes the header a Structured Field string, `Idempotency-Key: "8e03..."`; a bare key, as many
clients send it, is taken too. A key is 1 to 255 visible ASCII characters other than `"` and `\\`, so that
it never needs escaping: an escaped string, a list or anything else is a 400 naming the header.
"""

from __future__ import annotations

import re

from starlette.requests import Request

from app.errors import BadRequest
from app.http.routing import Parameter
from app.states.model import MAX_WRITE_KEY_LENGTH

_KEY = rf"[\x21\x23-\x5b\x5d-\x7e]{{1,{MAX_WRITE_KEY_LENGTH}}}"
IDEMPOTENCY_KEY_PATTERN = rf'^[ \t]*(?:"{_KEY}"|{_KEY})[ \t]*$'
_HEADER = re.compile(rf'[ \t]*(?:"(?P<quoted>{_KEY})"|(?P<bare>{_KEY}))[ \t]*')

IDEMPOTENCY_KEY = Parameter(
    "idempotency-key",
    "header",
    "The identity of this write, for its retries: a Structured Field string such as"
    ' `"8e03978e-40d5-43e8-bc93-6894a57f9324"` (a bare key is accepted too), 1 to 255 visible ASCII'
    ' characters other than `"` and `\\`. A write whose condition fails succeeds as a retry only when the'
    " stored state carries this key and this write's version, manifest and payload, and is then answered"
    " as the first write was; the key stored with other content is a `422`. Without a key, a failed"
    " condition is always a `412` or `409`. Send one new key per write, the same key on each of its retries.",
    {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
)


def idempotency_key(request: Request) -> str | None:
    """The request's key, or None when it sends none."""
    values = request.headers.getlist(IDEMPOTENCY_KEY.name)
    if not values:
        return None
    matched = _HEADER.fullmatch(values[0]) if len(values) == 1 else None
    if matched is None:
        raise BadRequest(
            'Idempotency-Key must be one string such as "8e03978e-40d5-43e8-bc93-6894a57f9324":'
            f' 1 to {MAX_WRITE_KEY_LENGTH} visible ASCII characters other than " and \\'
        )
    return matched["quoted"] or matched["bare"]
