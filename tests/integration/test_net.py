"""``dsig serve`` / ``dsig send`` end to end on 127.0.0.1 (issue 8).

A real ``dsig serve`` subprocess receives objects from ``dsig send`` and from DCMTK's storescu:
signed valid objects land in the store bit-for-bit, tampered / untrusted / unsigned ones in the
quarantine with a report (or are refused with --reject-invalid), the audit log has one line
per object, 200 objects over two associations all arrive, SIGTERM/Ctrl-C stop it cleanly.
Every server is stopped (and its clean exit checked) in fixture teardown.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID, generate_uid

import pki
from dsig.operations.verifier import VerifyOptions, verify_file
from tests.helpers import net
from tests.helpers.dicom_factory import sample
from tests.helpers.oddities import build_corpus
from tests.helpers.softhsm import ProvisionedToken

#: Sample files in the transfer syntaxes a storage node must take (name, storescu option).
SAMPLES = {
    "CT_small.dcm": "",  # explicit VR little endian
    "JPEG-lossy.dcm": "-xx",  # JPEG extended (process 2+4)
    "MR_small_RLE.dcm": "-xr",  # RLE lossless
    "MR_small_jpeg_ls_lossless.dcm": "-xt",  # JPEG-LS lossless
    "JPEG2000.dcm": "-xw",  # JPEG 2000
    "image_dfl.dcm": "-xd",  # deflated explicit VR little endian
    "waveform_ecg.dcm": "",  # 12-lead ECG waveform
    "MR_small_bigendian.dcm": "-xb",  # explicit VR big endian
}


@dataclass
class Objects:
    """Test objects written once for the module."""

    pki: net.NetPki
    signed: list[Path]  # small objects signed by the trusted signer
    unsigned: list[Path]
    tampered: Path
    stranger: Path  # signed by a signer from an unrelated PKI
    samples: dict[str, Path]  # signed sample files by name
    bulk: list[Path]  # 200 small signed objects
    partial: Path  # signed over PatientName and PatientID only


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> Objects:
    """Objects for every test, signed with two ``dsig sign`` runs."""
    d = tmp_path_factory.mktemp("net-objects")
    pki = net.make_pki(d / "pki")
    plain = d / "plain"
    unsigned = [net.small_object(plain / "unsigned" / f"u{i}.dcm", index=i) for i in range(3)]
    for i in range(3):
        net.small_object(plain / "tosign" / f"s{i}.dcm", index=10 + i)
    for name in SAMPLES:  # several samples share a SOP Instance UID: give each its own
        ds = pydicom.dcmread(sample(name))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(plain / "tosign" / name)
    for i in range(200):
        net.small_object(plain / "bulk" / f"b{i:03d}.dcm", index=100 + i)
    net.sign(plain / "tosign", d / "signed", pki.key, pki.cert)
    net.sign(plain / "bulk", d / "bulk", pki.key, pki.cert)
    stranger_src = net.small_object(plain / "stranger.dcm", index=50)
    stranger = net.sign(stranger_src, d / "stranger.dcm", pki.stranger_key, pki.stranger_cert)
    partial_src = net.small_object(plain / "partial.dcm", index=60)
    proc = net.run_dsig("sign", partial_src, d / "partial.dcm", "--key", pki.key, "--cert",
                        pki.cert, "--no-password", "--tag", "PatientName", "--tag", "PatientID")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    signed = [d / "signed" / f"s{i}.dcm" for i in range(3)]
    tampered = net.tamper(signed[0], d / "tampered.dcm")
    return Objects(
        pki=pki,
        signed=signed,
        unsigned=unsigned,
        tampered=tampered,
        stranger=stranger,
        samples={name: d / "signed" / name for name in SAMPLES},
        bulk=sorted((d / "bulk").glob("*.dcm")),
        partial=d / "partial.dcm",
    )


ServeFactory = Callable[..., net.Server]


@pytest.fixture
def serve(tmp_path: Path, objects: Objects) -> Iterator[ServeFactory]:
    """Start ``dsig serve`` with the test trust store; every server is stopped (SIGTERM) at
    teardown and must exit 0 with its "stopped" line."""
    servers: list[net.Server] = []

    def start(*args: str | os.PathLike[str], trust: bool = True, name: str = "srv") -> net.Server:
        extra: list[str | os.PathLike[str]] = ["--trust-store", objects.pki.trust] if trust else []
        server = net.start_server(tmp_path / name, *extra, *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        code = server.stop()
        assert code == 0, server.log()
        assert "dsig serve: stopped" in server.log()
        assert "Traceback" not in server.log()


def send(server: net.Server, *files: Path, extra: tuple[str, ...] = ()) -> tuple[int, str, str]:
    """``dsig send`` to the server; (exit code, stdout, stderr)."""
    proc = net.run_dsig("send", "127.0.0.1", str(server.port), *files,
                        "--called-ae", "DSIGTEST", *extra)  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def by_instance(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Audit lines keyed by SOP Instance UID (last wins)."""
    return {str(line["sop_instance_uid"]): line for line in lines}


