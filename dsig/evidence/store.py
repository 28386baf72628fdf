"""Evidence for a study on disk: one ``.ers`` file per data file in an output directory.

Writes are atomic and durable (every temp file on disk before the first rename, see
:func:`dsig.encoding.writer.replace_files`), so a killed run or a power cut leaves each
record old or new, never half-written; existing records are replaced only with ``force``.
Renewal is idempotent: a timestamp renewal skips records renewed less than ``min_age`` ago,
a hash-tree renewal those whose last chain already uses the new hash, so running it again
after a crash finishes the work without renewing anything twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsig.evidence import naming
from dsig.evidence.algorithms import DEFAULT_LIFETIMES, AlgorithmLifetimes, earliest, key_kind
from dsig.evidence.hashtree import HashTreeError, hash_file, root_of
from dsig.evidence.record import Record, RecordError, parse
from dsig.evidence.stamping import (
    EvidenceError,
    StampSettings,
    create_records,
    renew_hash_trees,
    renew_timestamps,
)
from dsig.evidence.validation import ValidationData
from dsig.evidence.verify import EvidenceResult, EvidenceStatus, verify_evidence
from dsig.timestamp import check_token
from pki.policy import TrustPolicy


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def discover(inputs: Sequence[Path], *, exclude: Path | None = None) -> list[tuple[Path, Path]]:
    """(file, path relative to its input root) for files and, recursively, directories;
    hidden files and anything under ``exclude`` (the output directory) are left out."""
    out: list[tuple[Path, Path]] = []
    skip = exclude.resolve() if exclude is not None else None
    for root in inputs:
        if root.is_dir():
            for sub in sorted(root.rglob("*")):
                rel = sub.relative_to(root)
                if any(part.startswith(".") for part in rel.parts) or not sub.is_file():
                    continue
                if skip is not None and sub.resolve().is_relative_to(skip):
                    continue
                out.append((sub, rel))
        elif root.is_file():
            out.append((root, Path(root.name)))
        else:
            raise EvidenceError(f"{root} does not exist or is not a file")
    if not out:
        raise EvidenceError("no file to create evidence for")
    return out


def name_files(files: Sequence[tuple[Path, Path]]) -> dict[str, Path]:
    """Record name -> data file; two files with one name (same SOP Instance UID) fail."""
    names: dict[str, Path] = {}
    for path, rel in files:
        name = naming.record_name(path, rel)
        if name in names:
            raise EvidenceError(f"{path} and {names[name]} would share the record {name}")
        names[name] = path
    return names


def _write_all(items: Sequence[tuple[Path, bytes]]) -> None:
    """Records written so that a crash (SIGKILL, power cut) leaves each old or new: an
    existing record may be the only proof of an old time, it must never be lost."""
    from dsig.encoding.writer import replace_files

    replace_files(items)


@dataclass
class CreateSummary:
    """What ``create`` did."""

    out_dir: Path
    records: dict[str, Path]
    time: dt.datetime
    tsa: str
    tsa_requests: int
    total_bytes: int

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "out_dir": str(self.out_dir),
            "records": len(self.records),
            "time": self.time.isoformat(),
            "tsa": self.tsa,
            "tsa_requests": self.tsa_requests,
            "record_bytes": self.total_bytes,
        }


def create_evidence(
    inputs: Sequence[Path],
    out_dir: Path,
    settings: StampSettings,
    *,
    hash_algorithm: str = "sha256",
    force: bool = False,
) -> CreateSummary:
    """Evidence for every file of ``inputs`` under one timestamp, written to ``out_dir``."""
    names = name_files(discover(inputs, exclude=out_dir))
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not force:
        raise EvidenceError(
            f"{out_dir / existing[0]} exists: not replaced unless forced", option="force"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EvidenceError(f"cannot create {out_dir}: {e.strerror or e}") from None
    files = list(names.values())
    records, stamped = create_records(files, settings, hash_algorithm=hash_algorithm)
    _write_all([(out_dir / name, der) for name, der in zip(names, records, strict=True)])
    total = sum(map(len, records))
    return CreateSummary(
        out_dir, {n: out_dir / n for n in names}, stamped.time, stamped.tsa, 1, total
    )


def load_records(directory: Path) -> tuple[dict[str, Record], dict[str, str]]:
    """(name -> record, name -> why unreadable) for the ``.ers`` files of ``directory``."""
    if not directory.is_dir():
        raise EvidenceError(f"{directory} is not a directory")
    good: dict[str, Record] = {}
    bad: dict[str, str] = {}
    for path in sorted(directory.glob("*" + naming.RECORD_SUFFIX)):
        try:
            good[path.name] = parse(path.read_bytes())
        except RecordError as e:
            bad[path.name] = str(e)
        except OSError as e:
            bad[path.name] = f"unreadable: {e.strerror or e}"
    if not good and not bad:
        raise EvidenceError(f"{directory} holds no {naming.RECORD_SUFFIX} record")
    return good, bad


def stamp_time(rec: Record) -> dt.datetime | None:
    """genTime of the record's last timestamp (None if the token does not decode)."""
    info = check_token(rec.last.token, b"").info
    return info.gen_time if info else None


