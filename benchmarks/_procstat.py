"""CPU time and peak memory of a process and its descendants, read from /proc (Linux only)."""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """`pid` followed by every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        queue.extend(children.get(current, ()))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its live descendants (10 ms resolution)."""
    total = 0
    for member in descendants(pid):
        fields = _stat_fields(member)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICKS_PER_SECOND


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pid: int) -> float:
    """The resident set of one process now, MB = 10^6 B."""
    return _status_kib(pid, "VmRSS") * 1024 / 1e6


def peak_rss_mb(pid: int) -> float:
    """The largest VmHWM (peak resident set, MB = 10^6 B) of one process in the tree: one worker's peak."""
    return max((_status_kib(member, "VmHWM") for member in descendants(pid)), default=0) * 1024 / 1e6


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM of the tree to the current RSS (Linux ≥ 4.0); False where the kernel refuses."""
    done = True
    for member in descendants(pid):
        try:
            (_PROC / str(member) / "clear_refs").write_text("5")
        except OSError:
            done = False
    return done


def machine_busy_seconds() -> float:
    """CPU time all cores spent in processes since boot: /proc/stat's user + nice + system.

    irq, softirq and steal are left out: loopback traffic is largely processed in softirq time that
    no process is charged for, so counting it would pass the benchmark's own network load off as
    another program's.
    """
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (fields[0] + fields[1] + fields[2]) / _TICKS_PER_SECOND