def instance_uid(path: Path) -> str:
    """SOP Instance UID of a file."""
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_signed_objects_in_every_transfer_syntax_are_stored_bit_for_bit(
    serve: ServeFactory, objects: Objects
) -> None:
    server = serve("--require", "signature")
    files = [*objects.signed, *objects.samples.values()]
    code, out, err = send(server, *files)
    assert code == 0, out + err
    lines = server.wait_audit(len(files))
    assert len(lines) == len(files)
    assert {line["action"] for line in lines} == {"stored"}
    assert {line["indication"] for line in lines} == {"VALID"}
    assert {line["transfer_syntax"] for line in lines} >= {
        "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.5",
        "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.2",
    }  # fmt: skip
    assert server.quarantined() == []
    options = VerifyOptions(trust=pki.build_evaluator(trust_stores=[objects.pki.trust]))
    for f in files:
        kept = server.store / f"{instance_uid(f)}.dcm"
        assert net.dataset_bytes(kept) == net.dataset_bytes(f), f.name
        assert verify_file(kept, options).indication.value == "VALID", f.name
    # extended negotiation: the node declares Digital Signature support level 2
    assert "digital signature level 2" in out
    assert all(line["calling_ae"] == "DSIG" and line["called_ae"] == "DSIGTEST" for line in lines)


