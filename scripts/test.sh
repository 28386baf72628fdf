#!/usr/bin/env bash
# Set up and run the whole test suite. dcmsign and SoftHSM2 tests must run, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DSIG_REQUIRE_DCMTK=1 DSIG_REQUIRE_SOFTHSM=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
