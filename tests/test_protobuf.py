"""The type registry against a descriptor set built from tests/protos/sample.proto during the run."""

from __future__ import annotations

import base64
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _descriptors import SAMPLE_PROTO, build_descriptor_set, message_classes
from google.protobuf import descriptor_pb2, descriptor_pool, struct_pb2, timestamp_pb2, wrappers_pb2
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InvalidState
from app.protobuf import (
    MAX_RENDERED_VALUES,
    QUICK_CHECK_BYTES,
    DescriptorSetError,
    TooManyValues,
    TypeRegistry,
)
from support.messages import (
    ACCOUNT_STATE,
    ANY,
    MONEY,
    TYPE_URL_PREFIX,
    Types,
    account_states,
    ego_envelope,
    packed,
    serialized,
)

OPENED_AT = 1_764_115_200


@pytest.fixture(scope="session")
def registry(descriptor_set: Path) -> TypeRegistry:
    return TypeRegistry.load([descriptor_set])


@pytest.fixture(scope="session")
def types(descriptor_set: Path) -> Types:
    return message_classes(descriptor_set)


@pytest.fixture
def write_proto(tmp_path: Path) -> Callable[..., Path]:
    """Writes a .proto file beside a copy of the sample and returns the descriptor set built from it."""

    def write(file_name: str, source: str, **protoc_options: bool) -> Path:
        folder = Path(tempfile.mkdtemp(dir=tmp_path))
        (folder / SAMPLE_PROTO.name).write_text(SAMPLE_PROTO.read_text())
        (folder / file_name).write_text(source)
        return build_descriptor_set(folder / file_name, folder / "set.pb", **protoc_options)

    return write


def sample_account(types: Types) -> Message:
    account = types[ACCOUNT_STATE](
        account_id="account-42",
        revision=2**64 - 1,
        status="ACCOUNT_STATUS_ACTIVE",
        balance={"currency_code": "EUR", "units": 1250, "nanos": 500_000_000},
        overdraft_limit_units=-(2**63),
        signing_key=b"\x00\xffkey",
        tags=["vip", "eu"],
        limits_by_category={"online": 2**40, "atm": 500, "abroad": 0, "card": 7},
        holds={"hotel": {"currency_code": "EUR", "units": 300}, "car": {"units": 90}},
        billing_address={"lines": ["1 Rue de la Paix"], "city": "Paris", "country_code": "FR"},
        recent_entries=[{"sequence": 7, "memo": "café ☕", "booked_at": {"seconds": OPENED_AT}}],
        email="ops@example.com",
        opened_at={"seconds": OPENED_AT, "nanos": 5},
        frozen=True,
        interest_rate=0.0125,
        risk_score=0.5,
        external_reference=2**64 - 1,
        credit_score_delta=-12,
        daily_totals=[1, -2, 3],
        dunning_level=0,
    )
    account.metadata.Pack(types[MONEY](currency_code="USD", units=1), deterministic=True)  # type: ignore[attr-defined]
    return account


def rendered(registry: TypeRegistry, manifest: str, payload: bytes) -> Any:
    """The decoded state alone, None when the registry cannot decode it."""
    decoded = registry.decode(manifest, payload)
    return None if decoded is None else decoded.state


def nested_lists(depth: int) -> bytes:
    """A google.protobuf.Value of `depth` nested lists: twice as many nested messages."""
    outermost = innermost = struct_pb2.Value()
    for _ in range(depth):
        innermost = innermost.list_value.values.add()
    innermost.number_value = 1
    return outermost.SerializeToString()


def nested_anys(depth: int) -> bytes:
    """A google.protobuf.StringValue wrapped in `depth` google.protobuf.Any envelopes."""
    payload, type_name = (
        wrappers_pb2.StringValue(value="core").SerializeToString(),
        "google.protobuf.StringValue",
    )
    for _ in range(depth):
        payload, type_name = ego_envelope(type_name, payload), ANY
    return payload