def test_tampered_untrusted_unsigned_are_quarantined_with_reports(
    serve: ServeFactory, objects: Objects, tmp_path: Path
) -> None:
    audit = tmp_path / "logs" / "audit.jsonl"
    server = serve("--require", "signature", "--audit-log", audit)
    files = [objects.tampered, objects.stranger, objects.unsigned[0]]
    code, out, err = send(server, *files)
    assert code == 0, out + err  # accept-and-quarantine: the sender sees success
    assert not server.audit.exists()
    deadline = time.monotonic() + 10
    while len(audit.read_text().splitlines()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    assert len(lines) == 3
    assert {line["action"] for line in lines} == {"quarantined"}
    assert {line["status"] for line in lines} == {"0x0000"}
    assert server.stored() == []
    reports = {}
    for f in files:
        uid = instance_uid(f)
        assert (server.quarantine / f"{uid}.dcm").exists()
        reports[f] = json.loads((server.quarantine / f"{uid}.json").read_text())
        assert reports[f]["received"]["action"] == "quarantined"
        assert net.dataset_bytes(server.quarantine / f"{uid}.dcm") == net.dataset_bytes(f)
    tampered = reports[objects.tampered]
    assert tampered["indication"] == "INVALID"
    assert tampered["signatures"][0]["findings"][0]["code"] == "MAC_MISMATCH"
    stranger = reports[objects.stranger]
    assert stranger["indication"] in ("INVALID", "INDETERMINATE")
    assert stranger["signatures"][0]["integrity"] == "VALID"
    assert stranger["signatures"][0]["trust"]["indication"] != "VALID"
    unsigned = reports[objects.unsigned[0]]
    assert unsigned["indication"] == "INVALID"
    assert [f["code"] for f in unsigned["findings"]] == ["SIGNATURE_REQUIRED"]


def test_reject_invalid_refuses_with_failure_status(serve: ServeFactory, objects: Objects) -> None:
    server = serve("--require", "signature", "--reject-invalid")
    files = [objects.signed[1], objects.tampered, objects.stranger, objects.unsigned[1]]
    code, out, err = send(server, *files)
    assert code == 1, out + err
    rows = {line.split()[1]: line for line in out.splitlines() if line.split()[:1] != ["peer"]}
    assert rows[str(objects.signed[1])].startswith("stored")
    assert "(0xC210)" in rows[str(objects.tampered)]
    assert "MAC_MISMATCH" in rows[str(objects.tampered)]
    assert "(0xC211)" in rows[str(objects.stranger)]  # untrusted signer: as documented
    assert "(0xC212)" in rows[str(objects.unsigned[1])]
    assert "SIGNATURE_REQUIRED" in rows[str(objects.unsigned[1])]
    assert "1 stored, 3 refused" in out
    lines = by_instance(server.wait_audit(4))
    assert lines[instance_uid(objects.signed[1])]["action"] == "stored"
    for f in files[1:]:
        assert lines[instance_uid(f)]["action"] == "refused"
        assert (server.quarantine / f"{instance_uid(f)}.json").exists()  # refused, yet kept
    assert len(server.stored()) == 1


@pytest.fixture(scope="module")
def storescu() -> str:
    """DCMTK's storescu, or skip (error with DSIG_REQUIRE_DCMTK=1)."""
    exe = net.dcmtk_storescu()
    if exe is None:
        if os.environ.get("DSIG_REQUIRE_DCMTK"):
            pytest.fail("DCMTK storescu is required (DSIG_REQUIRE_DCMTK=1) but not found")
        pytest.skip("DCMTK storescu not installed")
    return exe


def test_dcmtk_storescu(serve: ServeFactory, objects: Objects, storescu: str) -> None:
    server = serve("--require", "signature")
    plain = [objects.signed[2], objects.samples["CT_small.dcm"],
             objects.samples["waveform_ecg.dcm"], objects.unsigned[2], objects.tampered]  # fmt: skip
    proc = net.storescu(storescu, server.port, plain)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = len(plain)
    for name, option in SAMPLES.items():
        if option:  # compressed / other syntaxes: storescu proposes them with an option
            proc = net.storescu(storescu, server.port, [objects.samples[name]], option)
            assert proc.returncode == 0, name + proc.stdout + proc.stderr
            expected += 1
    lines = server.wait_audit(expected)
    assert len(lines) == expected
    assert {line["calling_ae"] for line in lines} == {"STORESCU"}
    verdicts = by_instance(lines)
    for f in [objects.signed[2], *objects.samples.values()]:
        line = verdicts[instance_uid(f)]
        assert (line["action"], line["indication"]) == ("stored", "VALID"), (f.name, line)
    assert verdicts[instance_uid(objects.unsigned[2])]["action"] == "quarantined"
    assert (server.quarantine / f"{instance_uid(objects.tampered)}.json").exists()
    # storescu proposes several uncompressed syntaxes: the node takes explicit VR LE, which
    # keeps the VRs the signatures cover
    assert verdicts[instance_uid(objects.signed[2])]["transfer_syntax"] == "1.2.840.10008.1.2.1"


def test_dcmtk_storescu_sees_the_refusal(
    serve: ServeFactory, objects: Objects, storescu: str
) -> None:
    server = serve("--require", "signature", "--reject-invalid")
    proc = net.storescu(storescu, server.port, [objects.unsigned[0], objects.signed[0]], "-v",
                        "--no-halt")  # fmt: skip
    assert "Error: CannotUnderstand" in proc.stdout + proc.stderr
    lines = server.wait_audit(2)
    assert sorted(line["action"] for line in lines) == ["refused", "stored"]


def test_200_objects_over_two_associations(serve: ServeFactory, objects: Objects) -> None:
    server = serve("--require", "signature", "--quiet")
    started = time.monotonic()
    code, out, err = send(server, *objects.bulk, extra=("--associations", "2", "--quiet"))
    elapsed = time.monotonic() - started
    assert code == 0, out + err
    assert "200 stored, 0 refused, 0 error(s)" in out
    lines = server.wait_audit(200)
    assert len(lines) == 200
    assert {line["action"] for line in lines} == {"stored"}
    assert len({line["peer"] for line in lines}) == 2  # two associations, interleaved
    assert len(server.stored()) == 200
    assert {p.name for p in server.stored()} == {f"{instance_uid(f)}.dcm" for f in objects.bulk}
    times = sorted(dt.datetime.fromisoformat(str(line["time"])) for line in lines)
    span = (times[-1] - times[0]).total_seconds()
    rate = 199 / span if span > 0 else float("inf")
    print(f"\n200 small signed objects: {elapsed:.1f} s for dsig send (2 associations), "
          f"server received+verified+stored {rate:.0f} objects/s")  # fmt: skip
    assert elapsed < 60


def test_send_signs_each_object_first(serve: ServeFactory, objects: Objects) -> None:
    server = serve("--require", "signature")
    code, out, err = send(server, *objects.unsigned, extra=(
        "--sign", "--key", str(objects.pki.key), "--cert", str(objects.pki.cert),
        "--no-password", "--mac", "sha384"))  # fmt: skip
    assert code == 0, out + err
    assert out.count(" signed 1.") == 3
    lines = server.wait_audit(3)
    assert [(line["action"], line["indication"]) for line in lines] == [("stored", "VALID")] * 3
    for f in objects.unsigned:  # the inputs are left unsigned
        assert "DigitalSignaturesSequence" not in pydicom.dcmread(f)


def test_ctrl_c_stops_cleanly(tmp_path: Path, objects: Objects) -> None:
    server = net.start_server(tmp_path / "srv", "--trust-store", objects.pki.trust)
    try:
        code, out, err = send(server, objects.signed[0])
        assert code == 0, out + err
    finally:
        assert server.stop(signal.SIGINT) == 0, server.log()
    assert "dsig serve: stopped; 1 stored" in server.log()
    assert not list((server.store / ".dsig-incoming").iterdir())


def test_operational_errors_are_one_line(
    serve: ServeFactory, objects: Objects, tmp_path: Path
) -> None:
    server = serve()
    # unreadable input among good ones: the good one is sent, exit 4
    junk = tmp_path / "junk.dcm"
    junk.write_text("not dicom")
    code, out, err = send(server, junk, objects.signed[0])
    assert code == 4
    assert "stored" in out and "junk.dcm" in err and "Traceback" not in err
    # the port is taken
    proc = net.run_dsig("serve", "--port", str(server.port), "--store", tmp_path / "s2",
                        "--quarantine", tmp_path / "q2")  # fmt: skip
    assert proc.returncode == 4
    assert proc.stderr.startswith("dsig: error: cannot listen on 127.0.0.1:")
    assert len(proc.stderr.strip().splitlines()) == 1
    # a trust store that does not exist
    proc = net.run_dsig("serve", "--port", "0", "--store", tmp_path / "s3", "--quarantine",
                        tmp_path / "q3", "--trust-store", tmp_path / "missing.pem")  # fmt: skip
    assert proc.returncode == 4 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    # store and quarantine the same
    proc = net.run_dsig("serve", "--port", "0", "--store", tmp_path / "same", "--quarantine",
                        tmp_path / "same")  # fmt: skip
    assert proc.returncode == 4 and "different directories" in proc.stderr
    # usage
    assert net.run_dsig("send", "127.0.0.1", "104", objects.signed[0], "--sign").returncode == 2
    # nobody listening
    port = server.port
    server.stop()
    proc = net.run_dsig("send", "127.0.0.1", str(port), objects.signed[0])
    assert proc.returncode == 4
    assert "cannot connect to 127.0.0.1:" in proc.stderr and "Traceback" not in proc.stderr


def test_an_object_cannot_take_another_objects_name(
    serve: ServeFactory, objects: Objects, tmp_path: Path
) -> None:
    """A validly signed object sent under another SOP Instance UID (the request's UIDs name the
    stored file) is quarantined; the object whose name it claimed stays as it was."""
    victim, impostor_src = objects.signed[1], objects.signed[0]
    meta = pydicom.dcmread(impostor_src, stop_before_pixels=True).file_meta
    meta.MediaStorageSOPInstanceUID = UID(instance_uid(victim))
    buf = io.BytesIO()
    buf.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=True)  # type: ignore[arg-type]
    impostor = tmp_path / "impostor.dcm"
    impostor.write_bytes(buf.getvalue() + net.dataset_bytes(impostor_src))
    server = serve("--reject-invalid")
    code, out, err = send(server, victim)
    assert code == 0, out + err
    # dsig send corrects a mismatched meta (the data set's UIDs go in the request), so the
    # impostor goes through pynetdicom, whose request UIDs come from the file meta.
    assert net.store_raw(server.port, impostor) == 0xA900
    lines = server.wait_audit(2)
    assert [line["action"] for line in lines] == ["stored", "refused"]
    assert "REQUEST_UID_MISMATCH" in lines[1]["findings"]
    kept = server.store / f"{instance_uid(victim)}.dcm"
    assert net.dataset_bytes(kept) == net.dataset_bytes(victim)


