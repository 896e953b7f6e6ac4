"""Writes the results: `results.md` (Markdown tables), `results.json` (raw cells), `chart.png`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from benchmarks._model import Cell
from benchmarks._targets import Verdict

GROUP_TITLES = {
    "ceiling": "1. HTTP ceiling: minimal FastAPI endpoint (uvloop, httptools, 1 worker, no access log)",
    "floor": "2. Client floor: direct aioboto3 loop on dynalite (one shared client, aws_config.py)",
    "service": "3. The service",
}


def _size(payload: int) -> str:
    return f"{payload // 1024} KB" if payload >= 1024 else f"{payload} B"


def _table(cells: Sequence[Cell]) -> list[str]:
    lines = [
        "| backend | op | payload | conc. | ops/s | p50 ms | p99 ms | CPU µs/op | peak RSS MB | errors "
        "| others (cores) | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in cells:
        rss = "" if c.peak_rss_mb is None else f"{c.peak_rss_mb:.0f}"
        others = f"{c.extra['background_cores']:.2f}" if "background_cores" in c.extra else ""
        lines.append(
            f"| {c.backend} | {c.op} | {_size(c.payload)} | {c.concurrency} | {c.ops_per_s:,.0f} | "
            f"{c.p50_ms:.2f} | {c.p99_ms:.2f} | {c.cpu_us_per_op:,.0f} | {rss} | {c.errors} | {others} | "
            f"{c.note} |"
        )
    return lines


def markdown(
    cells: Sequence[Cell],
    verdicts: Sequence[Verdict],
    peaks: dict[str, float],
    meta: dict[str, str],
    notes: Sequence[str],
) -> str:
    lines = ["# durable-state-store benchmark results", ""]
    lines += [f"- **{key}**: {value}" for key, value in meta.items()]
    lines += ["", "## Targets (issue 6)", "", "```", *(v.line() for v in verdicts), "```", ""]
    for group, title in GROUP_TITLES.items():
        members = [c for c in cells if c.group == group]
        if members:
            lines += [f"## {title}", "", *_table(members), ""]
    lines += ["## Peak RSS over the whole run (VmHWM, one process)", ""]
    lines += [f"- {name}: {peak:.1f} MB" for name, peak in peaks.items()]
    if notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def chart(cells: Sequence[Cell], path: Path, concurrency: int) -> None:
    """ops/s and CPU µs/op per payload size at one concurrency, every measured series side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [c for c in cells if c.concurrency == concurrency]
    payloads = sorted({c.payload for c in chosen})
    series = list(dict.fromkeys(f"{c.backend} {c.op}" for c in chosen))
    if not payloads or not series:
        return
    fig, axes = plt.subplots(2, len(payloads), figsize=(5.5 * len(payloads), 8), squeeze=False)
    colors = [f"C{i}" for i in range(10)]
    for column, payload in enumerate(payloads):
        by_name = {f"{c.backend} {c.op}": c for c in chosen if c.payload == payload}
        names = [name for name in series if name in by_name]
        for row, (attr, label) in enumerate((("ops_per_s", "ops/s"), ("cpu_us_per_op", "CPU µs per op"))):
            ax = axes[row][column]
            values = [getattr(by_name[name], attr) for name in names]
            ax.barh(names, values, color=[colors[series.index(n) % len(colors)] for n in names])
            ax.invert_yaxis()
            ax.set_xlabel(label)
            ax.set_title(f"{label}, payload {_size(payload)}, concurrency {concurrency}", fontsize=9)
            ax.tick_params(axis="y", labelsize=8)
            for y, value in enumerate(values):
                ax.text(value, y, f" {value:,.0f}", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(
    directory: Path,
    cells: Sequence[Cell],
    verdicts: Sequence[Verdict],
    peaks: dict[str, float],
    meta: dict[str, str],
    notes: Sequence[str],
    chart_concurrency: int,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    report = directory / "results.md"
    report.write_text(markdown(cells, verdicts, peaks, meta, notes))
    raw = {
        "meta": meta,
        "notes": list(notes),
        "peaks_mb": peaks,
        "cells": [c.as_dict() for c in cells],
        "verdicts": [v.line() for v in verdicts],
    }
    (directory / "results.json").write_text(json.dumps(raw, indent=1))
    try:
        chart(cells, directory / "chart.png", chart_concurrency)
    except ImportError:
        report.write_text(
            markdown(cells, verdicts, peaks, meta, [*notes, "matplotlib is not installed: no chart"])
        )
    return report
