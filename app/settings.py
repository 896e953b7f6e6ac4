"""Every setting of the service, read from `STATESTORE_*` environment variables.

Region and credentials are deliberately absent: they come from the standard AWS SDK chain.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, HttpUrl, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "STATESTORE_"

CommaSeparated = Annotated[tuple[str, ...], NoDecode]
Backend = Literal["sqlite", "dynamodb"]
DynamoDBClient = Literal["lean", "aioboto3"]
ManifestPolicy = Literal["permissive", "strict"]
VersionGuard = Literal["off", "monotonic"]
TimestampUnit = Literal["s", "ms", "ns"]
UnknownFields = Literal["keep", "reject"]
Compression = Literal["off", "zstd"]
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # RFC 6750 b64token: what `Bearer <key>` can carry
MIN_API_KEY_LENGTH = 16


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
    dynamodb_client: DynamoDBClient = "lean"
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8080, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    api_keys: CommaSeparated = ()
    api_keys_file: Path | None = None
    descriptor_sets: Annotated[tuple[Path, ...], NoDecode] = ()
    manifest_policy: ManifestPolicy = "permissive"
    version_guard: VersionGuard = "off"
    timestamp_unit: TimestampUnit = "ms"
    unknown_fields: UnknownFields = "keep"
    max_concurrent_requests: int = Field(256, ge=1)
    body_timeout_seconds: float = Field(30.0, gt=0)
    min_body_bytes_per_second: int = Field(1024, ge=0)
    send_timeout_seconds: float = Field(30.0, gt=0)
    watch_poll_ms: int = Field(500, ge=10, le=60_000)
    max_waiters: int = Field(10_000, ge=1)
    compression: Compression = "off"
    large_states_bucket: str | None = Field(
        None, min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"
    )
    large_states_prefix: str = Field("states/", max_length=512)
    s3_endpoint_url: HttpUrl | None = None

    @field_validator("descriptor_sets", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _api_keys(cls, value: object) -> object:
        # Set, even to nothing, means the operator wants authentication: an empty list must not switch it off.
        return parse_api_keys(value) if isinstance(value, str) else value

    @field_validator("api_keys")
    @classmethod
    def _bearer_tokens(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        return checked_api_keys(keys) if keys else keys

    @field_validator("api_keys_file")
    @classmethod
    def _readable_key_file(cls, path: Path | None) -> Path | None:
        if path is not None:
            read_api_keys_file(path)
        return path

    @model_validator(mode="after")
    def _one_source_of_keys(self) -> Self:
        if self.api_keys and self.api_keys_file is not None:
            reason = f"{variable_name('api_keys')} is set too; set one of the two"
            raise SettingsError(
                f"invalid setting {variable_name('api_keys_file')}: {reason}",
                field="api_keys_file",
                reason=reason,
            )
        return self

    @field_validator(
        "log_level",
        "backend",
        "dynamodb_client",
        "manifest_policy",
        "version_guard",
        "timestamp_unit",
        "unknown_fields",
        "compression",
        mode="before",
    )
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def endpoint_url(self) -> str | None:
        return None if self.dynamodb_endpoint_url is None else str(self.dynamodb_endpoint_url).rstrip("/")

    @property
    def s3_endpoint(self) -> str | None:
        """`STATESTORE_S3_ENDPOINT_URL`; None leaves it to botocore, which reads `AWS_ENDPOINT_URL_S3`."""
        return None if self.s3_endpoint_url is None else str(self.s3_endpoint_url).rstrip("/")


def parse_api_keys(text: str) -> tuple[str, ...]:
    """Keys separated by commas or line breaks, checked; at least one."""
    return checked_api_keys(tuple(part.strip() for part in re.split(r"[,\n]", text) if part.strip()))


def checked_api_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    if not keys:
        raise ValueError("no key given: set at least one key, or unset the variable to serve without keys")
    if not all(_BEARER_TOKEN.fullmatch(key) for key in keys):
        raise ValueError("each key must be letters, digits and -._~+/ (then optional = padding)")
    if any(len(key) < MIN_API_KEY_LENGTH for key in keys):
        raise ValueError(f"each key must be at least {MIN_API_KEY_LENGTH} characters long")
    return keys


def read_api_keys_file(path: Path) -> tuple[str, ...]:
    """The keys of an API key file (one a line, or separated by commas), or a `ValueError` saying why not."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_api_keys(text)


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
        shown = "" if field.startswith("api_keys") else f" (got {error['input']!r})"
        # A validator's own `ValueError` says why in its own words, without pydantic's "Value error, ".
        message = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
        reason = f"{message}{shown}"
        raise SettingsError(
            f"invalid setting {variable_name(field)}: {reason}", field=field, reason=reason
        ) from None