def test_require_coverage(serve: ServeFactory, objects: Objects) -> None:
    server = serve("--require-coverage", "all")
    code, out, err = send(server, objects.signed[0], objects.partial)
    assert code == 0, out + err
    lines = by_instance(server.wait_audit(2))
    assert lines[instance_uid(objects.signed[0])]["action"] == "stored"
    partial = lines[instance_uid(objects.partial)]
    assert partial["action"] == "quarantined"
    assert "COVERAGE_INCOMPLETE" in partial["findings"]


def test_calling_ae_allow_list(serve: ServeFactory, objects: Objects) -> None:
    server = serve("--allow-calling-ae", "TRUSTED_AE", "--require-called-ae")
    code, _out, err = send(server, objects.signed[0])
    assert code == 4 and "rejected the association" in err
    code, _out, err = send(server, objects.signed[0], extra=("--ae-title", "TRUSTED_AE"))
    assert code == 0, err
    code, _out, err = send(server, objects.signed[0], extra=("--ae-title", "TRUSTED_AE",
                                                             "--called-ae", "SOMEONE"))  # fmt: skip
    assert code == 4 and "rejected the association" in err
    assert len(server.wait_audit(1)) == 1


@pytest.mark.softhsm
def test_send_signs_with_a_token_logged_in_once(
    softhsm_token: ProvisionedToken, objects: Objects, tmp_path: Path
) -> None:
    """``dsig send --sign --key pkcs11:...`` over two associations: one login, every object
    signed on the token and accepted by a node that trusts the token's CA."""
    server = net.start_server(tmp_path / "srv", "--trust-store", softhsm_token.ca_cert,
                              "--trust-store", objects.pki.trust, "--require", "signature")  # fmt: skip
    try:
        env = {**os.environ, "NET_TEST_PIN": softhsm_token.pin}
        proc = net.run_dsig("send", "127.0.0.1", str(server.port), *objects.unsigned,
                            objects.bulk[0], "--called-ae", "DSIGTEST", "--associations", "2",
                            "--sign", "--key", softhsm_token.rsa_uri, "--pin-env",
                            "NET_TEST_PIN", env=env)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert softhsm_token.pin not in proc.stdout + proc.stderr
        lines = server.wait_audit(4)
        assert [(x["action"], x["indication"]) for x in lines] == [("stored", "VALID")] * 4
        # the already signed object now carries two signatures, both valid
        assert len(by_instance(lines)[instance_uid(objects.bulk[0])]["signatures"]) == 2
    finally:
        assert server.stop() == 0, server.log()


