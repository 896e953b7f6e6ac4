"""wrk, the C load generator: found on PATH and run with bench.lua."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from benchmarks._model import LoadResult, LoadSpec
from benchmarks._processes import run_bounded, run_tool

SCRIPT = Path(__file__).with_name("bench.lua")
_RESULT = re.compile(r"^BENCH_RESULT (.*)$", re.MULTILINE)


def locate() -> tuple[str | None, str]:
    """Path of a working wrk on PATH, or None and the reason."""
    found = shutil.which("wrk")
    if found is None:
        return None, "wrk not found"
    if "wrk" not in version(found):
        return None, f"{found} --version did not run"
    return found, ""


def version(path: str) -> str:
    probe = run_tool([path, "--version"], timeout=10)
    return (probe.stdout + probe.stderr).split("Copyright")[0].strip()


def run(wrk: str, spec: LoadSpec) -> LoadResult:
    env = {
        **os.environ,
        "BENCH_MODE": spec.mode,
        "BENCH_PREFIX": spec.prefix,
        "BENCH_ID_PREFIX": spec.id_prefix,
        "BENCH_N_IDS": str(spec.n_ids),
        "BENCH_PAYLOAD_FILE": str(spec.payload_file),
        "BENCH_MANIFEST": spec.manifest,
        "BENCH_BATCH_SIZE": str(spec.batch_size),
        "BENCH_BATCH_PATH": spec.batch_path,
    }
    seconds = max(1, round(spec.duration))
    argv = [
        wrk,
        "-t",
        str(spec.connections),
        "-c",
        str(spec.connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPT),
        spec.base_url,
    ]
    done = run_bounded(argv, timeout=seconds + 30, env=env)
    match = _RESULT.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(
            f"wrk failed ({done.returncode}): {done.stderr.strip()[-500:]} {done.stdout[-500:]}"
        )
    fields = {key: int(value) for key, value in (pair.split("=") for pair in match.group(1).split())}
    return LoadResult(
        requests=fields["requests"],
        duration_s=fields["duration_us"] / 1e6,
        p50_us=fields["p50_us"],
        p99_us=fields["p99_us"],
        non_2xx=fields["non_2xx"],
        socket_errors=fields["socket_errors"],
        syncs=fields["syncs"],
        conflicts=fields["conflicts"],
    )
