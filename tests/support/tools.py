"""Programs from outside Python that some tests run, found on PATH."""

from __future__ import annotations

import os
import shutil

import pytest


def require(program: str, how_to_install: str) -> str:
    """The program's path. A missing one fails the test on CI (`CI=true`), where every program the suite
    needs must be installed, and skips it elsewhere, saying how to install it."""
    path = shutil.which(program)
    if path is None:
        reason = f"{program} is not on PATH: {how_to_install}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path
