"""Evidence over the years (real TSA and CRL server on 127.0.0.1, clocks injected): the CRL
fetched with ``online`` is kept in the record and proves the TSA was not revoked long after
the CRL server is gone; a TSA revoked before its timestamp breaks the record; a renewal made
after the previous TSA certificate expired moves the proven time to it; a renewal that does
not cover the previous timestamp breaks the record; a TSA whose clock is behind the record's
last timestamp is refused by ``renew`` (the records keep their proof); a record never renewed
past its TSA certificate's expiry is still proven, with the warning RENEWAL_DUE."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from dsig.evidence import (
    EvidenceError,
    EvidenceStatus,
    StampSettings,
    create_evidence,
    renew_evidence,
    status_evidence,
    verify_evidence,
    verify_file_evidence,
)
from dsig.evidence.hashtree import hash_file
from dsig.evidence.record import parse, renew_timestamp
from pki.policy import TrustPolicy
from tests.conftest import sample
from tests.helpers.pki_factory import TIMESTAMPING, Issued, issue
from tests.helpers.pki_servers import PkiServer
from tests.helpers.tsa import TimestampPki

DAY = dt.timedelta(days=1)


def _study(directory: Path, *names: str) -> Path:
    directory.mkdir()
    for name in names:
        shutil.copy(sample(name), directory / name)
    return directory


def _tsa(tp: TimestampPki, cn: str, now: dt.datetime, **kwargs: object) -> Issued:
    return issue(cn, issuer=tp.intermediate, eku=[TIMESTAMPING], now=now,
                 key_usage={"digital_signature", "non_repudiation"}, **kwargs)  # type: ignore[arg-type]  # fmt: skip


def _codes(findings: Sequence[tuple[str, str]]) -> list[str]:
    return [code for code, _message in findings]


def test_crl_fetched_online_is_kept_and_proves_years_later(tmp_path: Path) -> None:
    tp = TimestampPki(tmp_path / "pki")
    trust = TrustPolicy(trust_roots=(tp.root.cert,))
    study = _study(tmp_path / "study", "CT_small.dcm", "MR_small.dcm")
    data = study / "CT_small.dcm"
    with PkiServer(this_update=tp.now - dt.timedelta(hours=1)) as crls:
        authority = crls.add_authority("inter", tp.intermediate)
        tsa_cert = _tsa(tp, "dsig TSA with CRL", tp.now,
                        extensions=crls.revinfo_extensions("inter", ocsp=False))  # fmt: skip
        with tp.server(tsa=tsa_cert) as tsa:
            online = StampSettings([tsa.url], trust=trust, online=True)
            create_evidence([study], tmp_path / "kept", online)
            assert "GET /crl/inter.crl" in crls.hits
            # offline and with trust: refused now rather than unprovable later
            with pytest.raises(EvidenceError, match="REVOCATION_UNAVAILABLE"):
                create_evidence([study], tmp_path / "bare", StampSettings([tsa.url], trust=trust))
            create_evidence([study], tmp_path / "bare", StampSettings([tsa.url]))
            authority.revoke(tsa_cert.cert, tp.now - DAY)  # before the next timestamps
            with pytest.raises(EvidenceError, match="did not validate"):
                create_evidence([study], tmp_path / "refused", online)
            create_evidence([study], tmp_path / "revoked",
                            StampSettings([tsa.url], online=True))  # fmt: skip
    assert not (tmp_path / "refused").exists() or not list((tmp_path / "refused").iterdir())
    later = tp.now + dt.timedelta(days=3 * 365)  # the TSA certificate expired, no CRL server
    assert tsa_cert.cert.not_valid_after_utc < later
    record = next((tmp_path / "kept").glob("1.3.6.1.4.1.5962.1.1.1.1.1.*"))
    assert len(parse(record.read_bytes()).validation.crls) == 1
    r = verify_file_evidence(data, tmp_path / "kept", tsa_trust=trust, at=later)
    assert r.status is EvidenceStatus.PROVEN, r.findings
    # without the kept CRL the TSA's revocation status cannot be known (hard-fail)
    r = verify_file_evidence(data, tmp_path / "bare", tsa_trust=trust, at=later)
    assert r.status is EvidenceStatus.NOT_PROVABLE and _codes(r.findings) == ["TSA_UNTRUSTED"]
    # the kept CRL says the TSA was revoked before it made the timestamp
    r = verify_file_evidence(data, tmp_path / "revoked", tsa_trust=trust, at=later)
    assert r.status is EvidenceStatus.BROKEN and _codes(r.findings) == ["TSA_REVOKED"]


def test_late_and_foreign_renewals(tmp_path: Path) -> None:
    tp = TimestampPki(tmp_path / "pki")
    trust = TrustPolicy(trust_roots=(tp.root.cert,))
    start = tp.now.replace(microsecond=0)
    study = _study(tmp_path / "study", "CT_small.dcm", "MR_small.dcm")
    data = study / "CT_small.dcm"
    with tp.server(clock=lambda: start) as tsa:
        settings = StampSettings([tsa.url], trust=trust)
        create_evidence([study], tmp_path / "ev", settings)
        create_evidence([data], tmp_path / "other", settings)
    # three years on the first TSA certificate has expired; a new TSA renews the records
    late = start + dt.timedelta(days=3 * 365)
    assert tp.tsa.cert.not_valid_after_utc < late
    second = _tsa(tp, "dsig TSA 2", late)
    with tp.server(tsa=second, clock=lambda: late) as tsa:
        summary = renew_evidence(tmp_path / "ev", StampSettings([tsa.url], trust=trust),
                                 min_age=dt.timedelta(0), clock=lambda: late)  # fmt: skip
    assert len(summary.renewed) == 2, summary.failed
    # the renewal's validation data joins the first's: both TSA chains are kept
    kept = parse(next((tmp_path / "ev").glob("1.3.6.1.4.1.5962.1.1.1.1.1.*")).read_bytes())
    ders = {c.public_bytes(Encoding.DER) for c in (tp.tsa.cert, second.cert, tp.intermediate.cert)}
    assert ders <= set(kept.validation.certificates)
    r = verify_file_evidence(data, tmp_path / "ev", tsa_trust=trust, at=late + DAY)
    assert r.status is EvidenceStatus.PROVEN and _codes(r.findings) == ["RENEWAL_LATE"]
    # the first timestamp's algorithms are still secure: it still proves its own time (a late
    # renewal never proves less than no renewal, which is PROVEN at start with RENEWAL_DUE)
    assert r.proven_time == start
    assert "still prove the earlier time on their own" in r.findings[0][1]
    unrenewed = verify_file_evidence(data, tmp_path / "other", tsa_trust=trust, at=late + DAY)
    assert unrenewed.proven_time == start and _codes(unrenewed.findings) == ["RENEWAL_DUE"]
    # the renewal of one record spliced onto the record of another run covers nothing of it
    renewed = parse(next((tmp_path / "ev").glob("1.3.6.1.4.1.5962.1.1.1.1.1.*")).read_bytes())
    foreign = parse(next((tmp_path / "other").iterdir()).read_bytes())
    spliced = renew_timestamp(foreign, renewed.last.reduced, renewed.last.token,
                              renewed.validation)  # fmt: skip
    r = verify_evidence(lambda alg: hash_file(data, alg), spliced, tsa_trust=trust, at=late)
    assert r.status is EvidenceStatus.BROKEN and _codes(r.findings) == ["RENEWAL_NOT_COVERED"]


def test_renew_refuses_a_tsa_time_before_the_last_timestamp(tmp_path: Path) -> None:
    tp = TimestampPki(tmp_path / "pki")
    trust = TrustPolicy(trust_roots=(tp.root.cert,))
    start = tp.now.replace(microsecond=0)
    study = _study(tmp_path / "study", "CT_small.dcm", "MR_small.dcm")
    out = tmp_path / "ev"
    with tp.server(clock=lambda: start) as tsa:
        create_evidence([study], out, StampSettings([tsa.url], trust=trust))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with tp.server(clock=lambda: start - DAY) as tsa:  # a TSA whose clock is a day behind
        summary = renew_evidence(out, StampSettings([tsa.url], trust=trust),
                                 min_age=dt.timedelta(0))  # fmt: skip
    assert summary.renewed == () and set(summary.failed) == set(before)
    assert all(why.startswith("TIME_ORDER") for why in summary.failed.values()), summary.failed
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    r = verify_file_evidence(study / "CT_small.dcm", out, tsa_trust=trust)
    assert r.status is EvidenceStatus.PROVEN and r.proven_time == start


@pytest.mark.parametrize("kind", ["ocsp", "crl"])
def test_supplied_revocation_data_is_kept_and_proves_years_later(tmp_path: Path, kind: str) -> None:
    """An OCSP response (``--ocsp``) or a CRL (``--crl``) given to ``create`` for a TSA chain
    that names only that kind of source is kept in the record (OCSP as a BasicOCSPResponse)
    and proves, offline and with nothing else given, after the TSA certificate expired;
    without it ``create`` refuses (it would be unprovable later)."""
    from tests.helpers.pki_servers import make_crl, make_ocsp_response
    from tests.integration.test_evidence import _dsig

    tp = TimestampPki(tmp_path / "pki")
    study = _study(tmp_path / "study", "CT_small.dcm", "MR_small.dcm")
    revinfo = PkiServer()  # never started: only its URLs go into the certificate
    revinfo.add_authority("inter", tp.intermediate)
    extensions = revinfo.revinfo_extensions("inter", crl=kind == "crl", ocsp=kind == "ocsp")
    tsa_cert = _tsa(tp, f"dsig TSA with {kind}", tp.now, extensions=extensions)
    issued = tp.now - dt.timedelta(hours=1)
    if kind == "ocsp":
        der = make_ocsp_response(tp.intermediate, tsa_cert.cert.serial_number,
                                 this_update=issued).public_bytes(Encoding.DER)  # fmt: skip
    else:
        der = make_crl(tp.intermediate, this_update=issued).public_bytes(Encoding.DER)
    supplied = tmp_path / f"tsa.{kind}"
    supplied.write_bytes(der)
    root = ("--tsa-trust-store", tp.root_pem)
    with tp.server(tsa=tsa_cert) as tsa:
        bare = _dsig("evidence", "create", study, "--out-dir", tmp_path / "bare",
                     "--tsa", tsa.url, *root)  # fmt: skip
        assert bare.returncode == 4 and "REVOCATION_UNAVAILABLE" in bare.stderr, bare.stderr
        assert len(bare.stderr.strip().splitlines()) == 1
        made = _dsig("evidence", "create", study, "--out-dir", tmp_path / "ev",
                     "--tsa", tsa.url, *root, f"--{kind}", supplied)  # fmt: skip
        assert made.returncode == 0, made.stderr
    record = parse(next((tmp_path / "ev").glob("1.3.6.1.4.1.5962.1.1.1.1.1.*")).read_bytes())
    kept = record.validation.ocsp_responses if kind == "ocsp" else record.validation.crls
    assert len(kept) == 1
    if kind == "crl":
        assert kept[0] == der
    later = tp.now + dt.timedelta(days=3 * 365)
    assert tsa_cert.cert.not_valid_after_utc < later
    r = _dsig("evidence", "verify", study / "CT_small.dcm", "--evidence", tmp_path / "ev",
              *root, "--at", later.isoformat(), "--json")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (stamp,) = json.loads(r.stdout)["renewals"]
    sources = {x["certificate"]: x["status"] for x in stamp["tsa_trust"]["revocation"]}
    assert sources[tsa_cert.cert.subject.rfc4514_string()] == "good", stamp["tsa_trust"]


def test_hash_tree_renewal_must_come_before_the_hash_weakened(tmp_path: Path) -> None:
    """A hash-tree renewal made after the old hash's end (per the lifetimes table given)
    proves existence only from the renewal on (RENEWAL_LATE); made before, from the start."""
    from dsig.evidence import AlgorithmLifetimes
    from dsig.evidence.algorithms import DEFAULT_LIFETIMES

    tp = TimestampPki(tmp_path / "pki")
    trust = TrustPolicy(trust_roots=(tp.root.cert,))
    start = tp.now.replace(microsecond=0)
    rehashed = start + 10 * DAY
    study = _study(tmp_path / "study", "CT_small.dcm", "MR_small.dcm")
    out = tmp_path / "ev"
    times = iter([start, rehashed])
    with tp.server(clock=lambda: next(times)) as tsa:
        settings = StampSettings([tsa.url], trust=trust)
        create_evidence([study], out, settings)
        renew_evidence(out, settings, rehash="sha512", data=[study], clock=lambda: rehashed)

    def table(sha256_end: dt.datetime) -> AlgorithmLifetimes:
        return AlgorithmLifetimes(hashes={**DEFAULT_LIFETIMES.hashes, "sha256": sha256_end})

    data, at = study / "CT_small.dcm", start + 30 * DAY
    r = verify_file_evidence(data, out, tsa_trust=trust, at=at, lifetimes=table(start + 5 * DAY))
    assert r.status is EvidenceStatus.PROVEN and _codes(r.findings) == ["RENEWAL_LATE"]
    assert r.proven_time == rehashed
    assert "existence is proven from this renewal on" in r.findings[0][1]
    assert r.stamps[0].valid_until == start + 5 * DAY
    r = verify_file_evidence(data, out, tsa_trust=trust, at=at, lifetimes=table(start + 20 * DAY))
    assert r.status is EvidenceStatus.PROVEN and r.findings == () and r.proven_time == start
    # and once sha256 has ended, a record never rehashed proves nothing
    single = tmp_path / "single"
    with tp.server(clock=lambda: start) as tsa:
        create_evidence([data], single, StampSettings([tsa.url], trust=trust))
    r = verify_file_evidence(data, single, tsa_trust=trust, at=at, lifetimes=table(start + 5 * DAY))
    assert r.status is EvidenceStatus.NOT_PROVABLE and _codes(r.findings) == ["RENEWAL_OVERDUE"]
    assert "hash-tree renewal was due" in r.findings[0][1]
    # status says it alike: overdue (exit 1), no longer "rehash" (a due renewal, exit 3)
    (row,) = status_evidence(single, at=at, lifetimes=table(start + 5 * DAY))
    assert (row.action, row.reason) == ("overdue", r.findings[0][1])
    assert row.deadline == start + 5 * DAY


def test_readme_lifetimes_table_is_the_code_table() -> None:
    """README's algorithm lifetimes table lists every entry of DEFAULT_LIFETIMES, same date."""
    import re

    from dsig.evidence.algorithms import DEFAULT_LIFETIMES
    from tests.integration.test_evidence import REPO

    text = (REPO / "README.md").read_text().split("- **Algorithm lifetimes**", 1)[1]
    hashes: dict[str, dt.date | None] = {}
    keys: dict[tuple[str, int], dt.date | None] = {}
    for names, until in re.findall(r"^\s*\| (`[^|]+`) \| ([^|]+) \|", text, flags=re.M)[:7]:
        day = None if until.strip() == "no end announced" else dt.date.fromisoformat(until.strip())
        for name in re.findall(r"`([^`]+)`", names):
            if name.endswith("+"):
                family, bits = name[:-1].split("-")
                keys[(family, int(bits))] = day
            else:
                hashes[name] = day
    assert hashes == {n: e.date() if e else None for n, e in DEFAULT_LIFETIMES.hashes.items()}
    assert keys == {k: e.date() if e else None for k, e in DEFAULT_LIFETIMES.keys.items()}


