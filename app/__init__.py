"""durable-state-store: the latest protobuf state of each persistence id, over HTTP, in DynamoDB or SQLite."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _version() -> str:
    try:
        return version("durable-state-store")
    except PackageNotFoundError:  # a source tree run without `pip install`: the same number, from its file
        pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
        return str(pyproject["project"]["version"])


__version__ = _version()
"""The distribution's version, as pyproject.toml sets it; the OpenAPI document's `info.version`."""
