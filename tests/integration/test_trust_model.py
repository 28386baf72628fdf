"""The trust model through the CLI: revocation checked unless declined, claimed vs certified
validation moments, EKU / CA signers, the policy file, sign's certificate pre-check and
``dsig cert check`` (issues 11 and 13). Real CRL/OCSP/TSA servers on 127.0.0.1 only."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

import dsig
from dsig.cli import app
from dsig.signature.model import find_signature
from dsig.timestamp import insert_token, timestamped_bytes
from tests.conftest import sample
from tests.helpers.pki_factory import NOW, Issued, TestPki, build_pki, issue
from tests.helpers.pki_servers import PkiServer, make_crl
from tests.helpers.tsa import make_token
from tokens import open_key_provider

runner = CliRunner()
PEM = serialization.Encoding.PEM
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")


def dsig_cli(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(PEM) for c in certs))
    return path


def sign_file(
    leaf: Issued,
    out: Path,
    *,
    at: dt.datetime | None = None,
    tsa: Issued | None = None,
    certified: dt.datetime | None = None,
    tsa_chain: tuple[x509.Certificate, ...] = (),
) -> Path:
    """Sign CT_small with ``leaf`` (Digital Signature DateTime ``at``) through the library,
    optionally with a certified timestamp from ``tsa`` at ``certified``."""
    key, cert = leaf.write(out.parent, out.stem)
    ds = dsig.read_dicom(sample("CT_small.dcm"))
    provider = open_key_provider(str(key), cert=cert)
    try:
        info = dsig.add_signature(ds, provider, dsig.SignOptions(at=at))
    finally:
        provider.close()
    if tsa is not None:
        item = find_signature(ds, info.uid).item
        token = make_token(
            tsa,
            hash_algorithm="sha256",
            digest=hashlib.sha256(timestamped_bytes(item)).digest(),
            gen_time=certified,
            certs=tsa_chain,
        )
        insert_token(item, token)
    dsig.save(ds, out, dsig.target_encoding(ds, "same", None))
    return out


def verify_json(path: Path, *args: object) -> tuple[int, dict[str, Any]]:
    r = dsig_cli("verify", path, "--json", *args)
    assert r.exit_code in (0, 1, 3), r.output
    return r.exit_code, json.loads(r.stdout)


def sig_trust(report: dict[str, Any]) -> dict[str, Any]:
    trust: dict[str, Any] = report["files"][0]["signatures"][0]["trust"]
    return trust


def codes(trust: dict[str, Any], *, notes: bool = False) -> list[str]:
    return [f["code"] for f in trust["findings"] if notes or not f.get("note")]


# --- revocation checked unless declined --------------------------------------------------------


@dataclass
class RevPki:
    server: PkiServer
    store: Path  # the root; the intermediate is inter.pem beside it

    @property
    def base(self) -> tuple[object, ...]:
        return ("--trust-store", self.store, "--untrusted", self.store.parent / "inter.pem")

    crl_leaf: Issued  # publishes a CRL distribution point
    ocsp_leaf: Issued  # publishes an OCSP responder
    silent_leaf: Issued  # publishes nothing
    inter: Issued
    root: Issued


@pytest.fixture(scope="module")
def rev_pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RevPki]:
    d = tmp_path_factory.mktemp("rev")
    with PkiServer() as server:
        root = issue("rev root", ca=True)
        server.add_authority("root", root)
        inter = issue("rev inter", issuer=root, ca=True)  # publishes nothing
        server.add_authority("inter", inter)
        crl_leaf = issue(
            "crl signer", issuer=inter, extensions=server.revinfo_extensions("inter", ocsp=False)
        )
        ocsp_leaf = issue(
            "ocsp signer", issuer=inter, extensions=server.revinfo_extensions("inter", crl=False)
        )
        silent = issue("silent signer", issuer=inter)
        store = write_pem(d / "store.pem", root.cert)
        write_pem(d / "inter.pem", inter.cert)
        yield RevPki(server, store, crl_leaf, ocsp_leaf, silent, inter, root)


def test_revocation_sources_absent_is_indeterminate_with_a_hint(
    rev_pki: RevPki, tmp_path: Path
) -> None:
    signed = sign_file(rev_pki.crl_leaf, tmp_path / "crl.dcm")
    hits = len(rev_pki.server.hits)
    code, report = verify_json(signed, *rev_pki.base)
    trust = sig_trust(report)
    assert code == 3 and trust["indication"] == "INDETERMINATE"
    assert codes(trust) == ["REVOCATION_UNAVAILABLE"]
    message = trust["findings"][0]["message"]
    assert "give its CRL or OCSP response, fetch them online, or decline" in message
    assert "--" not in message  # the library names no flag: the CLI adds them
    leaf_check = trust["revocation"][0]
    assert leaf_check["status"] == "unavailable" and leaf_check["source"] is None
    assert trust["revocation"][1]["status"] == "not-published"  # the intermediate
    assert len(rev_pki.server.hits) == hits  # nothing touched the network without --online
    human = dsig_cli("verify", signed, *rev_pki.base)
    assert human.exit_code == 3
    assert "revocation: CN=crl signer,O=dsig test: unavailable" in human.stdout
    assert f"{message} (use --crl/--ocsp, --online or --revocation soft-fail|off)" in human.stdout
    assert "trust policy: command line: 1 anchor(s), revocation hard-fail, offline" in human.stdout


def test_revocation_source_given_and_online(rev_pki: RevPki, tmp_path: Path) -> None:
    signed = sign_file(rev_pki.crl_leaf, tmp_path / "crl.dcm")
    crl = tmp_path / "inter.crl"
    crl.write_bytes(make_crl(rev_pki.inter).public_bytes(PEM))
    code, report = verify_json(signed, *rev_pki.base, "--crl", crl)
    trust = sig_trust(report)
    assert code == 0, trust
    assert trust["revocation"][0] | {"serial": ""} == {
        "certificate": "CN=crl signer,O=dsig test", "serial": "", "status": "good",
        "source": "crl supplied",
    }  # fmt: skip
    ocsp_signed = sign_file(rev_pki.ocsp_leaf, tmp_path / "ocsp.dcm")
    code, report = verify_json(ocsp_signed, *rev_pki.base, "--online")
    trust = sig_trust(report)
    assert code == 0, trust
    assert trust["revocation"][0]["status"] == "good"
    assert trust["revocation"][0]["source"] == "ocsp fetched"
    assert report["policy"]["online"] is True and report["dsig_version"] == dsig.__version__
    # a supplied CRL dated in the future is refused as a fetched one is: exit 3, said why
    future = tmp_path / "future.crl"
    future.write_bytes(
        make_crl(rev_pki.inter, this_update=NOW + dt.timedelta(days=1)).public_bytes(PEM)
    )
    code, report = verify_json(signed, *rev_pki.base, "--crl", future)
    trust = sig_trust(report)
    assert code == 3 and trust["revocation"][0]["status"] == "unavailable", trust
    assert "REVINFO_FUTURE_DATED" in codes(trust, notes=True)


def test_revocation_declined_explicitly_is_said(rev_pki: RevPki, tmp_path: Path) -> None:
    signed = sign_file(rev_pki.crl_leaf, tmp_path / "crl.dcm")
    code, report = verify_json(signed, *rev_pki.base, "--revocation", "soft-fail")
    trust = sig_trust(report)
    assert code == 0
    assert "accepted under soft-fail" in trust["revocation"][0]["detail"]
    assert "REVOCATION_UNAVAILABLE" in codes(trust, notes=True)
    code, report = verify_json(signed, *rev_pki.base, "--revocation", "off")
    assert code == 0
    assert [r["status"] for r in sig_trust(report)["revocation"]] == ["not-checked"] * 2
    report_path = tmp_path / "audit.html"
    r = dsig_cli("verify", signed, *rev_pki.base, "--revocation", "off",
                 "--report", report_path)  # fmt: skip
    assert r.exit_code == 0
    page = report_path.read_text()
    assert "revocation: CN=crl signer,O=dsig test: not-checked" in page
    assert "revocation off" in page and dsig.__version__ in page


def test_certificate_publishing_nothing_passes_with_a_note(rev_pki: RevPki, tmp_path: Path) -> None:
    signed = sign_file(rev_pki.silent_leaf, tmp_path / "silent.dcm")
    code, report = verify_json(signed, *rev_pki.base)
    trust = sig_trust(report)
    assert code == 0 and trust["indication"] == "VALID"
    assert [r["status"] for r in trust["revocation"]] == ["not-published"] * 2


# --- only proof moves the validation moment ------------------------------------------------


@dataclass
class MomentPki:
    pki: TestPki
    tsa: Issued
    store: Path


@pytest.fixture(scope="module")
def moment_pki(tmp_path_factory: pytest.TempPathFactory) -> MomentPki:
    d = tmp_path_factory.mktemp("moment")
    p = build_pki(now=NOW - dt.timedelta(days=10))
    tsa = issue("moment TSA", issuer=p.intermediate, eku=[ExtendedKeyUsageOID.TIME_STAMPING])
    return MomentPki(p, tsa, write_pem(d / "store.pem", p.root.cert, p.intermediate.cert))


def _revoked(
    mp: MomentPki, tmp_path: Path, reason: x509.ReasonFlags, *, certified: bool
) -> tuple[Path, Path]:
    leaf = issue(f"revoked {reason.value} {certified}", issuer=mp.pki.intermediate)
    claimed = NOW - dt.timedelta(days=3)
    out = sign_file(
        leaf,
        tmp_path / "revoked.dcm",
        at=claimed,
        tsa=mp.tsa if certified else None,
        certified=claimed + dt.timedelta(minutes=1),
        tsa_chain=(mp.pki.intermediate.cert,),
    )
    revoked_at = NOW - dt.timedelta(days=1)
    crl = make_crl(mp.pki.intermediate, [(leaf.cert.serial_number, revoked_at, reason)])
    crl_path = tmp_path / "inter.crl"
    crl_path.write_bytes(crl.public_bytes(PEM))
    return out, crl_path


@pytest.mark.parametrize(
    ("reason", "code", "finding"),
    [
        (x509.ReasonFlags.key_compromise, 1, "CERT_REVOKED"),
        (x509.ReasonFlags.superseded, 3, "REVOKED_AFTER_CLAIMED_TIME"),
    ],
)
def test_claimed_time_never_makes_a_revoked_signer_valid(
    moment_pki: MomentPki, tmp_path: Path, reason: x509.ReasonFlags, code: int, finding: str
) -> None:
    signed, crl = _revoked(moment_pki, tmp_path, reason, certified=False)
    base = ("--trust-store", moment_pki.store, "--crl", crl)
    got, report = verify_json(signed, *base, "--at", "signing-time")
    trust = sig_trust(report)
    assert got == code and codes(trust)[0] == finding, trust
    assert trust["moment_source"] == "claimed-signing-time"
    assert "MOMENT_CLAIMED" in codes(trust, notes=True)
    human = dsig_cli("verify", signed, *base, "--at", "signing-time")
    assert "claimed, not proven" in human.stdout
    got, report = verify_json(signed, *base)  # now: revoked
    assert got == 1 and "CERT_REVOKED" in codes(sig_trust(report))


def test_certified_time_before_the_revocation_counts(moment_pki: MomentPki, tmp_path: Path) -> None:
    signed, crl = _revoked(moment_pki, tmp_path, x509.ReasonFlags.key_compromise, certified=True)
    base = ("--trust-store", moment_pki.store, "--crl", crl)
    for at in ("timestamp", "signing-time"):
        got, report = verify_json(signed, *base, "--at", at)
        trust = sig_trust(report)
        assert got == 0, (at, trust)
        assert trust["moment_source"] == "certified-timestamp"
        assert "REVOKED_AFTER_MOMENT" in codes(trust, notes=True)


def test_expired_signer_claimed_vs_certified(moment_pki: MomentPki, tmp_path: Path) -> None:
    leaf = issue(
        "expired signer",
        issuer=moment_pki.pki.intermediate,
        not_before=NOW - dt.timedelta(days=9),
        not_after=NOW - dt.timedelta(days=1),
    )
    claimed = NOW - dt.timedelta(days=3)
    plain = sign_file(leaf, tmp_path / "plain.dcm", at=claimed)
    base = ("--trust-store", moment_pki.store)
    got, report = verify_json(plain, *base)
    assert got == 1 and "CERT_EXPIRED" in codes(sig_trust(report))
    got, report = verify_json(plain, *base, "--at", "signing-time")
    trust = sig_trust(report)
    assert got == 0 and trust["moment_source"] == "claimed-signing-time"
    assert "MOMENT_CLAIMED" in codes(trust, notes=True)
    stamped = sign_file(
        leaf, tmp_path / "stamped.dcm", at=claimed, tsa=moment_pki.tsa,
        certified=claimed + dt.timedelta(minutes=1), tsa_chain=(moment_pki.pki.intermediate.cert,),
    )  # fmt: skip
    got, report = verify_json(stamped, *base)  # auto: the certified time
    trust = sig_trust(report)
    assert got == 0 and trust["moment_source"] == "certified-timestamp"
    assert "MOMENT_CLAIMED" not in codes(trust, notes=True)


# --- EKU and CA signers (issue 13) ------------------------------------------------------------


@pytest.mark.parametrize(
    "eku",
    [
        ExtendedKeyUsageOID.TIME_STAMPING,
        ExtendedKeyUsageOID.OCSP_SIGNING,
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
    ],
)
def test_signer_eku_must_allow_document_signing(
    moment_pki: MomentPki, tmp_path: Path, eku: x509.ObjectIdentifier
) -> None:
    leaf = issue(f"eku {eku.dotted_string}", issuer=moment_pki.pki.intermediate, eku=[eku])
    signed = sign_file(leaf, tmp_path / "eku.dcm")
    got, report = verify_json(signed, "--trust-store", moment_pki.store)
    assert got == 1 and codes(sig_trust(report)) == ["EXTENDED_KEY_USAGE"]
    cert = leaf.write(tmp_path, "eku-cert")[1]
    r = dsig_cli("cert", "check", cert, "--trust-store", moment_pki.store)
    assert r.exit_code == 1 and "EXTENDED_KEY_USAGE" in r.stdout
    key = tmp_path / "eku-cert.key.pem"
    out = tmp_path / "refused.dcm"
    r = dsig_cli("sign", sample("CT_small.dcm"), out, "--key", key, "--cert", cert, "--no-password")
    assert r.exit_code == 4 and "EXTENDED_KEY_USAGE" in r.stderr and not out.exists()
    assert len(r.stderr.strip().splitlines()) == 1
    if eku == ExtendedKeyUsageOID.EMAIL_PROTECTION:  # a site may accept it, by policy file
        policy = tmp_path / "email.toml"
        policy.write_text(
            f'anchors = ["{moment_pki.store}"]\nsigning_eku = ["documentSigning", "emailProtection"]\n'
        )
        got, report = verify_json(signed, "--policy-file", policy)
        assert got == 0, report
        r = dsig_cli("sign", sample("CT_small.dcm"), out, "--key", key, "--cert", cert,
                     "--no-password", "--policy-file", policy)  # fmt: skip
        assert r.exit_code == 0, r.output


def test_document_signing_eku_is_valid_and_ca_signer_is_not(
    moment_pki: MomentPki, tmp_path: Path
) -> None:
    ok = issue("doc signer", issuer=moment_pki.pki.intermediate, eku=[DOCUMENT_SIGNING])
    got, report = verify_json(sign_file(ok, tmp_path / "ok.dcm"), "--trust-store", moment_pki.store)
    assert got == 0, report
    ca = issue(
        "ca signer",
        issuer=moment_pki.pki.intermediate,
        ca=True,
        key_usage={"digital_signature", "key_cert_sign"},
    )
    signed = sign_file(ca, tmp_path / "ca.dcm")
    got, report = verify_json(signed, "--trust-store", moment_pki.store)
    assert got == 1 and codes(sig_trust(report)) == ["SIGNER_IS_CA"]
    key, cert = ca.write(tmp_path, "ca-cli")
    r = dsig_cli("cert", "check", cert, "--trust-store", moment_pki.store)
    assert r.exit_code == 1 and "SIGNER_IS_CA" in r.stdout, r.output
    r = dsig_cli("sign", sample("CT_small.dcm"), tmp_path / "o.dcm", "--key", key, "--cert", cert,
                 "--no-password")  # fmt: skip
    assert r.exit_code == 4 and "SIGNER_IS_CA" in r.stderr
    r = dsig_cli("sign", sample("CT_small.dcm"), tmp_path / "o.dcm", "--key", key, "--cert", cert,
                 "--no-password", "--force-certificate")  # fmt: skip
    assert r.exit_code == 0, r.output


# --- sign refuses certificates that can never verify ----------------------------------------


def test_sign_refuses_expired_and_wrong_usage(moment_pki: MomentPki, tmp_path: Path) -> None:
    cases = {
        "expired": issue("sign expired", issuer=moment_pki.pki.intermediate,
                         not_before=NOW - dt.timedelta(days=9), not_after=NOW - dt.timedelta(days=1)),
        "future": issue("sign future", issuer=moment_pki.pki.intermediate,
                        not_before=NOW + dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=9)),
        "usage": issue("sign keyenc", issuer=moment_pki.pki.intermediate,
                       key_usage={"key_encipherment"}),
    }  # fmt: skip
    expected = {"expired": "CERT_EXPIRED", "future": "CERT_NOT_YET_VALID", "usage": "KEY_USAGE"}
    for name, leaf in cases.items():
        key, cert = leaf.write(tmp_path, name)
        out = tmp_path / f"{name}.dcm"
        r = dsig_cli("sign", sample("CT_small.dcm"), out, "--key", key, "--cert", cert,
                     "--no-password")  # fmt: skip
        assert r.exit_code == 4 and expected[name] in r.stderr, (name, r.output)
        assert r.stderr.startswith("dsig: error: refusing to sign") and not out.exists()
        r = dsig_cli("cert", "check", cert)  # no trust store: signer rules only
        assert r.exit_code == 1 and expected[name] in r.stdout


# --- the policy file --------------------------------------------------------------------------


def test_policy_file_in_verify_and_cert_check(moment_pki: MomentPki, tmp_path: Path) -> None:
    leaf = issue("policy signer", issuer=moment_pki.pki.intermediate)
    signed = sign_file(leaf, tmp_path / "p.dcm")
    cert = leaf.write(tmp_path, "p-cert")[1]
    policy = tmp_path / "site.toml"
    policy.write_text('anchors = ["p-store.pem"]\nrevocation = "require"\n')
    write_pem(tmp_path / "p-store.pem", moment_pki.pki.root.cert, moment_pki.pki.intermediate.cert)
    # revocation = "require": the leaf publishes nothing and no CRL is given -> indeterminate
    got, report = verify_json(signed, "--policy-file", policy)
    assert got == 3 and report["policy"]["revocation"] == "require"
    assert report["policy"]["source"] == str(policy)
    # the command line overrides the file
    got, report = verify_json(signed, "--policy-file", policy, "--revocation", "hard-fail")
    assert got == 0 and report["policy"]["revocation"] == "hard-fail"
    r = dsig_cli("cert", "check", cert, "--policy-file", policy, "--json")
    assert r.exit_code == 3 and json.loads(r.stdout)["policy"]["revocation"] == "require"
    r = dsig_cli("cert", "check", cert, "--policy-file", policy, "--revocation", "hard-fail")
    assert r.exit_code == 0 and r.stdout.startswith("VALID")
    assert "accepted policies: 2.5.29.32.0" in r.stdout or "accepted policies: none" in r.stdout
    assert f"trust policy: {policy}" in r.stdout
    # a policy the certificate does not carry, required explicitly
    r = dsig_cli("cert", "check", cert, "--policy-file", policy, "--revocation", "off",
                 "--policy", "1.2.3.4", "--require-explicit-policy")  # fmt: skip
    assert r.exit_code == 1 and "CERT_POLICY" in r.stdout


def test_policy_file_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('anchors = ["x.pem"]\nrevocaton = "off"\n')
    r = dsig_cli("cert", "check", bad, "--policy-file", bad)
    assert r.exit_code == 4 and "unknown key(s) revocaton" in r.stderr
    bad.write_text("anchors = [\n")
    r = dsig_cli("verify", bad, "--policy-file", bad)
    assert r.exit_code == 4 and "not valid TOML" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_policy_file_in_serve_and_send(tmp_path: Path) -> None:
    """``dsig serve --policy-file``: the same file decides; its log states the policy."""
    from tests.helpers import net

    p = net.make_pki(tmp_path / "pki")
    signed = net.sign(net.small_object(tmp_path / "o.dcm"), tmp_path / "signed.dcm", p.key, p.cert)
    policy = tmp_path / "serve.toml"
    # require: positive revocation info for every certificate; none is given -> quarantined
    policy.write_text(f'anchors = ["{p.trust}"]\nrevocation = "require"\n')
    server = net.start_server(tmp_path / "srv", "--policy-file", policy)
    try:
        assert f"trust policy: {policy}" in server.log()
        sent = net.run_dsig("send", "127.0.0.1", str(server.port), signed, "--called-ae", "X",
                            "--sign", "--key", p.key, "--cert", p.cert, "--no-password",
                            "--policy-file", policy)  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        lines = server.wait_audit(1)
        assert [line["action"] for line in lines] == ["quarantined"]
        report = json.loads(next(server.quarantine.glob("*.json")).read_text())
        trust = report["signatures"][0]["trust"]
        assert trust["indication"] == "INDETERMINATE"
        assert "REVOCATION_UNAVAILABLE" in codes(trust)
        # the log line says what was and wasn't checked, as ``dsig verify`` does
        logged = next(line for line in server.log().splitlines() if "quarantined" in line)
        assert lines[0]["signatures"][0]["revocation"] in logged
        assert "revocation: CN=" in logged
    finally:
        assert server.stop() == 0, server.log()
    # send --sign refuses a certificate that can never verify, before any association
    expired = issue("send expired", issuer=build_pki().intermediate,
                    not_before=NOW - dt.timedelta(days=9), not_after=NOW - dt.timedelta(days=1))  # fmt: skip
    key, cert = expired.write(tmp_path, "expired")
    sent = net.run_dsig("send", "127.0.0.1", "1", signed, "--sign", "--key", key, "--cert", cert,
                        "--no-password")  # fmt: skip
    assert sent.returncode == 4 and "CERT_EXPIRED" in sent.stderr, sent.stderr


# --- bounded path building (issue 13) ---------------------------------------------------------


def _ring(n: int) -> list[Issued]:
    """``n`` CA certificates with one name, each signed by the next one's key (a ring)."""
    from tests.helpers.pki_factory import make_key

    keys = [make_key("ec-p256") for _ in range(n)]
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Look-alike CA")])
    out = []
    for i, key in enumerate(keys):
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(keys[(i + 1) % n], hashes.SHA256())
        )
        out.append(Issued(cert, key))
    return out