class TestKnownTypes:
    @pytest.mark.parametrize(
        "manifest",
        [
            ACCOUNT_STATE,
            MONEY,
            ANY,
            "google.protobuf.Timestamp",
            "google.protobuf.StringValue",
            "google.protobuf.Struct",
        ],
    )
    def test_knows_sample_and_well_known_types(self, registry: TypeRegistry, manifest: str) -> None:
        assert registry.knows(manifest)

    @pytest.mark.parametrize("manifest", ["acme.billing.v1.Unknown", "acme.billing.v1", "AccountState", ""])
    def test_does_not_know_other_names(self, registry: TypeRegistry, manifest: str) -> None:
        assert not registry.knows(manifest)

    def test_keeps_protobufs_global_pool_untouched(self, write_proto: Callable[..., Path]) -> None:
        isolated = 'syntax = "proto3";\npackage acme.isolation.v1;\nmessage Probe {}\n'

        assert TypeRegistry.load([write_proto("probe.proto", isolated)]).knows("acme.isolation.v1.Probe")
        with pytest.raises(KeyError):
            descriptor_pool.Default().FindMessageTypeByName("acme.isolation.v1.Probe")


class TestCheckPayload:
    def test_accepts_a_valid_message(self, registry: TypeRegistry, types: Types) -> None:
        registry.check_payload(ACCOUNT_STATE, serialized(sample_account(types)))

    def test_accepts_zero_bytes_as_the_all_defaults_message(self, registry: TypeRegistry) -> None:
        registry.check_payload(ACCOUNT_STATE, b"")

    @pytest.mark.parametrize(
        ("payload", "reason"),
        [
            (b"\xff\xff\xff", "corrupt"),
            (b"\x0a\x05acc", "corrupt"),
            (b"\x0a\x02\xff\xfe", "UTF-8"),
        ],
        ids=["garbage", "truncated", "bad-utf8-string"],
    )
    def test_refuses_bytes_that_do_not_parse(
        self, registry: TypeRegistry, payload: bytes, reason: str
    ) -> None:
        with pytest.raises(InvalidState, match=reason) as raised:
            registry.check_payload(ACCOUNT_STATE, payload)
        assert ACCOUNT_STATE in raised.value.detail

    def test_refuses_fields_the_type_does_not_define(self, registry: TypeRegistry, types: Types) -> None:
        unknown_field_99 = b"\x98\x06\x01"
        with pytest.raises(InvalidState, match="does not define") as raised:
            registry.check_payload(
                ACCOUNT_STATE, serialized(sample_account(types)) + unknown_field_99, "reject"
            )
        assert ACCOUNT_STATE in raised.value.detail

    def test_refuses_unknown_fields_in_a_nested_message(self, registry: TypeRegistry) -> None:
        balance_with_unknown_field = b"\x22\x03\x98\x06\x01"
        with pytest.raises(InvalidState, match="does not define"):
            registry.check_payload(ACCOUNT_STATE, balance_with_unknown_field, "reject")

    def test_leaves_unknown_manifests_to_the_caller(self, registry: TypeRegistry) -> None:
        registry.check_payload("acme.orders.v1.OrderState", b"\xff anything")

    def test_accepts_an_ego_any_holding_a_valid_known_message(
        self, registry: TypeRegistry, types: Types
    ) -> None:
        registry.check_payload(ANY, ego_envelope(ACCOUNT_STATE, serialized(sample_account(types))))

    def test_refuses_an_ego_any_whose_known_message_is_corrupt(self, registry: TypeRegistry) -> None:
        with pytest.raises(InvalidState) as raised:
            registry.check_payload(ANY, ego_envelope(ACCOUNT_STATE, b"\xff\xff"))
        assert ANY in raised.value.detail
        assert ACCOUNT_STATE in raised.value.detail

    def test_refuses_unknown_fields_inside_an_ego_any(self, registry: TypeRegistry) -> None:
        with pytest.raises(InvalidState, match="does not define"):
            registry.check_payload(ANY, ego_envelope(ACCOUNT_STATE, b"\x98\x06\x01"), "reject")

    @pytest.mark.parametrize(
        ("manifest", "payload"),
        [
            (ACCOUNT_STATE, b"\x98\x06\x01"),
            (ACCOUNT_STATE, b"\x22\x03\x98\x06\x01"),
            (ANY, ego_envelope(ACCOUNT_STATE, b"\x98\x06\x01")),
        ],
        ids=["top-level", "nested", "inside-an-ego-any"],
    )
    def test_keeps_unknown_fields_by_default(
        self, registry: TypeRegistry, manifest: str, payload: bytes
    ) -> None:
        """A writer with a newer schema is not refused: its payload is stored as sent."""
        registry.check_payload(manifest, payload)

    def test_accepts_an_ego_any_holding_an_unknown_type(self, registry: TypeRegistry) -> None:
        registry.check_payload(ANY, ego_envelope("acme.orders.v1.OrderState", b"\x0a\x03abc"))

    def test_refuses_messages_nested_past_the_parser_limit(self, registry: TypeRegistry) -> None:
        with pytest.raises(InvalidState, match=re.escape("google.protobuf.Value")):
            registry.check_payload("google.protobuf.Value", nested_lists(60))

    def test_refuses_anys_nested_past_the_limit(self, registry: TypeRegistry) -> None:
        registry.check_payload(ANY, nested_anys(90))
        with pytest.raises(InvalidState, match="nested more than 100 levels"):
            registry.check_payload(ANY, nested_anys(150))


