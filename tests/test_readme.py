"""The README's curl session runs as written: every `curl` of its `sh` blocks that use `$B`, in the order
written, against one live `statestore serve`, each against the state the previous ones left.

A command answers what the comment line right after it says (`# 412 …` or `# HTTP/1.1 201 Created`), or a
2xx or 304 when no such line follows. The server has the README's sample descriptor set loaded, as its
protobuf session has; the session's other commands (installing, compiling, starting a server) are what the
fixture does instead.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _descriptors import SAMPLE_PROTO, build_descriptor_set

from support.processes import REPO, serving_sqlite

README = REPO / "README.md"
_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
_STATUS_COMMENT = re.compile(r"^#\s*(?:HTTP/1\.1\s+)?([1-5][0-9]{2})\b")


@dataclass(frozen=True)
class Call:
    command: str
    expected: int | None  # None: any 2xx, or 304

    def accepts(self, status: int) -> bool:
        if self.expected is None:
            return 200 <= status < 300 or status == 304
        return status == self.expected


def _complete(command: str) -> bool:
    """Whether a shell command is whole: no line continuation, no open quote."""
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command)
    except ValueError:  # "No closing quotation"
        return False
    return True


def session_calls(text: str) -> list[Call]:
    calls: list[Call] = []
    for block in _BLOCK.findall(text):
        if "$B" not in block:
            continue
        lines = block.splitlines()
        index = 0
        while index < len(lines):
            line = lines[index].strip()
            index += 1
            if not line.startswith("curl "):
                continue
            command = line
            while not _complete(command) and index < len(lines):
                command = command + "\n" + lines[index]
                index += 1
            following = lines[index].strip() if index < len(lines) else ""
            status = _STATUS_COMMENT.match(following)
            calls.append(Call(command, int(status.group(1)) if status else None))
    return calls


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("readme")
    descriptors = build_descriptor_set(SAMPLE_PROTO, folder / "billing.binpb")
    settings = {"STATESTORE_DESCRIPTOR_SETS": str(descriptors)}
    with serving_sqlite(folder / "states.db", settings) as (url, _):
        yield url


def status_of(call: Call, base: str, cwd: Path) -> tuple[int, str]:
    # The command as written, with `curl` made to print the status after what it prints itself.
    wrapper = 'curl() { command curl --silent --show-error -w "\\n%{http_code}" "$@"; }'
    script = f"B={base}\n{wrapper}\n{call.command}"
    done = subprocess.run(
        ["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"{call.command}\n{done.stderr}"
    output, _, status = done.stdout.rpartition("\n")
    return int(status), output


def test_the_readme_has_a_curl_session() -> None:
    calls = session_calls(README.read_text())
    assert len(calls) >= 20
    assert any(call.expected == 412 for call in calls)


def test_the_readme_session_runs_top_to_bottom(base_url: str, tmp_path: Path) -> None:
    for number, call in enumerate(session_calls(README.read_text()), start=1):
        status, output = status_of(call, base_url, tmp_path)
        assert call.accepts(status), f"call {number}: {call.command}\nanswered {status}:\n{output}"
