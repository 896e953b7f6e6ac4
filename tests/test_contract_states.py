"""The contract of `/states/{persistence_id}`, run against every backend over real HTTP."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from support.api import MANIFEST, assert_decimal_between, assert_problem, keyed, state_body, state_path
from support.services import ServiceFactory

MAX_UINT64 = 2**64 - 1
MAX_INT64 = 2**63 - 1
MIN_INT64 = -(2**63)


async def put(client: httpx.AsyncClient, persistence_id: str, body: object, **headers: str) -> httpx.Response:
    return await client.put(state_path(persistence_id), json=body, headers=headers)


async def assert_absent(client: httpx.AsyncClient, persistence_id: str) -> None:
    assert (await client.get(state_path(persistence_id))).status_code == 404


async def test_put_then_get_round_trips_every_field(client: httpx.AsyncClient, state_id: str) -> None:
    body = state_body(3, b"\x0a\x0aaccount-42\x10\x68", timestamp=1764115200000, shard=7)
    written = await put(client, state_id, body)
    assert written.status_code == 200
    assert written.headers["etag"] == '"3"'
    assert written.json() == {
        "persistence_id": state_id,
        "version_number": "3",
        "manifest": MANIFEST,
        "timestamp": "1764115200000",
        "shard": "7",
    }
    read = await client.get(state_path(state_id))
    assert read.status_code == 200
    assert read.headers["etag"] == '"3"'
    assert read.headers["content-type"] == "application/json"
    assert read.headers["cache-control"] == "no-cache"
    assert read.json() == {**written.json(), "payload": body["payload"]}


async def test_extreme_numbers_round_trip_exactly(client: httpx.AsyncClient, state_id: str) -> None:
    body = state_body(MAX_UINT64, timestamp=MAX_INT64, shard=MAX_UINT64)
    assert (await put(client, state_id, body)).status_code == 200
    read = await client.get(state_path(state_id))
    assert read.headers["etag"] == f'"{MAX_UINT64}"'
    assert read.json()["version_number"] == "18446744073709551615"
    assert read.json()["timestamp"] == "9223372036854775807"
    assert read.json()["shard"] == "18446744073709551615"


async def test_zero_values_and_an_empty_payload_are_valid(client: httpx.AsyncClient, state_id: str) -> None:
    assert (await put(client, state_id, state_body(0, b"", timestamp=0))).status_code == 200
    read = (await client.get(state_path(state_id))).json()
    assert (read["payload"], read["version_number"], read["timestamp"], read["shard"]) == ("", "0", "0", "0")


async def test_omitted_timestamp_is_server_time_in_milliseconds(
    client: httpx.AsyncClient, state_id: str
) -> None:
    before = time.time_ns() // 1_000_000
    written = await put(client, state_id, state_body(1))
    after = time.time_ns() // 1_000_000
    assert_decimal_between(written.json()["timestamp"], before, after)
    assert written.json()["shard"] == "0"


@pytest.mark.parametrize(
    "suffix",
    ["a/b/c", "tenant:42|order 7", "ünïcødé-日本-🙂", "percent%2Fliteral", "?#&=+", "trailing/", "x" * 2000],
)
async def test_ids_round_trip(client: httpx.AsyncClient, state_id: str, suffix: str) -> None:
    persistence_id = f"{state_id}-{suffix}"[:2048]
    assert (await put(client, persistence_id, state_body(1))).status_code == 200
    read = await client.get(state_path(persistence_id))
    assert read.json()["persistence_id"] == persistence_id
    assert (await client.delete(state_path(persistence_id))).status_code == 204
    await assert_absent(client, persistence_id)


async def test_an_id_of_exactly_2048_bytes_is_accepted(client: httpx.AsyncClient, state_id: str) -> None:
    persistence_id = (state_id + "é" * 2048).encode()[:2048].decode(errors="ignore")
    persistence_id += "x" * (2048 - len(persistence_id.encode()))
    assert len(persistence_id.encode()) == 2048
    assert (await put(client, persistence_id, state_body(1))).status_code == 200
    assert (await client.get(state_path(persistence_id))).status_code == 200


@pytest.mark.parametrize(
    "raw_id",
    ["x" * 2049, "é" * 1025, "line%0Abreak", "nul%00", "del%7F", "c1%C2%85", "%FF%FE", ""],
    ids=["2049-bytes", "2050-utf8-bytes", "newline", "nul", "del", "c1-control", "invalid-utf8", "empty"],
)
async def test_bad_ids_are_refused_and_nothing_is_stored(client: httpx.AsyncClient, raw_id: str) -> None:
    path = f"/states/{raw_id}"
    problem = assert_problem(await client.put(path, json=state_body(1)), 422)
    assert problem["errors"][0]["loc"] == ["path", "persistence_id"]
    assert_problem(await client.get(path), 422)


async def test_body_id_must_equal_the_path_id(client: httpx.AsyncClient, state_id: str) -> None:
    assert (await put(client, state_id, state_body(1, persistence_id=state_id))).status_code == 200
    problem = assert_problem(await put(client, state_id, state_body(2, persistence_id="other")), 422)
    assert problem["errors"] == [
        {"loc": ["body", "persistence_id"], "msg": "must equal the persistence id in the path"}
    ]
    assert (await client.get(state_path(state_id))).json()["version_number"] == "1"


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("+/+/", b"\xfb\xff\xbf"),
        ("-_-_", b"\xfb\xff\xbf"),
        ("QQ", b"A"),
        ("QQ==", b"A"),
        ("QUI", b"AB"),
        ("QUI=", b"AB"),
        ("_w", b"\xff"),
    ],
)
async def test_payload_base64_forms_are_accepted_and_answered_standard(
    client: httpx.AsyncClient, state_id: str, encoded: str, decoded: bytes
) -> None:
    body = {"manifest": MANIFEST, "payload": encoded, "version_number": 1}
    assert (await put(client, state_id, body)).status_code == 200
    assert (await client.get(state_path(state_id))).json()["payload"] == base64.b64encode(decoded).decode()


@pytest.mark.parametrize(
    "payload",
    [
        "Q",
        "QQ=",
        "QQ===",
        "Q Q=",
        " QQ==",
        "QQ==\n",
        "QQ==QQ==",
        "+_",
        "QR==",
        "QUJ=",
        "Zm9v!",
        "=",
        "====",
        "Zg==Zg",
    ],
)
async def test_bad_base64_is_refused_never_cleaned(
    client: httpx.AsyncClient, state_id: str, payload: str
) -> None:
    problem = assert_problem(
        await put(client, state_id, {"manifest": MANIFEST, "payload": payload, "version_number": 1}), 422
    )
    assert problem["errors"][0]["loc"] == ["body", "payload"]
    await assert_absent(client, state_id)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version_number", -1),
        ("version_number", MAX_UINT64 + 1),
        ("version_number", 1.5),
        ("version_number", 2.0**53),  # a float from here on may not be the integer the client wrote
        ("version_number", True),
        ("version_number", None),
        ("version_number", [1]),
        ("timestamp", MAX_INT64 + 1),
        ("timestamp", MIN_INT64 - 1),
        ("timestamp", True),
        ("shard", MAX_UINT64 + 1),
        ("shard", -1),
        ("manifest", "acme..State"),
        ("manifest", "1acme.State"),
        ("manifest", "acme/State"),
        ("manifest", ""),
        ("manifest", "a" * 513),
        ("manifest", 7),
        ("payload", 7),
        ("unknown_field", 1),
    ],
)
async def test_invalid_fields_are_refused(
    client: httpx.AsyncClient, state_id: str, field: str, value: object
) -> None:
    problem = assert_problem(await put(client, state_id, {**state_body(1), field: value}), 422)
    assert problem["errors"][0]["loc"] == ["body", field]
    assert "input" not in problem["errors"][0]
    await assert_absent(client, state_id)


async def test_an_integral_number_written_with_a_fraction_is_that_integer(
    client: httpx.AsyncClient, state_id: str
) -> None:
    # JSON Schema's `integer` (and protobuf's JSON mapping) count 3.0 as 3.
    written = await put(
        client, state_id, {**state_body(0), "version_number": 3.0, "timestamp": 5.0, "shard": 7.0}
    )
    assert written.status_code == 200, written.text
    assert (written.json()["version_number"], written.json()["timestamp"], written.json()["shard"]) == (
        "3",
        "5",
        "7",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version_number", "18446744073709551615"),
        ("version_number", "0"),
        ("timestamp", "-62135596800"),  # eGo's zero time.Time, in seconds
        ("timestamp", "1764115200123456789"),  # eGo's nanoseconds
        ("timestamp", "-9223372036854775808"),
        ("timestamp", "9223372036854775807"),
        ("shard", "18446744073709551615"),
        ("shard", "7"),
    ],
)
async def test_every_64_bit_field_takes_a_string_of_its_decimal_digits(
    client: httpx.AsyncClient, state_id: str, field: str, value: str
) -> None:
    written = await put(client, state_id, {**state_body(1), field: value})
    assert written.status_code == 200, written.text
    assert written.json()[field] == value
    read = await client.get(state_path(state_id))
    assert read.json()[field] == value
    if field == "version_number":
        assert (written.headers["etag"], read.headers["etag"]) == (f'"{value}"', f'"{value}"')


@pytest.mark.parametrize(
    ("timestamp", "answered"),
    [
        (-1, "-1"),
        (-62135596800, "-62135596800"),  # eGo writes the zero time.Time when an actor stops early
        (-1764115200123456789, "-1764115200123456789"),
        (MIN_INT64, "-9223372036854775808"),
        (-5.0, "-5"),
    ],
)
async def test_a_negative_timestamp_round_trips(
    client: httpx.AsyncClient, state_id: str, timestamp: int | float, answered: str
) -> None:
    written = await put(client, state_id, state_body(1, timestamp=timestamp))
    assert written.status_code == 200, written.text
    assert written.json()["timestamp"] == answered
    assert (await client.get(state_path(state_id))).json()["timestamp"] == answered


@pytest.mark.parametrize("field", ["version_number", "timestamp", "shard"])
@pytest.mark.parametrize(
    "value",
    [
        "+3",
        "03",
        "00",
        "-0",
        "3.0",
        "1e3",
        " 3",
        "3 ",
        "3\n",
        "",
        "0x10",
        "1_000",
        "\u0663",  # ARABIC-INDIC DIGIT THREE, a digit to int()
        "\uff13",  # FULLWIDTH DIGIT THREE
        "three",
        "18446744073709551616",  # 2^64, over every field
        "100000000000000000000",  # 21 digits
        2.0**60,  # a float above 2^53 may not be the integer the client wrote
    ],
)
async def test_a_64_bit_field_refuses_every_other_form_naming_the_field(
    client: httpx.AsyncClient, state_id: str, field: str, value: object
) -> None:
    problem = assert_problem(await put(client, state_id, {**state_body(1), field: value}), 422)
    assert [error["loc"] for error in problem["errors"]] == [["body", field]]
    await assert_absent(client, state_id)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version_number", "-1"),
        ("shard", "-1"),
        ("timestamp", "9223372036854775808"),
        ("timestamp", "-9223372036854775809"),
        ("timestamp", -(2.0**60)),
    ],
)
async def test_a_string_out_of_the_fields_range_is_refused_naming_the_field(
    client: httpx.AsyncClient, state_id: str, field: str, value: object
) -> None:
    problem = assert_problem(await put(client, state_id, {**state_body(1), field: value}), 422)
    assert [error["loc"] for error in problem["errors"]] == [["body", field]]
    await assert_absent(client, state_id)


@pytest.mark.parametrize(("unit", "per_second"), [("s", 1), ("ns", 1_000_000_000)])
def test_an_omitted_timestamp_is_server_time_in_the_configured_unit(
    backend: str, start_service: ServiceFactory, state_id: str, unit: str, per_second: int
) -> None:
    """`STATESTORE_TIMESTAMP_UNIT`, for tables shared with eGo actors that count seconds or nanoseconds."""
    with start_service(backend, timestamp_unit=unit) as url:
        before = time.time_ns()
        written = httpx.put(f"{url}{state_path(state_id)}", json=state_body(1), timeout=30)
        after = time.time_ns()
        read = httpx.get(f"{url}{state_path(state_id)}", timeout=30)
    assert written.status_code == 200, written.text
    nanoseconds = 1_000_000_000 // per_second
    assert_decimal_between(written.json()["timestamp"], before // nanoseconds, after // nanoseconds)
    assert read.json()["timestamp"] == written.json()["timestamp"]


async def test_a_512_character_manifest_is_accepted(client: httpx.AsyncClient, state_id: str) -> None:
    assert (await put(client, state_id, state_body(1, manifest="a" * 512))).status_code == 200


@pytest.mark.parametrize("missing", ["manifest", "payload", "version_number"])
async def test_required_fields(client: httpx.AsyncClient, state_id: str, missing: str) -> None:
    body = state_body(1)
    del body[missing]
    assert_problem(await put(client, state_id, body), 422)
    await assert_absent(client, state_id)


@pytest.mark.parametrize("body", ["not json", "[1, 2]", "{", ""])
async def test_malformed_json_is_refused(client: httpx.AsyncClient, state_id: str, body: str) -> None:
    response = await client.put(
        state_path(state_id), content=body, headers={"content-type": "application/json"}
    )
    assert assert_problem(response, 422)["errors"][0]["loc"][0] == "body"
    await assert_absent(client, state_id)


async def test_a_json_body_may_start_with_a_byte_order_mark(client: httpx.AsyncClient, state_id: str) -> None:
    body = b'\xef\xbb\xbf{"manifest": "a.B", "payload": "QQ==", "version_number": 1}'
    json_type = {"content-type": "application/json"}
    written = await client.put(state_path(state_id), content=body, headers=json_type)
    assert written.status_code == 200
    assert (await client.get(state_path(state_id))).json()["payload"] == "QQ=="


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_a_body_that_is_not_json_is_refused(
    client: httpx.AsyncClient, state_id: str, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = await client.put(state_path(state_id), content=b'{"manifest": "a.B"}', headers=headers)
    assert_problem(response, 415)
    await assert_absent(client, state_id)


async def test_json_with_charset_is_json(client: httpx.AsyncClient, state_id: str) -> None:
    response = await client.put(
        state_path(state_id),
        content=httpx.Request("PUT", "/", json=state_body(1)).content,
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


async def test_get_and_head_of_a_missing_state_are_404(client: httpx.AsyncClient, state_id: str) -> None:
    assert_problem(await client.get(state_path(state_id)), 404)
    head = await client.head(state_path(state_id))
    assert head.status_code == 404
    assert head.content == b""


async def test_head_answers_like_get_without_a_body(client: httpx.AsyncClient, state_id: str) -> None:
    await put(client, state_id, state_body(5))
    head = await client.head(state_path(state_id))
    assert head.status_code == 200
    assert head.headers["etag"] == '"5"'
    assert head.content == b""
    not_modified = await client.head(state_path(state_id), headers={"If-None-Match": '"5"'})
    assert not_modified.status_code == 304


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [('"3"', 304), ('W/"3"', 304), ('"2", "3"', 304), ("*", 304), ('"4"', 200), ('"03"', 200)],
)
async def test_if_none_match_on_get(
    client: httpx.AsyncClient, state_id: str, if_none_match: str, status: int
) -> None:
    await put(client, state_id, state_body(3))
    response = await client.get(state_path(state_id), headers={"If-None-Match": if_none_match})
    assert response.status_code == status
    assert response.headers["etag"] == '"3"'
    if status == 304:
        assert response.content == b""


@pytest.mark.parametrize("if_match", ['"3"', "3", '"1", "3"', "*", '"1" , "3"'])
async def test_if_match_lets_a_matching_write_through(
    client: httpx.AsyncClient, state_id: str, if_match: str
) -> None:
    await put(client, state_id, state_body(3))
    response = await put(client, state_id, state_body(4, b"next"), **{"If-Match": if_match})
    assert response.status_code == 200
    assert response.headers["etag"] == '"4"'


async def test_repeated_conditional_header_fields_are_one_list(
    client: httpx.AsyncClient, state_id: str
) -> None:
    await put(client, state_id, state_body(3))
    tags = [("If-Match", '"1"'), ("If-Match", '"3"')]
    written = await client.put(state_path(state_id), json=state_body(4), headers=tags)
    assert written.status_code == 200
    not_modified = [("If-None-Match", '"1"'), ("If-None-Match", '"4"')]
    assert (await client.get(state_path(state_id), headers=not_modified)).status_code == 304


@pytest.mark.parametrize(("value", "decoded"), [("true", True), ("1", True), ("YES", True), ("false", False)])
async def test_decode_reads_the_booleans_a_query_can_spell(
    client: httpx.AsyncClient, state_id: str, value: str, decoded: bool
) -> None:
    await put(client, state_id, state_body(1))
    read = await client.get(state_path(state_id), params={"decode": value})
    assert ("state" in read.json()) is decoded


async def test_a_decode_that_is_no_boolean_is_refused(client: httpx.AsyncClient, state_id: str) -> None:
    await put(client, state_id, state_body(1))
    problem = assert_problem(await client.get(state_path(state_id), params={"decode": "maybe"}), 422)
    assert problem["errors"][0]["loc"] == ["query", "decode"]


@pytest.mark.parametrize("if_match", ['"2"', "2", 'W/"3"', '"abc"', '"03"'])
async def test_if_match_refuses_a_stale_write(
    client: httpx.AsyncClient, state_id: str, if_match: str
) -> None:
    await put(client, state_id, state_body(3))
    problem = assert_problem(
        await put(client, state_id, state_body(4, b"next"), **{"If-Match": if_match}), 412
    )
    assert problem["current_version"] == "3"
    assert (await client.get(state_path(state_id))).json()["version_number"] == "3"


@pytest.mark.parametrize("if_match", ['"1"', "*"])
async def test_if_match_on_a_missing_state_fails(
    client: httpx.AsyncClient, state_id: str, if_match: str
) -> None:
    problem = assert_problem(await put(client, state_id, state_body(1), **{"If-Match": if_match}), 412)
    assert "current_version" not in problem
    problem = assert_problem(await client.delete(state_path(state_id), headers={"If-Match": if_match}), 412)
    assert "current_version" not in problem
    await assert_absent(client, state_id)


@pytest.mark.parametrize("header", ["If-Match", "If-None-Match"])
@pytest.mark.parametrize("value", ['"3', "3 4", "abc", "", '"1",,x'])
async def test_malformed_conditional_headers_are_400(
    client: httpx.AsyncClient, state_id: str, header: str, value: str
) -> None:
    assert_problem(await put(client, state_id, state_body(1), **{header: value}), 400)
    await assert_absent(client, state_id)


async def test_if_none_match_star_creates_only(client: httpx.AsyncClient, state_id: str) -> None:
    created = await put(client, state_id, state_body(1), **{"If-None-Match": "*"})
    assert created.status_code == 201
    assert created.headers["location"] == state_path(state_id)
    problem = assert_problem(
        await put(client, state_id, state_body(2, b"other"), **{"If-None-Match": "*"}), 412
    )
    assert problem["current_version"] == "1"


async def test_a_retried_create_succeeds(client: httpx.AsyncClient, state_id: str) -> None:
    body, create = state_body(1), {"If-None-Match": "*", **keyed(state_id)}
    assert (await put(client, state_id, body, **create)).status_code == 201
    retried = await put(client, state_id, body, **create)
    assert retried.status_code == 201
    assert retried.headers["etag"] == '"1"'


async def test_a_retried_compare_and_set_succeeds(client: httpx.AsyncClient, state_id: str) -> None:
    await put(client, state_id, state_body(3))
    compare_and_set = {"If-Match": '"3"', **keyed(state_id)}
    first = await put(client, state_id, state_body(4, b"next"), **compare_and_set)
    retried = await put(client, state_id, state_body(4, b"next"), **compare_and_set)
    assert (first.status_code, retried.status_code) == (200, 200)
    assert retried.json() == first.json()
    other = await put(client, state_id, state_body(4, b"different"), **{"If-Match": '"3"'})
    assert assert_problem(other, 412)["current_version"] == "4"


async def test_unconditional_writes_are_last_write_wins(client: httpx.AsyncClient, state_id: str) -> None:
    await put(client, state_id, state_body(5))
    assert (await put(client, state_id, state_body(2, b"older"))).status_code == 200
    assert (await client.get(state_path(state_id))).json()["version_number"] == "2"


async def test_delete_is_idempotent(client: httpx.AsyncClient, state_id: str) -> None:
    await put(client, state_id, state_body(1))
    assert (await client.delete(state_path(state_id))).status_code == 204
    await assert_absent(client, state_id)
    again = await client.delete(state_path(state_id))
    assert again.status_code == 204
    assert again.content == b""


async def test_conditional_delete(client: httpx.AsyncClient, state_id: str) -> None:
    await put(client, state_id, state_body(2))
    stale = assert_problem(await client.delete(state_path(state_id), headers={"If-Match": '"1"'}), 412)
    assert stale["current_version"] == "2"
    assert (await client.get(state_path(state_id))).status_code == 200
    assert (await client.delete(state_path(state_id), headers={"If-Match": '"2"'})).status_code == 204
    await assert_absent(client, state_id)


async def test_get_with_a_failing_if_match_is_412(client: httpx.AsyncClient, state_id: str) -> None:
    await put(client, state_id, state_body(2))
    assert (await client.get(state_path(state_id), headers={"If-Match": '"2"'})).status_code == 200
    assert (
        assert_problem(await client.get(state_path(state_id), headers={"If-Match": '"1"'}), 412)[
            "current_version"
        ]
        == "2"
    )


async def test_probes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json()["status"] == "ready"  # the rest: tests/test_readiness.py


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_probes_answer_head_as_get_without_a_body(client: httpx.AsyncClient, path: str) -> None:
    got = await client.get(path)
    head = await client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


async def test_unknown_routes_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nothing-here"), 404)
    not_allowed = await client.post("/states/x", json={})
    assert_problem(not_allowed, 405)
    assert not_allowed.headers["allow"] == "DELETE, GET, HEAD, PUT"


async def test_a_404_is_not_cached(client: httpx.AsyncClient, state_id: str) -> None:
    assert (await client.get(state_path(state_id))).headers["cache-control"] == "no-cache"
