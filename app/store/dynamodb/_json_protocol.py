"""DynamoDB's JSON protocol (`application/x-amz-json-1.0`) as botocore reads and writes it: the lean client's.

A request is the operation's keyword arguments as JSON, every binary value in base64 (DynamoDB's `B` and
`BS`). An answer's attribute values come back as botocore gives them: `B` and `BS` as bytes, `M` and `L`
decoded all the way down, every other type (`S`, `N`, `SS`, `NS`, `BOOL`, `NULL`) as the JSON says. An
error answer becomes botocore's own `ClientError`, with the response dict botocore's JSON parser makes:
`Error.Code` from `__type` after its '#', `Error.Message`, and the error's modeled fields (a refused
condition's `Item`, a cancelled transaction's `CancellationReasons`) decoded the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pybase64

from app.json_bytes import json_bytes

# Where the answers of the hot calls hold attribute values: an item (a map of them), or collections of items.
_ITEM_FIELDS = ("Item", "Attributes")


def request_body(parameters: Mapping[str, Any]) -> bytes:
    return json_bytes(parameters, default=_base64)


def _base64(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return pybase64.b64encode_as_string(value)
    raise TypeError(f"{type(value).__name__} is not a DynamoDB attribute value")


def decode_value(value: dict[str, Any]) -> dict[str, Any]:
    """One AttributeValue as botocore parses it."""
    if "B" in value:
        return {"B": pybase64.b64decode(value["B"])}
    if "M" in value:
        return {"M": decode_item(value["M"])}
    if "L" in value:
        return {"L": [decode_value(element) for element in value["L"]]}
    if "BS" in value:
        return {"BS": [pybase64.b64decode(element) for element in value["BS"]]}
    return value


def decode_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: decode_value(value) for name, value in item.items()}


def decode_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """The attribute values of a parsed answer (or error body), decoded in place; the answer."""
    for field in _ITEM_FIELDS:
        if field in answer:
            answer[field] = decode_item(answer[field])
    if "Responses" in answer:  # BatchGetItem: the items read, by table
        answer["Responses"] = {
            table: [decode_item(item) for item in items] for table, items in answer["Responses"].items()
        }
    if "UnprocessedKeys" in answer:  # BatchGetItem: the keys left, by table
        for keys in answer["UnprocessedKeys"].values():
            keys["Keys"] = [decode_item(key) for key in keys["Keys"]]
    if "CancellationReasons" in answer:  # TransactWriteItems: a reason per item, with ALL_OLD's item
        for reason in answer["CancellationReasons"]:
            if "Item" in reason:
                reason["Item"] = decode_item(reason["Item"])
    return answer


def parsed_body(content: bytes) -> dict[str, Any]:
    """The JSON object of an answer; empty when it is none (an empty body, or a proxy's HTML page)."""
    try:
        body = orjson.loads(content) if content else {}
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def error_response(
    status: int, content: bytes, metadata: dict[str, Any], modeled: frozenset[str]
) -> dict[str, Any]:
    """The response dict of botocore's `ClientError` for an error answer; the fields of the body come along
    when its code is one of the operation's `modeled` errors, as botocore parses only those."""
    body = parsed_body(content)
    code = str(body.pop("__type", None) or status)
    code = code.split(":", 1)[0].rsplit("#", 1)[-1]
    message = body.get("message", body.get("Message", ""))
    fields = decode_answer(body) if code in modeled else {}
    return {**fields, "Error": {"Message": message, "Code": code}, "ResponseMetadata": metadata}
