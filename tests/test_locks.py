"""The lock files agree with pyproject.toml, and CI and the image install from them.

pyproject.toml keeps ranges for people who install the package; `requirements/test.txt` (CI) and
`requirements/runtime.txt` (the image) pin one version of everything, with hashes, made by
`bash scripts/lock.sh`. These checks read files only: no network, no resolver. When one fails after an
edit of pyproject.toml, run `bash scripts/lock.sh` and commit the locks.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from support.locks import REGENERATE, RUNTIME_LOCK, TEST_LOCK, read_lock

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"

# What each lock covers: pyproject's dependencies, these extras, and the build backend (the project is
# installed with --no-build-isolation, from the lock's setuptools).
LOCKED_EXTRAS = {RUNTIME_LOCK: (), TEST_LOCK: ("test",)}

# The platforms the locks must install on: the image (python:3.11-slim, linux/amd64 and linux/arm64)
# and CI.
TARGETS: dict[str, dict[str, str]] = {
    f"linux-{machine}-py311": {
        "implementation_name": "cpython",
        "implementation_version": "3.11.17",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": "3.11.17",
        "python_version": "3.11",
        "sys_platform": "linux",
    }
    for machine in ("x86_64", "aarch64")
}
PYPROJECT_SOURCE = "durable-state-store (pyproject.toml)"  # uv's `# via` for a requirement of pyproject


def pyproject() -> dict[str, object]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def requirements_of(lock_path: Path) -> list[Requirement]:
    """What pyproject.toml asks of everything `lock_path` installs."""
    document = pyproject()
    project = document["project"]
    assert isinstance(project, dict)
    texts = list(project["dependencies"])
    for extra in LOCKED_EXTRAS[lock_path]:
        texts += project["optional-dependencies"][extra]
    build_system = document["build-system"]
    assert isinstance(build_system, dict)
    texts += build_system["requires"]
    return [Requirement(text) for text in texts]


def wanted(requirement: Requirement, environment: Mapping[str, str]) -> bool:
    return requirement.marker is None or requirement.marker.evaluate({**environment, "extra": ""})


LOCKS = pytest.mark.parametrize("lock_path", [RUNTIME_LOCK, TEST_LOCK], ids=lambda path: path.name)


@LOCKS
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_requirement_of_pyproject_is_pinned_inside_its_range(lock_path: Path, target: str) -> None:
    environment = TARGETS[target]
    pins = read_lock(lock_path).pins_for(environment)
    problems = []
    for requirement in requirements_of(lock_path):
        if not wanted(requirement, environment):
            continue
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement} is not pinned")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{requirement} but the lock pins {pin.version}")
    assert not problems, f"{lock_path.name} disagrees with pyproject.toml; run `{REGENERATE}`:\n" + "\n".join(
        problems
    )


@LOCKS
def test_the_lock_pins_nothing_that_pyproject_does_not_lead_to(lock_path: Path) -> None:
    """Each pin is a requirement of pyproject.toml or, by uv's `# via` notes, a dependency of one."""
    lock = read_lock(lock_path)
    roots = {canonicalize_name(requirement.name) for requirement in requirements_of(lock_path)}
    pinned = {pin.name for pin in lock.pins}
    parents = {
        pin: {
            canonicalize_name(re.sub(r"\[.*\]$", "", source))
            for source in pin.via
            if not source.startswith("-") and source != PYPROJECT_SOURCE
        }
        & pinned
        for pin in lock.pins
    }
    stale = [pin.name for pin in lock.pins if PYPROJECT_SOURCE in pin.via and pin.name not in roots]
    assert not stale, f"{lock_path.name} pins {stale} for pyproject.toml, which no longer asks for them"
    reached = {pin.name for pin in lock.pins if pin.name in roots}
    grew = True
    while grew:
        grew = False
        for pin in lock.pins:
            if pin.name not in reached and parents[pin] & reached:
                reached.add(pin.name)
                grew = True
    extra = sorted(pinned - reached)
    assert not extra, (
        f"{lock_path.name} pins what pyproject.toml does not lead to: {extra}; run `{REGENERATE}`"
    )


def test_the_image_gets_exactly_what_ci_tested() -> None:
    tested = {(pin.name, pin.marker and str(pin.marker)): pin for pin in read_lock(TEST_LOCK).pins}
    for pin in read_lock(RUNTIME_LOCK).pins:
        twin = tested.get((pin.name, pin.marker and str(pin.marker)))
        assert twin is not None, f"{pin.name} is in the image's lock but not in CI's"
        assert (twin.version, twin.hashes) == (pin.version, pin.hashes), (
            f"{pin.name}: the image would get {pin.version}, CI tested {twin.version}; run `{REGENERATE}`"
        )


@LOCKS
def test_the_lock_installs_wheels_only_and_every_pin_has_hashes(lock_path: Path) -> None:
    lock = read_lock(lock_path)
    assert "--only-binary :all:" in lock.options, "the image has no compiler: wheels only"
    assert lock.pins
    for pin in lock.pins:
        assert pin.hashes, f"{pin.name} has no --hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", value) for value in pin.hashes), pin.name


# --------------------------------------------------------------------------------------
# Who installs from the locks
# --------------------------------------------------------------------------------------


def readme_commands() -> list[str]:
    """The README's first two shell blocks: install and run the service, run the test suite."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) >= 2
    return [block.strip() for block in blocks[:2]]


def test_the_readme_installs_the_service_from_the_runtime_lock() -> None:
    run_it = readme_commands()[0]
    assert "pip install --require-hashes -r requirements/runtime.txt" in run_it
    assert re.search(r"pip install --no-deps --no-build-isolation \.(\s|$)", run_it), run_it
    assert run_it.endswith("statestore serve")


def test_ci_runs_the_readmes_test_command_which_installs_the_test_lock() -> None:
    test_command = readme_commands()[1]
    assert "pip install --require-hashes -r requirements/test.txt" in test_command
    assert "pip install --no-deps --no-build-isolation -e ." in test_command
    assert test_command.endswith("pytest")
    ci_lines = [line.strip() for line in CI.read_text(encoding="utf-8").splitlines()]
    assert test_command in ci_lines, ".ci/run must run the README's test command as it is written"