def test_caching_evaluator_is_bounded(objects: Objects) -> None:
    from cryptography import x509

    from pki import PolicyEvaluator

    policy = pki.build_policy(trust_stores=[objects.pki.trust])
    evaluator = PolicyEvaluator(policy, ttl=60, max_entries=1)
    cert = x509.load_pem_x509_certificate(objects.pki.cert.read_bytes())
    other = x509.load_pem_x509_certificate(objects.pki.stranger_cert.read_bytes())
    now = dt.datetime.now(dt.UTC)
    first = evaluator.evaluate(cert, at=now)
    assert first.indication.value == "VALID"
    assert evaluator.evaluate(cert, at=now + dt.timedelta(seconds=30)) is first  # reused
    assert evaluator.evaluate(cert, at=now + dt.timedelta(seconds=61)) is not first  # too old
    evaluator.evaluate(other, at=now)
    assert len(evaluator._cache) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_no_acknowledged_object_is_lost(
    tmp_path: Path, objects: Objects, sig: signal.Signals
) -> None:
    """Stop the server in the middle of a batch: every object the sender saw acknowledged is
    in the store, whole; nothing half-written is."""
    server = net.start_server(tmp_path / "srv", "--trust-store", objects.pki.trust, "--quiet")
    cmd = net.dsig_cmd("send", "127.0.0.1", str(server.port), *objects.bulk)
    sender = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        server.wait_audit(40, timeout=30)
        code = server.stop(sig)
        out, _err = sender.communicate(timeout=60)
    finally:
        if sender.poll() is None:
            sender.kill()
        server.stop(signal.SIGKILL)
    if sig == signal.SIGTERM:
        assert code == 0, server.log()
    acknowledged = [Path(line.split()[1]) for line in out.splitlines() if line.startswith("stored")]
    assert 40 <= len(acknowledged) < 200
    sent = {instance_uid(f): f for f in objects.bulk}
    for f in acknowledged:
        kept = server.store / f"{instance_uid(f)}.dcm"
        assert net.dataset_bytes(kept) == net.dataset_bytes(f)
    for kept in server.stored():  # stored but maybe not acknowledged: still whole
        assert net.dataset_bytes(kept) == net.dataset_bytes(sent[kept.stem])


