"""Base64 as protobuf's JSON mapping reads `bytes`: standard or URL-safe, padded or not, nothing else.

pybase64 (SIMD) rather than binascii: binascii takes ~750 µs to decode a 300 KB payload, pybase64 ~20 µs.
"""

from __future__ import annotations

import binascii

import pybase64

_STANDARD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_SEXTETS = {char: value for value, char in enumerate(_STANDARD)}
_URL_SAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_UNUSED_BITS = {2: 0b1111, 3: 0b11}
_ALPHABET_ERROR = "payload must be base64 (standard or URL-safe alphabet) without white space"


def decode_base64(text: str) -> bytes:
    """Decode strictly; raise ValueError for anything that is not exactly one encoding of some bytes."""
    try:
        encoded = text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(_ALPHABET_ERROR) from None
    if b"-" in encoded or b"_" in encoded:
        if b"+" in encoded or b"/" in encoded:
            raise ValueError(_ALPHABET_ERROR)
        encoded = encoded.translate(_URL_SAFE_TO_STANDARD)
    data = encoded.rstrip(b"=")
    padding = len(encoded) - len(data)
    remainder = len(data) % 4
    if remainder == 1 or (padding and padding != 4 - remainder) or padding > 2:
        raise ValueError("payload has a base64 length that no padding completes")
    if remainder and _SEXTETS.get(data[-1], 0) & _UNUSED_BITS[remainder]:
        raise ValueError("payload's last base64 character carries bits beyond the data")
    try:
        return pybase64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except binascii.Error:
        raise ValueError(_ALPHABET_ERROR) from None


def encode_base64(data: bytes) -> str:
    return pybase64.b64encode(data).decode("ascii")
