"""The Go client in clients/go, run by `go test` against live services that this module starts.

`go test` alone skips the live tests (it fails them under CI=true); here they get the service on SQLite and on
DynamoDB, each also with STATESTORE_VERSION_GUARD=monotonic, over HTTP on 127.0.0.1, and the DynamoDB endpoint
and table for the tests that write the table directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from _descriptors import build_descriptor_set

from support.processes import REPO
from support.services import TABLE, ServiceFactory

GO_CLIENT = REPO / "clients" / "go"
EGOSTORE = GO_CLIENT / "egostore"
# The tests beside ego-contrib's store: a module of its own, which keeps ego-contrib and the AWS SDK
# out of egostore's go.mod.
CONTRIBTEST = EGOSTORE / "contribtest"
ACCOUNT = EGOSTORE / "internal" / "accountpb"
KEY = "go-client-test-key-1"
GO_TIMEOUT = 900


@pytest.fixture(scope="module")
def go() -> str:
    found = shutil.which("go")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the Go toolchain is missing: CI must run the Go client's tests")
        pytest.skip("no Go toolchain on PATH")
    return found


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=GO_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(command)} in {cwd}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def egostore_module(go: str) -> Path:
    """clients/go/egostore, once the Go module proxy has served eGo's module to it."""
    done = subprocess.run(
        [go, "mod", "download", "github.com/tochemey/ego/v4"],
        cwd=EGOSTORE,
        capture_output=True,
        text=True,
        timeout=GO_TIMEOUT,
        check=False,
    )
    if done.returncode != 0 and "403 Forbidden" in done.stderr:
        pytest.skip(f"the Go module proxy refuses eGo's module here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    return EGOSTORE


# The Go tests name their backends sqlite and dynamodb; DynamoDB is moto here: dynalite drops the stored item
# from a refused conditional write, which fencing's harmless retries need (docs/test-backends.md).
_GO_BACKENDS = {"sqlite": "sqlite", "dynamodb": "moto"}


@pytest.fixture(scope="module")
def live_env(
    start_service: ServiceFactory, dynamodb_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    folder = tmp_path_factory.mktemp("go")
    descriptors = build_descriptor_set(ACCOUNT / "account.proto", folder / "account.pb")
    with ExitStack() as services:
        urls = {
            name + suffix: services.enter_context(
                start_service(backend, api_keys=(KEY,), descriptor_sets=(descriptors,), version_guard=guard)
            )
            for name, backend in _GO_BACKENDS.items()
            for suffix, guard in (("", "off"), ("-monotonic", "monotonic"))
        }
        yield {
            "LIVE_STATESTORE_URLS": ",".join(f"{name}={url}" for name, url in urls.items()),
            "LIVE_STATESTORE_API_KEY": KEY,
            "LIVE_DYNAMODB_ENDPOINT": dynamodb_endpoint,
            "LIVE_DYNAMODB_TABLE": TABLE,
        }


def test_the_typed_client_is_generated_from_the_document_and_vetted(go: str) -> None:
    run([go, "test", "-count=1", "./..."], GO_CLIENT)
    run([go, "vet", "./..."], GO_CLIENT)
    run([go, "tool", "-modfile=tools/go.mod", "staticcheck", "./..."], GO_CLIENT)


_OUTSIDE_PROGRAM = """package main

import (
	"fmt"

	"github.com/durable-state-store/durable-state-store/clients/go/statestore"
)

func main() {
	client, err := statestore.NewClientWithResponses("http://127.0.0.1:8080")
	fmt.Println(client != nil, err, statestore.NewIdempotencyKey() != "")
}
"""


def test_a_program_outside_the_repository_builds_on_the_readmes_import_path(go: str, tmp_path: Path) -> None:
    """The import path and the `replace` set-up that clients/go/README.md gives a user before a tag."""
    module_path = (GO_CLIENT / "go.mod").read_text().splitlines()[0].removeprefix("module ")
    readme = (GO_CLIENT / "README.md").read_text()
    assert f"go mod edit -replace {module_path}=/src/durable-state-store/clients/go" in readme
    assert f"go get {module_path}@vX.Y.Z" in readme
    (tmp_path / "main.go").write_text(_OUTSIDE_PROGRAM)
    run([go, "mod", "init", "example.com/outside"], tmp_path)
    run([go, "mod", "edit", f"-replace={module_path}={GO_CLIENT}"], tmp_path)
    run([go, "mod", "tidy"], tmp_path)
    run([go, "build", "-o", str(tmp_path / "outside"), "."], tmp_path)
    assert run([str(tmp_path / "outside")], tmp_path).split() == ["true", "<nil>", "true"]


@pytest.mark.parametrize("module", [EGOSTORE, CONTRIBTEST], ids=["egostore", "contribtest"])
def test_egostore_passes_against_the_live_service(
    egostore_module: Path, live_env: dict[str, str], module: Path
) -> None:
    output = run([shutil.which("go") or "go", "test", "-count=1", "-v", "./..."], module, live_env)
    assert "--- SKIP" not in output, output
    assert "--- PASS" in output, output


@pytest.mark.parametrize("module", [EGOSTORE, CONTRIBTEST], ids=["egostore", "contribtest"])
def test_egostore_is_vetted(egostore_module: Path, go: str, module: Path) -> None:
    tools = Path(os.path.relpath(GO_CLIENT / "tools" / "go.mod", module))
    run([go, "vet", "./..."], module)
    run([go, "tool", f"-modfile={tools}", "staticcheck", "./..."], module)


def test_the_committed_account_code_is_what_protoc_makes(go: str, tmp_path: Path) -> None:
    plugin = run([go, "tool", "-modfile=../../../tools/go.mod", "-n", "protoc-gen-go"], ACCOUNT).strip()
    protoc = [sys.executable, "-m", "grpc_tools.protoc", "--proto_path=.", f"--plugin=protoc-gen-go={plugin}"]
    run([*protoc, f"--go_out={tmp_path}", "--go_opt=paths=source_relative", "account.proto"], ACCOUNT)

    def without_protoc_version(code: str) -> list[str]:
        return [line for line in code.splitlines() if not line.startswith("// \tprotoc ")]

    fresh = without_protoc_version((tmp_path / "account.pb.go").read_text())
    committed = without_protoc_version((ACCOUNT / "account.pb.go").read_text())
    assert committed == fresh, "account.pb.go is out of date: run `go generate ./...` in clients/go/egostore"
