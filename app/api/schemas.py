"""The request and response bodies, one schema per use, and base64 as protobuf's JSON mapping reads `bytes`:
standard or URL-safe, padded or not, nothing else (pybase64, for speed: docs/design.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Literal, Self

import pybase64
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from app.api.ids import DOCUMENTED_ID
from app.http.openapi import DECIMAL_PATTERNS, integer_answer
from app.protobuf_worker import SerializedState
from app.states.model import MAX_INT64, MAX_TTL_SECONDS, MAX_UINT64

MANIFEST_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
MAX_BATCH_GET_IDS = 1000
MAX_TRANSACTION_OPERATIONS = 100

_EXACT_FLOATS = 2**53
_MAX_DECIMAL_DIGITS = 20  # 2^64-1 has 20 digits, -2^63 has 19 and a sign
_DECIMAL_INTEGER = re.compile(r"0|-?[1-9][0-9]*")


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_="
_SEXTETS = {char: value for value, char in enumerate(_ALPHABET[:64])} | {"-": 62, "_": 63}
_UNUSED_BITS = {2: 0b1111, 3: 0b11}
_ALPHABET_ERROR = "payload must be base64 (standard or URL-safe alphabet) without white space"


def _refusal(text: str, reason: str) -> ValueError:
    """The error for an invalid payload: a foreign character, if any, is named before `reason`."""
    if text.strip(_ALPHABET):
        return ValueError(_ALPHABET_ERROR)
    return ValueError(reason)


def decode_base64(text: str) -> bytes:
    """Decode strictly; raise ValueError for anything that is not exactly one encoding of some bytes."""
    url_safe = "-" in text or "_" in text
    if url_safe and ("+" in text or "/" in text):
        raise ValueError(_ALPHABET_ERROR)
    data = text.rstrip("=")
    padding = len(text) - len(data)
    remainder = len(data) % 4
    if remainder == 1 or (padding and padding != 4 - remainder) or padding > 2:
        raise _refusal(text, "payload has a base64 length that no padding completes")
    if remainder and _SEXTETS.get(data[-1], 0) & _UNUSED_BITS[remainder]:
        raise _refusal(text, "payload's last base64 character carries bits beyond the data")
    # The text itself unless it lacks its padding: each copy of a large payload costs page faults.
    padded = data + "=" * (4 - remainder) if remainder and not padding else text
    try:
        return pybase64.b64decode(padded, altchars=b"-_" if url_safe else None, validate=True)
    except ValueError:  # binascii.Error for a character outside the alphabet; ValueError beyond ASCII
        raise ValueError(_ALPHABET_ERROR) from None


def encode_base64(data: bytes) -> str:
    return pybase64.b64encode(data).decode("ascii")


def _whole(value: object) -> object:
    """3.0 is the integer 3 to JSON Schema: accepted below 2^53, where a float is exact."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_FLOATS:
        return int(value)
    return value


def _integral(value: object) -> object:
    """A 64-bit integer from JSON: an integer, or a string of its decimal digits (protobuf's JSON mapping),
    or a whole float (`_whole`)."""
    if isinstance(value, str):
        if len(value) > _MAX_DECIMAL_DIGITS or not _DECIMAL_INTEGER.fullmatch(value):
            raise ValueError('must be an integer, or a string of its decimal digits such as "3"')
        return int(value)
    return _whole(value)


def _wire_integer(format_: str, minimum: int, maximum: int, description: str) -> WithJsonSchema:
    """How a request documents a 64-bit integer: a decimal string (exact in every language) or a number."""
    return WithJsonSchema(
        {
            "oneOf": [
                {"type": "string", "format": format_, "pattern": DECIMAL_PATTERNS[format_]},
                {"type": "integer", "format": format_, "minimum": minimum, "maximum": maximum},
            ],
            "description": description,
        }
    )


_UINT64_WIRE = _wire_integer(
    "uint64", 0, MAX_UINT64, "0 to 2^64-1, as a string of decimal digits or a number."
)
_INT64_WIRE = _wire_integer(
    "int64", -MAX_INT64 - 1, MAX_INT64, "-2^63 to 2^63-1, as a string of decimal digits or a number."
)
Uint64 = Annotated[StrictInt, Field(ge=0, le=MAX_UINT64), BeforeValidator(_integral), _UINT64_WIRE]
Int64 = Annotated[StrictInt, Field(ge=-MAX_INT64 - 1, le=MAX_INT64), BeforeValidator(_integral), _INT64_WIRE]
# May be omitted (or null): nullable, not a union with None, so that an error is located at the field
# alone, without a union branch's name and a second "should be None" error; documented without the null.
OptionalUint64 = Annotated[Uint64 | None, _UINT64_WIRE]
OptionalInt64 = Annotated[Int64 | None, _INT64_WIRE]
TtlSeconds = Annotated[
    Annotated[StrictInt, Field(ge=1, le=MAX_TTL_SECONDS), BeforeValidator(_whole)] | None,
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_TTL_SECONDS}),
]
# Checked by `check_persistence_id` (bytes, not characters), so that body ids answer as path ids do.
BodyPersistenceId = Annotated[
    str,
    Field(
        description="1 to 2048 bytes of UTF-8, no control characters.",
        examples=["account-42"],
        json_schema_extra=DOCUMENTED_ID,
    ),
]
Manifest = Annotated[
    str,
    StringConstraints(strict=True, max_length=512, pattern=MANIFEST_PATTERN),
    Field(description="Fully qualified protobuf message name.", examples=["acme.billing.v1.AccountState"]),
]


