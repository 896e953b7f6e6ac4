"""Fixtures: DynamoDB-compatible server processes, the service on each backend over real HTTP, and clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
from _descriptors import SAMPLE_PROTO, build_descriptor_set

from app.main import create_app
from app.settings import Settings
from support.dynalite import DynaliteUnavailable, dynalite_server, install
from support.processes import moto_server
from support.services import DYNAMODB_SERVERS, TABLE, ServiceFactory, create_table, server_endpoint
from support.uvicorn_thread import serving

# Tests never reach AWS: fixed fake credentials, and every DynamoDB client gets a local endpoint.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
)
for _name in [name for name in os.environ if name.startswith("STATESTORE_")]:
    del os.environ[_name]

# Hypothesis fails an example that runs past 200 ms (its default deadline) even when its property holds: a
# speed target, which an example stalled by a busy machine misses by chance. The properties are about
# results; the one about time (linear-time header parsing) measures against itself on the same machine.
hypothesis.settings.register_profile("statestore", deadline=None)
hypothesis.settings.load_profile("statestore")

BACKENDS = ["sqlite", "moto", "dynalite"]
# What makes the DynamoDB adapter's hot calls (STATESTORE_DYNAMODB_CLIENT). The contract suite runs on the
# default; the adapter's own tests and the fault tests run on both, through the `dynamodb_path` fixture.
DYNAMODB_PATHS = ["lean", "aioboto3"]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def dynamodb_endpoint(moto_endpoint: str) -> str:
    """moto, with the default table created."""
    create_table(moto_endpoint, TABLE)
    return moto_endpoint


@pytest.fixture(scope="session")
def dynalite_installed() -> None:
    """dynalite can be started. Without node and npm: a skip, but a failure on CI."""
    try:
        install()
    except DynaliteUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def dynalite_endpoint(dynalite_installed: None) -> Iterator[str]:
    """dynalite, with the default table created."""
    with dynalite_server() as endpoint:
        create_table(endpoint, TABLE)
        yield endpoint


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "differs_on(**reasons): the test states what DynamoDB does; on each backend named, which "
        "does otherwise, it is an expected failure (strict) with the reason given",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend: str = callspec.params.get("backend", "") if callspec else ""
        for marker in item.iter_markers("differs_on"):
            if backend in marker.kwargs:
                item.add_marker(pytest.mark.xfail(strict=True, reason=marker.kwargs[backend]))


@pytest.fixture(scope="session")
def settings_for(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    def settings(backend: str, **overrides: Any) -> Settings:
        """Settings of the service on `backend`, one of BACKENDS."""
        if backend == "sqlite":
            overrides = {"sqlite_path": tmp_path_factory.mktemp("sqlite") / "states.db", **overrides}
            return Settings(backend="sqlite", **overrides)
        endpoint = server_endpoint(backend, request)
        overrides = {"dynamodb_endpoint_url": endpoint, "dynamodb_table": TABLE, **overrides}
        if "large_states_bucket" in overrides:  # moto's S3, whichever server holds the table
            overrides = {"s3_endpoint_url": request.getfixturevalue("moto_endpoint"), **overrides}
        return Settings(backend="dynamodb", **overrides)

    return settings


@pytest.fixture(scope="session")
def start_service(settings_for: Callable[..., Settings]) -> ServiceFactory:
    """Runs the app with some settings on a real socket; use as `with start_service("sqlite", ...) as url`."""

    @contextmanager
    def start(backend: str, **overrides: Any) -> Iterator[str]:
        with serving(create_app(settings_for(backend, **overrides))) as url:
            yield url

    return start


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module", params=DYNAMODB_PATHS)
def dynamodb_path(request: pytest.FixtureRequest) -> str:
    """A value of `STATESTORE_DYNAMODB_CLIENT`, each in turn: pass it as `dynamodb_client`."""
    name: str = request.param
    return name


@pytest.fixture
def ready_backend(backend: str, request: pytest.FixtureRequest) -> str:
    """`backend`, with its server's table created before an async test's event loop runs."""
    if backend in DYNAMODB_SERVERS:
        server_endpoint(backend, request)
    return backend


@pytest.fixture(scope="session")
def service_url(backend: str, start_service: ServiceFactory) -> Iterator[str]:
    with start_service(backend) as url:
        yield url


@pytest.fixture
async def client(service_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service_url, timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample types of tests/protos/sample.proto, compiled once for the session."""
    return build_descriptor_set(SAMPLE_PROTO, tmp_path_factory.mktemp("descriptors") / "sample.binpb")


@pytest.fixture
def state_id() -> str:
    return f"test-{uuid.uuid4()}"
