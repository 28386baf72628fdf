"""Write a throw-away demo PKI into a directory: root, intermediate, an RSA signer.

Demo only: the signer key is encrypted with the password in ``password.txt`` beside it.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.pki_factory import build_pki


def main(directory: Path) -> None:
    """Create the demo PKI files in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    pki = build_pki(now)
    pem = serialization.Encoding.PEM
    (directory / "demo-root.pem").write_bytes(pki.root.cert.public_bytes(pem))
    (directory / "demo-intermediate.pem").write_bytes(pki.intermediate.cert.public_bytes(pem))
    password = "demo-only-password"
    (directory / "password.txt").write_text(password + "\n")
    signer = pki.leaf("Dr. Demo Radiologist", now=now)
    signer.write(directory, "signer", password=password.encode())
    print(f"demo PKI written to {directory}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".demo"))
