"""AWS Signature Version 4, checked as a service checks it: from the request as it arrived on the wire.

Written from AWS's description of SigV4 (the canonical request, the string to sign, the derived key), with
no part of botocore, so that it can judge botocore's signer and the lean client's use of it. It covers what
DynamoDB's JSON protocol sends: a POST to `/` with no query, a signed payload hash, the `Authorization`
header. `problem` returns None for a request whose signature holds, else what is wrong with it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import quote

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<signature>[0-9a-f]{64})$"
)


def _headers(head: bytes) -> tuple[str, str, dict[str, list[str]]]:
    """The method, the target and each header's values (names lowercased) of a request head."""
    request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return method, target, headers


def _canonical_value(values: list[str]) -> str:
    return ",".join(" ".join(value.split()) for value in values)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def problem(head: bytes, body: bytes, secrets: dict[str, str]) -> str | None:
    """Why the request of `head` and `body` is not signed by one of `secrets` (access key id to secret key)
    for what it sends; None when its signature holds."""
    method, target, headers = _headers(head)
    authorization = _AUTHORIZATION.match(_canonical_value(headers.get("authorization", [])))
    if authorization is None:
        return f"no SigV4 Authorization header: {headers.get('authorization')}"
    secret = secrets.get(authorization["key"])
    if secret is None:
        return f"unknown access key {authorization['key']}"
    signed = authorization["signed"].split(";")
    if signed != sorted(signed) or "host" not in signed:
        return f"signed headers not sorted, or without host: {signed}"
    unsigned = [name for name in headers if name.startswith("x-amz-") and name not in signed]
    if unsigned:
        return f"x-amz- headers sent unsigned: {unsigned}"
    if any(name not in headers for name in signed):
        return f"a signed header was not sent: {signed} against {sorted(headers)}"
    amz_date = _canonical_value(headers.get("x-amz-date", []))
    if amz_date[:8] != authorization["date"]:
        return f"X-Amz-Date {amz_date!r} is not of the credential's day {authorization['date']}"
    path, _, query = target.partition("?")
    canonical_request = "\n".join(
        [
            method,
            quote(path, safe="/~"),
            "&".join(sorted(query.split("&"))) if query else "",
            *(f"{name}:{_canonical_value(headers[name])}" for name in signed),
            "",
            authorization["signed"],
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{authorization['date']}/{authorization['region']}/{authorization['service']}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (authorization["date"], authorization["region"], authorization["service"], "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, authorization["signature"]):
        return f"the signature does not hold; canonical request:\n{canonical_request}"
    return None
