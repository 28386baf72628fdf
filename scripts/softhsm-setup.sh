#!/usr/bin/env bash
# Create (or recreate) a SoftHSM2 demo token for dsig, inside the project, never system-wide.
#
#   scripts/softhsm-setup.sh            # token dir: ${DSIG_SOFTHSM_DIR:-<repo>/.softhsm}
#   eval "$(scripts/softhsm-setup.sh | grep ^export)"
#
# Idempotent: each run deletes and recreates the token 'dsig-demo' (label: $DSIG_SOFTHSM_LABEL)
# with an RSA-2048 and an EC P-256 key generated ON the token (sensitive, non-extractable),
# certificates from a fresh demo CA stored next to them, and the CA at <dir>/demo-ca.pem
# (for `dsig verify --trust-store`).
#
# DEMO ONLY: user PIN 1234, SO PIN 5678. Never keep real keys on this token.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${DSIG_SOFTHSM_DIR:-$repo/.softhsm}"
label="${DSIG_SOFTHSM_LABEL:-dsig-demo}"
# the project's virtualenv (scripts/setup.sh makes it): the system python3 has none of our packages
python="${DSIG_PYTHON:-$repo/.venv/bin/python}"
if [ ! -x "$python" ]; then
    "$repo/scripts/setup.sh" >&2
fi

if ! command -v softhsm2-util >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "softhsm2 is missing: installing it with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq softhsm2 >&2
    else
        echo "softhsm-setup: softhsm2 is not installed." >&2
        echo "  Debian/Ubuntu: sudo apt-get install softhsm2" >&2
        echo "  Fedora: sudo dnf install softhsm    macOS: brew install softhsm" >&2
        exit 2
    fi
fi

if ! "$python" -c 'import pkcs11' >/dev/null 2>&1; then
    echo "softhsm-setup: python-pkcs11 is missing from $python: run scripts/setup.sh" >&2
    exit 2
fi

mkdir -p "$dir"
cd "$repo"
exec "$python" -m tests.helpers.softhsm provision --dir "$dir" --label "$label"
