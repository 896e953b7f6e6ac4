"""Protobuf awareness over HTTP: validation, the manifest policy, decoding and JSON-state writes."""

from __future__ import annotations

import base64
import math
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _descriptors import message_classes
from google.protobuf import struct_pb2, timestamp_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from scripts.servers import free_port, service_command
from support.api import assert_problem, state_path
from support.messages import ACCOUNT_STATE, ANY, Types, account_states, ego_envelope, packed, serialized
from support.services import ServiceFactory


@pytest.fixture(scope="session")
def types(descriptor_set: Path) -> Types:
    return message_classes(descriptor_set)


@pytest.fixture(scope="module")
def aware_url(backend: str, start_service: ServiceFactory, descriptor_set: Path) -> Iterator[str]:
    with start_service(backend, descriptor_sets=(descriptor_set,)) as url:
        yield url


@pytest.fixture
async def aware(aware_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=aware_url, timeout=30) as client:
        yield client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def account(types: Types) -> bytes:
    balance = types["acme.billing.v1.Money"](currency_code="EUR", units=104)
    return serialized(
        types[ACCOUNT_STATE](account_id="account-42", revision=2**64 - 1, tags=["vip"], balance=balance)
    )


def put_body(manifest: str, version: int = 1, **fields: Any) -> dict[str, Any]:
    return {"manifest": manifest, "version_number": version, **fields}


async def test_a_valid_payload_of_a_known_type_is_stored_and_decoded(
    aware: httpx.AsyncClient, types: Types, state_id: str
) -> None:
    payload = account(types)
    assert (
        await aware.put(state_path(state_id), json=put_body(ACCOUNT_STATE, payload=b64(payload)))
    ).status_code == 200
    plain = (await aware.get(state_path(state_id))).json()
    assert "state" not in plain
    decoded = (await aware.get(state_path(state_id), params={"decode": "true"})).json()
    assert decoded["payload"] == b64(payload)
    assert decoded["state"] == {
        "accountId": "account-42",
        "revision": "18446744073709551615",
        "balance": {"currencyCode": "EUR", "units": "104"},
        "tags": ["vip"],
    }


@pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"\x0a\x05ab"], ids=["garbage", "truncated"])
async def test_an_invalid_payload_of_a_known_type_is_refused(
    aware: httpx.AsyncClient, state_id: str, payload: bytes
) -> None:
    problem = assert_problem(
        await aware.put(state_path(state_id), json=put_body(ACCOUNT_STATE, payload=b64(payload))), 422
    )
    assert ACCOUNT_STATE in problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", "payload"]
    assert (await aware.get(state_path(state_id))).status_code == 404


async def test_unknown_manifests_are_stored_opaquely_and_decode_to_null(
    aware: httpx.AsyncClient, state_id: str
) -> None:
    body = put_body("acme.other.v1.Unknown", payload=b64(b"\x01\x02"))
    assert (await aware.put(state_path(state_id), json=body)).status_code == 200
    assert (await aware.get(state_path(state_id), params={"decode": "true"})).json()["state"] is None


async def test_well_known_types_decode(aware: httpx.AsyncClient, state_id: str) -> None:
    stamp = timestamp_pb2.Timestamp(seconds=1_764_115_200, nanos=5_000_000).SerializeToString()
    await aware.put(state_path(state_id), json=put_body("google.protobuf.Timestamp", payload=b64(stamp)))
    state = (await aware.get(state_path(state_id), params={"decode": "true"})).json()["state"]
    assert state == "2025-11-26T00:00:00.005Z"


async def test_an_ego_any_decodes_with_its_inner_message(
    aware: httpx.AsyncClient, types: Types, state_id: str
) -> None:
    payload = ego_envelope(ACCOUNT_STATE, account(types))
    assert (
        await aware.put(state_path(state_id), json=put_body(ANY, payload=b64(payload)))
    ).status_code == 200
    state = (await aware.get(state_path(state_id), params={"decode": "true"})).json()["state"]
    assert state["@type"] == f"type.googleapis.com/{ACCOUNT_STATE}"
    assert state["accountId"] == "account-42"


async def test_an_ego_any_of_an_unknown_type_is_stored_and_decodes_to_null(
    aware: httpx.AsyncClient, state_id: str
) -> None:
    payload = ego_envelope("acme.other.v1.Unknown", b"\x08\x01")
    assert (
        await aware.put(state_path(state_id), json=put_body(ANY, payload=b64(payload)))
    ).status_code == 200
    assert (await aware.get(state_path(state_id), params={"decode": "true"})).json()["state"] is None


