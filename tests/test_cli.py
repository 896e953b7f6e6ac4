"""`statestore` on day one: its version, and every start-up failure in one line naming what to change."""

from __future__ import annotations

import gc
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import botocore.session
import httpx

from app import __version__
from app.cli import check_backend
from app.settings import Settings
from scripts.servers import free_port, service_command, serving_process
from support.processes import json_lines


def statestore(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        service_command(*arguments), env=env, capture_output=True, text=True, timeout=60, check=False
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr


def test_version_prints_the_package_version() -> None:
    result = statestore("--version")
    assert result.returncode == 0
    assert result.stdout == f"statestore {__version__}\n"


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"STATESTORE_SQLITE_PATH": str(tmp_path / "s.db"), "PATH": "/usr/bin:/bin"}
        result = statestore("serve", "--port", str(port), env=env)
    assert_one_line_failure(result, f"cannot listen on 127.0.0.1:{port}")
    assert "statestore ready" not in result.stderr


def test_create_table_on_the_embedded_backend_says_it_is_for_dynamodb(tmp_path: Path) -> None:
    result = statestore("create-table", env={"STATESTORE_SQLITE_PATH": str(tmp_path / "s.db")})
    assert_one_line_failure(result, "DynamoDB", "STATESTORE_BACKEND")
    assert not (tmp_path / "s.db").exists()


def test_ready_is_logged_only_once_the_backend_answered(tmp_path: Path) -> None:
    env = {
        "STATESTORE_BACKEND": "dynamodb",
        "STATESTORE_DYNAMODB_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
    }
    with serving_process(env=env, stderr_to=tmp_path / "stderr.log") as (url, _):
        assert httpx.get(f"{url}/readyz").status_code == 503
    lines = json_lines(tmp_path / "stderr.log")
    assert not [line for line in lines if line["message"].startswith("statestore ready")]
    (warning,) = [line for line in lines if "not ready" in line["message"]]
    assert warning["level"] == "warning"
    assert "cannot be reached" in warning["message"]


def live_sessions() -> int:
    """botocore's sessions alive: each holds its loader, and the loader every model it loaded."""
    return sum(isinstance(thing, botocore.session.Session) for thing in gc.get_objects())


def test_the_start_up_check_leaves_no_session_behind(
    settings_for: Callable[..., Settings], dynamodb_path: str
) -> None:
    """Its botocore session, and with it every service model it loaded, is freed before the app opens its
    own: otherwise both sets of models are in memory at once, and the heap keeps that peak for the life of
    the process. The collector is off meanwhile, as it is in effect for objects in its oldest generation:
    the check frees the session itself, whenever the collector would have come to it."""
    settings = settings_for("moto", dynamodb_client=dynamodb_path)
    gc.collect()
    before = live_sessions()
    gc.disable()
    try:
        check_backend(settings)
        assert live_sessions() == before
    finally:
        gc.enable()
