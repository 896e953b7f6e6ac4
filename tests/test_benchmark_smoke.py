"""The benchmark's quick mode runs end to end, so that `python -m benchmarks.run` never rots.

No performance target is asserted here: the figures of a few-second run on a shared CI machine mean
nothing. Load comes from the Python fallback generator, and from wrk as well (Debian's package);
DynamoDB parts run when node is on PATH, on the tests' pinned dynalite, installed first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.dynalite import install
from support.tools import require

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def dynalite_installed_where_node_is() -> None:
    """The benchmark installs nothing; where node can run dynalite, the tests' pinned copy is installed."""
    if shutil.which("node") is not None:
        install()


def _quick_run(results: Path, *flags: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--results-dir", str(results), *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (results / "results.md").read_text()
    assert "## Targets (issue 6)" in report
    assert "1. HTTP ceiling" in report
    assert "3. The service" in report
    for verdict in ("peak RSS", "SQLite GET req/s", "SQLite PUT req/s"):
        assert verdict in done.stdout
    raw: dict[str, object] = json.loads((results / "results.json").read_text())
    return raw


def test_quick_run_with_the_python_load_generator(tmp_path: Path) -> None:
    raw = _quick_run(tmp_path, "--load", "python")
    cells = raw["cells"]
    assert isinstance(cells, list)
    groups = {(cell["group"], cell["backend"], cell["op"]) for cell in cells}
    assert {
        ("ceiling", "minimal", "GET"),
        ("service", "sqlite", "PUT"),
        ("service", "sqlite", "CPUT"),
    } <= groups
    assert all(cell["requests"] > 0 for cell in cells)
    assert all(cell["errors"] == 0 for cell in cells), cells
    assert "Python fallback" in str(raw["meta"])
    if "dynalite" in raw["meta"]:  # type: ignore[operator]
        assert {
            ("floor", "aioboto3", "GetItem"),
            ("floor", "lean", "GetItem"),
            ("service", "dynamodb", "GET"),
            ("service", "dynamodb-aioboto3", "GET"),
        } <= groups
    if shutil.which("node") is not None:
        assert "dynalite" in raw["meta"], raw["notes"]  # type: ignore[operator]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "chart.png").stat().st_size > 0


def test_quick_run_with_wrk_twice_judges_each_cells_median(tmp_path: Path) -> None:
    require("wrk", "apt-get install wrk")
    raw = _quick_run(tmp_path, "--load", "wrk", "--backends", "sqlite", "--runs", "2")
    cells = raw["cells"]
    assert isinstance(cells, list)
    assert all(cell["requests"] > 0 and cell["errors"] == 0 for cell in cells), cells
    assert "wrk" in str(raw["meta"])
    keys = [
        (cell["group"], cell["backend"], cell["op"], cell["payload"], cell["concurrency"]) for cell in cells
    ]
    assert len(keys) == len(set(keys)), "one cell for each, the two runs combined"
    for cell in cells:
        assert "CPU µs/op of 2 runs" in cell["note"], cell
        extra = cell["extra"]
        assert extra["cpu_us_per_op_min"] <= cell["cpu_us_per_op"] <= extra["cpu_us_per_op_max"]
