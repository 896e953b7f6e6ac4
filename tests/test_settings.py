"""Settings come from the contract's variables; a bad one stops start-up with one line naming it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from app.settings import Settings, SettingsError, load_settings
from scripts.servers import free_port, service_command


def test_defaults_match_the_contract() -> None:
    settings = load_settings()
    assert settings.backend == "sqlite"
    assert settings.sqlite_path == Path("./data/statestore.db")
    assert settings.dynamodb_table == "states_store"
    assert settings.endpoint_url is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.log_level == "info"
    assert settings.api_keys == ()
    assert settings.descriptor_sets == ()
    assert settings.manifest_policy == "permissive"
    assert settings.version_guard == "off"
    assert settings.timestamp_unit == "ms"
    assert settings.unknown_fields == "keep"
    assert settings.send_timeout_seconds == 30


def test_every_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "BACKEND": "DynamoDB",
        "SQLITE_PATH": "/tmp/x.db",
        "DYNAMODB_TABLE": "my_table",
        "DYNAMODB_ENDPOINT_URL": "http://localhost:8000/",
        "HOST": "0.0.0.0",
        "PORT": "9000",
        "LOG_LEVEL": "DEBUG",
        "API_KEYS": "first-key-of-three, second-key-of-three,,third-key-of-three",
        "DESCRIPTOR_SETS": "a.pb,b.pb",
        "MANIFEST_POLICY": "strict",
        "VERSION_GUARD": "monotonic",
        "TIMESTAMP_UNIT": "NS",
        "UNKNOWN_FIELDS": "Reject",
        "SEND_TIMEOUT_SECONDS": "2.5",
    }.items():
        monkeypatch.setenv(f"STATESTORE_{name}", value)
    settings = load_settings()
    assert settings == Settings(
        backend="dynamodb",
        sqlite_path=Path("/tmp/x.db"),
        dynamodb_table="my_table",
        dynamodb_endpoint_url="http://localhost:8000/",
        host="0.0.0.0",
        port=9000,
        log_level="debug",
        api_keys=("first-key-of-three", "second-key-of-three", "third-key-of-three"),
        descriptor_sets=(Path("a.pb"), Path("b.pb")),
        manifest_policy="strict",
        version_guard="monotonic",
        timestamp_unit="ns",
        unknown_fields="reject",
        send_timeout_seconds=2.5,
    )
    assert settings.endpoint_url == "http://localhost:8000"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BACKEND", "postgres"),
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("LOG_LEVEL", "verbose"),
        ("DYNAMODB_ENDPOINT_URL", "localhost:8000"),
        ("DYNAMODB_TABLE", "a b"),
        ("MANIFEST_POLICY", "lenient"),
        ("VERSION_GUARD", "strict"),
        ("TIMESTAMP_UNIT", "us"),
        ("TIMESTAMP_UNIT", "seconds"),
        ("TIMESTAMP_UNIT", ""),
        ("UNKNOWN_FIELDS", "drop"),
        ("SEND_TIMEOUT_SECONDS", "0"),
        ("SEND_TIMEOUT_SECONDS", "-1"),
    ],
)
def test_a_bad_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"STATESTORE_{name}", value)
    with pytest.raises(SettingsError, match=f"^invalid setting STATESTORE_{name}: "):
        load_settings()


def test_api_keys_never_appear_in_the_error() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(api_keys=123)
    assert "123" not in str(raised.value)


@pytest.mark.parametrize(
    ("arguments", "env", "message"),
    [
        (["serve"], {"STATESTORE_BACKEND": "postgres"}, "invalid setting STATESTORE_BACKEND"),
        (["serve"], {"STATESTORE_PORT": "x"}, "invalid setting STATESTORE_PORT"),
        (["serve", "--port", "99999"], {}, "invalid value for --port"),
        (["openapi"], {"STATESTORE_LOG_LEVEL": "loud"}, "invalid setting STATESTORE_LOG_LEVEL"),
        (["serve"], {"STATESTORE_TIMESTAMP_UNIT": "us"}, "invalid setting STATESTORE_TIMESTAMP_UNIT"),
    ],
)
def test_the_cli_stops_with_one_line(arguments: list[str], env: dict[str, str], message: str) -> None:
    result = subprocess.run(
        service_command(*arguments),
        env={**os.environ, "STATESTORE_PORT": str(free_port()), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"statestore: {message}")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
