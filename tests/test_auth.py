"""API keys: `Authorization: Bearer <key>` on every `/states…` call when keys are set; probes stay open."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.http import middleware as auth
from app.http.api_keys import KeyRing
from app.settings import SettingsError, load_settings
from support.api import assert_problem, state_body, state_path
from support.services import ServiceFactory

KEYS = ("first-key-of-two-keys", "second.key~with+b64/chars==")
CHALLENGE = 'Bearer realm="statestore"'


@pytest.fixture(scope="module")
def url(start_service: ServiceFactory) -> Iterator[str]:
    with start_service("sqlite", api_keys=KEYS) as service_url:
        yield service_url


@pytest.fixture
async def client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url) as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("key", KEYS)
async def test_each_configured_key_opens_every_states_call(
    client: httpx.AsyncClient, state_id: str, key: str
) -> None:
    path = state_path(state_id)
    assert (await client.put(path, json=state_body(1), headers=bearer(key))).status_code == 200
    assert (await client.get(path, headers=bearer(key))).status_code == 200
    assert (await client.head(path, headers=bearer(key))).status_code == 200
    assert (await client.delete(path, headers=bearer(key))).status_code == 204


async def test_the_scheme_name_is_case_insensitive(client: httpx.AsyncClient) -> None:
    response = await client.get(state_path("x"), headers={"Authorization": f"bearer {KEYS[0]}"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, f"Basic {KEYS[0]}", "Bearer", f"Token {KEYS[0]}", KEYS[0]],
    ids=["missing", "basic-scheme", "no-token", "other-scheme", "no-scheme"],
)
async def test_a_call_without_bearer_credentials_is_401(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get(state_path("x"), headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == CHALLENGE


@pytest.mark.parametrize("token", ["wrong", KEYS[0][:-1], KEYS[0] + "x", KEYS[1].upper(), "first-key,second"])
async def test_a_wrong_key_is_401_invalid_token(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get(state_path("x"), headers=bearer(token))
    problem = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == f'{CHALLENGE}, error="invalid_token"'
    assert token not in response.text
    assert problem["type"].endswith(":unauthorized")


async def test_every_states_call_needs_a_key_and_the_key_comes_first(
    client: httpx.AsyncClient, state_id: str
) -> None:
    path = state_path(state_id)
    refused = [
        await client.get(path),
        await client.put(path, json=state_body(1)),
        await client.delete(path),
        await client.post(path, json={}),
        await client.put(path, content=b"not json"),  # would be 415 with a key
        await client.put(path, json={"manifest": 1}),  # would be 422 with a key
        await client.get("/states"),
        await client.post("/states:batchGet", json={}),
    ]
    for response in refused:
        assert_problem(response, 401)
    head = await client.head(path)
    assert (head.status_code, head.headers["www-authenticate"]) == (401, CHALLENGE)
    assert (await client.get(path, headers=bearer(KEYS[0]))).status_code == 404


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"])
async def test_probes_metrics_and_docs_stay_open(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200


def test_every_key_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[bytes] = []

    def compare_digest(presented: bytes, key_digest: bytes) -> bool:
        compared.append(key_digest)
        return presented == key_digest

    monkeypatch.setattr(hmac, "compare_digest", compare_digest)
    guard = auth.ApiKeyGuard(app=None, keys=KeyRing(KEYS))  # type: ignore[arg-type]
    assert isinstance(guard._presented([(b"authorization", f"Bearer {KEYS[0]}".encode())]), bytes)
    assert len(compared) == len(KEYS)


GOOD = "a-good-key-of-24-chars00"


@pytest.mark.parametrize(
    "keys",
    [
        f"{GOOD},has space here0000",
        f"{GOOD},ünicode-key-of-sixteen",
        'quote"d-key-of-sixteen',
        "=leading-padding-key-0",
    ],
)
def test_a_key_no_bearer_header_can_carry_stops_start_up_without_showing_it(keys: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(api_keys=keys)
    message = str(refused.value)
    assert "STATESTORE_API_KEYS" in message
    assert all(key not in message for key in keys.split(","))


def test_keys_are_comma_separated_and_trimmed() -> None:
    assert load_settings(api_keys=f" {GOOD} , {GOOD}2,,").api_keys == (GOOD, f"{GOOD}2")
    assert load_settings().api_keys == ()


@pytest.mark.parametrize("keys", ["", ",", " , ", ",,", "\n"])
def test_a_set_but_empty_key_list_stops_start_up(keys: str) -> None:
    """An operator who set the variable believes authentication is on: nothing must switch it off."""
    with pytest.raises(SettingsError, match=r"^invalid setting STATESTORE_API_KEYS: no key given"):
        load_settings(api_keys=keys)


@pytest.mark.parametrize("keys", ["Q9", "fifteen-chars-0", f"{GOOD},short"])
def test_a_key_shorter_than_16_characters_stops_start_up_without_showing_it(keys: str) -> None:
    with pytest.raises(SettingsError, match="at least 16 characters") as refused:
        load_settings(api_keys=keys)
    assert all(key not in str(refused.value) for key in keys.split(","))


async def test_two_authorization_headers_are_a_400(client: httpx.AsyncClient) -> None:
    """Proxies and frameworks disagree on which of two wins, so neither does."""
    for second in (KEYS[0], "not-a-key-at-all-really"):
        headers = [("Authorization", f"Bearer {KEYS[0]}"), ("Authorization", f"Bearer {second}")]
        response = await client.get(state_path("x"), headers=headers)
        assert_problem(response, 400)


async def test_a_root_path_does_not_open_the_states_calls() -> None:
    """Behind a proxy that mounts the app under a prefix, the server prepends it to the path."""
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(api_keys=KEYS))
    transport = httpx.ASGITransport(app=app, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://statestore") as client:
        response = await client.get("/api/states/x")
    assert_problem(response, 401)
