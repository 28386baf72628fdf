#!/usr/bin/env bash
# Set up, make a demo PKI, sign a JPEG image and an ECG waveform, verify them against the
# demo trust store, and show the result.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
DEMO=.demo
rm -rf "$DEMO"
.venv/bin/python scripts/make_demo_pki.py "$DEMO"
samples=$(.venv/bin/python -c "from pydicom.data import get_testdata_file as g; print(g('JPEG-lossy.dcm', download=False), g('waveform_ecg.dcm', download=False))")
set -- $samples
dsig=.venv/bin/dsig
$dsig sign "$1" "$DEMO/jpeg-signed.dcm" --key "$DEMO/signer.key.pem" --cert "$DEMO/signer.cert.pem" \
  --password-file "$DEMO/password.txt" --profile base --purpose 1
$dsig sign "$2" "$DEMO/ecg-signed.dcm" --key "$DEMO/signer.key.pem" --cert "$DEMO/signer.cert.pem" \
  --password-file "$DEMO/password.txt" --profile creator --mac sha384
echo
$dsig verify "$DEMO/jpeg-signed.dcm" "$DEMO/ecg-signed.dcm" \
  --trust-store "$DEMO/demo-root.pem" --untrusted "$DEMO/demo-intermediate.pem"
