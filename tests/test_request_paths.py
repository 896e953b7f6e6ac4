"""One id per request: the id acted on is the id routed and logged, and no path is an alias of a state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.servers import serving_process
from support.api import state_body, state_path
from support.processes import json_lines
from support.raw_http import RawResponse, connect, read_response


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("paths")
    log = folder / "stderr.log"
    with serving_process(env={"STATESTORE_SQLITE_PATH": str(folder / "states.db")}, stderr_to=log) as (
        url,
        _,
    ):
        yield url, log


def send(url: str, method: str, target: str, request_id: str) -> int:
    return exchange(url, method, target, request_id).status


def exchange(url: str, method: str, target: str, request_id: str) -> RawResponse:
    """A request whose target goes out exactly as written, which no client library promises."""
    body = b'{"manifest": "a.B", "payload": "", "version_number": 9}' if method == "PUT" else b""
    lines = [
        f"{method} {target} HTTP/1.1",
        "Host: 127.0.0.1",
        "Connection: close",
        f"X-Request-ID: {request_id}",
    ]
    lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    with connect(url) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return read_response(sock)


ALIASES = {
    "encoded separator before states/": ("DELETE", "/states%2Ffoo/states/{id}"),
    "encoded letter of states": ("PUT", "/%73tates/foo/states/{id}"),
    "encoded first separator": ("GET", "/states%2F{id}"),
    "encoded first separator, written": ("PUT", "/states%2F{id}"),
}


@pytest.mark.parametrize(("method", "target"), ALIASES.values(), ids=ALIASES.keys())
def test_a_path_that_matches_only_once_decoded_is_refused_and_touches_no_state(
    served: tuple[str, Path], method: str, target: str
) -> None:
    url, log = served
    persistence_id = f"alias-{abs(hash((method, target)))}"
    assert httpx.put(f"{url}{state_path(persistence_id)}", json=state_body(1)).status_code == 200
    request_id = persistence_id
    assert send(url, method, target.format(id=persistence_id), request_id) in (404, 422)
    stored = httpx.get(f"{url}{state_path(persistence_id)}")
    assert (stored.status_code, stored.json()["version_number"]) == (200, "1")
    assert httpx.get(f"{url}{state_path('foo/states/' + persistence_id)}").status_code == 404
    logged = [line for line in json_lines(log) if line.get("request_id") == request_id]
    assert [line["persistence_id"] for line in logged] == [None]


def test_the_access_log_names_the_id_the_handler_acted_on(served: tuple[str, Path]) -> None:
    url, log = served
    assert send(url, "PUT", "/states/a%2Fstates%2Fb%20c", "named") == 200
    assert httpx.get(f"{url}{state_path('a/states/b c')}").json()["version_number"] == "9"
    logged = [line for line in json_lines(log) if line.get("request_id") == "named"]
    assert [line["persistence_id"] for line in logged] == ["a/states/b c"]


INVALID_TARGETS = {
    "a lone % at the end": ("PUT", "/states/pct%", "pct%"),
    "a % before non-hex digits": ("PUT", "/states/x%zz", "x%zz"),
    "a % before one hex digit": ("PUT", "/states/x%4", "x%4"),
    "a % before one hex digit and the end of the path": ("DELETE", "/states/x%4?", "x%4"),
    "a fragment": ("PUT", "/states/frag1#zzz", "frag1"),
    "a fragment on a read": ("GET", "/states/frag1#zzz", "frag1"),
    "a fragment after the query": ("GET", "/states?limit=1#x", None),
    "an invalid escape in the query": ("GET", "/states?prefix=%zz", None),
}


@pytest.mark.parametrize(("method", "target", "alias"), INVALID_TARGETS.values(), ids=INVALID_TARGETS.keys())
def test_an_invalid_escape_or_a_fragment_in_the_target_is_a_400_that_touches_no_state(
    served: tuple[str, Path], method: str, target: str, alias: str | None
) -> None:
    url, _ = served
    if alias is not None:
        assert httpx.put(f"{url}{state_path(alias)}", json=state_body(1)).status_code == 200
    response = exchange(url, method, target, "invalid-target")
    assert response.status == 400
    assert "two hex digits" in response.problem()["detail"]
    if alias is not None:
        stored = httpx.get(f"{url}{state_path(alias)}")
        assert (stored.status_code, stored.json()["version_number"]) == (200, "1")


def test_an_encoded_percent_names_the_id_with_a_percent(served: tuple[str, Path]) -> None:
    url, _ = served
    assert send(url, "PUT", "/states/pct%25", "percent") == 200
    assert send(url, "PUT", "/states/pct%25zz", "percent") == 200
    assert httpx.get(f"{url}{state_path('pct%')}").json()["version_number"] == "9"
    assert httpx.get(f"{url}{state_path('pct%zz')}").json()["version_number"] == "9"