class TestToJson:
    def test_renders_the_canonical_json_mapping(self, registry: TypeRegistry, types: Types) -> None:
        state = rendered(registry, ACCOUNT_STATE, serialized(sample_account(types)))

        assert isinstance(state, dict)
        assert state["accountId"] == "account-42"
        assert state["revision"] == "18446744073709551615"
        assert state["overdraftLimitUnits"] == "-9223372036854775808"
        assert state["externalReference"] == "18446744073709551615"
        assert state["status"] == "ACCOUNT_STATUS_ACTIVE"
        assert state["signingKey"] == base64.b64encode(b"\x00\xffkey").decode()
        assert state["limitsByCategory"] == {
            "online": "1099511627776",
            "atm": "500",
            "abroad": "0",
            "card": "7",
        }
        assert state["holds"]["hotel"] == {"currencyCode": "EUR", "units": "300"}
        assert state["openedAt"] == "2025-11-26T00:00:00.000000005Z"
        assert state["recentEntries"] == [
            {"sequence": "7", "memo": "café ☕", "bookedAt": "2025-11-26T00:00:00Z"}
        ]
        assert state["metadata"] == {"@type": TYPE_URL_PREFIX + MONEY, "currencyCode": "USD", "units": "1"}
        assert state["dunningLevel"] == 0
        assert "phoneNumber" not in state

    def test_renders_zero_bytes_as_an_empty_object(self, registry: TypeRegistry) -> None:
        assert rendered(registry, ACCOUNT_STATE, b"") == {}

    @pytest.mark.parametrize(
        ("manifest", "message", "expected"),
        [
            ("google.protobuf.Timestamp", timestamp_pb2.Timestamp(seconds=OPENED_AT), "2025-11-26T00:00:00Z"),
            ("google.protobuf.StringValue", wrappers_pb2.StringValue(value="hello"), "hello"),
            (
                "google.protobuf.UInt64Value",
                wrappers_pb2.UInt64Value(value=2**64 - 1),
                "18446744073709551615",
            ),
            (
                "google.protobuf.Struct",
                struct_pb2.Struct(fields={"plan": struct_pb2.Value(string_value="gold")}),
                {"plan": "gold"},
            ),
        ],
        ids=["timestamp", "string-value", "uint64-value", "struct"],
    )
    def test_renders_well_known_types(
        self, registry: TypeRegistry, manifest: str, message: Message, expected: Any
    ) -> None:
        assert rendered(registry, manifest, serialized(message)) == expected

    def test_renders_an_ego_any_with_its_known_message(self, registry: TypeRegistry, types: Types) -> None:
        inner = serialized(sample_account(types))
        inner_state = rendered(registry, ACCOUNT_STATE, inner)

        state = rendered(registry, ANY, ego_envelope(ACCOUNT_STATE, inner))

        assert isinstance(inner_state, dict)
        assert state == {"@type": TYPE_URL_PREFIX + ACCOUNT_STATE, **inner_state}

    def test_renders_an_ego_any_holding_a_well_known_type(self, registry: TypeRegistry) -> None:
        timestamp = timestamp_pb2.Timestamp(seconds=OPENED_AT).SerializeToString()

        state = rendered(registry, ANY, ego_envelope("google.protobuf.Timestamp", timestamp))

        assert state == {
            "@type": TYPE_URL_PREFIX + "google.protobuf.Timestamp",
            "value": "2025-11-26T00:00:00Z",
        }

    def test_gives_none_for_an_ego_any_of_unknown_type(self, registry: TypeRegistry) -> None:
        assert rendered(registry, ANY, ego_envelope("acme.orders.v1.OrderState", b"\x0a\x03abc")) is None

    def test_gives_none_when_a_nested_any_holds_an_unknown_type(
        self, registry: TypeRegistry, types: Types
    ) -> None:
        account = types[ACCOUNT_STATE](account_id="account-42")
        account.metadata.type_url = TYPE_URL_PREFIX + "acme.orders.v1.OrderState"  # type: ignore[attr-defined]

        assert rendered(registry, ACCOUNT_STATE, serialized(account)) is None

    def test_gives_none_for_an_unknown_manifest(self, registry: TypeRegistry) -> None:
        assert rendered(registry, "acme.orders.v1.OrderState", b"\x0a\x03abc") is None

    @pytest.mark.parametrize(
        ("manifest", "payload", "reason"),
        [
            (ACCOUNT_STATE, b"\xff\xff\xff", "corrupt"),
            (ANY, ego_envelope(ACCOUNT_STATE, b"\xff"), "corrupt"),
            (ANY, nested_anys(150), "nested more than 100 levels"),
            (
                "google.protobuf.Timestamp",
                timestamp_pb2.Timestamp(seconds=2**40).SerializeToString(),
                "no JSON",
            ),
        ],
        ids=["corrupt", "corrupt-inside-any", "too-deep", "timestamp-out-of-range"],
    )
    def test_refuses_stored_bytes_that_do_not_fit_their_known_type(
        self, registry: TypeRegistry, manifest: str, payload: bytes, reason: str
    ) -> None:
        with pytest.raises(InvalidState, match=reason) as raised:
            rendered(registry, manifest, payload)
        assert manifest in raised.value.detail


