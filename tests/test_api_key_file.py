"""API keys from a file (`STATESTORE_API_KEYS_FILE`, for container secrets), re-read on SIGHUP."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from app.settings import SettingsError, load_settings
from support.api import state_path
from support.processes import serving_sqlite

OLD_KEY = "the-old-key-of-the-file-0001"
NEW_KEY = "the-new-key-of-the-file-0002"


def status_with(url: str, key: str) -> int:
    return httpx.get(f"{url}{state_path('x')}", headers={"Authorization": f"Bearer {key}"}).status_code


def test_keys_rotate_on_sighup_without_a_restart(tmp_path: Path) -> None:
    key_file = tmp_path / "api-keys"
    key_file.write_text(f"{OLD_KEY}\n")
    settings = {"STATESTORE_API_KEYS_FILE": str(key_file)}
    with serving_sqlite(tmp_path / "states.db", settings) as (url, process):
        assert (status_with(url, OLD_KEY), status_with(url, NEW_KEY)) == (404, 401)
        key_file.write_text(f"{NEW_KEY}\n")
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30  # the signal is handled at once; 30 s only bounds a failure
        while status_with(url, NEW_KEY) != 404 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (status_with(url, OLD_KEY), status_with(url, NEW_KEY)) == (401, 404)
        key_file.write_text("")  # a file emptied by mistake keeps the keys it had
        process.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert process.poll() is None
        assert (status_with(url, OLD_KEY), status_with(url, NEW_KEY)) == (401, 404)


@pytest.mark.parametrize(
    ("content", "reason"),
    [("", "no key given"), ("\n \n", "no key given"), ("short\n", "each key must be at least 16 characters")],
)
def test_an_unusable_key_file_stops_start_up(tmp_path: Path, content: str, reason: str) -> None:
    key_file = tmp_path / "api-keys"
    key_file.write_text(content)
    with pytest.raises(SettingsError, match=rf"^invalid setting STATESTORE_API_KEYS_FILE: {reason}"):
        load_settings(api_keys_file=key_file)


def test_a_missing_key_file_or_two_sources_stop_start_up(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^invalid setting STATESTORE_API_KEYS_FILE: cannot read"):
        load_settings(api_keys_file=tmp_path / "absent")
    key_file = tmp_path / "api-keys"
    key_file.write_text(OLD_KEY)
    with pytest.raises(
        SettingsError,
        match=(
            r"^invalid setting STATESTORE_API_KEYS_FILE: STATESTORE_API_KEYS is set too;"
            r" set one of the two"
        ),
    ):
        load_settings(api_keys_file=key_file, api_keys=NEW_KEY)