@dataclass
class RenewSummary:
    """What ``renew`` did: renewed, skipped (with why), failed (with why)."""

    renewed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    tsa_requests: int = 0
    time: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "renewed": self.renewed,
            "skipped": self.skipped,
            "failed": self.failed,
            "tsa_requests": self.tsa_requests,
            "time": self.time.isoformat() if self.time else None,
        }


def renew_evidence(
    directory: Path,
    settings: StampSettings,
    *,
    rehash: str | None = None,
    data: Sequence[Path] = (),
    min_age: dt.timedelta = dt.timedelta(days=1),
    clock: Callable[[], dt.datetime] = _now,
) -> RenewSummary:
    """Renew every record of ``directory``: timestamp renewal, or with ``rehash`` a hash-tree
    renewal with that hash over the data files found in ``data`` (matched by record name).

    A record is checked before it is renewed (its last timestamp, or with ``rehash`` the whole
    record against its data, with ``settings.trust`` when given); one that fails is left
    alone and reported in ``failed``.
    """
    records, bad = load_records(directory)
    summary = RenewSummary(failed=dict(bad))
    now = clock()
    chosen: list[str] = []
    times: dict[bytes, dt.datetime | None] = {}  # the records of one run share one token
    for name, rec in records.items():
        if rehash is not None:
            if rec.last.hash_algorithm == rehash:
                summary.skipped[name] = f"its last hash tree already uses {rehash}"
                continue
        else:
            token = rec.last.token
            when = times[token] if token in times else times.setdefault(token, stamp_time(rec))
            if when is not None and now - when < min_age:
                summary.skipped[name] = f"renewed at {when.isoformat()}, less than min-age ago"
                continue
        chosen.append(name)
    files: dict[str, Path] = {}
    if rehash is not None and chosen:
        found = name_files(discover(data, exclude=directory)) if data else {}
        for name in list(chosen):
            if name not in found:
                summary.failed[name] = "no data file for it among the data given"
                chosen.remove(name)
            else:
                files[name] = found[name]
    checked: dict[_CheckKey, str | None] = {}
    for name in list(chosen):
        problem = _precheck(records[name], files.get(name), settings.trust, now, checked)
        if problem is not None:
            summary.failed[name] = problem
            chosen.remove(name)
    if not chosen:
        return summary
    todo = [records[n] for n in chosen]
    if rehash is not None:
        new, stamped = renew_hash_trees(todo, [files[n] for n in chosen], rehash, settings)
        stamps = [stamped]
    else:
        new, stamps = renew_timestamps(todo, settings)
    summary.tsa_requests = len(stamps)
    # A TSA whose clock is behind a record's last timestamp would make it BROKEN
    # (TIME_ORDER): nothing is written, the records keep the proof they have.
    last = [times[t] if t in times else times.setdefault(t, stamp_time(r))
            for r in todo for t in (r.last.token,)]  # fmt: skip
    newest = max((t for t in last if t is not None), default=None)
    early = min(s.time for s in stamps)
    if newest is not None and early < newest:
        why = (f"TIME_ORDER: the TSA's time {early.isoformat()} precedes the last timestamp "
               f"{newest.isoformat()} of the records renewed: nothing written")  # fmt: skip
        summary.failed.update(dict.fromkeys(chosen, why))
        return summary
    _write_all([(directory / name, der) for name, der in zip(chosen, new, strict=True)])
    summary.renewed.extend(chosen)
    summary.time = stamps[-1].time
    return summary


#: (last token, its tree's hash, tree root, kept validation data): what a precheck depends on.
_CheckKey = tuple[bytes, str, bytes, ValidationData]

_REFUSE_WITH_TRUST = frozenset({"TSA_UNTRUSTED", "TSA_CERT_MISSING", "TSA_NOT_CHECKED"})


def _precheck(
    rec: Record,
    data: Path | None,
    trust: TrustPolicy | None,
    now: dt.datetime,
    checked: dict[_CheckKey, str | None],
) -> str | None:
    """Why ``rec`` must not be renewed, or None. With ``data`` the whole record is verified,
    else only its last timestamp (tree root, token, and the TSA when ``trust`` is given).
    A record that is merely overdue may still be renewed: it then proves from now on.

    ``checked`` remembers the answer per :data:`_CheckKey`: the last timestamps
    of one run's records differ only in their trees, so the token and its TSA chain are
    checked once, not once per record (10,000 records: one chain validation)."""
    if data is not None:
        result = verify_evidence(lambda alg: hash_file(data, alg), rec, tsa_trust=trust, at=now)
        return _refusal(result, trust)
    stamp = rec.last
    key = None
    if stamp.reduced:
        try:
            root = root_of(stamp.hash_algorithm, stamp.reduced)
            key = (stamp.token, stamp.hash_algorithm, root, rec.validation)
        except HashTreeError:
            key = None  # checked below, and reported as TREE_MISMATCH
        if key is not None and key in checked:
            return checked[key]
    info = check_token(stamp.token, b"").info
    if info is None:
        return "BROKEN: the last timestamp does not decode"
    leaf = stamp.reduced[0][0] if stamp.reduced else info.digest
    single = Record(rec.der, rec.digest_algorithms, ((stamp,),), (b"",), rec.validation)
    problem = _refusal(verify_evidence(lambda _alg: leaf, single, tsa_trust=trust, at=now), trust)
    if key is not None:
        checked[key] = problem
    return problem