class TestDecodeCosts:
    def test_renders_the_known_fields_and_says_unknown_ones_were_there(
        self, registry: TypeRegistry, types: Types
    ) -> None:
        payload = serialized(sample_account(types))
        decoded = registry.decode(ACCOUNT_STATE, payload + b"\x98\x06\x01")
        assert decoded is not None
        assert decoded.unknown_fields
        assert decoded.state == rendered(registry, ACCOUNT_STATE, payload)
        assert not registry.decode(ACCOUNT_STATE, payload).unknown_fields  # type: ignore[union-attr]

    def test_says_so_of_unknown_fields_inside_an_ego_any(self, registry: TypeRegistry) -> None:
        decoded = registry.decode(ANY, ego_envelope(ACCOUNT_STATE, b"\x0a\x01a\x98\x06\x01"))
        assert decoded is not None
        assert decoded.unknown_fields
        assert decoded.state["accountId"] == "a"

    def test_refuses_a_state_of_more_values_than_a_rendering_may_take(self, registry: TypeRegistry) -> None:
        """400 KB of empty entries are 200,000 JSON objects: refused, pointing at the payload."""
        empty_entries = b"\x5a\x00" * 200_000
        with pytest.raises(InvalidState, match="read its payload instead"):
            registry.decode(ACCOUNT_STATE, empty_entries)

    def test_renders_a_state_of_as_many_values_as_allowed(self, registry: TypeRegistry) -> None:
        entries = b"\x5a\x00" * MAX_RENDERED_VALUES
        assert len(rendered(registry, ACCOUNT_STATE, entries)["recentEntries"]) == MAX_RENDERED_VALUES

    def test_counts_the_values_it_rendered(self, registry: TypeRegistry) -> None:
        """Three entries and the account id: what an answer's rendering budget is charged."""
        decoded = registry.decode(ACCOUNT_STATE, b"\x0a\x01a" + b"\x5a\x00" * 3)
        assert decoded is not None
        assert decoded.values == 4

    def test_refuses_more_values_than_the_caller_allows(self, registry: TypeRegistry) -> None:
        entries = b"\x5a\x00" * 11
        assert registry.decode(ACCOUNT_STATE, entries, max_values=11) is not None
        with pytest.raises(TooManyValues):
            registry.decode(ACCOUNT_STATE, entries, max_values=10)


