"""The folder in which worker processes share their metric samples (prometheus_client's multiprocess mode).

This module must not import prometheus_client: the library reads `PROMETHEUS_MULTIPROC_DIR` once, when it is
first imported, so the variable has to be in place before any worker imports it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_DIR_VARIABLE))


@contextmanager
def shared_metrics_directory(workers: int) -> Iterator[None]:
    """Around a server run: the operator's folder emptied of old samples, or a temporary one for N workers.

    Samples left by an earlier run would be added to this run's counters, hence the emptying.
    """
    configured = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if configured:
        folder = Path(configured)
        folder.mkdir(parents=True, exist_ok=True)
        for samples in folder.glob("*.db"):
            samples.unlink()
        yield
    elif workers > 1:
        with tempfile.TemporaryDirectory(prefix="statestore-metrics-") as folder_name:
            os.environ[MULTIPROC_DIR_VARIABLE] = folder_name
            try:
                yield
            finally:
                del os.environ[MULTIPROC_DIR_VARIABLE]
    else:
        yield
