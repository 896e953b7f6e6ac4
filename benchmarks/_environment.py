"""What the run ran on: machine, versions and settings, for the head of the report."""

from __future__ import annotations

import os
import platform
import shutil
import time
from importlib import metadata
from pathlib import Path

from benchmarks import _wrk
from benchmarks._processes import run_tool

REPO = Path(__file__).resolve().parent.parent
PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "aioboto3",
    "aiobotocore",
    "botocore",
    "protobuf",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _git() -> str:
    git = shutil.which("git")
    if git is None:
        return "?"
    done = run_tool([git, "describe", "--always", "--dirty"], timeout=10, cwd=REPO)
    return done.stdout.strip() or "?"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def describe(wrk: str | None, duration: float, floor_duration: float) -> dict[str, str]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{os.cpu_count()} cores, {_cpu_model()}, Linux {platform.release()}",
        "python": platform.python_version(),
        "git": _git(),
        "packages": ", ".join(f"{name} {_version(name)}" for name in PACKAGES),
        "load generator": _wrk.version(wrk) if wrk else "Python fallback (benchmarks/_pyload.py), NOT wrk",
        "cell length": f"{duration:g} s per HTTP cell, {floor_duration:g} s per client-floor cell",
    }
