"""Base64 as protobuf's JSON mapping reads `bytes`: standard or URL-safe, padded or not, nothing else."""

from __future__ import annotations

import base64
import binascii
import re

_ALPHABET = re.compile(r"(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)={0,2}")
_URL_SAFE = str.maketrans("-_", "+/")
_UNUSED_BITS = {2: 0b1111, 3: 0b11}


def decode_base64(text: str) -> bytes:
    """Decode strictly; raise ValueError for anything that is not exactly one encoding of some bytes."""
    if not _ALPHABET.fullmatch(text):
        raise ValueError("payload must be base64 (standard or URL-safe alphabet) without white space")
    data = text.rstrip("=")
    padding = len(text) - len(data)
    remainder = len(data) % 4
    if remainder == 1 or (padding and (len(text) % 4 or padding != 4 - remainder)):
        raise ValueError("payload has a base64 length that no padding completes")
    if remainder and _sextet(data[-1]) & _UNUSED_BITS[remainder]:
        raise ValueError("payload's last base64 character carries bits beyond the data")
    try:
        return base64.b64decode(data.translate(_URL_SAFE) + "=" * (-len(data) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("payload is not valid base64") from exc


def _sextet(char: str) -> int:
    return base64.b64decode(f"AAA{char.translate(_URL_SAFE)}")[-1] & 0b111111


def encode_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