def test_renew_leaves_alone_a_record_changed_while_it_ran(tmp_path: Path) -> None:
    """renew reads each record twice (check, then extend): one replaced in between (here
    while the TSA answers) is not extended from its old content, it is left as it now is."""
    tp = TimestampPki(tmp_path / "pki")
    trust = TrustPolicy(trust_roots=(tp.root.cert,))
    study = _study(tmp_path / "study", "CT_small.dcm", "MR_small.dcm")
    out = tmp_path / "ev"
    with tp.server() as tsa:
        create_evidence([study], out, StampSettings([tsa.url], trust=trust))
    first, second = sorted(out.iterdir())
    replacement = second.read_bytes()

    def clock() -> dt.datetime:  # the TSA's clock, read while it makes the renewal
        first.write_bytes(replacement)
        return dt.datetime.now(dt.UTC)

    with tp.server(clock=clock) as tsa:
        summary = renew_evidence(out, StampSettings([tsa.url], trust=trust),
                                 min_age=dt.timedelta(0))  # fmt: skip
    assert summary.renewed == (second.name,) and tsa.hits == 1
    assert summary.failed == {first.name: "changed while being renewed: left as it is now"}
    assert first.read_bytes() == replacement
    assert len(parse(second.read_bytes()).stamps) == 2