async def test_a_json_state_is_stored_as_the_serialized_message(
    aware: httpx.AsyncClient, types: Types, state_id: str
) -> None:
    state: dict[str, Any] = {"accountId": "account-42", "revision": "18446744073709551615", "tags": ["vip"]}
    state["balance"] = {"currencyCode": "EUR", "units": "104"}
    written = await aware.put(state_path(state_id), json=put_body(ACCOUNT_STATE, state=state))
    assert written.status_code == 200
    assert "state" not in written.json()
    read = (await aware.get(state_path(state_id), params={"decode": "true"})).json()
    assert read["payload"] == b64(account(types))
    assert read["state"] == state


async def test_a_json_state_of_an_ego_any(aware: httpx.AsyncClient, types: Types, state_id: str) -> None:
    state = {"@type": f"type.googleapis.com/{ACCOUNT_STATE}", "accountId": "account-7"}
    assert (await aware.put(state_path(state_id), json=put_body(ANY, state=state))).status_code == 200
    read = (await aware.get(state_path(state_id))).json()
    assert read["payload"] == b64(
        ego_envelope(ACCOUNT_STATE, serialized(types[ACCOUNT_STATE](account_id="account-7")))
    )


@pytest.mark.parametrize(
    ("manifest", "state", "words"),
    [
        (ACCOUNT_STATE, {"accountId": 7}, "accountId"),
        (ACCOUNT_STATE, {"noSuchField": 1}, "noSuchField"),
        (ACCOUNT_STATE, {"status": "NOT_A_STATUS"}, "status"),
        (ACCOUNT_STATE, [1, 2], "JSON object"),
        ("acme.other.v1.Unknown", {}, "known manifest"),
    ],
)
async def test_a_json_state_that_does_not_fit_is_refused(
    aware: httpx.AsyncClient, state_id: str, manifest: str, state: object, words: str
) -> None:
    problem = assert_problem(await aware.put(state_path(state_id), json=put_body(manifest, state=state)), 422)
    assert words in problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", "state"]
    assert (await aware.get(state_path(state_id))).status_code == 404


@pytest.mark.parametrize(
    "fields", [{}, {"payload": "", "state": {}}, {"payload": None}], ids=["neither", "both", "null-payload"]
)
async def test_exactly_one_of_payload_and_state(
    aware: httpx.AsyncClient, state_id: str, fields: dict[str, Any]
) -> None:
    assert_problem(await aware.put(state_path(state_id), json=put_body(ACCOUNT_STATE, **fields)), 422)
    assert (await aware.get(state_path(state_id))).status_code == 404


async def test_a_payload_with_fields_unknown_to_its_type_is_kept_byte_for_byte(
    aware: httpx.AsyncClient, types: Types, state_id: str
) -> None:
    """STATESTORE_UNKNOWN_FIELDS=keep (the default): a writer with a newer schema is not refused."""
    payload = account(types) + b"\xa2\x06\x01x"  # field 100, which AccountState does not define
    written = await aware.put(state_path(state_id), json=put_body(ACCOUNT_STATE, payload=b64(payload)))
    assert written.status_code == 200, written.text
    assert (await aware.get(state_path(state_id))).json()["payload"] == b64(payload)
    decoded = (await aware.get(state_path(state_id), params={"decode": "true"})).json()
    assert decoded["payload"] == b64(payload)
    assert decoded["state"]["accountId"] == "account-42"
    assert decoded["unknown_fields"] is True
    assert "unknown_fields" not in (await aware.get(state_path(state_id))).json()


async def test_unknown_fields_reject_refuses_them_as_v1_did(
    backend: str, start_service: ServiceFactory, descriptor_set: Path, types: Types, state_id: str
) -> None:
    with start_service(backend, descriptor_sets=(descriptor_set,), unknown_fields="reject") as url:
        async with httpx.AsyncClient(base_url=url) as rejecting:
            payload = account(types) + b"\xa2\x06\x01x"
            problem = assert_problem(
                await rejecting.put(state_path(state_id), json=put_body(ACCOUNT_STATE, payload=b64(payload))),
                422,
            )
            assert "does not define" in problem["detail"]
            assert problem["errors"][0]["loc"] == ["body", "payload"]
            assert (await rejecting.get(state_path(state_id))).status_code == 404


async def test_a_state_too_costly_to_render_is_a_422_that_points_at_the_payload(
    aware: httpx.AsyncClient, state_id: str
) -> None:
    """400 KB of empty ledger entries: 200,000 JSON objects, beyond what one rendering may take."""
    payload = b"\x5a\x00" * 200_000
    assert (
        await aware.put(state_path(state_id), json=put_body(ACCOUNT_STATE, payload=b64(payload)))
    ).status_code == 200
    problem = assert_problem(await aware.get(state_path(state_id), params={"decode": "true"}), 422)
    assert "read its payload instead" in problem["detail"]
    assert (await aware.get(state_path(state_id))).json()["payload"] == b64(payload)


