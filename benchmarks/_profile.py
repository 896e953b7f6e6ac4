"""Where a server's CPU goes: py-spy samples it under one load (`python -m benchmarks.run --profile`).

py-spy comes with the `bench` extra and needs ptrace permission (root here). The collapsed stacks go to
a `.collapsed` file and a summary of them to a `.summary.txt` file: the frames and packages with the
largest shares of the busy samples, "inclusive" (anywhere on the stack) and "self" (the leaf).
"""

from __future__ import annotations

import collections
import shutil
import sys
import threading
import time
from pathlib import Path

from benchmarks import _load
from benchmarks._model import LoadSpec
from benchmarks._processes import run_tool

SAMPLES_PER_SECOND = 250
LOAD_HEAD_START_SECONDS = 1


IDLE_LEAVES = frozenset(
    {
        "Condition.wait (threading.py)",
        "wait (threading.py)",
        "select (selectors.py)",
        "_worker (concurrent/futures/thread.py)",  # an idle executor thread waits in a C call
    }
)
CLIENT_PACKAGES = frozenset({"aioboto3", "aiobotocore", "botocore", "aiohttp", "boto3"})


def _package(frame: str) -> str:
    """`func (botocore/auth.py)` -> `botocore`; a stdlib module (`json/encoder.py`) keeps its name."""
    where = frame.rpartition("(")[2].rstrip(")")
    return where.split("/")[0].removesuffix(".py") if where else "?"


def summarize(collapsed: Path, top: int = 25) -> str:
    """Shares of the busy samples in py-spy's raw (collapsed) output; idle thread waits are left out.

    "inclusive" counts a sample for every distinct frame (or package) on its stack, "self" for its leaf;
    "aioboto3 client" is the share of samples inside any client package frame.
    """
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    own_package: collections.Counter[str] = collections.Counter()
    in_package: collections.Counter[str] = collections.Counter()
    total = client = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        if not stack or frames[-1] in IDLE_LEAVES:
            continue
        count = int(count_text)
        total += count
        own[frames[-1]] += count
        own_package[_package(frames[-1])] += count
        packages = {_package(frame) for frame in frames}
        client += count * bool(packages & CLIENT_PACKAGES)
        for package in packages:
            in_package[package] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return "no busy samples"

    def share(n: int) -> str:
        return f"{100 * n / total:6.1f} %"

    lines = [f"{total} busy samples; inside the aioboto3 client (any client package frame): {share(client)}"]
    lines += ["", "self by package"] + [f"{share(n)}  {p}" for p, n in own_package.most_common(12)]
    lines += ["", "inclusive by package"] + [f"{share(n)}  {p}" for p, n in in_package.most_common(16)]
    lines += ["", "inclusive by frame"] + [f"{share(n)}  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self by frame"] + [f"{share(n)}  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def sample(py_spy: str, pid: int, spec: LoadSpec, wrk: str | None, seconds: int, stacks: Path) -> str:
    """Run `spec` against the server and sample it for `seconds` once the load is under way; write
    `stacks` (collapsed) and their summary beside it, and return the summary."""
    load = threading.Thread(target=_load.run, args=(spec, wrk), daemon=True)
    load.start()
    time.sleep(LOAD_HEAD_START_SECONDS)
    record = [py_spy, "record", "-p", str(pid), "-d", str(seconds), "-r", str(SAMPLES_PER_SECOND)]
    spy = run_tool([*record, "-f", "raw", "--nolineno", "-o", str(stacks)], timeout=seconds + 60)
    load.join()
    if spy.returncode != 0 or not stacks.exists():
        raise RuntimeError(f"py-spy failed: {spy.stderr.strip()[-500:]}")
    summary = summarize(stacks)
    stacks.with_suffix(".summary.txt").write_text(summary + "\n")
    return summary
