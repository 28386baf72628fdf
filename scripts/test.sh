#!/usr/bin/env bash
# Set up, run the static checks and the whole test suite. dcmsign, SoftHSM2 and Bouncy Castle (ERS
# interop) tests must run, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Static checks first: lint, format and mypy --strict over the packages, the tests and the scripts
.venv/bin/ruff check dsig pki tokens tests scripts
.venv/bin/ruff format --check dsig pki tokens tests scripts
.venv/bin/mypy
export DSIG_REQUIRE_DCMTK=1 DSIG_REQUIRE_SOFTHSM=1 DSIG_REQUIRE_BOUNCYCASTLE=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