class TestCheckCosts:
    @pytest.mark.parametrize(
        ("manifest", "size", "quick"),
        [
            ("google.protobuf.BytesValue", 400_000, True),  # one field, whatever its size
            ("acme.billing.v1.Money", 400_000, True),  # no repeated message reachable
            (ACCOUNT_STATE, QUICK_CHECK_BYTES, True),
            (ACCOUNT_STATE, QUICK_CHECK_BYTES + 1, False),  # repeated entries, maps, an Any
            ("acme.billing.v1.PostalAddress", 400_000, True),  # repeated strings: parsed in C
            ("google.protobuf.Struct", QUICK_CHECK_BYTES + 1, False),  # a map of Values
            (ANY, QUICK_CHECK_BYTES + 1, False),  # it may hold anything
            ("acme.orders.v1.OrderState", 400_000, True),  # unknown: nothing to check
        ],
    )
    def test_is_quick_unless_the_type_can_repeat_messages(
        self, registry: TypeRegistry, manifest: str, size: int, quick: bool
    ) -> None:
        assert registry.checks_quickly(manifest, size) is quick


class TestFromJson:
    def test_refuses_a_state_of_more_values_than_a_parse_may_take(self, registry: TypeRegistry) -> None:
        """Counted on the JSON before any parse: the object, the list and its entries."""
        allowed: dict[str, list[object]] = {"recentEntries": [{}] * (MAX_RENDERED_VALUES - 2)}
        assert registry.from_json(ACCOUNT_STATE, allowed) == b"\x5a\x00" * (MAX_RENDERED_VALUES - 2)
        with pytest.raises(TooManyValues, match="send its serialized payload instead"):
            registry.check_json_state(ACCOUNT_STATE, {"recentEntries": [{}] * (MAX_RENDERED_VALUES - 1)})

    def test_round_trips_to_identical_bytes(self, registry: TypeRegistry, types: Types) -> None:
        payload = serialized(sample_account(types))
        state = json.loads(json.dumps(rendered(registry, ACCOUNT_STATE, payload)))

        assert registry.from_json(ACCOUNT_STATE, state) == payload

    def test_round_trips_an_ego_any_to_identical_bytes(self, registry: TypeRegistry, types: Types) -> None:
        payload = ego_envelope(ACCOUNT_STATE, serialized(sample_account(types)))
        state = json.loads(json.dumps(rendered(registry, ANY, payload)))

        assert registry.from_json(ANY, state) == payload

    def test_accepts_original_field_names_as_well(self, registry: TypeRegistry, types: Types) -> None:
        payload = registry.from_json(
            ACCOUNT_STATE, {"account_id": "account-42", "overdraft_limit_units": "-5"}
        )

        assert payload == serialized(types[ACCOUNT_STATE](account_id="account-42", overdraft_limit_units=-5))

    @pytest.mark.parametrize(
        ("manifest", "state", "message"),
        [
            ("google.protobuf.StringValue", "hello", wrappers_pb2.StringValue(value="hello")),
            ("google.protobuf.Timestamp", "2025-11-26T00:00:00Z", timestamp_pb2.Timestamp(seconds=OPENED_AT)),
            ("google.protobuf.Value", None, struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)),
        ],
        ids=["string-value", "timestamp", "null-value"],
    )
    def test_writes_well_known_types_from_their_json_form(
        self, registry: TypeRegistry, manifest: str, state: Any, message: Message
    ) -> None:
        assert registry.from_json(manifest, state) == serialized(message)

    @pytest.mark.parametrize(
        ("state", "named"),
        [
            ({"balance": {"units": "lots"}}, ["balance", "units"]),
            ({"revision": "-1"}, ["revision"]),
            ({"status": "ACCOUNT_STATUS_HAPPY"}, ["status", "ACCOUNT_STATUS_HAPPY"]),
            ({"nickname": "Ann"}, ["nickname"]),
            ({"recentEntries": [{"bookedAt": "yesterday"}]}, ["recentEntries", "bookedAt"]),
            (
                {"metadata": {"@type": TYPE_URL_PREFIX + "acme.orders.v1.OrderState"}},
                ["metadata", "OrderState"],
            ),
            ({"metadata": {"currencyCode": "EUR"}}, ["metadata", "@type"]),
            ({"signingKey": "not base64!"}, ["signingKey"]),
            ([], ["JSON object"]),
            ("account-42", ["JSON object"]),
            (None, ["JSON object"]),
        ],
    )
    def test_refuses_a_state_that_does_not_fit_naming_the_field(
        self, registry: TypeRegistry, state: Any, named: list[str]
    ) -> None:
        with pytest.raises(InvalidState) as raised:
            registry.from_json(ACCOUNT_STATE, state)
        detail = raised.value.detail
        assert ACCOUNT_STATE in detail
        assert all(name in detail for name in named), detail
        assert "\n" not in detail

    @pytest.mark.parametrize(
        ("state", "named"),
        [([], "JSON object"), ({"@type": 7}, ANY), ({"value": "x"}, "@type is missing")],
        ids=["list-for-any", "number-type-url", "missing-type-url"],
    )
    def test_refuses_a_malformed_top_level_any(self, registry: TypeRegistry, state: Any, named: str) -> None:
        with pytest.raises(InvalidState, match=ANY) as raised:
            registry.from_json(ANY, state)
        assert named in raised.value.detail

    def test_refuses_an_unknown_manifest(self, registry: TypeRegistry) -> None:
        with pytest.raises(InvalidState, match=re.escape("acme.orders.v1.OrderState")):
            registry.from_json("acme.orders.v1.OrderState", {})

    def test_refuses_anys_nested_past_the_limit(self, registry: TypeRegistry) -> None:
        state: dict[str, Any] = {"@type": TYPE_URL_PREFIX + ACCOUNT_STATE, "accountId": "account-42"}
        for _ in range(60):
            state = {"@type": TYPE_URL_PREFIX + ACCOUNT_STATE, "metadata": state}
        with pytest.raises(InvalidState, match="nested more than 100 levels"):
            registry.from_json(ANY, state)

    def test_keeps_the_detail_short_when_the_state_is_large(self, registry: TypeRegistry) -> None:
        with pytest.raises(InvalidState, match="holds") as raised:
            registry.from_json(ACCOUNT_STATE, {"holds": ["x" * 10_000]})
        assert len(raised.value.detail) < 400

    def test_refuses_json_nested_past_the_limit(self, registry: TypeRegistry) -> None:
        state: Any = 1
        for _ in range(200):
            state = [state]
        with pytest.raises(InvalidState, match="too deep"):
            registry.from_json("google.protobuf.Value", state)