def test_look_alike_ring_in_a_timestamp_token_is_cheap(
    moment_pki: MomentPki, tmp_path: Path
) -> None:
    ring = _ring(12)
    tsa = issue("ring TSA", issuer=ring[0], eku=[ExtendedKeyUsageOID.TIME_STAMPING])
    leaf = issue("ring signer", issuer=moment_pki.pki.intermediate)
    signed = sign_file(leaf, tmp_path / "ring.dcm", tsa=tsa, tsa_chain=tuple(r.cert for r in ring))
    start = time.monotonic()
    got, report = verify_json(signed, "--trust-store", moment_pki.store)
    elapsed = time.monotonic() - start
    sig = report["files"][0]["signatures"][0]
    assert sig["timestamp"]["indication"] != "VALID", sig["timestamp"]
    assert got != 0 or sig["timestamp"]["findings"], sig
    assert elapsed < 2.0, f"{elapsed:.1f} s"
    print(f"ring of 12: verified in {elapsed:.2f} s")


# --- network hygiene with hostile servers on 127.0.0.1 --------------------------------------


def test_tsa_credentials_never_follow_a_redirect() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from dsig.errors import DsigError
    from dsig.timestamp.tsa_client import TsaOptions, post_query

    seen: list[str | None] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Silence."""

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET  # noqa: N815

    other = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    target = f"http://127.0.0.1:{other.server_address[1]}/steal"

    class Redirector(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Silence."""

        def do_POST(self) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

    tsa = ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    for server in (other, tsa):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://user:secret@127.0.0.1:{tsa.server_address[1]}/tsa"
        with pytest.raises(DsigError, match="redirects are not followed"):
            post_query(url, b"query", TsaOptions())
        assert seen == []  # the other host never saw a request, let alone the credentials
    finally:
        for server in (other, tsa):
            server.shutdown()
            server.server_close()