async def test_a_state_that_cannot_be_rendered_does_not_fail_the_others(
    aware: httpx.AsyncClient, types: Types, state_id: str
) -> None:
    """In a batchGet, one state beyond the rendering cap, and one whose Value holds infinity (no JSON form):
    each is answered with `decode_error` and its payload, and the others are rendered."""
    costly, infinite, fine = f"{state_id}-costly", f"{state_id}-infinite", f"{state_id}-fine"
    payloads = {
        costly: (ACCOUNT_STATE, b"\x5a\x00" * 200_000),
        infinite: ("google.protobuf.Value", struct_pb2.Value(number_value=math.inf).SerializeToString()),
        fine: (ACCOUNT_STATE, account(types)),
    }
    for persistence_id, (manifest, payload) in payloads.items():
        written = await aware.put(state_path(persistence_id), json=put_body(manifest, payload=b64(payload)))
        assert written.status_code == 200, written.text

    batch = await aware.post(
        "/states:batchGet", json={"persistence_ids": list(payloads)}, params={"decode": "true"}
    )

    assert batch.status_code == 200, batch.text
    answered = {state["persistence_id"]: state for state in batch.json()["states"]}
    assert "read its payload instead" in answered[costly]["decode_error"]
    assert "no JSON form" in answered[infinite]["decode_error"]
    assert answered[costly]["state"] is None
    assert answered[infinite]["payload"] == b64(payloads[infinite][1])
    assert answered[fine]["state"]["accountId"] == "account-42"
    assert "decode_error" not in answered[fine]


async def test_a_json_state_beyond_a_double_s_range_is_refused(
    aware: httpx.AsyncClient, state_id: str
) -> None:
    """Parsed as infinity, it would be stored, then have no JSON form to be read back in."""
    body = '{"manifest": "google.protobuf.Struct", "state": {"a": 1e400}, "version_number": 1}'
    written = await aware.put(
        state_path(state_id), content=body, headers={"Content-Type": "application/json"}
    )

    problem = assert_problem(written, 422)
    assert "beyond a double's range" in problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", "state"]


async def test_the_strict_policy_refuses_unknown_manifests(
    backend: str, start_service: ServiceFactory, descriptor_set: Path, types: Types, state_id: str
) -> None:
    with start_service(backend, descriptor_sets=(descriptor_set,), manifest_policy="strict") as url:
        async with httpx.AsyncClient(base_url=url) as strict:
            unknown = await strict.put(
                state_path(state_id), json=put_body("acme.other.v1.Unknown", payload="")
            )
            problem = assert_problem(unknown, 422)
            assert "acme.other.v1.Unknown" in problem["detail"]
            assert problem["errors"][0]["loc"] == ["body", "manifest"]
            known = await strict.put(
                state_path(state_id), json=put_body(ACCOUNT_STATE, payload=b64(account(types)))
            )
            assert known.status_code == 200


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_any_account_state_survives_store_decode_and_json_write(
    aware_url: str, types: Types, data: st.DataObject
) -> None:
    message = data.draw(account_states(types))
    wrap = data.draw(st.booleans())
    manifest, payload = (
        (ANY, serialized(packed(types, message))) if wrap else (ACCOUNT_STATE, serialized(message))
    )
    with httpx.Client(base_url=aware_url, timeout=30) as client:
        path = state_path(f"property-{data.draw(st.uuids())}")
        assert client.put(path, json=put_body(manifest, payload=b64(payload))).status_code == 200
        state = client.get(path, params={"decode": "true"}).json()["state"]
        assert client.put(path, json=put_body(manifest, 2, state=state)).status_code == 200
        assert client.get(path).json()["payload"] == b64(payload)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "No such file"), (b"\xff\x00garbage", "do not parse"), (b"", "holds no .proto file")],
    ids=["missing", "corrupt", "empty"],
)
def test_bad_descriptor_sets_stop_start_up_in_one_line(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "states.binpb"
    if content is not None:
        path.write_bytes(content)
    env = {**os.environ, "STATESTORE_DESCRIPTOR_SETS": str(path), "STATESTORE_PORT": str(free_port())}
    env["STATESTORE_SQLITE_PATH"] = str(tmp_path / "s.db")
    result = subprocess.run(
        service_command("serve"), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"statestore: invalid setting STATESTORE_DESCRIPTOR_SETS: {path}")
    assert result.stderr.count("\n") == 1
    assert reason in result.stderr