def test_importing_dsig_does_not_import_pynetdicom() -> None:
    code = "import sys, dsig, dsig.cli, dsig.net; assert 'pynetdicom' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=net.REPO, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_send_uses_the_data_sets_uids(serve: ServeFactory, tmp_path: Path) -> None:
    """pydicom's rtplan.dcm: its file meta names another SOP Instance than its data set. Like
    DCMTK's storescu, dsig send puts the data set's UIDs in the request: stored, and the data
    set bytes arrive unchanged."""
    rtplan = sample("rtplan.dcm")
    ds = pydicom.dcmread(rtplan, stop_before_pixels=True)
    assert ds.file_meta.MediaStorageSOPInstanceUID != ds.SOPInstanceUID
    server = serve(trust=False)
    code, out, err = send(server, rtplan)
    assert code == 0, out + err
    (line,) = server.wait_audit(1)
    assert (line["action"], line["sop_instance_uid"]) == ("stored", str(ds.SOPInstanceUID))
    assert net.dataset_bytes(Path(line["path"])) == net.dataset_bytes(rtplan)
    assert rtplan.read_bytes() == sample("rtplan.dcm").read_bytes()  # input untouched


def test_status_codes_per_verdict(serve: ServeFactory, objects: Objects, tmp_path: Path) -> None:
    """Each failure status documented in ``serve --help``, one object per verdict."""
    help_text = net.run_dsig("serve", "--help").stdout
    for code in ("0xC210", "0xC211", "0xC212", "0xC213", "0xA900", "0x0111", "0xA700"):
        assert code in help_text
    server = serve("--require", "signature", "--reject-invalid")
    unreadable = tmp_path / "unreadable.dcm"
    head = objects.signed[0].read_bytes()
    offset = len(head) - len(net.dataset_bytes(objects.signed[0]))
    unreadable.write_bytes(head[:offset] + b"\x08\x00\x16\x00UI\x40\x001.2")  # truncated
    expected = {
        objects.tampered: 0xC210,  # a MAC that does not match
        objects.stranger: 0xC211,  # integrity intact, signer not trusted
        objects.unsigned[0]: 0xC212,  # --require signature not met
        unreadable: 0xC213,
    }
    for path, status in expected.items():
        assert net.store_raw(server.port, path) == status, path.name
    assert net.store_raw(server.port, objects.signed[0]) == 0
    dup = tmp_path / "dup.dcm"  # other bytes (another valid signature) under a stored UID
    proc = net.run_dsig("sign", objects.signed[0], dup, "--key", objects.pki.key, "--cert",
                        objects.pki.cert, "--no-password")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert net.store_raw(server.port, dup) == 0x0111
    lines = server.wait_audit(6)
    assert [x["status"] for x in lines] == ["0xC210", "0xC211", "0xC212", "0xC213", "0x0000",
                                           "0x0111"]  # fmt: skip
    stopped = serve("--reject-invalid", "--verify-timeout", "0.001", name="stopped")
    assert net.store_raw(stopped.port, objects.signed[1]) == 0xC211  # verification stopped
    (line,) = stopped.wait_audit(1)
    assert "VERIFY_ABORTED" in line["findings"] and stopped.stored() == []


