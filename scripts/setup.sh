#!/usr/bin/env bash
# Set up everything dsig needs on a fresh Debian machine: the Debian tools the tests drive (dcmtk's
# dcmsign, softhsm2 and opencryptoki tokens, opensc, dicom3tools, poppler, chromium for the HTML report tests, Bouncy Castle with a JDK)
# and a virtualenv (.venv) with dsig and its test tools.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package, for every tool the tests use
need_apt=()
while read -r cmd pkg; do
  command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
done <<'EOT'
dcmsign dcmtk
softhsm2-util softhsm2
openssl openssl
pkcs11-tool opensc
pkcsslotd opencryptoki
dciodvfy dicom3tools
pdftotext poppler-utils
chromium chromium
javac openjdk-17-jdk-headless
EOT
[ -f /usr/share/java/bcpkix.jar ] || need_apt+=(libbcpkix-java)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install the Debian packages: ${need_apt[*]}" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import dsig, pytest, hypothesis" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.dsig-installed ]; then
  if ! log=$(.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1); then
    echo "$log" >&2
    exit 1
  fi
  touch .venv/.dsig-installed
fi
echo "setup: ready (.venv/bin/dsig)" >&2
