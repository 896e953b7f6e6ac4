"""Child processes of the benchmark: started in their own process group, all ended on exit."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType

LOOPBACK = "127.0.0.1"


class ChildFailedError(RuntimeError):
    """A child process died or never became ready; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class Child:
    """One long-running child (a server) whose output goes to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 - argv is built by the benchmark itself
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise ChildFailedError(
                f"{self.name} exited with status {self.proc.returncode}:\n{self.log_tail()}"
            )

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        """Wait until `url` answers any HTTP status."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback URL of our child
                    return
            except urllib.error.HTTPError:
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise ChildFailedError(
                        f"{self.name} did not answer {url} in {timeout:.0f} s:\n{self.log_tail()}"
                    ) from exc
                time.sleep(0.1)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the child's process group, SIGKILL it after `grace` seconds."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Anything the child left behind in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


class Children:
    """Every child started through it is stopped when the `with` block ends, however it ends."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        child = Child(name, argv, log_path, env, cwd)
        self._children.append(child)
        return child

    def stop(self, child: Child) -> None:
        child.stop()
        self._children.remove(child)

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        while self._children:
            self._children.pop().stop()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt, so that `finally`/`with` clean-ups run on it too."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_bounded(
    argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a short-lived child (a load generator) in its own group; kill the group on timeout or interrupt."""
    proc = subprocess.Popen(  # noqa: S603 - argv is built by the benchmark itself
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_tool(
    argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool (npm, apt-get, git, wrk --version) found with shutil.which; never raises on failure."""
    try:
        return subprocess.run(  # noqa: S603 - argv is built by the benchmark itself
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(list(argv), 127, "", str(exc))
