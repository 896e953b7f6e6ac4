"""Properties of the validators: what they accept, they read back exactly; what they refuse is refused."""

from __future__ import annotations

import base64
import re
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.api.conditions import ENTITY_TAGS_PATTERN, precondition_from_headers
from app.api.ids import MAX_ID_BYTES, check_persistence_id
from app.api.schemas import MANIFEST_PATTERN, PutStateRequest, decode_base64, encode_base64
from app.errors import BadRequest, InvalidState
from app.states.model import MAX_INT64, MAX_UINT64

FORMS = {
    "standard, padded": base64.b64encode,
    "standard, unpadded": lambda data: base64.b64encode(data).rstrip(b"="),
    "URL-safe, padded": base64.urlsafe_b64encode,
    "URL-safe, unpadded": lambda data: base64.urlsafe_b64encode(data).rstrip(b"="),
}
CONTROL = st.characters(codec="utf-8", categories=["Cc"])
NO_CONTROL = st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"])
MIN_INT64 = -MAX_INT64 - 1
DECIMAL_DIGITS = r"0|-?[1-9][0-9]*"


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
@given(data=st.binary(max_size=300))
def test_any_bytes_in_any_accepted_form_decode_back(form: object, data: bytes) -> None:
    assert decode_base64(form(data).decode()) == data  # type: ignore[operator]
    assert decode_base64(encode_base64(data)) == data


@given(
    data=st.binary(min_size=1, max_size=300),
    position=st.integers(min_value=0),
    foreign=st.sampled_from([" ", "\t", "\n", "\r", "\u200b", "\uff21", "é", "*", "."]),
)
def test_a_character_outside_the_alphabet_anywhere_is_refused_as_such(
    data: bytes, position: int, foreign: str
) -> None:
    text = base64.b64encode(data).decode()
    at = position % (len(text) + 1)
    with pytest.raises(ValueError, match="alphabet"):
        decode_base64(text[:at] + foreign + text[at:])


@given(data=st.binary(min_size=1, max_size=300).filter(lambda data: len(data) % 3), bit=st.integers(0, 3))
def test_a_last_character_with_bits_beyond_the_data_is_refused(data: bytes, bit: int) -> None:
    text = base64.b64encode(data).decode().rstrip("=")
    unused_bits = 4 if len(data) % 3 == 1 else 2
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    tampered = alphabet[alphabet.index(text[-1]) | (1 << (bit % unused_bits))]
    with pytest.raises(ValueError, match="payload"):
        decode_base64(text[:-1] + tampered)


@given(data=st.binary(max_size=300), extra=st.sampled_from(["=", "==", "===", "A", "A=", "===="]))
def test_a_length_no_padding_completes_is_refused(data: bytes, extra: str) -> None:
    with pytest.raises(ValueError, match="payload"):
        decode_base64(base64.b64encode(data).decode() + extra)


@given(data=st.binary(max_size=300), standard=st.sampled_from("+/"), url_safe=st.sampled_from("-_"))
def test_mixed_alphabets_are_refused(data: bytes, standard: str, url_safe: str) -> None:
    with pytest.raises(ValueError, match="payload"):
        decode_base64(standard + url_safe + base64.b64encode(data).decode().rstrip("="))


@given(text=st.text(alphabet=NO_CONTROL, min_size=1, max_size=600))
def test_ids_without_control_characters_within_2048_bytes_are_accepted(text: str) -> None:
    if len(text.encode()) <= MAX_ID_BYTES:
        assert check_persistence_id(text, ["path"]) == text
    else:
        with pytest.raises(InvalidState):
            check_persistence_id(text, ["path"])


@given(before=st.text(alphabet=NO_CONTROL, max_size=20), control=CONTROL, after=st.text(max_size=20))
def test_ids_with_a_control_character_are_refused(before: str, control: str, after: str) -> None:
    with pytest.raises(InvalidState, match="control"):
        check_persistence_id(before + control + after, ["path"])


def put_request(**fields: object) -> PutStateRequest:
    return PutStateRequest.model_validate({"manifest": "a.B", "payload": "", "version_number": 0, **fields})


@given(manifest=st.from_regex(MANIFEST_PATTERN, fullmatch=True).filter(lambda name: len(name) <= 512))
def test_every_protobuf_full_name_is_a_manifest(manifest: str) -> None:
    assert put_request(manifest=manifest).manifest == manifest