def test_unrenewed_record_past_its_tsa_certificate_is_proven_with_renewal_due(
    tmp_path: Path,
) -> None:
    """A record never renewed, checked after its TSA certificate expired (clock injected):
    still PROVEN at its first time with the kept validation data, with the warning
    RENEWAL_DUE saying when it lost its value and that a renewal now proves only from then on;
    ``status`` gives the same words; ``evidence verify`` and ``dsig verify --evidence`` show it
    (exit 0); before the expiry there is no such finding."""
    from tests.integration.test_evidence import _dsig
    from tests.integration.test_trust_model import dsig_cli, sign_file

    tp = TimestampPki(tmp_path / "pki")
    trust = TrustPolicy(trust_roots=(tp.root.cert,))
    start = tp.now.replace(microsecond=0)
    # a signer still valid then: ``dsig verify --at`` judges signatures at that moment
    signer, _key, _cert = tp.signer("long-lived signer", not_after=start + 5 * 365 * DAY)
    study = tmp_path / "study"
    study.mkdir()
    signed = sign_file(signer, study / "signed.dcm", at=start - DAY)
    out = tmp_path / "ev"
    with tp.server(clock=lambda: start) as tsa:
        create_evidence([signed], out, StampSettings([tsa.url], trust=trust))
    expiry = tp.tsa.cert.not_valid_after_utc
    later = expiry + 30 * DAY
    assert later < dt.datetime(2030, 12, 31, tzinfo=dt.UTC)  # RSA-2048 still secure

    r = verify_file_evidence(signed, out, tsa_trust=trust, at=expiry - DAY)
    assert r.status is EvidenceStatus.PROVEN and r.findings == () and r.proven_time == start
    r = verify_file_evidence(signed, out, tsa_trust=trust, at=later)
    assert r.status is EvidenceStatus.PROVEN and r.proven_time == start, r.findings
    assert _codes(r.findings) == ["RENEWAL_DUE"]
    due = r.findings[0][1]
    assert f"lost its value at {expiry.isoformat()}, when its TSA certificate expired" in due
    assert "secure (until 2030-12-31)" in due and "renew it before those algorithms end" in due
    assert "keeps that proven time" in due and "--" not in due  # names no CLI flag

    (row,) = status_evidence(out, at=later)
    assert row.action == "timestamp" and row.deadline == expiry and row.reason == due
    # once the TSA's RSA-2048 has ended too: unprovable, and again status says it alike
    ended = dt.datetime(2031, 6, 1, tzinfo=dt.UTC)
    r = verify_file_evidence(signed, out, tsa_trust=trust, at=ended)
    assert r.status is EvidenceStatus.NOT_PROVABLE and _codes(r.findings) == ["RENEWAL_OVERDUE"]
    (row,) = status_evidence(out, at=ended)
    assert row.action == "overdue" and row.reason == r.findings[0][1]
    assert "only from the renewal on" in row.reason

    root = ("--tsa-trust-store", tp.root_pem)
    cli = _dsig("evidence", "verify", signed, "--evidence", out, *root, "--at", later.isoformat(),
                "--json")  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert json.loads(cli.stdout)["findings"] == [{"code": "RENEWAL_DUE", "message": due}]
    human = _dsig("evidence", "verify", signed, "--evidence", out, *root, "--at", later.isoformat())
    assert human.returncode == 0 and f"RENEWAL_DUE: {due}" in human.stdout, human.stdout
    # status follows verify: proven with RENEWAL_DUE is due (3), unprovable is overdue (1)
    status = _dsig("evidence", "status", out, "--at", later.isoformat(), "--json")
    assert status.returncode == 3, status.stdout + status.stderr
    assert [(r["action"], r["reason"]) for r in json.loads(status.stdout)] == [("timestamp", due)]
    status = _dsig("evidence", "status", out, "--at", later.isoformat())
    assert status.returncode == 3 and status.stdout.startswith("timestamp "), status.stdout
    gone = _dsig("evidence", "verify", signed, "--evidence", out, *root, "--at", ended.isoformat())
    assert gone.returncode == 3 and "RENEWAL_OVERDUE" in gone.stdout, gone.stdout
    status = _dsig("evidence", "status", out, "--at", ended.isoformat())
    assert status.returncode == 1 and status.stdout.startswith("overdue "), status.stdout

    trust_args = ("--trust-store", tp.root_pem, "--untrusted", tp.inter_pem, *root)
    v = dsig_cli("verify", signed, "--json", *trust_args, "--evidence", out, "--at", later)
    assert v.exit_code == 0, v.output
    file = json.loads(v.stdout)["files"][0]
    assert file["evidence"]["status"] == "PROVEN"
    assert [f["code"] for f in file["evidence"]["findings"]] == ["RENEWAL_DUE"]
    (warning,) = [f for f in file["findings"] if f["code"] == "RENEWAL_DUE"]
    assert warning["severity"] == "warning" and due in warning["message"]
    assert file["signatures"][0]["trust"]["indication"] == "VALID"
    v = dsig_cli("verify", signed, *trust_args, "--evidence", out, "--at", later)
    assert v.exit_code == 0 and "RENEWAL_DUE: evidence record" in v.stdout, v.output
    assert "evidence: PROVEN" in v.stdout