INVOICE = "acme.legacy.v1.Invoice"
LEDGER = "acme.legacy.v1.Ledger"
LEGACY_PROTO = """
syntax = "proto2";
package acme.legacy.v1;
import "google/protobuf/any.proto";

message Invoice {
  required string number = 1;
  optional int64 total_cents = 2;
  extensions 100 to 199;
}

extend Invoice { optional google.protobuf.Any attachment = 100; }

message CreditNote {
  optional string number = 1;
  extensions 100 to 199;
}

message Audit {
  extend CreditNote { optional Audit audit = 101; }
  optional google.protobuf.Any evidence = 1;
}

message Ledger {
  repeated Invoice invoices = 1;
  repeated CreditNote credit_notes = 2;
}
"""


def length_delimited(tag: bytes, content: bytes) -> bytes:
    assert len(content) < 128, "one-byte length"
    return tag + bytes([len(content)]) + content


def ledger_with_invoice_attachment(any_payload: bytes) -> bytes:
    invoice = b"\x0a\x03A-1" + length_delimited(b"\xa2\x06", any_payload)
    return length_delimited(b"\x0a", invoice)


def ledger_with_credit_note_audit(any_payload: bytes) -> bytes:
    credit_note = length_delimited(b"\xaa\x06", length_delimited(b"\x0a", any_payload))
    return length_delimited(b"\x12", credit_note)


ANY_IN_EXTENSION = pytest.mark.parametrize(
    "ledger_holding",
    [ledger_with_invoice_attachment, ledger_with_credit_note_audit],
    ids=["file-level-extension", "message-scoped-extension"],
)


