"""Runs one load, with wrk when there is one, else with the Python fallback in its own process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import _wrk
from benchmarks._model import LoadResult, LoadSpec
from benchmarks._processes import run_bounded
from benchmarks._pyload import spec_to_json

REPO = Path(__file__).resolve().parent.parent


def run(spec: LoadSpec, wrk: str | None) -> LoadResult:
    if wrk is not None:
        return _wrk.run(wrk, spec)
    done = run_bounded(
        [sys.executable, "-m", "benchmarks._pyload", spec_to_json(spec)], timeout=spec.duration + 60, cwd=REPO
    )
    if done.returncode != 0:
        raise RuntimeError(f"Python load generator failed: {done.stderr.strip()[-500:]}")
    return LoadResult(**json.loads(done.stdout.strip().splitlines()[-1]))