def test_send_reads_as_told(serve: ServeFactory, tmp_path: Path) -> None:
    """dsig send takes dcmsign's (and storescu's) input options. A meta header naming explicit
    VR for an implicit VR data set is ignored with --read-xfer detect: the data set travels
    unchanged, in the encoding it is in, with a meta saying so. A bare data set is sent with
    --read dataset and refused by --read file (one line, exit 4, nothing sent)."""
    corpus = {o.name: o.path for o in build_corpus(tmp_path / "corpus")}
    liar, bare = corpus["wrong-meta-xfer"], corpus["bare-dataset"]
    server = serve(trust=False)
    code, out, err = send(server, liar, extra=("--read-xfer", "detect"))
    assert code == 0, out + err
    code, out, err = send(server, bare, extra=("--read", "dataset", "--read-xfer", "implicit"))
    assert code == 0, out + err
    lines = server.wait_audit(2)
    assert [line["action"] for line in lines] == ["stored", "stored"], lines
    for line, src in zip(lines, (liar, bare), strict=True):
        received = Path(line["path"])
        meta = pydicom.dcmread(received, stop_before_pixels=True).file_meta
        assert meta.TransferSyntaxUID == "1.2.840.10008.1.2"
        assert line["sop_instance_uid"] == meta.MediaStorageSOPInstanceUID
        body = src.read_bytes()
        assert body.endswith(net.dataset_bytes(received))  # the data set bytes, unchanged
    # a meta header without preamble is a file (as for dcmsign +fo)
    code, out, err = send(server, corpus["meta-no-preamble"], extra=("--read", "file"))
    assert code == 0, out + err
    (line,) = server.wait_audit(3)[2:]
    assert line["action"] == "stored"
    assert corpus["meta-no-preamble"].read_bytes().endswith(net.dataset_bytes(Path(line["path"])))
    code, out, err = send(server, bare, extra=("--read", "file"))
    assert code == 4
    assert "read mode file: no file meta header" in err and "Traceback" not in err
    assert "0 stored" in out
    time.sleep(0.5)
    assert len(server.audit_lines()) == 3
