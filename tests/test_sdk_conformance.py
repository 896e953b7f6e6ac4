"""Clients generated from the committed openapi/openapi.json in TypeScript, Go, Java and Python drive the
service over HTTP on each backend. Each language's program (tests/sdk/<language>/) writes, reads,
compares-and-sets, batch-reads, transacts, lists (page by page, in shard 2^53+1) and waits on states with
64-bit values that a JSON number in JavaScript would round, and names the first value that differs. Each
PUT and transaction carries a new Idempotency-Key, set through the generated header parameter; the
conditional create and the transaction are sent again with their key (answered as the first time: a 201
with the same ETag, the same results) and with a new one (a 412 with current_version). The clients are
generated into a temp dir on every run, with generators pinned by each language's own files; downloads
stay in ~/.npm, Go's module cache and ~/.m2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.http.server import UVICORN_OPTIONS
from app.main import create_app
from app.settings import Settings
from support.processes import REPO
from support.services import own_table
from support.tools import require
from support.uvicorn_thread import serving

SDK = REPO / "tests" / "sdk"
DOCUMENT = REPO / "openapi" / "openapi.json"
KEY = "sdk-conformance-key-1"
# A first run downloads generators and libraries and compiles them.
BUILD_TIMEOUT = 900
RUN_TIMEOUT = 120
NODE = "Debian's nodejs and npm"


@dataclass(frozen=True)
class Program:
    """How to run one language's conformance program: its command, then BASE_URL API_KEY ID_PREFIX."""

    command: Sequence[str | Path]
    env: dict[str, str] = field(default_factory=dict)


def execute(
    command: Sequence[str | Path], cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run(command: Sequence[str | Path], cwd: Path, env: dict[str, str] | None = None) -> None:
    done = execute(command, cwd, env or {}, BUILD_TIMEOUT)
    if done.returncode != 0:
        pytest.fail(f"{command} failed:\n{done.stdout}{done.stderr}")


def copy_sources(language: str, into: Path, *names: str) -> None:
    for name in names:
        shutil.copy(SDK / language / name, into / name)


def typescript(root: Path) -> Program:
    require("node", NODE)
    require("npm", NODE)
    copy_sources("typescript", root, "package.json", "package-lock.json", "tsconfig.json", "conformance.ts")
    run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"], root)
    bin_dir = root / "node_modules" / ".bin"
    # Without this flag, a property with a default would be required in request bodies.
    run(
        [bin_dir / "openapi-typescript", DOCUMENT, "-o", "schema.d.ts", "--default-non-nullable", "false"],
        root,
    )
    run([bin_dir / "tsc", "-p", "."], root)
    return Program(["node", root / "build" / "conformance.js"])


def go(root: Path) -> Program:
    require("go", "Debian's golang, or Go from its site")
    copy_sources("go", root, "go.mod", "go.sum", "main.go")
    # The same oapi-codegen as the committed Go client's, from that client's tools module.
    generate: list[str | Path] = [
        "oapi-codegen",
        "-config",
        SDK / "go" / "oapi-codegen.yaml",
        "-o",
        root / "client.gen.go",
    ]
    run(["go", "tool", *generate, DOCUMENT], REPO / "clients" / "go" / "tools")
    run(["go", "build", "-o", "conformance", "."], root)
    return Program([root / "conformance"])


def java(root: Path) -> Program:
    require("java", "Debian's default-jdk")
    require("mvn", "Debian's maven")
    run(
        [
            "mvn",
            "--batch-mode",
            "--quiet",
            "compile",
            f"-Dopenapi.document={DOCUMENT}",
            f"-Dsdk.build={root}",
        ],
        SDK / "java",
        # A short-lived JVM starts faster without the optimising compiler.
        env={"MAVEN_OPTS": "-XX:TieredStopAtLevel=1"},
    )
    classpath = os.pathsep.join([str(root / "classes"), (root / "classpath.txt").read_text().strip()])
    return Program(["java", "-cp", classpath, "conformance.Conformance"])


def python(root: Path) -> Program:
    package = "statestore_client"
    config = root / "generator.yaml"
    config.write_text(f"package_name_override: {package}\npost_hooks: []\n")
    generator = Path(sys.executable).with_name("openapi-python-client")
    generate: list[str | Path] = [
        "generate",
        "--path",
        DOCUMENT,
        "--output-path",
        root / package,
        "--meta",
        "none",
    ]
    run([generator, *generate, "--config", config], root)
    program = SDK / "python" / "conformance.py"
    # The program can only be type-checked against the client generated here.
    mypy: list[str | Path] = [sys.executable, "-m", "mypy", "--config-file", REPO / "pyproject.toml", program]
    run(mypy, REPO, env={"MYPYPATH": str(root)})
    return Program([sys.executable, program], env={"PYTHONPATH": str(root)})


BUILDERS: dict[str, Callable[[Path], Program]] = {
    "typescript": typescript,
    "go": go,
    "java": java,
    "python": python,
}


@pytest.fixture(scope="session")
def sdk_program(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Program]:
    """Each language's client is generated and its program built once a session, whatever the backend."""
    built: dict[str, Program] = {}

    def program(language: str) -> Program:
        if language not in built:
            built[language] = BUILDERS[language](tmp_path_factory.mktemp(f"sdk-{language}"))
        return built[language]

    return program


# The embedded store, and DynamoDB's API as moto serves it (dynalite has no transactions). The HTTP server
# is set up as `statestore serve` sets it up: clients meet its protocol handling too (Java's offers h2c).
# On moto, a table of the programs' own: their listing step walks a whole table, and the suite's shared
# one holds thousands of other tests' states by then.
@pytest.fixture(scope="module", params=["sqlite", "moto"])
def sdk_service(request: pytest.FixtureRequest, settings_for: Callable[..., Settings]) -> Iterator[str]:
    backend: str = request.param
    table = own_table(backend, request, f"sdk-{uuid.uuid4().hex[:8]}")
    with serving(create_app(settings_for(backend, api_keys=(KEY,), **table)), **UVICORN_OPTIONS) as url:
        yield url


@pytest.mark.parametrize("language", list(BUILDERS))
def test_the_generated_client_keeps_every_64_bit_value_exact(
    language: str, sdk_service: str, sdk_program: Callable[[str], Program]
) -> None:
    program = sdk_program(language)
    prefix = f"sdk-{language}-{uuid.uuid4()}"
    done = execute([*program.command, sdk_service, KEY, prefix], REPO, program.env, RUN_TIMEOUT)
    if done.returncode != 0:
        pytest.fail(f"the {language} program failed:\n{done.stdout}{done.stderr}")
