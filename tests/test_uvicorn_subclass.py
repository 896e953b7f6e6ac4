"""`BoundedHttpToolsProtocol` subclasses uvicorn's private `HttpToolsProtocol`: it holds for one uvicorn.

uvicorn does not promise `uvicorn.protocols.http.httptools_impl` to anyone: a release may rename the
methods the subclass overrides, or change when it calls them, and nothing would fail loudly. So the
subclass was read against one uvicorn version, named here; the locks pin that version
(requirements/constraints.txt), and these tests fail as soon as another one is installed or locked.

To move to another uvicorn: read its `httptools_impl.py` against app/http/server.py (the methods
the subclass overrides, `self.loop`, `self.transport`, when the parser callbacks run, what it does with
an `Upgrade` header), run tests/test_http_hostile.py, then change UVICORN_CHECKED and
requirements/constraints.txt together and run `bash scripts/lock.sh`.
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


# The subclass's own methods; every other method it defines overrides one of uvicorn's.
OWN_METHODS = {
    "_begin_head",
    "_check_head",
    "_check_linger",
    "_discard",
    "_method",
    "_refuse",
    "_refuse_head_size",
    "_without_upgrade",
    "close_lingering",
    "_watch_send",
    "_check_send",
}


def test_every_method_the_subclass_overrides_exists_in_uvicorns_class() -> None:
    """A renamed hook would leave an override that nothing calls, and a new uvicorn method with the name
    of one of the subclass's own would be replaced unawares: either way a bound would silently go."""
    assert issubclass(BoundedHttpToolsProtocol, HttpToolsProtocol)
    defined = {name for name, member in vars(BoundedHttpToolsProtocol).items() if inspect.isfunction(member)}
    in_uvicorn = {name for name in defined if inspect.isfunction(getattr(HttpToolsProtocol, name, None))}
    assert defined - in_uvicorn == OWN_METHODS, (
        f"uvicorn's HttpToolsProtocol lacks {sorted(defined - in_uvicorn - OWN_METHODS)} and has "
        f"{sorted(OWN_METHODS & in_uvicorn)} (the subclass's own new methods belong in OWN_METHODS). "
        + RECHECK
    )
