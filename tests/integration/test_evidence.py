"""RFC 4998 evidence records end to end: a real RFC 3161 TSA on 127.0.0.1, a study of pydicom
samples, records decoded with an ASN.1 definition of this file's own, tampering, both kinds of
renewal, verification years later, and Bouncy Castle's ERS on the other side."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from asn1crypto import cms, core

from dsig.evidence import (
    EvidenceError,
    EvidenceStatus,
    StampSettings,
    create_evidence,
    renew_evidence,
    status_evidence,
    verify_file_evidence,
)
from pki.policy import TrustPolicy
from tests.conftest import sample
from tests.helpers.tsa import TimestampPki, TsaServer, dead_url

SAMPLES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "waveform_ecg.dcm")
REPO = Path(__file__).resolve().parents[2]
BC_JARS = [Path("/usr/share/java") / j for j in ("bcpkix.jar", "bcprov.jar", "bcutil.jar")]


# An ASN.1 definition independent of dsig.evidence.asn1 (RFC 4998 §3, IMPLICIT TAGS).
class _Partial(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.OctetString


class _Reduced(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _Partial


class _AlgId(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[str, type, dict[str, bool]] | tuple[str, type]]] = [
        ("algorithm", core.ObjectIdentifier),
        ("parameters", core.Any, {"optional": True}),
    ]


class _AnyList(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.Any


class _Ats(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[str, type, dict[str, object]] | tuple[str, type]]] = [
        ("digestAlgorithm", _AlgId, {"implicit": 0, "optional": True}),
        ("attributes", _AnyList, {"implicit": 1, "optional": True}),
        ("reducedHashtree", _Reduced, {"implicit": 2, "optional": True}),
        ("timeStamp", cms.ContentInfo),
    ]


class _Chain(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _Ats


class _AtsSeq(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _Chain


class _AlgIds(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _AlgId


class _Er(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[str, type, dict[str, object]] | tuple[str, type]]] = [
        ("version", core.Integer),
        ("digestAlgorithms", _AlgIds),
        ("cryptoInfos", _AnyList, {"implicit": 0, "optional": True}),
        ("encryptionInfo", _AnyList, {"implicit": 1, "optional": True}),
        ("archiveTimeStampSequence", _AtsSeq),
    ]


@pytest.fixture(scope="module")
def tsa_pki(tmp_path_factory: pytest.TempPathFactory) -> TimestampPki:
    return TimestampPki(tmp_path_factory.mktemp("ev-pki"))


@pytest.fixture
def tsa(tsa_pki: TimestampPki) -> Iterator[TsaServer]:
    with tsa_pki.server() as server:
        yield server


@pytest.fixture
def study(tmp_path: Path) -> Path:
    d = tmp_path / "study"
    d.mkdir()
    for name in SAMPLES:
        shutil.copy(sample(name), d / name)
    return d


def _trust(p: TimestampPki) -> TrustPolicy:
    return TrustPolicy(trust_roots=(p.root.cert,))


def _uid_files(study: Path | set[Path]) -> dict[str, Path]:
    import pydicom

    files = sorted(study.iterdir() if isinstance(study, Path) else study)
    return {str(pydicom.dcmread(f).SOPInstanceUID) + ".ers": f for f in files}


def test_create_one_timestamp_records_named_by_uid_and_rfc4998_der(
    study: Path, tsa: TsaServer, tsa_pki: TimestampPki, tmp_path: Path
) -> None:
    out = tmp_path / "ev"
    summary = create_evidence([study], out, StampSettings([tsa.url], trust=_trust(tsa_pki)))
    assert tsa.hits == 1
    files = _uid_files(study)
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    roots = set()
    for name, data in files.items():
        der = (out / name).read_bytes()
        er = _Er.load(der, strict=True)
        assert er["version"].native == 1
        assert er["digestAlgorithms"][0]["algorithm"].dotted == "2.16.840.1.101.3.4.2.1"
        (chain,) = er["archiveTimeStampSequence"]
        (ats,) = chain
        tree = [[bytes(v.native) for v in part] for part in ats["reducedHashtree"]]
        assert hashlib.sha256(data.read_bytes()).digest() in tree[0]
        # climb by hand: sorted concatenation per node (RFC 4998 §4.2)
        node = (
            hashlib.sha256(b"".join(sorted(tree[0]))).digest() if len(tree[0]) > 1 else tree[0][0]
        )
        for part in tree[1:]:
            node = hashlib.sha256(b"".join(sorted([node, *part]))).digest()
        tst = ats["timeStamp"]["content"]["encap_content_info"]["content"].parsed
        assert bytes(tst["message_imprint"]["hashed_message"].native) == node
        roots.add(node)
        assert not isinstance(er["cryptoInfos"], core.Void)  # TSA chain kept
    assert len(roots) == 1
    assert summary.tsa_requests == 1
    result = verify_file_evidence(
        files[next(iter(files))], out / next(iter(files)), tsa_trust=_trust(tsa_pki)
    )
    assert result.status is EvidenceStatus.PROVEN and result.proven_time == summary.time
    # existing records are not replaced without force
    with pytest.raises(EvidenceError, match="not replaced unless forced") as refused:
        create_evidence([study], out, StampSettings([tsa.url]))
    assert refused.value.option == "force"


def test_tamper_file_tree_token_and_untrusted(
    study: Path, tsa: TsaServer, tsa_pki: TimestampPki, tmp_path: Path
) -> None:
    out = tmp_path / "ev"
    create_evidence([study], out, StampSettings([tsa.url]))
    name, data = next(iter(_uid_files(study).items()))
    record = out / name
    trust = _trust(tsa_pki)
    assert verify_file_evidence(data, record, tsa_trust=trust).status is EvidenceStatus.PROVEN
    # no trust store / another root: not provable
    assert verify_file_evidence(data, record, tsa_trust=None).status is EvidenceStatus.NOT_PROVABLE
    other = TrustPolicy(trust_roots=(tsa_pki.other_root.cert,))
    assert verify_file_evidence(data, record, tsa_trust=other).exit_code == 3
    # the file changes
    changed = tmp_path / "changed.dcm"
    changed.write_bytes(data.read_bytes()[:-1] + b"\x01")
    r = verify_file_evidence(changed, record, tsa_trust=trust)
    assert r.status is EvidenceStatus.BROKEN and r.findings[0][0] == "DATA_NOT_COVERED"
    der = record.read_bytes()
    er = _Er.load(der)
    ats = er["archiveTimeStampSequence"][0][0]
    tree = [bytes(v.native) for v in ats["reducedHashtree"][-1]]
    # a sibling in the tree changes
    sibling = tree[-1]
    bad_tree = der.replace(sibling, bytes([sibling[0] ^ 1]) + sibling[1:])
    (tmp_path / "tree.ers").write_bytes(bad_tree)
    r = verify_file_evidence(data, tmp_path / "tree.ers", tsa_trust=trust)
    assert r.status is EvidenceStatus.BROKEN and r.findings[0][0] == "TREE_MISMATCH"
    # the result shows where it stopped: the stamp as far as it was checked (no time)
    assert [(s.kind, s.time, s.trust) for s in r.stamps] == [("initial", None, None)]
    # the token's signature changes
    token = ats["timeStamp"].dump()
    signature = bytes(ats["timeStamp"]["content"]["signer_infos"][0]["signature"].native)
    bad = token.replace(signature[-8:], bytes(b ^ 0xFF for b in signature[-8:]))
    (tmp_path / "token.ers").write_bytes(der.replace(token, bad))
    r = verify_file_evidence(data, tmp_path / "token.ers", tsa_trust=trust)
    assert r.status is EvidenceStatus.BROKEN and r.findings[0][0] == "TOKEN_INVALID"
    (tmp_path / "junk.ers").write_bytes(der[:40])
    r = verify_file_evidence(data, tmp_path / "junk.ers", tsa_trust=trust)
    assert r.status is EvidenceStatus.BROKEN and r.findings[0][0] == "RECORD_MALFORMED"


def test_renewals_idempotent_and_years_later(
    study: Path, tsa_pki: TimestampPki, tmp_path: Path
) -> None:
    out = tmp_path / "ev"
    trust = _trust(tsa_pki)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    times = iter([start, start + dt.timedelta(days=400), start + dt.timedelta(days=700)])
    with tsa_pki.server(clock=lambda: next(times)) as tsa:
        settings = StampSettings([tsa.url], trust=trust)
        create_evidence([study], out, settings)
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        # just created: not old enough for a timestamp renewal, nothing requested
        first = renew_evidence(out, settings)
        assert first.renewed == () and tsa.hits == 1
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        renewed = renew_evidence(out, settings, min_age=dt.timedelta(0))
        assert len(renewed.renewed) == len(SAMPLES) and tsa.hits == 2
        rehashed = renew_evidence(out, settings, rehash="sha512", data=[study])
        assert len(rehashed.renewed) == len(SAMPLES) and tsa.hits == 3
        again = renew_evidence(out, settings, rehash="sha512", data=[study])
        assert again.renewed == () and tsa.hits == 3
    name, data = next(iter(_uid_files(study).items()))
    er = _Er.load((out / name).read_bytes())
    chains = er["archiveTimeStampSequence"]
    assert [len(c) for c in chains] == [2, 1]
    assert chains[1][0]["digestAlgorithm"]["algorithm"].dotted == "2.16.840.1.101.3.4.2.3"
    # three years on: the TSA certificate (2 years) has expired; the kept data still proves
    later = start + dt.timedelta(days=3 * 365)
    assert tsa_pki.tsa.cert.not_valid_after_utc < later
    r = verify_file_evidence(data, out / name, tsa_trust=trust, at=later)
    assert r.status is EvidenceStatus.PROVEN, r.findings
    assert r.proven_time == start
    assert [s.kind for s in r.stamps] == ["initial", "timestamp-renewal", "hash-tree-renewal"]
    # after the TSA's RSA-2048 lifetime (2030) the last timestamp no longer proves anything
    r = verify_file_evidence(
        data, out / name, tsa_trust=trust, at=dt.datetime(2036, 1, 1, tzinfo=dt.UTC)
    )
    assert r.status is EvidenceStatus.NOT_PROVABLE
    overdue = [m for c, m in r.findings if c == "RENEWAL_OVERDUE"]
    assert len(overdue) == 1 and "rsa-2048 key was secure until 2030-12-31" in overdue[0]
    assert "--" not in overdue[0]  # a library message names no CLI flag
    rows = status_evidence(out, at=later, within=dt.timedelta(days=180))
    # PROVEN with RENEWAL_DUE (the last TSA certificate expired): due, not overdue
    assert {row.action for row in rows} == {"timestamp"}
    rows = status_evidence(out, at=dt.datetime(2036, 1, 1, tzinfo=dt.UTC))
    assert {row.action for row in rows} == {"overdue"}  # verify: NOT_PROVABLE, as above
    rows = status_evidence(out, at=start, within=dt.timedelta(days=30))
    assert {row.action for row in rows} == {"none"}


def test_renew_checks_every_record_first(
    study: Path, tsa: TsaServer, tsa_pki: TimestampPki, tmp_path: Path
) -> None:
    """renew leaves alone, and reports, a record whose tree was changed or that does not
    parse, while the others (same token) are renewed; the token's check is shared, a tree's
    is not. Under a TSA trust that does not hold, nothing is renewed and nothing requested."""
    out = tmp_path / "ev"
    create_evidence([study], out, StampSettings([tsa.url]))
    names = sorted(_uid_files(study))
    tampered, junk = out / names[0], out / names[1]
    der = tampered.read_bytes()
    sibling = bytes(_Er.load(der)["archiveTimeStampSequence"][0][0]["reducedHashtree"][-1][-1])
    tampered.write_bytes(der.replace(sibling, bytes([sibling[0] ^ 1]) + sibling[1:]))
    junk.write_bytes(junk.read_bytes()[:60])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    untrusted = StampSettings([tsa.url], trust=TrustPolicy(trust_roots=(tsa_pki.other_root.cert,)))
    refused = renew_evidence(out, untrusted, min_age=dt.timedelta(0))
    assert refused.renewed == () and tsa.hits == 1
    codes = {n: why.split(":", 1)[0] for n, why in refused.failed.items()}
    assert codes == {
        names[0]: "TREE_MISMATCH",
        names[1]: "not an RFC 4998 evidence record",
    } | dict.fromkeys(names[2:], "TSA_UNTRUSTED"), refused.failed
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    summary = renew_evidence(out, StampSettings([tsa.url], trust=_trust(tsa_pki)),
                             min_age=dt.timedelta(0))  # fmt: skip
    assert sorted(summary.renewed) == names[2:] and tsa.hits == 2
    assert summary.failed[names[0]].startswith("TREE_MISMATCH"), summary.failed
    assert names[1] in summary.failed
    assert tampered.read_bytes() == before[names[0]] and junk.read_bytes() == before[names[1]]


def _dsig(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsig", *map(str, args)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip


def test_cli(study: Path, tsa: TsaServer, tsa_pki: TimestampPki, tmp_path: Path) -> None:
    out = tmp_path / "ev"
    root = tsa_pki.root_pem
    # the first TSA is down: the next --tsa is asked, once
    r = _dsig("evidence", "create", study, "--out-dir", out, "--tsa", dead_url(), "--tsa", tsa.url,
              "--tsa-trust-store", root, "--hash", "sha384")  # fmt: skip
    assert r.returncode == 0 and tsa.hits == 1, r.stderr
    name, data = next(iter(_uid_files(study).items()))
    r = _dsig("evidence", "verify", data, "--evidence", out, "--tsa-trust-store", root, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"status": "PROVEN"' in r.stdout and '"hash_algorithm": "sha384"' in r.stdout
    r = _dsig("evidence", "verify", data, "--evidence", out)
    assert r.returncode == 3 and "TSA_NOT_CHECKED" in r.stdout
    other = tmp_path / "other.dcm"
    other.write_bytes(data.read_bytes() + b"\0\0")
    r = _dsig("evidence", "verify", other, "--evidence", out / name, "--tsa-trust-store", root)
    assert r.returncode == 1 and "DATA_NOT_COVERED" in r.stdout
    r = _dsig(  # a file:// URL is the local directory (the kill test renews a plain path)
        "evidence", "renew", out.as_uri(), "--tsa", tsa.url, "--min-age", "0",
        "--tsa-trust-store", root,
    )  # fmt: skip
    assert r.returncode == 0 and f"renewed {len(SAMPLES)}" in r.stdout, r.stdout + r.stderr
    r = _dsig("evidence", "status", out, "--json")
    assert r.returncode == 0 and '"action": "none"' in r.stdout
    # the TSA certificate has expired, RSA-2048 holds until 2030-12-31: due, still proven
    r = _dsig("evidence", "status", out, "--at", "2030-12-01T00:00:00Z")
    assert r.returncode == 3 and r.stdout.startswith("timestamp "), r.stdout
    r = _dsig("evidence", "status", out, "--at", "2031-01-02T00:00:00Z")
    assert r.returncode == 1 and r.stdout.startswith("overdue "), r.stdout
    r = _dsig("evidence", "verify", tmp_path / "missing", "--evidence", out)
    assert r.returncode == 4 and "Traceback" not in r.stderr


def test_non_dicom_files_named_by_path_and_found_again(
    study: Path, tsa: TsaServer, tsa_pki: TimestampPki, tmp_path: Path
) -> None:
    """Non-DICOM files are named after their path below the input root (``/`` as ``_``);
    verify finds the record from the file alone, whichever directory was the root, and
    picks the record that covers it when two names fit; hidden files get no record."""
    (study / "sub").mkdir()
    (study / "sub" / "report.txt").write_text("the report in sub/\n")
    (study / "report.txt").write_text("another report, at the top\n")
    (study / ".hidden").write_text("left out\n")
    out = tmp_path / "ev"
    root = tsa_pki.root_pem
    r = _dsig("evidence", "create", study, "--out-dir", out, "--tsa", tsa.url,
              "--tsa-trust-store", root, "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([*_uid_files_of(study), "report.txt.ers", "sub_report.txt.ers"])
    for data in (study / "sub" / "report.txt", study / "report.txt"):
        r = _dsig("evidence", "verify", data, "--evidence", out, "--tsa-trust-store", root)
        assert r.returncode == 0 and r.stdout.startswith("PROVEN"), r.stdout + r.stderr
    # a report.txt elsewhere with other bytes: the top record is the one found, and it is broken
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "report.txt").write_text("changed\n")
    r = _dsig("evidence", "verify", tmp_path / "elsewhere" / "report.txt", "--evidence", out,
              "--tsa-trust-store", root)  # fmt: skip
    assert r.returncode == 1 and "DATA_NOT_COVERED" in r.stdout, r.stdout + r.stderr
    r = _dsig("evidence", "verify", tmp_path / "elsewhere" / "report.txt", "--evidence",
              tmp_path / "elsewhere")  # fmt: skip
    assert r.returncode == 4 and r.stderr.startswith("dsig: error: no evidence record")
    assert len(r.stderr.strip().splitlines()) == 1


def _uid_files_of(study: Path) -> list[str]:
    return list(_uid_files({f for f in study.iterdir() if f.suffix == ".dcm"}))


def test_create_hashes_in_bounded_memory(
    study: Path, tsa: TsaServer, tsa_pki: TimestampPki, tmp_path: Path
) -> None:
    """A 200 MiB file beside 2,000 small ones: files hashed in chunks and records written
    one at a time, so ``create`` stays small (it held every record before: 3,000 records
    took 86 MiB, 71 MiB streamed)."""
    from tests.integration.test_bounded_memory import peak

    big = study / "big.bin"
    with big.open("wb") as fp:
        fp.truncate(200 << 20)
    for i in range(2000):
        (study / f"note{i:04d}.txt").write_text(f"note {i}\n")
    out = tmp_path / "ev"
    rc, mib = peak("evidence", "create", study, "--out-dir", out, "--tsa", tsa.url,
                   "--tsa-trust-store", tsa_pki.root_pem)  # fmt: skip
    assert rc == 0 and tsa.hits == 1
    assert len(list(out.iterdir())) == 2000 + len(SAMPLES) + 1
    assert mib < 100, f"evidence create peaked at {mib} MiB"
    result = verify_file_evidence(big, out, tsa_trust=_trust(tsa_pki))
    assert result.status is EvidenceStatus.PROVEN, result.findings


@pytest.fixture(scope="module")
def bc_classes(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("javac") is None or not all(j.exists() for j in BC_JARS):
        # scripts/setup.sh installs them; scripts/test.sh sets the variable (CI never skips)
        if os.environ.get("DSIG_REQUIRE_BOUNCYCASTLE") == "1":
            pytest.fail("javac or Bouncy Castle not found but DSIG_REQUIRE_BOUNCYCASTLE=1")
        pytest.skip("javac or Bouncy Castle (libbcpkix-java) not installed "
                    "(set DSIG_REQUIRE_BOUNCYCASTLE=1 to make this an error)")  # fmt: skip
    d = tmp_path_factory.mktemp("bc")
    cp = ":".join(map(str, BC_JARS))
    source = REPO / "tests" / "helpers" / "java" / "ErsInterop.java"
    subprocess.run(["javac", "-cp", cp, "-d", str(d), str(source)], check=True, timeout=300)
    return f"{cp}:{d}"


def _java(cp: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["java", "-cp", cp, "ErsInterop", *map(str, args)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_bouncy_castle_interop(
    bc_classes: str, study: Path, tsa: TsaServer, tsa_pki: TimestampPki, tmp_path: Path
) -> None:
    out = tmp_path / "ev"
    trust = _trust(tsa_pki)
    settings = StampSettings([tsa.url], trust=trust)
    create_evidence([study], out, settings)
    files = _uid_files(study)
    name, data = next(iter(files.items()))
    soon = str(int(time.time() * 1000) + 600_000)
    r = _java(bc_classes, "verify", out / name, data, soon)
    assert r.returncode == 0 and r.stdout.startswith("OK 1"), r.stderr
    # (a sibling in the first PartialHashtree is "present" too, for BC as for RFC 4998)
    wrong = tmp_path / "changed.dcm"
    wrong.write_bytes(data.read_bytes() + b"\0\0")
    assert _java(bc_classes, "verify", out / name, wrong, soon).returncode != 0
    renew_evidence(out, settings, min_age=dt.timedelta(0))
    renew_evidence(out, settings, rehash="sha512", data=[study])
    r = _java(bc_classes, "verify", out / name, data, soon)
    assert r.returncode == 0 and r.stdout.startswith("OK 2"), r.stderr
    # Bouncy Castle makes the records, our TSA stamps them, dsig verifies them
    chosen = sorted(study.iterdir())[:3]
    assert _java(bc_classes, "request", tmp_path / "q.tsq", *chosen).returncode == 0
    (tmp_path / "r.tsr").write_bytes(tsa.respond((tmp_path / "q.tsq").read_bytes()))
    r = _java(bc_classes, "records", tmp_path / "r.tsr", tmp_path / "bc", *chosen)
    assert r.returncode == 0, r.stderr
    for i, f in enumerate(chosen):
        result = verify_file_evidence(f, tmp_path / f"bc{i}.ers", tsa_trust=trust)
        assert result.status is EvidenceStatus.PROVEN, result.findings
    changed = tmp_path / "changed-bc.dcm"
    changed.write_bytes(chosen[0].read_bytes() + b"\0\0")
    result = verify_file_evidence(changed, tmp_path / "bc0.ers", tsa_trust=trust)
    assert result.status is EvidenceStatus.BROKEN


def test_a_polyglot_record_is_named_as_verify_reads_it(
    tsa: TsaServer, tsa_pki: TimestampPki, tmp_path: Path
) -> None:
    """A polyglot whose meta says implicit VR: dsig's reader (and so ``dsig verify``) sees the
    data set hidden in the padding, pydicom the explicit-VR one around it. The record is named
    after the UID verify reports, and create and verify agree on it."""
    import json
    import struct

    import pydicom

    from dsig.encoding.reader import read_dicom
    from dsig.evidence.naming import sop_instance_uid
    from dsig.results import FileIdentity
    from tests.helpers.rawdicom import IMPLICIT_LE, basic_dataset, element, meta, part10

    outer = basic_dataset("1.2.3.4.300")
    first = element(0x00060010, "SH", b"ABCD")  # read implicit, its length swallows the rest
    swallow = struct.unpack_from("<I", first, 4)[0]
    hidden = basic_dataset("9.9.9.300", implicit=True, patient="Hidden^Patient")
    pad = element(0xFFFCFFFC, "OB", b"\x00" * (swallow - 4 - len(outer) - 12) + hidden)
    study = tmp_path / "study"
    study.mkdir()
    poly = study / "poly.dcm"
    poly.write_bytes(part10(meta(IMPLICIT_LE, "1.2.3.4.300"), first + outer + pad))
    with pytest.warns(UserWarning, match="Expected implicit VR, but found explicit VR"):
        seen = pydicom.dcmread(poly)  # what the former naming read: pydicom switches VR
    assert str(seen.SOPInstanceUID) == "1.2.3.4.300"
    assert FileIdentity.of(read_dicom(poly)).sop_instance_uid == "9.9.9.300"
    assert sop_instance_uid(poly) == "9.9.9.300"
    verified = _dsig("verify", "--integrity-only", "--json", poly)
    assert json.loads(verified.stdout)["files"][0]["sop_instance_uid"] == "9.9.9.300"

    out = tmp_path / "ev"
    create_evidence([study], out, StampSettings([tsa.url], trust=_trust(tsa_pki)))
    assert [p.name for p in out.iterdir()] == ["9.9.9.300.ers"]
    r = _dsig("evidence", "verify", poly, "--evidence", out, "--tsa-trust-store",
              tsa_pki.root_pem, "--json")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["status"] == "PROVEN"  # found under that name: the only one