def _payload_from_base64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("payload must be a base64 string")  # noqa: TRY004 - pydantic wants ValueError
    return decode_base64(value)


_BASE64_SCHEMA = WithJsonSchema(
    {
        "type": "string",
        "format": "byte",
        "description": "Serialized message, base64 (standard or URL-safe, padded or not).",
        "examples": ["CgphY2NvdW50LTQyEGg="],
    }
)
Base64Payload = Annotated[bytes, BeforeValidator(_payload_from_base64), _BASE64_SCHEMA]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PutStateRequest(_Body):
    """A state to store: its serialized `payload`, or its `state` in protobuf's JSON mapping; exactly one."""

    # The same rule as a top-level oneOf, but code generators read a top-level oneOf as a union of its
    # (property-less) branches and lose the model; inside allOf they keep it.
    model_config = ConfigDict(
        json_schema_extra={"allOf": [{"oneOf": [{"required": ["payload"]}, {"required": ["state"]}]}]}
    )

    manifest: Manifest
    # May be absent, never null: documented as the string alone.
    payload: Annotated[Base64Payload | None, _BASE64_SCHEMA] = None
    state: JsonValue = Field(
        None,
        description="Instead of `payload`: the message in protobuf's canonical JSON mapping;"
        " needs a known manifest.",
        examples=[{"accountId": "account-42", "balanceCents": "104"}],
    )
    version_number: Uint64
    # Not titled "Timestamp": Java's generator names the field's class after its title, and would take that
    # one for java.sql.Timestamp, so that the client it generates would not compile.
    timestamp: OptionalInt64 = Field(
        None,
        title="Timestamp Value",
        description="As the writer counts time (eGo's Go actors write nanoseconds or seconds since the Unix"
        " epoch); the server's time, in the unit it is configured with, when omitted.",
    )
    shard: Annotated[Uint64, Field(description="0 when omitted.")] = 0
    ttl_seconds: TtlSeconds = Field(
        None,
        description="The state expires this many seconds after the write (1 second to 10 years of 365"
        " days), and is then absent to every call. Omitted: it never expires, and any earlier expiry goes.",
        examples=[3600],
    )
    persistence_id: str | None = Field(
        None, description="When present, must equal the path's persistence id."
    )
    _serialized_state: SerializedState | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _payload_or_state(self) -> PutStateRequest:
        if ("payload" in self.model_fields_set) == ("state" in self.model_fields_set):
            raise ValueError("give exactly one of payload and state")
        if self.payload is None and "payload" in self.model_fields_set:
            raise ValueError("payload must be a base64 string; to send a JSON state, use state")
        return self

    @property
    def serialized_state(self) -> SerializedState | None:
        """`state` serialized already, by the protobuf worker as it parsed the body (app/api/bodies.py)."""
        return self._serialized_state

    def with_states_serialized(self, serialize: Callable[[str, JsonValue], SerializedState]) -> Self:
        """This write with its JSON `state`, if it has one, serialized by `serialize` and dropped."""
        if "state" not in self.model_fields_set:
            return self
        serialized = self.model_copy(update={"state": None})
        serialized._serialized_state = serialize(self.manifest, self.state)
        return serialized


class _StateFields(BaseModel):
    persistence_id: str = Field(examples=["account-42"])
    version_number: str = integer_answer("uint64", "The version, 0 to 2^64-1.")
    manifest: Manifest
    timestamp: str = integer_answer(
        "int64", "As written: Unix epoch milliseconds by default, nanoseconds or seconds from eGo actors."
    )
    shard: str = integer_answer("uint64", "The shard, 0 to 2^64-1.")
    expires_at: str | SkipJsonSchema[None] = integer_answer(
        "int64",
        "Only on a state that expires: when, in Unix epoch seconds. From that second on it is absent.",
        optional=True,
    )


class StateWritten(_StateFields):
    """What a write stored, without the payload the client already has."""


