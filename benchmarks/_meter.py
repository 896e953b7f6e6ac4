"""Runs one load against one server and charges the server's own CPU time and peak RSS to it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from benchmarks import _load
from benchmarks._background import Background
from benchmarks._model import LoadResult, LoadSpec
from benchmarks._procstat import cpu_seconds, peak_rss_mb, reset_peak_rss
from scripts.servers import check_running


@dataclass(frozen=True)
class Measurement:
    load: LoadResult
    cpu_us_per_op: float
    peak_rss_mb: float
    background_cores: float


class Meter:
    """Measures cells on one server; `peak_mb` is its peak RSS over every cell (and start-up) so far."""

    def __init__(self, server: subprocess.Popen[bytes], background: Background) -> None:
        self.server = server
        self.background = background
        self.peak_mb = 0.0
        background.own_pids.add(server.pid)

    def measure(self, spec: LoadSpec, wrk: str | None) -> Measurement:
        pid = self.server.pid
        self.peak_mb = max(self.peak_mb, peak_rss_mb(pid))
        reset_peak_rss(pid)  # so that the cell's own peak can be read at its end
        cpu_before = cpu_seconds(pid)
        since = self.background.start()
        load = _load.run(spec, wrk)
        cpu_used = cpu_seconds(pid) - cpu_before
        foreign = self.background.foreign_cores(since)
        check_running(self.server)
        cell_peak = peak_rss_mb(pid)
        self.peak_mb = max(self.peak_mb, cell_peak)
        return Measurement(load, cpu_used / max(load.requests, 1) * 1e6, cell_peak, foreign)