@given(manifest=st.text(max_size=40).filter(lambda name: not re.fullmatch(MANIFEST_PATTERN, name)))
@example(manifest="acme..State")
@example(manifest="acme.State\n")
def test_anything_else_is_no_manifest(manifest: str) -> None:
    with pytest.raises(ValidationError):
        put_request(manifest=manifest)


@given(number=st.integers(min_value=0, max_value=MAX_UINT64))
@example(number=MAX_UINT64)
def test_every_uint64_round_trips_exactly(number: int) -> None:
    request = put_request(version_number=number, shard=number)
    assert (request.version_number, request.shard) == (number, number)
    request = put_request(version_number=str(number), shard=str(number))
    assert (request.version_number, request.shard) == (number, number)


@given(number=st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_UINT64 + 1), st.booleans()))
@example(number=MAX_UINT64 + 1)
@example(number=-1)
def test_numbers_outside_uint64_are_refused(number: int) -> None:
    with pytest.raises(ValidationError):
        put_request(version_number=number)
    with pytest.raises(ValidationError):
        put_request(shard=str(number))


@given(number=st.integers(min_value=MIN_INT64, max_value=MAX_INT64))
@example(number=MIN_INT64)
@example(number=MAX_INT64)
@example(number=-62135596800)
def test_every_int64_timestamp_round_trips_exactly(number: int) -> None:
    assert put_request(timestamp=number).timestamp == number
    assert put_request(timestamp=str(number)).timestamp == number


@given(number=st.one_of(st.integers(max_value=MIN_INT64 - 1), st.integers(min_value=MAX_INT64 + 1)))
@example(number=MIN_INT64 - 1)
@example(number=MAX_INT64 + 1)
def test_timestamps_outside_int64_are_refused(number: int) -> None:
    with pytest.raises(ValidationError):
        put_request(timestamp=number)
    with pytest.raises(ValidationError):
        put_request(timestamp=str(number))


@pytest.mark.parametrize("field", ["version_number", "timestamp", "shard"])
@given(text=st.text(max_size=25).filter(lambda text: not re.fullmatch(DECIMAL_DIGITS, text)))
@example(text="-0")
@example(text="+3")
@example(text="03")
@example(text="3.0")
@example(text="1e3")
@example(text=" 3")
@example(text="3\n")
@example(text="")
@example(text="1_000")
@example(text="\u0663")
def test_a_string_other_than_an_integers_decimal_digits_is_refused(field: str, text: str) -> None:
    with pytest.raises(ValidationError) as refused:
        put_request(**{field: text})
    assert [error["loc"] for error in refused.value.errors()] == [(field,)]


@given(versions=st.lists(st.integers(min_value=0, max_value=MAX_UINT64), min_size=1, max_size=100))
def test_entity_tag_lists_read_back_as_their_versions(versions: list[int]) -> None:
    header = ", ".join(f'"{version}"' for version in versions)
    assert re.fullmatch(ENTITY_TAGS_PATTERN, header)
    assert precondition_from_headers(header, None).match == frozenset(versions)


@given(header=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60))
def test_a_conditional_header_is_read_exactly_when_it_matches_the_documented_pattern(header: str) -> None:
    if re.fullmatch(ENTITY_TAGS_PATTERN, header):
        precondition_from_headers(header, header)
    else:
        with pytest.raises(BadRequest):
            precondition_from_headers(header, None)


@settings(max_examples=5)
@given(filler=st.sampled_from([" ", "\t", '"1",', "1 ,"]))
def test_the_header_pattern_takes_linear_time_on_a_64_kib_header(filler: str) -> None:
    # Measured against itself on a header 16 times shorter, so that the machine's speed cancels out:
    # linear time grows 16-fold, the quadratic backtracking this guards against 256-fold.
    short, long = (refusal_seconds('"1"' + filler * (size // len(filler)) + "x") for size in (4096, 65536))
    assert long < 64 * short, f"{long * 1000:.2f} ms on 64 KiB, {short * 1000:.2f} ms on 4 KiB"


def refusal_seconds(header: str) -> float:
    """The least time of a few refusals of the header: the least is the one no other program slowed."""
    seconds = []
    for _ in range(5):
        started = time.perf_counter()
        with pytest.raises(BadRequest):
            precondition_from_headers(header, None)
        seconds.append(time.perf_counter() - started)
    return min(seconds)