def test_online_refuses_ocsp_replay_and_future_crl(tmp_path: Path) -> None:
    from tests.helpers.pki_servers import make_ocsp_response

    with PkiServer(this_update=NOW + dt.timedelta(days=30)) as server:  # CRLs from the future
        root = issue("hostile root", ca=True)
        server.add_authority("root", root)
        inter = issue("hostile inter", issuer=root, ca=True)
        server.add_authority("inter", inter)
        crl_leaf = issue(
            "future crl", issuer=inter, extensions=server.revinfo_extensions("inter", ocsp=False)
        )
        store = write_pem(tmp_path / "store.pem", root.cert)
        write_pem(tmp_path / "inter.pem", inter.cert)
        base = ("--trust-store", store, "--untrusted", tmp_path / "inter.pem", "--online")
        signed = sign_file(crl_leaf, tmp_path / "future.dcm")
        got, report = verify_json(signed, *base)
        assert got == 3 and "REVOCATION_UNAVAILABLE" in codes(sig_trust(report))
        # A replayed OCSP response (no nonce) from a responder that ignores ours.
        ocsp_leaf = issue(
            "replayed", issuer=inter, extensions=server.revinfo_extensions("inter", crl=False)
        )
        canned = make_ocsp_response(inter, ocsp_leaf.cert.serial_number, this_update=NOW)
        server._ocsp_answer = lambda body: canned.public_bytes(serialization.Encoding.DER)  # type: ignore[method-assign]
        signed = sign_file(ocsp_leaf, tmp_path / "replay.dcm")
        got, report = verify_json(signed, *base)
        trust = sig_trust(report)
        assert got == 3 and "REVOCATION_UNAVAILABLE" in codes(trust), trust


