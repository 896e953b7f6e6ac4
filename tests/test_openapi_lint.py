"""The committed OpenAPI document as linters read it: openapi-spec-validator finds it valid, and Redocly's
recommended rules find no error and no warning, none of them ignored.

Redocly's CLI is pinned by tests/redocly/package-lock.json and installed from it on first use; npm keeps
the download in its own cache (~/.npm)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from openapi_spec_validator import validate

from support.processes import REPO
from support.tools import require

DOCUMENT = REPO / "openapi" / "openapi.json"
REDOCLY = REPO / "tests" / "redocly"
CLI = REDOCLY / "node_modules" / "@redocly" / "cli"
NEEDS_NODE = "Redocly's CLI needs Node.js 20.19 or later, and npm"
TIMEOUT_SECONDS = 300
# Neither asks the network anything: no usage report, no look-up of a newer release.
QUIET = {"REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"}


def test_openapi_spec_validator_finds_the_document_valid() -> None:
    validate(json.loads(DOCUMENT.read_text()))


def pinned_version() -> str:
    return str(json.loads((REDOCLY / "package.json").read_text())["dependencies"]["@redocly/cli"])


def installed_version() -> str | None:
    try:
        return str(json.loads((CLI / "package.json").read_text())["version"])
    except FileNotFoundError:
        return None


def redocly_cli() -> Path:
    """Redocly's CLI at the pinned version, `npm ci` from the lockfile when it is missing or stale."""
    npm = require("npm", NEEDS_NODE)
    if installed_version() != pinned_version():
        subprocess.run(
            [npm, "ci", "--prefix", str(REDOCLY), "--no-audit", "--no-fund"],
            check=True,
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
        )
    return CLI / "bin" / "cli.js"


def test_redocly_recommended_rules_find_no_problem() -> None:
    node = require("node", NEEDS_NODE)
    linted = subprocess.run(
        [node, str(redocly_cli()), "lint", "--extends=recommended", "--format=json", str(DOCUMENT)],
        cwd=REPO,
        env={**os.environ, **QUIET},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    report = json.loads(linted.stdout)
    problems = [
        f"{found['severity']} {found['ruleId']} at {found['location'][0]['pointer']}: {found['message']}"
        for found in report["problems"]
    ]
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, problems