class TestProto2:
    @pytest.fixture(scope="class")
    @classmethod
    def legacy_registry(cls, tmp_path_factory: pytest.TempPathFactory) -> TypeRegistry:
        folder = tmp_path_factory.mktemp("legacy")
        proto = folder / "legacy.proto"
        proto.write_text(LEGACY_PROTO)
        return TypeRegistry.load([build_descriptor_set(proto, folder / "legacy.pb")])

    def test_payload_missing_a_required_field_is_refused(self, legacy_registry: TypeRegistry) -> None:
        with pytest.raises(InvalidState, match="required fields are missing: number"):
            legacy_registry.check_payload(INVOICE, b"\x10\x05")

    def test_state_missing_a_required_field_is_refused(self, legacy_registry: TypeRegistry) -> None:
        with pytest.raises(InvalidState, match="required fields are missing: number"):
            legacy_registry.from_json(INVOICE, {"totalCents": "5"})

    def test_state_missing_a_required_field_inside_an_any_is_refused(
        self, legacy_registry: TypeRegistry
    ) -> None:
        attachment = {"@type": TYPE_URL_PREFIX + INVOICE, "totalCents": "5"}
        state = {"invoices": [{"number": "A-1", "[acme.legacy.v1.attachment]": attachment}]}
        with pytest.raises(InvalidState, match="missing required fields: number"):
            legacy_registry.from_json(LEDGER, state)

    def test_state_with_extensions_round_trips(self, legacy_registry: TypeRegistry) -> None:
        evidence = {"@type": TYPE_URL_PREFIX + INVOICE, "number": "A-0"}
        state = {
            "invoices": [{"number": "A-1", "totalCents": "5", "[acme.legacy.v1.attachment]": evidence}],
            "creditNotes": [{"number": "C-1", "[acme.legacy.v1.Audit.audit]": {"evidence": evidence}}],
        }

        payload = legacy_registry.from_json(LEDGER, state)

        assert rendered(legacy_registry, LEDGER, payload) == state

    @ANY_IN_EXTENSION
    def test_any_of_unknown_type_in_an_extension_decodes_to_none(
        self, legacy_registry: TypeRegistry, ledger_holding: Callable[[bytes], bytes]
    ) -> None:
        payload = ledger_holding(ego_envelope("acme.orders.v1.OrderState", b""))

        legacy_registry.check_payload(LEDGER, payload)
        assert rendered(legacy_registry, LEDGER, payload) is None

    @ANY_IN_EXTENSION
    def test_corrupt_any_in_an_extension_is_refused(
        self, legacy_registry: TypeRegistry, ledger_holding: Callable[[bytes], bytes]
    ) -> None:
        with pytest.raises(InvalidState, match="corrupt"):
            legacy_registry.check_payload(LEDGER, ledger_holding(ego_envelope(INVOICE, b"\xff")))