def test_online_requests_are_bounded_per_verification(tmp_path: Path) -> None:
    """A file signed by 12 signers of an unknown CA, each pointing its caIssuers at a
    127.0.0.1 server: each evaluation may fetch its signer's issuer, but one verification
    makes at most ``max_fetches_per_verification`` requests (from the policy file)."""
    with PkiServer() as server:
        root = issue("bounded root", ca=True, key_kind="ec-p256")
        evil = issue("bounded evil ca", ca=True, key_kind="ec-p256")
        server.add_authority("evil", evil)
        ds = dsig.read_dicom(sample("CT_small.dcm"))
        for i in range(12):
            leaf = issue(f"bounded signer {i}", issuer=evil, key_kind="ec-p256",
                         extensions=server.revinfo_extensions("evil", ca_issuers=True))  # fmt: skip
            key, cert = leaf.write(tmp_path, f"signer{i}")
            provider = open_key_provider(str(key), cert=cert)
            try:
                dsig.add_signature(ds, provider, dsig.SignOptions())
            finally:
                provider.close()
        signed = tmp_path / "twelve.dcm"
        dsig.save(ds, signed, dsig.target_encoding(ds, "same", None))
        write_pem(tmp_path / "store.pem", root.cert)
        policy = tmp_path / "site.toml"
        for setting, requests in (("", 12), ("max_fetches_per_verification = 5\n", 5)):
            policy.write_text(f'anchors = ["store.pem"]\nonline = true\ntimeout = 3\n{setting}')
            server.hits.clear()
            got, report = verify_json(signed, "--policy-file", policy)
            assert got != 0 and len(report["files"][0]["signatures"]) == 12
            assert server.hits == ["GET /certs/evil.der"] * requests, server.hits
        notes = json.dumps(report["files"][0]["signatures"][-1]["trust"])
        assert "the verification made its 5 requests" in notes, notes
        policy.write_text('anchors = ["store.pem"]\nmax_fetches_per_verification = -1\n')
        r = dsig_cli("verify", signed, "--policy-file", policy)
        assert r.exit_code == 4 and "max_fetches_per_verification" in r.stderr, r.stderr
