"""Page tokens of `GET /states`: where the next page begins, bound to the filter it was issued for, signed.

A token is base64url (no padding) of: a format byte, the shard filter (a flag byte, then 8 bytes of the
shard when there is one), the id the next page begins after (UTF-8), and the first 16 bytes of an
HMAC-SHA256 of all that. The key is derived from the storage the service lists (the backend and its table
or file), so a token from another deployment's listing, or for another filter, or altered or truncated
by a single bit, is a `400` and never reaches the backend.

The key is derived rather than secret on purpose: a token holds only a position in the listing, which a
client could reach anyway by paging there, so nothing needs hiding; what the MAC buys is that a damaged
token is refused instead of starting a wrong page. A secret key would add a setting that every replica
must share and rotate, for no protection the listing lacks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from app.api.ids import MAX_ID_BYTES, check_persistence_id
from app.errors import BadRequest, InvalidState

FORMAT = 1
MAC_BYTES = 16
_SHARD_BYTES = 8
_NO_SHARD, _ONE_SHARD = 0, 1
# base64url without padding, at most what the longest token needs: refused before any decoding.
_MAX_TOKEN_CHARACTERS = (2 + _SHARD_BYTES + MAX_ID_BYTES + MAC_BYTES) * 4 // 3 + 4
_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{1,{_MAX_TOKEN_CHARACTERS}}}")


class PageTokens:
    def __init__(self, listed_storage: str) -> None:
        """`listed_storage` names what is listed (backend and table or file): its tokens fit only it."""
        self._key = hashlib.sha256(f"statestore page token|{listed_storage}".encode()).digest()

    def issue(self, after: str, shard: int | None) -> str:
        body = self._body(after, shard)
        return base64.urlsafe_b64encode(body + self._mac(body)).rstrip(b"=").decode("ascii")

    def read(self, token: str, shard: int | None) -> str:
        """The id the page of `token` begins after; a `400` for a token that this listing, with this
        `shard` filter, did not issue."""
        if not _TOKEN.fullmatch(token):
            raise _refused("it is not a page token of this listing")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise _refused("it is not a page token of this listing") from None
        body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if len(raw) <= MAC_BYTES or not hmac.compare_digest(mac, self._mac(body)):
            raise _refused("it was altered or truncated, or comes from another listing")
        after = self._after(body, shard)
        try:
            return check_persistence_id(after, ["query", "page_token"])
        except InvalidState:
            raise _refused("it names no valid position") from None

    def _mac(self, body: bytes) -> bytes:
        return hmac.digest(self._key, body, "sha256")[:MAC_BYTES]

    @staticmethod
    def _body(after: str, shard: int | None) -> bytes:
        filtered = b"" if shard is None else bytes([_ONE_SHARD]) + shard.to_bytes(_SHARD_BYTES, "big")
        return bytes([FORMAT]) + (filtered or bytes([_NO_SHARD])) + after.encode()

    @classmethod
    def _after(cls, body: bytes, shard: int | None) -> str:
        expected = cls._body("", shard)
        if not body.startswith(expected):
            raise _refused("it was issued for another shard filter; start again without it")
        try:
            return body[len(expected) :].decode("utf-8")
        except UnicodeDecodeError:
            raise _refused("it names no valid position") from None


def _refused(reason: str) -> BadRequest:
    return BadRequest(f"page_token is not valid: {reason}")
