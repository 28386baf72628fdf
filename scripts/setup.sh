#!/usr/bin/env bash
# Set up everything dsig needs on a fresh Debian machine: the Debian tools the tests drive (dcmtk's
# dcmsign, softhsm2 and opencryptoki tokens, opensc, dicom3tools, poppler, chromium (prints the
# HTML reports to PDF in the tests), Orthanc with its Python and DICOMweb plugins, Bouncy Castle
# with a JDK) and a virtualenv (.venv) with dsig, its archive extra (s3fs, dask[distributed]) and
# its test tools (moto's S3 server for the archive tests).
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
# Orthanc with its Python and DICOMweb plugins, for the Orthanc plugin tests (never started as a
# service: the tests start their own Orthanc with a temporary configuration)
command -v Orthanc >/dev/null 2>&1 || need_apt+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancPython.so ] || need_apt+=(orthanc-python)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need_apt+=(orthanc-dicomweb)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} with apt-get" >&2
    apt-get update -qq
    # no service may start while installing (Orthanc's package would start one)
    blocker=/usr/sbin/policy-rc.d
    if [ ! -e "$blocker" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$blocker" && chmod +x "$blocker"
      trap 'rm -f "$blocker"' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install the Debian packages: ${need_apt[*]}" >&2
    exit 1
  fi
fi

# openCryptoki's log directory is a mount point for the private test token (tests/helpers/opencryptoki.py);
# /var/log may be emptied on a fresh machine after the package was installed, so make it again
if command -v pkcsslotd >/dev/null 2>&1 && [ ! -d /var/log/opencryptoki ] && [ "$(id -u)" = 0 ]; then
  install -d -m 0770 -g pkcs11 /var/log/opencryptoki 2>/dev/null || install -d -m 0770 /var/log/opencryptoki
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import dsig, pytest, hypothesis, s3fs, distributed, moto" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.dsig-installed ]; then
  if ! log=$(.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,archive]" 2>&1); then
    echo "$log" >&2
    exit 1
  fi
  touch .venv/.dsig-installed
fi
echo "setup: ready (.venv/bin/dsig)" >&2
