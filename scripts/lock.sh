#!/usr/bin/env bash
# Regenerates the lock files from pyproject.toml with uv (a pinned version, in a throwaway venv):
#   requirements/test.txt     what CI installs: the dependencies, the `test` extra and the build backend
#   requirements/runtime.txt  what the image installs: the same versions, less the `test` extra
# One resolution for every platform and Python >= 3.11 (markers decide the rest), wheels only, with
# the hash of every file of each pinned version. requirements/constraints.txt holds versions on purpose.
#
#   bash scripts/lock.sh                         keep the pinned versions that still satisfy pyproject.toml
#   bash scripts/lock.sh --upgrade               take the newest versions allowed
#   bash scripts/lock.sh --upgrade-package NAME  the newest of one package
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
tool=$(mktemp -d)
trap 'rm -rf "$tool"' EXIT
python3 -m venv "$tool"
"$tool/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"

# The build backend (pyproject's [build-system] requires) is locked too: the project is installed
# with --no-build-isolation, so nothing unpinned enters the build either.
build_requires=$(python3 -c 'import sys, tomllib; print("\n".join(tomllib.load(sys.stdin.buffer)["build-system"]["requires"]))' <pyproject.toml)

compile() {
    printf '%s\n' "$build_requires" | "$tool/bin/uv" pip compile --quiet pyproject.toml - \
        --universal --python-version 3.11 --fork-strategy fewest \
        --only-binary :all: --emit-build-options --generate-hashes \
        --custom-compile-command "bash scripts/lock.sh" "$@"
}

compile --extra test -c requirements/constraints.txt -o requirements/test.txt "$@"
# Constrained by the test lock, so the image gets exactly the versions that CI tested.
compile -c requirements/test.txt -o requirements/runtime.txt