class TestDescriptorSetErrors:
    def test_missing_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "absent.pb"
        with pytest.raises(DescriptorSetError, match="cannot read") as raised:
            TypeRegistry.load([missing])
        assert str(missing) in str(raised.value)

    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            (b"\xff\xff\xff\xff", "do not parse"),
            (b"", "holds no .proto file"),
            (b"syntax = ", "do not parse"),
        ],
        ids=["garbage", "empty", "proto-source"],
    )
    def test_corrupt_file(self, tmp_path: Path, content: bytes, reason: str) -> None:
        corrupt = tmp_path / "corrupt.pb"
        corrupt.write_bytes(content)
        with pytest.raises(DescriptorSetError, match=reason) as raised:
            TypeRegistry.load([corrupt])
        assert str(corrupt) in str(raised.value)

    def test_truncated_file(self, tmp_path: Path, descriptor_set: Path) -> None:
        truncated = tmp_path / "truncated.pb"
        truncated.write_bytes(descriptor_set.read_bytes()[:-9])
        with pytest.raises(DescriptorSetError, match=re.escape(str(truncated))):
            TypeRegistry.load([truncated])

    def test_same_file_defining_a_message_differently(
        self, descriptor_set: Path, write_proto: Callable[..., Path]
    ) -> None:
        changed = write_proto(
            SAMPLE_PROTO.name, SAMPLE_PROTO.read_text().replace("uint64 revision", "int64 revision")
        )
        with pytest.raises(DescriptorSetError) as raised:
            TypeRegistry.load([descriptor_set, changed])
        message = str(raised.value)
        assert message.startswith(f"{changed}: {ACCOUNT_STATE} in sample.proto differs")
        assert str(descriptor_set) in message
        assert "\n" not in message

    def test_same_message_in_two_different_files(
        self, descriptor_set: Path, write_proto: Callable[..., Path]
    ) -> None:
        duplicate = write_proto(
            "money.proto", 'syntax = "proto3";\npackage acme.billing.v1;\nmessage Money {}\n'
        )
        with pytest.raises(
            DescriptorSetError, match=re.escape(f"{MONEY} in money.proto is already defined in sample.proto")
        ):
            TypeRegistry.load([descriptor_set, duplicate])

    def test_well_known_type_redefined_in_another_file(self, write_proto: Callable[..., Path]) -> None:
        impostor = write_proto(
            "clock.proto", 'syntax = "proto3";\npackage google.protobuf;\nmessage Timestamp {}\n'
        )
        with pytest.raises(
            DescriptorSetError, match=re.escape("already defined in google/protobuf/timestamp.proto")
        ):
            TypeRegistry.load([impostor])

    @pytest.mark.parametrize("include_source_info", [False, True], ids=["plain", "with-source-info"])
    def test_identical_duplicates_load(
        self, descriptor_set: Path, write_proto: Callable[..., Path], include_source_info: bool
    ) -> None:
        statements = write_proto(
            "statements.proto",
            'syntax = "proto3";\npackage acme.billing.v1;\nimport "sample.proto";\n'
            "message StatementState { AccountState account = 1; repeated LedgerEntry entries = 2; }\n",
            include_source_info=include_source_info,
        )

        registry = TypeRegistry.load([descriptor_set, statements, descriptor_set])

        assert registry.knows("acme.billing.v1.StatementState")
        assert registry.knows(ACCOUNT_STATE)

    def test_a_sets_own_copy_of_a_well_known_type_gives_way_to_the_runtimes(
        self, tmp_path: Path, descriptor_set: Path
    ) -> None:
        files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
        timestamp = next(file for file in files.file if file.name == "google/protobuf/timestamp.proto")
        timestamp.message_type[0].field.add(
            name="zone", number=3, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING
        )
        altered = tmp_path / "altered.pb"
        altered.write_bytes(files.SerializeToString())

        registry = TypeRegistry.load([altered])

        zone_field = b"\x1a\x03UTC"
        with pytest.raises(InvalidState, match="does not define"):
            registry.check_payload("google.protobuf.Timestamp", zone_field, "reject")

    def test_set_without_imports_loads_when_another_set_has_them(
        self, descriptor_set: Path, write_proto: Callable[..., Path]
    ) -> None:
        bare = write_proto(
            "dunning.proto",
            'syntax = "proto3";\npackage acme.billing.v1;\nimport "sample.proto";\n'
            "message Dunning { Money fee = 1; }\n",
            include_imports=False,
        )

        assert TypeRegistry.load([bare, descriptor_set]).knows("acme.billing.v1.Dunning")
        with pytest.raises(
            DescriptorSetError, match=re.escape("imports sample.proto, which no descriptor set holds")
        ):
            TypeRegistry.load([bare])


class TestJsonRoundTripProperties:
    @settings(max_examples=150, deadline=None)
    @given(data=st.data())
    def test_any_account_state_survives_payload_json_payload(
        self, registry: TypeRegistry, types: Types, data: st.DataObject
    ) -> None:
        payload = serialized(data.draw(account_states(types)))
        registry.check_payload(ACCOUNT_STATE, payload)

        state = json.loads(json.dumps(rendered(registry, ACCOUNT_STATE, payload)))

        assert registry.from_json(ACCOUNT_STATE, state) == payload

    @settings(max_examples=50, deadline=None)
    @given(data=st.data())
    def test_any_ego_wrapped_account_state_survives_payload_json_payload(
        self, registry: TypeRegistry, types: Types, data: st.DataObject
    ) -> None:
        payload = serialized(packed(types, data.draw(account_states(types))))
        registry.check_payload(ANY, payload)

        state = json.loads(json.dumps(rendered(registry, ANY, payload)))

        assert registry.from_json(ANY, state) == payload