DecodedState = Annotated[
    JsonValue,
    Field(
        description="Only with `decode=true`: the message in protobuf's canonical JSON mapping; null when its"
        " type is unknown, or when it could not be rendered (`decode_error` says why)."
    ),
]
# Absent unless true, never null: documented as the boolean alone.
UnknownFieldsFlag = Annotated[
    bool | None,
    WithJsonSchema(
        {
            "type": "boolean",
            "description": "Only with `decode=true`, and only when true: the payload holds fields that its"
            " type, as the service knows it, does not define (a writer with a newer schema). `state` leaves"
            " them out; `payload` has them.",
        }
    ),
]
# Absent unless there is an error, never null: documented as the string alone.
DecodeError = Annotated[
    str | None,
    WithJsonSchema(
        {
            "type": "string",
            "description": "Only with `decode=true`, and only when the state could not be rendered: why (its"
            " payload does not parse as its type, holds more values than one rendering may take, or has no"
            " JSON form). `state` is then null; the payload is stored unchanged and can be read.",
        }
    ),
]


class State(_StateFields):
    payload: str = Field(
        description="Serialized message, standard padded base64.", json_schema_extra={"format": "byte"}
    )
    state: DecodedState = None
    unknown_fields: UnknownFieldsFlag = None
    decode_error: DecodeError = None


class ListedState(_StateFields):
    """A stored state, without its payload."""

    state: DecodedState = None
    unknown_fields: UnknownFieldsFlag = None
    decode_error: DecodeError = None


class StatePage(BaseModel):
    states: list[ListedState] = Field(
        description="Up to `limit` states, in the backend's order (by id on SQLite, by DynamoDB's scan order"
        " on DynamoDB); a page may hold fewer, even none, while `next_page_token` is not null."
    )
    next_page_token: str | None = Field(
        description="Pass as `page_token` (with the same `shard`) for the next page; null when the walk is"
        " over."
    )


class BatchGetRequest(_Body):
    persistence_ids: list[BodyPersistenceId] = Field(
        min_length=1,
        max_length=MAX_BATCH_GET_IDS,
        description="1 to 1000 ids, each as in the path of `GET /states/{persistence_id}`;"
        " duplicates are folded.",
        examples=[["account-42", "account-43"]],
    )


class BatchGetResponse(BaseModel):
    states: list[State] = Field(description="The stored states, in the order of the request.")
    missing: list[str] = Field(description="The ids with no stored state, in the order of the request.")
    unprocessed: list[str] = Field(
        description="The ids not read this time, to ask for again; empty when every id was read."
    )


class TransactPut(PutStateRequest):
    """Write one state as `PUT /states/{persistence_id}` does: exactly one of `payload` and `state`."""

    # Said in words only: within the transaction's oneOf, Redocly's recommended rules take the `required` of
    # PutStateRequest's `allOf` branches for undefined properties, and the one form they accept (each branch
    # defining its property) makes Java's generator send `"state": null`, which is refused, with every put.
    model_config = ConfigDict(json_schema_extra=None)

    op: Literal["put"]
    persistence_id: BodyPersistenceId
    if_match: OptionalUint64 = Field(None, description="Write only if this version is stored (`If-Match`).")
    if_none_match: Literal[True] | None = Field(
        None, description="Write only if no state is stored (`If-None-Match: *`)."
    )


class TransactDelete(_Body):
    """Delete one state; deleting a missing state succeeds unless `if_match` is given."""

    op: Literal["delete"]
    persistence_id: BodyPersistenceId
    if_match: OptionalUint64 = Field(None, description="Delete only if this version is stored (`If-Match`).")


TransactOperation = Annotated[TransactPut | TransactDelete, Field(discriminator="op")]


class TransactRequest(_Body):
    operations: list[TransactOperation] = Field(
        min_length=1,
        max_length=MAX_TRANSACTION_OPERATIONS,
        description="1 to 100 operations, each on a different persistence id; all are applied or none.",
    )

    def with_states_serialized(self, serialize: Callable[[str, JsonValue], SerializedState]) -> Self:
        """The transaction with each put's JSON state replaced, as a `PutStateRequest`'s is."""
        operations = [
            operation.with_states_serialized(serialize) if isinstance(operation, TransactPut) else operation
            for operation in self.operations
        ]
        return self.model_copy(update={"operations": operations})


class TransactResult(BaseModel):
    persistence_id: str
    version_number: str | SkipJsonSchema[None] = integer_answer(
        "uint64", "The stored version; puts only.", optional=True
    )
    etag: str | SkipJsonSchema[None] = Field(
        None, description='The stored version as an ETag, e.g. `"4"`; puts only.'
    )
    expires_at: str | SkipJsonSchema[None] = integer_answer(
        "int64", "Puts of a state that expires only: when, in Unix epoch seconds.", optional=True
    )


class TransactResponse(BaseModel):
    results: list[TransactResult] = Field(
        description="One result per operation, in the order of the request."
    )
