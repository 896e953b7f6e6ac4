"""Every setting of the service, read from `STATESTORE_*` environment variables.

Region and credentials are deliberately absent: they come from the standard AWS SDK chain.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, HttpUrl, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "STATESTORE_"

CommaSeparated = Annotated[tuple[str, ...], NoDecode]
Backend = Literal["sqlite", "dynamodb"]
ManifestPolicy = Literal["permissive", "strict"]
VersionGuard = Literal["off", "monotonic"]
TimestampUnit = Literal["s", "ms", "ns"]
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # RFC 6750 b64token: what `Bearer <key>` can carry


class SettingsError(Exception):
    """A bad setting; the message is one line naming the variable. `field` is the settings field at fault,
    when there is one, and `reason` what is wrong with its value, for a caller that names it otherwise
    (the CLI names its flags)."""

    def __init__(self, message: str, *, field: str | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason or message


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    backend: Backend = "sqlite"
    sqlite_path: Path = Path("./data/statestore.db")
    dynamodb_table: str = Field("states_store", min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    dynamodb_endpoint_url: HttpUrl | None = None
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8080, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    api_keys: CommaSeparated = ()
    descriptor_sets: Annotated[tuple[Path, ...], NoDecode] = ()
    manifest_policy: ManifestPolicy = "permissive"
    version_guard: VersionGuard = "off"
    timestamp_unit: TimestampUnit = "ms"
    max_concurrent_requests: int = Field(256, ge=1)
    watch_poll_ms: int = Field(500, ge=10, le=60_000)
    max_waiters: int = Field(10_000, ge=1)

    @field_validator("api_keys", "descriptor_sets", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("api_keys")
    @classmethod
    def _bearer_tokens(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        if not all(_BEARER_TOKEN.fullmatch(key) for key in keys):
            raise ValueError("each key must be letters, digits and -._~+/ (then optional = padding)")
        return keys

    @field_validator(
        "log_level", "backend", "manifest_policy", "version_guard", "timestamp_unit", mode="before"
    )
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def endpoint_url(self) -> str | None:
        return None if self.dynamodb_endpoint_url is None else str(self.dynamodb_endpoint_url).rstrip("/")


def variable_name(field: str) -> str:
    """The environment variable of a settings field: `sqlite_path` is `STATESTORE_SQLITE_PATH`."""
    return f"{ENV_PREFIX}{field}".upper()


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and explicit overrides), or a `SettingsError` naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        shown = "" if field == "api_keys" else f" (got {error['input']!r})"
        reason = f"{error['msg']}{shown}"
        raise SettingsError(
            f"invalid setting {variable_name(field)}: {reason}", field=field, reason=reason
        ) from None
