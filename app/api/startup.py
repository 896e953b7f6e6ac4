"""What start-up chose and learned, as `/readyz` tells it: read once, so that a probe costs no other
backend call."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class TimeToLive(BaseModel):
    status: str = Field(
        description="How the backend deletes expired states: DynamoDB's time-to-live status in lower case "
        "(`enabled`, `enabling`, `disabled`, `disabling`), `enabled` on SQLite (the service purges them), "
        "or `unknown` when start-up could not read it (the endpoint refused, or the backend was not ready)."
    )
    attribute: str | None = Field(
        description="The attribute (SQLite: column) whose epoch seconds expire an item, when known."
    )


class StartupFacts(BaseModel):
    backend: Literal["sqlite", "dynamodb"]
    table: str | None = Field(None, description="The DynamoDB table (backend `dynamodb` only).")
    file: str | None = Field(None, description="The SQLite file, resolved (backend `sqlite` only).")
    ttl: TimeToLive
    version_guard: Literal["off", "monotonic"] = Field(description="`STATESTORE_VERSION_GUARD`.")
    compression: Literal["off", "zstd"] | None = Field(
        None,
        description="`STATESTORE_COMPRESSION` (backend `dynamodb` only: SQLite has no item limit): `zstd`"
        " stores a state whose item would pass 400 KB compressed.",
    )
    # The S3 offload settings (STATESTORE_LARGE_STATES_BUCKET, _PREFIX) join here, from `Settings`.
