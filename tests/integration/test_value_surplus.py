"""Bytes stored after the encoded value of a signature attribute the MAC excludes (Certificate
of Signer, Signature, Certified Timestamp): the verifier reads each only up to its encoded
length, so such bytes ride along signed by nothing. They are reported as VALUE_TRAILING_BYTES,
a warning like bytes after the data set (the verdict stands), and fail
``--require-coverage all``. Real signer, real TSA on 127.0.0.1, the CLI through CliRunner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

import dsig
from dsig.cli import app
from dsig.encoding.der import der_surplus, strip_der_pad
from dsig.encoding.reader import read_dicom
from dsig.encoding.writer import save, target_encoding
from dsig.signature.model import (
    CERTIFICATE_OF_SIGNER,
    CERTIFIED_TIMESTAMP,
    SIGNATURE,
    find_signatures,
    raw_bytes,
)
from tests.helpers.rawdicom import EXPLICIT_LE, basic_dataset, meta, part10
from tests.helpers.tsa import TimestampPki, TsaServer

runner = CliRunner()
HIDDEN = b"HIDDEN-PAYLOAD!!"
TAGS = {"certificate": CERTIFICATE_OF_SIGNER, "signature": SIGNATURE,
        "timestamp": CERTIFIED_TIMESTAMP}  # fmt: skip
NAMES = {"certificate": "Certificate of Signer", "signature": "Signature",
         "timestamp": "Certified Timestamp"}  # fmt: skip


@pytest.fixture(scope="module")
def tpki(tmp_path_factory: pytest.TempPathFactory) -> TimestampPki:
    return TimestampPki(tmp_path_factory.mktemp("surplus-pki"))


@pytest.fixture(scope="module")
def tsa(tpki: TimestampPki) -> Iterator[TsaServer]:
    with tpki.server() as server:
        yield server


@pytest.fixture(scope="module")
def stamped(tpki: TimestampPki, tsa: TsaServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small file (nothing outside the signature: coverage of all elements is met), signed
    and timestamped."""
    d = tmp_path_factory.mktemp("surplus")
    plain, out = d / "plain.dcm", d / "stamped.dcm"
    plain.write_bytes(part10(meta(EXPLICIT_LE, "1.2.3.4.77"), basic_dataset("1.2.3.4.77")))
    code, output = dsig_run("sign", plain, out, "--key", tpki.rsa_key, "--cert", tpki.rsa_cert,
                            "--no-password", "--tsa", tsa.url)  # fmt: skip
    assert code == 0, output
    return out


def dsig_run(*args: object) -> tuple[int, str]:
    r = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout


def trust(tpki: TimestampPki) -> list[object]:
    return ["--trust-store", tpki.root_pem, "--untrusted", tpki.inter_pem]


def with_surplus(src: Path, out: Path, tag: int) -> tuple[int, int]:
    """``src`` with HIDDEN stored after the value of ``tag`` in its signature item: (bytes
    added, bytes stored after the encoded value)."""
    ds = read_dicom(src)
    item = find_signatures(ds)[0].item
    value = raw_bytes(item, tag) or b""
    kept = value[:256] if tag == SIGNATURE else strip_der_pad(value)  # RSA-2048: 256 bytes
    hidden = HIDDEN + b"!" * (len(kept) % 2)  # even in all: the writer adds no pad byte
    item.add_new(tag, "OB", kept + hidden)
    save(ds, out, target_encoding(ds, "same", None))
    stored = raw_bytes(find_signatures(read_dicom(out))[0].item, tag) or b""
    return len(hidden), len(stored) - len(kept)


def surplus_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    (sig,) = report["files"][0]["signatures"]
    return [f for f in sig["findings"] if f["code"] == "VALUE_TRAILING_BYTES"]


def test_an_intact_file_has_no_surplus(tpki: TimestampPki, stamped: Path) -> None:
    code, out = dsig_run("verify", "--json", *trust(tpki), "--require-coverage", "all", stamped)
    report = json.loads(out)
    assert code == 0 and report["files"][0]["indication"] == "VALID", out
    assert surplus_findings(report) == []


@pytest.mark.parametrize("where", ["certificate", "signature", "timestamp"])
def test_bytes_after_a_value_outside_the_mac_are_reported(
    tpki: TimestampPki, stamped: Path, tmp_path: Path, where: str
) -> None:
    path = tmp_path / f"{where}.dcm"
    added, count = with_surplus(stamped, path, TAGS[where])
    assert count == added
    code, out = dsig_run("verify", "--json", *trust(tpki), path)
    report = json.loads(out)
    jsonschema.Draft202012Validator(dsig.verify_schema()).validate(report)
    # the signature and the timestamp still verify: the verdict stands, as for bytes after
    # the data set (UNSIGNABLE_CONTENT), but the bytes are said
    assert code == 0 and report["files"][0]["indication"] == "VALID", out
    (sig,) = report["files"][0]["signatures"]
    assert sig["timestamp"]["indication"] == "VALID"
    (finding,) = surplus_findings(report)
    assert finding["severity"] == "warning"
    assert finding["message"].startswith(f"{NAMES[where]} holds {count} byte(s) after")
    code, human = dsig_run("verify", *trust(tpki), path)
    assert code == 0 and human.startswith("VALID"), human
    assert any("VALUE_TRAILING_BYTES" in line and NAMES[where] in line
               for line in human.splitlines()), human  # fmt: skip
    # every byte must be covered: these are not
    code, out = dsig_run("verify", "--json", *trust(tpki), "--require-coverage", "all", path)
    report = json.loads(out)
    assert code == 1 and report["files"][0]["indication"] == "INVALID", out
    coverage = [f for f in report["files"][0]["findings"] if f["code"] == "COVERAGE_INCOMPLETE"]
    assert len(coverage) == 1 and NAMES[where] in coverage[0]["message"], coverage


def test_der_surplus_spares_only_the_pad_byte() -> None:
    odd = b"\x30\x03\x02\x01\x05"  # a 5-byte DER SEQUENCE
    assert der_surplus(odd) == 0 and der_surplus(odd + b"\x00") == 0
    assert der_surplus(odd + b"\x01") == 1  # a pad byte is a zero
    assert der_surplus(odd + b"\x00\x00\x00") == 3
    even = b"\x30\x04\x02\x02\x01\x00"
    assert der_surplus(even) == 0 and der_surplus(even + b"\x00") == 1  # no pad is due
    long_form = b"\x30\x81\x03\x02\x01\x05"
    assert der_surplus(long_form + b"ab") == 2
    assert der_surplus(b"\x30\x80\x02\x01\x05\x00\x00") == 0  # no DER length: parser decides
