"""Reading the lock files that scripts/lock.sh writes (uv's requirements output), without pip."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent.parent
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"  # what the image installs
TEST_LOCK = ROOT / "requirements" / "test.txt"  # what CI installs
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"  # versions held on purpose
REGENERATE = "bash scripts/lock.sh"


@dataclass(frozen=True)
class Pin:
    name: NormalizedName
    version: Version
    marker: Marker | None
    hashes: frozenset[str]
    via: tuple[str, ...]  # uv's annotation: the packages (or input files) that led to this pin

    def applies(self, environment: Mapping[str, str]) -> bool:
        return self.marker is None or self.marker.evaluate(dict(environment))


@dataclass(frozen=True)
class Lock:
    options: tuple[str, ...]
    pins: tuple[Pin, ...]

    def pins_for(self, environment: Mapping[str, str]) -> dict[NormalizedName, Pin]:
        found: dict[NormalizedName, Pin] = {}
        for pin in self.pins:
            if pin.applies(environment):
                assert pin.name not in found, f"{pin.name} is pinned twice for {environment}"
                found[pin.name] = pin
        return found


def _pin(logical_line: str, via: list[str]) -> Pin:
    requirement_text, *hash_words = re.split(r"\s+(?=--hash=)", logical_line)
    requirement = Requirement(requirement_text)
    specifiers = list(requirement.specifier)
    assert len(specifiers) == 1, f"not an exact pin: {requirement_text}"
    assert specifiers[0].operator == "==", f"not an exact pin: {requirement_text}"
    hashes = frozenset(word.removeprefix("--hash=").strip() for word in hash_words)
    return Pin(
        canonicalize_name(requirement.name),
        Version(specifiers[0].version),
        requirement.marker,
        hashes,
        tuple(via),
    )


@cache
def read_lock(path: Path) -> Lock:
    """uv's requirements output: `name==version ; marker \\`, `--hash=` lines, then `# via` comments."""
    options: list[str] = []
    entries: list[tuple[str, list[str]]] = []  # (requirement line with its hashes, via)
    pending = ""
    in_via_list = False
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if pending:  # inside a requirement's continuation lines
            pending += " " + line.removesuffix("\\").strip()
            if not line.endswith("\\"):
                entries[-1] = (pending, entries[-1][1])
                pending = ""
            continue
        if line.startswith("#"):
            comment = line[1:].strip()
            if not entries:
                continue  # the header
            if comment.startswith("via "):
                entries[-1][1].append(comment.removeprefix("via ").strip())
                in_via_list = False
            elif comment == "via":
                in_via_list = True
            elif in_via_list and comment:
                entries[-1][1].append(comment)
            continue
        in_via_list = False
        if not line:
            continue
        if line.startswith("-"):
            options.append(line)
            continue
        entries.append(("", []))
        pending = line.removesuffix("\\").strip()
        if not line.endswith("\\"):
            entries[-1] = (pending, [])
            pending = ""
    assert not pending, f"{path.name} ends inside a continuation line"
    return Lock(tuple(options), tuple(_pin(text, via) for text, via in entries))
