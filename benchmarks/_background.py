"""How much CPU other programs on the machine used while a cell ran: a busy machine skews every figure."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field

from benchmarks._procstat import cpu_seconds, machine_busy_seconds


def _own_rusage() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):  # children: reaped load generators
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@dataclass
class Background:
    """Tracks the benchmark's own processes; `foreign_share` is the rest of the machine's busy CPU."""

    own_pids: set[int] = field(default_factory=set)

    def _sample(self) -> tuple[float, float, float]:
        ours = _own_rusage() + sum(cpu_seconds(pid) for pid in self.own_pids)
        return time.monotonic(), machine_busy_seconds(), ours

    def start(self) -> tuple[float, float, float]:
        return self._sample()

    def foreign_cores(self, since: tuple[float, float, float]) -> float:
        """Cores' worth of CPU used by other programs since `since` (0.25 = a quarter of one core)."""
        wall, busy, ours = self._sample()
        elapsed = wall - since[0]
        return max(0.0, (busy - since[1]) - (ours - since[2])) / elapsed if elapsed > 0 else 0.0