def _refusal(result: EvidenceResult, trust: TrustPolicy | None) -> str | None:
    """The finding that forbids renewing a record so checked, or None."""
    for code, message in result.findings:
        if result.status is EvidenceStatus.BROKEN or (
            trust is not None and code in _REFUSE_WITH_TRUST
        ):
            return f"{code}: {message}"
    return None


@dataclass
class StatusRow:
    """One record in ``dsig evidence status``."""

    name: str
    action: str  # none | timestamp | rehash | overdue | broken
    last_time: dt.datetime | None = None
    deadline: dt.datetime | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "record": self.name,
            "action": self.action,
            "last_time": self.last_time.isoformat() if self.last_time else None,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "reason": self.reason,
        }


def status_of(
    name: str,
    rec: Record,
    *,
    at: dt.datetime,
    within: dt.timedelta,
    lifetimes: AlgorithmLifetimes = DEFAULT_LIFETIMES,
) -> StatusRow:
    """Whether ``rec`` needs renewal before ``at + within``, which kind, and by when."""
    info = check_token(rec.last.token, b"", extra_certs=rec.validation.x509_certificates()).info
    if info is None or info.signer is None:
        return StatusRow(
            name, "broken", reason="the last timestamp does not decode or has no TSA certificate"
        )
    hash_end = lifetimes.hash_end(rec.last.hash_algorithm)
    key_end = lifetimes.certificate_key_end(info.signer)
    chain = [c for c in rec.validation.x509_certificates() if c.subject == info.signer.issuer]
    cert_end = earliest(info.signer.not_valid_after_utc, *(c.not_valid_after_utc for c in chain))
    deadline = earliest(hash_end, key_end, cert_end)
    row = StatusRow(name, "none", info.gen_time, deadline)
    if deadline is None or deadline > at + within:
        return row
    if hash_end is not None and hash_end <= at + within:
        row.action, row.deadline = "rehash", hash_end
        row.reason = f"{rec.last.hash_algorithm} is secure until {hash_end.date()}"
    elif key_end is not None and key_end == deadline:
        family, bits = key_kind(info.signer)
        row.action = "timestamp"
        row.reason = f"the TSA's {family}-{bits} key is secure until {key_end.date()}"
    else:
        row.action = "timestamp"
        row.reason = f"the TSA certificate expires {deadline.isoformat()}"
    if deadline < at:
        row.reason += " (overdue: renewal now proves existence only from now on)"
        row.action = "overdue" if row.action == "timestamp" else row.action
    return row


def status_evidence(
    directory: Path,
    *,
    at: dt.datetime | None = None,
    within: dt.timedelta = dt.timedelta(days=180),
    lifetimes: AlgorithmLifetimes = DEFAULT_LIFETIMES,
) -> list[StatusRow]:
    """:func:`status_of` for every record of ``directory`` (unreadable ones: ``broken``)."""
    moment = at or _now()
    records, bad = load_records(directory)
    rows = [
        status_of(n, r, at=moment, within=within, lifetimes=lifetimes) for n, r in records.items()
    ]
    rows += [StatusRow(n, "broken", reason=why) for n, why in bad.items()]
    return sorted(rows, key=lambda r: r.name)


def find_record(evidence: Path, data: Path) -> Path:
    """The record for ``data``: ``evidence`` itself if it is a file, else the file named after
    ``data`` (SOP Instance UID) in that directory."""
    if evidence.is_file():
        return evidence
    if not evidence.is_dir():
        raise EvidenceError(f"{evidence} does not exist")
    path = evidence / naming.record_name(data, Path(data.name))
    if not path.is_file():
        raise EvidenceError(f"no evidence record {path.name} in {evidence}")
    return path


def verify_file_evidence(
    data: Path,
    evidence: Path,
    *,
    tsa_trust: TrustPolicy | None,
    at: dt.datetime | None = None,
    lifetimes: AlgorithmLifetimes = DEFAULT_LIFETIMES,
) -> EvidenceResult:
    """Verify the record of ``data`` found through ``evidence`` (file or directory)."""
    path = find_record(evidence, data)
    try:
        der = path.read_bytes()
    except OSError as e:
        raise EvidenceError(f"cannot read {path}: {e.strerror or e}") from None

    def data_hash(alg: str) -> bytes:
        try:
            return hash_file(data, alg)
        except OSError as e:
            raise EvidenceError(f"cannot read {data}: {e.strerror or e}") from None

    return verify_evidence(data_hash, der, tsa_trust=tsa_trust, at=at, lifetimes=lifetimes)
