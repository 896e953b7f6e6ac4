"""The API keys a request may present, held as digests, and replaced whole when the key file is re-read.

The presented token's digest is compared with the digest of every key, each in constant time, so the time
a refusal takes tells neither which key came closest nor how long keys are.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from pathlib import Path

from app.settings import read_api_keys_file, variable_name

logger = logging.getLogger("statestore")


def _digest(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


class KeyRing:
    def __init__(self, keys: Iterable[str], file: Path | None = None) -> None:
        self.file = file
        self._digests = tuple(_digest(key.encode()) for key in keys)

    def __len__(self) -> int:
        return len(self._digests)

    def match(self, token: bytes) -> bytes | None:
        """The presented key's digest when it is one of the keys (every key compared, in constant time),
        else None; the digest names the caller without keeping the key."""
        presented = _digest(token)
        matched = False
        for key_digest in self._digests:
            matched |= hmac.compare_digest(presented, key_digest)
        return presented if matched else None

    def reload(self) -> None:
        """Read the key file again; a file that cannot be used leaves the keys as they were, and says why."""
        if self.file is None:
            return
        try:
            keys = read_api_keys_file(self.file)
        except ValueError as exc:
            unusable = str(exc)
        else:
            self._digests = tuple(_digest(key.encode()) for key in keys)
            logger.info("API keys reloaded from %s: %d keys", self.file, len(keys))
            return
        logger.error(
            "API keys not reloaded, the previous ones stay: %s: %s", variable_name("api_keys_file"), unusable
        )
