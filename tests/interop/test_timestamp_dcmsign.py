"""Certified timestamps both ways between dsig and DCMTK dcmsign (``+ts`` / ``+t`` / ``+tv``).

The TSA is ours on 127.0.0.1 (python backend) or ``openssl ts -reply``; its certificate has a
critical timeStamping EKU and is issued by the interop PKI's intermediate, so dcmsign's store
(``+cf root +uf intermediate``) validates it. dsig runs as ``python -m dsig`` subprocesses.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsig.encoding.reader import read_dicom
from dsig.encoding.writer import save, target_encoding
from dsig.signature.model import CERTIFIED_TIMESTAMP, find_signatures, raw_bytes
from tests.helpers import dcmtk
from tests.helpers.pki_factory import TIMESTAMPING, issue
from tests.helpers.tsa import TsaServer
from tests.interop.conftest import Dsig, PkiFiles, Signer, Sources

TS_OK = "Timestamp Verification      : OK"


@pytest.fixture(scope="module")
def tsa_issued(pki: PkiFiles) -> object:
    return issue("dsig interop TSA", issuer=pki._pki.intermediate, eku=[TIMESTAMPING])


@pytest.fixture(scope="module")
def py_tsa(pki: PkiFiles, tsa_issued: object) -> Iterator[TsaServer]:
    """Our python TSA (used where the token's origin does not matter)."""
    with TsaServer(tsa_issued, [pki._pki.intermediate.cert]) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture(scope="module")
def openssl_tsa(pki: PkiFiles, tsa_issued: object) -> Iterator[TsaServer]:
    """``openssl ts -reply`` behind HTTP: the second, independent TSA implementation."""
    with TsaServer(tsa_issued, [pki._pki.intermediate.cert], backend="openssl") as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture(params=["python", "openssl"])
def tsa(request: pytest.FixtureRequest) -> TsaServer:
    """Both TSA implementations, for the round trips."""
    return request.getfixturevalue(f"{'py' if request.param == 'python' else 'openssl'}_tsa")  # type: ignore[no-any-return]


def _dcmsign_verify(path: Path) -> tuple[bool, str]:
    ok, out = dcmtk.dcmsign_verify(path, extra=["+tv"])
    return ok, out


def _assert_dcmsign_timestamp_ok(path: Path) -> None:
    ok, out = _dcmsign_verify(path)
    assert ok, out
    assert "Timestamp Verification : OK" in out or TS_OK in out, out


def _dsig_timestamp(dsig: Dsig, pki: PkiFiles, path: Path) -> dict[str, object]:
    res = dsig.verify_one(
        path,
        "--trust-store",
        str(pki.root),
        "--untrusted",
        str(pki.intermediate),
        "--require",
        "timestamp",
        integrity_only=False,
    )
    assert res.indication == "VALID", res.describe()
    ts = res.signatures[0]["timestamp"]
    assert ts["indication"] == "VALID", res.describe()
    return ts  # type: ignore[no-any-return]


def _dcmsign_sign_with_query(
    src: Path, out: Path, signer: Signer, q: Path, u: Path, *flags: str
) -> None:
    dcmtk.dcmsign_sign(src, out, signer.key, signer.cert, extra=["+ts", str(q), str(u), *flags])


@pytest.mark.parametrize(
    "flags", [(), ("+tm5", "-tn", "+tp", "1.2.3.4.5")], ids=["default", "sha512-nononce-policy"]
)
def test_dcmsign_query_dsig_insert(
    dsig: Dsig,
    pki: PkiFiles,
    sources: Sources,
    tsa: TsaServer,
    tmp_path: Path,
    flags: tuple[str, ...],
) -> None:
    signed, q, u = tmp_path / "signed.dcm", tmp_path / "q.tsq", tmp_path / "uid.dcm"
    _dcmsign_sign_with_query(sources("CT_small.dcm"), signed, pki.rsa, q, u, *flags)
    r = tmp_path / "r.tsr"
    r.write_bytes(tsa.respond(q.read_bytes()))
    out = tmp_path / "stamped.dcm"
    proc = dsig.run("timestamp", "insert", signed, out, "--reply", r, "--query", q, "--uid-file", u)
    assert proc.returncode == 0, proc.stderr
    ts = _dsig_timestamp(dsig, pki, out)
    if flags:
        assert ts["hash_algorithm"] == "sha512" and ts["policy"] == "1.2.3.4.5"
    _assert_dcmsign_timestamp_ok(out)


@pytest.mark.parametrize("signer_name", ["rsa", "ec"])
def test_dsig_online_timestamp_verified_by_dcmsign(
    dsig: Dsig, pki: PkiFiles, sources: Sources, tsa: TsaServer, tmp_path: Path, signer_name: str
) -> None:
    signer = pki.rsa if signer_name == "rsa" else pki.ec
    out = tmp_path / "stamped.dcm"
    dsig.sign(sources("CT_small.dcm"), out, signer, extra=["--tsa", tsa.url])
    _dsig_timestamp(dsig, pki, out)
    _assert_dcmsign_timestamp_ok(out)


def test_dsig_query_dcmsign_insert(
    dsig: Dsig, pki: PkiFiles, sources: Sources, tsa: TsaServer, tmp_path: Path
) -> None:
    signed, q, u = tmp_path / "signed.dcm", tmp_path / "q.tsq", tmp_path / "uid.dcm"
    dsig.sign(
        sources("CT_small.dcm"),
        signed,
        pki.rsa,
        extra=["--timestamp-query", str(q), "--timestamp-uid-file", str(u)],
    )
    r = tmp_path / "r.tsr"
    r.write_bytes(tsa.respond(q.read_bytes()))
    out = tmp_path / "stamped.dcm"
    subprocess.run(
        ["dcmsign", "+t", str(q), str(r), str(u), str(signed), str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    _dsig_timestamp(dsig, pki, out)
    _assert_dcmsign_timestamp_ok(out)


def test_tampered_token_rejected_by_both(
    dsig: Dsig, pki: PkiFiles, sources: Sources, py_tsa: TsaServer, tmp_path: Path
) -> None:
    path = tmp_path / "stamped.dcm"
    dsig.sign(sources("CT_small.dcm"), path, pki.rsa, extra=["--tsa", py_tsa.url])
    ds = read_dicom(path)
    item = find_signatures(ds)[0].item
    token = bytearray(raw_bytes(item, CERTIFIED_TIMESTAMP) or b"")
    at = bytes(token).index(b"\x18\x0f")  # genTime of TSTInfo
    token[at + 5] ^= 0x01
    item.add_new(CERTIFIED_TIMESTAMP, "OB", bytes(token))
    save(ds, path, target_encoding(ds, "same", None))
    res = dsig.verify_one(
        path,
        "--trust-store",
        str(pki.root),
        "--untrusted",
        str(pki.intermediate),
        integrity_only=False,
    )
    assert res.signatures[0]["timestamp"]["indication"] == "INVALID", res.describe()
    ok, out = _dcmsign_verify(path)
    assert not ok, out
    assert TS_OK not in out and "Timestamp Verification : OK" not in out, out


def test_dcmsign_query_without_cert_req(
    dsig: Dsig,
    pki: PkiFiles,
    sources: Sources,
    py_tsa: TsaServer,
    tsa_issued: object,
    tmp_path: Path,
) -> None:
    """``-tc``: the token carries no TSA certificate; both tools need it as an intermediate."""
    from cryptography.hazmat.primitives import serialization

    signed, q, u = tmp_path / "signed.dcm", tmp_path / "q.tsq", tmp_path / "uid.dcm"
    _dcmsign_sign_with_query(sources("CT_small.dcm"), signed, pki.rsa, q, u, "-tc")
    r = tmp_path / "r.tsr"
    r.write_bytes(py_tsa.respond(q.read_bytes()))
    out = tmp_path / "stamped.dcm"
    proc = dsig.run("timestamp", "insert", signed, out, "--reply", r, "--query", q, "--uid-file", u)
    assert proc.returncode == 0, proc.stderr
    tsa_pem = tmp_path / "tsa.pem"
    tsa_pem.write_bytes(tsa_issued.cert.public_bytes(serialization.Encoding.PEM))  # type: ignore[attr-defined]
    ok, output = dcmtk.dcmsign_verify(out, untrusted=[pki.intermediate, tsa_pem], extra=["+tv"])
    assert ok and "Timestamp Verification : OK" in output, output
    res = dsig.verify_one(
        out,
        "--trust-store",
        str(pki.root),
        "--untrusted",
        str(pki.intermediate),
        "--untrusted",
        str(tsa_pem),
        integrity_only=False,
    )
    assert res.signatures[0]["timestamp"]["indication"] == "VALID", res.describe()
    # Without the TSA certificate neither tool can check the token.
    ok, output = dcmtk.dcmsign_verify(out, extra=["+tv"])
    assert not ok, output
    res = dsig.verify_one(
        out,
        "--trust-store",
        str(pki.root),
        "--untrusted",
        str(pki.intermediate),
        integrity_only=False,
    )
    assert res.signatures[0]["timestamp"]["indication"] == "INDETERMINATE", res.describe()
