"""`/metrics` after known traffic: requests by route template, backend calls, conditional-check failures."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from app.observability.multiprocess import MULTIPROC_DIR_VARIABLE, shared_metrics_directory
from scripts.servers import serving_process
from support.api import state_body, state_path
from support.differences import DYNALITE_HAS_NO_TRANSACTIONS, DYNALITE_RETURNS_NO_OLD_ITEM
from support.metrics import label_values, sample_value
from support.services import DYNAMODB_SERVERS, ServiceFactory

ROUTE = "/states/{persistence_id}"
BACKEND_OPERATIONS = {
    "sqlite": ("get", "put", "delete", "transact"),
    "dynamodb": ("GetItem", "PutItem", "DeleteItem", "TransactWriteItems"),
}


@DYNALITE_HAS_NO_TRANSACTIONS
@DYNALITE_RETURNS_NO_OLD_ITEM  # each refused PUT reads the item: more GetItem calls
async def test_requests_backend_calls_and_refused_conditions_are_counted(
    ready_backend: str, start_service: ServiceFactory, state_id: str
) -> None:
    backend = "dynamodb" if ready_backend in DYNAMODB_SERVERS else ready_backend
    persistence_id = f"{state_id}/with a/raw path"
    path = state_path(persistence_id)
    stale_delete = {"op": "delete", "persistence_id": persistence_id, "if_match": 7}
    with start_service(ready_backend, version_guard="monotonic") as url:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.put(path, json=state_body(1))).status_code == 200
            assert (await client.put(path, json=state_body(1, b"other"))).status_code == 409
            stale = await client.put(path, json=state_body(2), headers={"If-Match": '"7"'})
            assert stale.status_code == 412
            transact = await client.post("/states:transact", json={"operations": [stale_delete]})
            assert transact.status_code == 412
            assert (await client.get(path)).status_code == 200
            assert (await client.get(path)).status_code == 200
            assert (await client.delete(path)).status_code == 204
            assert (await client.get(path)).status_code == 404
            assert (await client.get("/nowhere")).status_code == 404
            assert (await client.request("PROPFIND", path)).status_code == 405
            scrape = await client.get("/metrics")
    assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = scrape.text

    def requests(method: str, status: int, route: str = ROUTE) -> float:
        return sample_value(
            text, "statestore_http_requests_total", route=route, method=method, status=str(status)
        )

    assert [requests("PUT", 200), requests("PUT", 409), requests("PUT", 412)] == [1, 1, 1]
    assert [requests("GET", 200), requests("GET", 404), requests("DELETE", 204)] == [2, 1, 1]
    assert requests("GET", 404, "<unmatched>") == 1
    assert requests("OTHER", 405) == 1
    assert requests("POST", 412, "/states:transact") == 1
    assert label_values(text, "route") == {ROUTE, "/states:transact", "<unmatched>"}
    duration = "statestore_http_request_duration_seconds_count"
    assert sample_value(text, duration, route=ROUTE, method="PUT") == 3

    get, put, delete, transact_operation = BACKEND_OPERATIONS[backend]
    calls = "statestore_backend_call_duration_seconds_count"
    assert sample_value(text, calls, backend=backend, operation=put) == 3
    assert sample_value(text, calls, backend=backend, operation=get) == 3
    assert sample_value(text, calls, backend=backend, operation=delete) == 1
    refused = "statestore_conditional_check_failures_total"
    assert sample_value(text, refused, backend=backend, operation=put, reason="version-conflict") == 1
    assert sample_value(text, refused, backend=backend, operation=put, reason="precondition-failed") == 1
    precondition_failed = {"backend": backend, "reason": "precondition-failed"}
    assert sample_value(text, refused, operation=transact_operation, **precondition_failed) == 1
    assert "statestore_backend_errors_total{" not in text
    assert sample_value(text, "process_cpu_seconds_total") > 0


async def test_backend_errors_are_counted_by_operation_and_problem(
    dynamodb_endpoint: str, start_service: ServiceFactory
) -> None:
    with start_service("moto", dynamodb_table="no_such_table") as url:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get(state_path("x"))).status_code == 503
            assert (await client.get("/readyz")).status_code == 503
            text = (await client.get("/metrics")).text
    errors = "statestore_backend_errors_total"
    # DescribeTable twice: the start-up check that decides whether "ready" is logged, then /readyz.
    for operation, count in (("GetItem", 1), ("DescribeTable", 2)):
        sample = sample_value(text, errors, backend="dynamodb", operation=operation, error="table-missing")
        assert sample == count


async def test_openmetrics_is_served_when_asked_for(start_service: ServiceFactory) -> None:
    with start_service("sqlite") as url:
        async with httpx.AsyncClient(base_url=url) as client:
            scrape = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert scrape.headers["content-type"].startswith("application/openmetrics-text")
    assert scrape.text.endswith("# EOF\n")


def test_with_several_workers_every_scrape_counts_the_requests_of_all(tmp_path: Path) -> None:
    samples = tmp_path / "metrics"
    samples.mkdir()
    (samples / "counter_1.db").write_bytes(b"left by an earlier run, unreadable")
    env = {MULTIPROC_DIR_VARIABLE: str(samples), "STATESTORE_SQLITE_PATH": str(tmp_path / "states.db")}
    with serving_process("--workers", "2", env=env, stderr_to=tmp_path / "stderr.log") as (url, _):
        answered = 1  # the readiness probe of serving_process
        deadline = time.monotonic() + 20
        while len(list(samples.glob("counter_*.db"))) < 2 and time.monotonic() < deadline:
            assert httpx.get(f"{url}/healthz").status_code == 200  # a new connection each time
            answered += 1
        assert len(list(samples.glob("counter_*.db"))) == 2, "both workers answered"
        scrapes = [httpx.get(f"{url}/metrics").text for _ in range(6)]
    for text in scrapes:
        counted = sample_value(
            text, "statestore_http_requests_total", route="/healthz", method="GET", status="200"
        )
        assert counted == answered
        assert "process_cpu_seconds_total" not in text


@pytest.mark.parametrize("workers", [1, 2])
def test_the_shared_folder_exists_only_for_several_workers(
    monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.delenv(MULTIPROC_DIR_VARIABLE, raising=False)
    with shared_metrics_directory(workers):
        folder = os.environ.get(MULTIPROC_DIR_VARIABLE)
        assert (folder is not None) == (workers > 1)
        assert folder is None or Path(folder).is_dir()
    assert folder is None or not Path(folder).exists()
    assert MULTIPROC_DIR_VARIABLE not in os.environ
