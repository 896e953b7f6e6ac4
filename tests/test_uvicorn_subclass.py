"""`BoundedHttpToolsProtocol` subclasses uvicorn's private `HttpToolsProtocol`: it holds for one uvicorn.

uvicorn does not promise `uvicorn.protocols.http.httptools_impl` to anyone: a release may rename the
methods the subclass overrides, or change when it calls them, and nothing would fail loudly. So the
subclass was read against one uvicorn version, named here; the locks pin that version
(requirements/constraints.txt), and these tests fail as soon as another one is installed or locked.

To move to another uvicorn: read its `httptools_impl.py` against app/http/server.py (the methods
overridden below, `self.loop`, `self.transport`, when `on_message_begin` and `on_headers_complete`
run), run tests/test_http_hostile.py, then change UVICORN_CHECKED and requirements/constraints.txt
together and run `bash scripts/lock.sh`.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

from packaging.requirements import Requirement
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.http.server import BoundedHttpToolsProtocol
from support.locks import CONSTRAINTS, RUNTIME_LOCK, TEST_LOCK, read_lock

UVICORN_CHECKED = "0.54.0"

RECHECK = (
    f"app/http/server.py's BoundedHttpToolsProtocol was checked against uvicorn {UVICORN_CHECKED} only: "
    "recheck the subclass against this uvicorn's httptools_impl (see this test module's docstring)"
)


def test_the_installed_uvicorn_is_the_one_the_subclass_was_checked_against() -> None:
    installed = version("uvicorn")
    assert installed == UVICORN_CHECKED, f"uvicorn {installed} is installed. {RECHECK}"


def test_the_locks_hold_uvicorn_at_the_checked_version() -> None:
    held = [
        Requirement(line)
        for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert [str(requirement) for requirement in held if requirement.name == "uvicorn"] == [
        f"uvicorn=={UVICORN_CHECKED}"
    ], f"requirements/constraints.txt must hold uvicorn=={UVICORN_CHECKED}. {RECHECK}"
    for lock_path in (RUNTIME_LOCK, TEST_LOCK):
        pinned = [str(pin.version) for pin in read_lock(lock_path).pins if pin.name == "uvicorn"]
        assert pinned == [UVICORN_CHECKED], f"{lock_path.name} pins uvicorn {pinned}. {RECHECK}"


def test_every_method_the_subclass_overrides_exists_in_uvicorns_class() -> None:
    """A renamed hook would leave an override that nothing calls: the bound would silently go."""
    assert issubclass(BoundedHttpToolsProtocol, HttpToolsProtocol)
    overrides = [
        name
        for name, member in vars(BoundedHttpToolsProtocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    ]
    assert overrides
    missing = [name for name in overrides if not inspect.isfunction(getattr(HttpToolsProtocol, name, None))]
    assert not missing, f"uvicorn's HttpToolsProtocol has no {missing}. {RECHECK}"
