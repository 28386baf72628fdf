"""Shared pytest configuration: plugins and the small PKI most core tests sign with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from tests.helpers.pki_factory import TestPki, build_pki

pytest_plugins = ["tests.helpers.softhsm_fixtures"]


@dataclass
class CorePki:
    """Files of a root -> intermediate -> leaves PKI, written once per session."""

    pki: TestPki
    directory: Path
    root: Path
    intermediate: Path
    trust_bundle: Path  # root + intermediate
    rsa_key: Path
    rsa_cert: Path
    ec_key: Path
    ec_cert: Path
    encrypted_key: Path  # RSA key encrypted with PASSWORD
    password: str = "correct horse"


@pytest.fixture(scope="session")
def core_pki(tmp_path_factory: pytest.TempPathFactory) -> CorePki:
    """RSA-2048 and EC P-256 signers issued by a test intermediate."""
    d = tmp_path_factory.mktemp("core-pki")
    p = build_pki()
    root, inter = p.write_anchors(d)
    bundle = d / "trust.pem"
    bundle.write_bytes(root.read_bytes() + inter.read_bytes())
    rsa_key, rsa_cert = p.leaf("rsa").write(d, "rsa")
    ec_key, ec_cert = p.leaf("ec", key_kind="ec-p256").write(d, "ec")
    enc_key, _ = p.leaf("rsa").write(d / "enc", "rsa", password=b"correct horse")
    return CorePki(p, d, root, inter, bundle, rsa_key, rsa_cert, ec_key, ec_cert, enc_key)


def sample(name: str) -> Path:
    """A DICOM file shipped with pydicom (never downloaded)."""
    path = get_testdata_file(name, download=False)
    assert path is not None, name
    return Path(str(path))
