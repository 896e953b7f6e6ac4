"""Protobuf messages for tests: eGo's Any envelope and a hypothesis strategy over the sample type."""

from __future__ import annotations

import math

from google.protobuf import any_pb2
from google.protobuf.message import Message
from hypothesis import strategies as st

ACCOUNT_STATE = "acme.billing.v1.AccountState"
ANY = "google.protobuf.Any"
MONEY = "acme.billing.v1.Money"
TYPE_URL_PREFIX = "type.googleapis.com/"
FLOAT32_MAX = 3.4028234663852886e38

Types = dict[str, type[Message]]


def serialized(message: Message) -> bytes:
    return message.SerializeToString(deterministic=True)


def ego_envelope(type_name: str, value: bytes) -> bytes:
    """What eGo's Go store writes: proto.Marshal of an anypb.Any."""
    return any_pb2.Any(type_url=TYPE_URL_PREFIX + type_name, value=value).SerializeToString()


def account_states(types: Types) -> st.SearchStrategy[Message]:
    """Any AccountState, over every field; timestamps stay in the range the JSON mapping can carry."""
    int32s = st.integers(-(2**31), 2**31 - 1)
    int64s = st.integers(-(2**63), 2**63 - 1)
    uint64s = st.integers(0, 2**64 - 1)
    texts = st.text(max_size=8)
    money = st.builds(types[MONEY], currency_code=texts, units=int64s, nanos=int32s)
    timestamps = st.builds(
        types["google.protobuf.Timestamp"],
        seconds=st.integers(-62_135_596_800, 253_402_300_799),
        nanos=st.integers(0, 999_999_999),
    )
    addresses = st.builds(
        types["acme.billing.v1.PostalAddress"],
        lines=st.lists(texts, max_size=2),
        city=texts,
        postal_code=texts,
        country_code=texts,
    )
    entries = st.builds(
        types["acme.billing.v1.LedgerEntry"], sequence=uint64s, amount=money, memo=texts, booked_at=timestamps
    )
    fields = {
        "account_id": texts,
        "revision": uint64s,
        "status": st.integers(0, 3) | int32s,
        "balance": money,
        "overdraft_limit_units": int64s,
        "signing_key": st.binary(max_size=16),
        "tags": st.lists(texts, max_size=3),
        "limits_by_category": st.dictionaries(texts, int64s, max_size=3),
        "holds": st.dictionaries(texts, money, max_size=3),
        "billing_address": addresses,
        "recent_entries": st.lists(entries, max_size=2),
        "email": texts,
        "phone_number": texts,
        "opened_at": timestamps,
        "metadata": st.one_of(money, addresses, entries, timestamps).map(lambda inner: packed(types, inner)),
        "frozen": st.booleans(),
        "interest_rate": st.floats(allow_nan=False) | st.just(math.nan),
        "risk_score": st.floats(width=32, allow_nan=False).filter(not_float32_max) | st.just(math.nan),
        "external_reference": uint64s,
        "credit_score_delta": int32s,
        "daily_totals": st.lists(int64s, max_size=4),
        "dunning_level": st.integers(0, 2**32 - 1),
    }
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: types[ACCOUNT_STATE](**values))


def not_float32_max(value: float) -> bool:
    """Protobuf's Python JSON parser refuses ±3.4028235e38, the JSON form of float32's largest values."""
    return abs(value) != FLOAT32_MAX


def packed(types: Types, inner: Message) -> Message:
    envelope = types[ANY]()
    envelope.Pack(inner, deterministic=True)  # type: ignore[attr-defined]
    return envelope
