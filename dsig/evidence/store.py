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
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dsig.evidence import naming, record
from dsig.evidence.algorithms import DEFAULT_LIFETIMES, AlgorithmLifetimes, earliest, key_kind
from dsig.evidence.hashtree import HashTreeError, hash_file, root_of
from dsig.evidence.record import Record, RecordError, parse
from dsig.evidence.stamping import (
    EvidenceError,
    RootStamp,
    StampSettings,
    create_records,
    stamp_leaves,
)
from dsig.evidence.validation import ValidationData
from dsig.evidence.verify import (
    EvidenceResult,
    EvidenceStatus,
    algorithms_end,
    overdue_reason,
    renewal_due,
    verify_evidence,
)
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


def _write_all(items: Iterable[tuple[Path, bytes]]) -> None:
    """Records written so that a crash (SIGKILL, power cut) leaves each old or new: an
    existing record may be the only proof of an old time, it must never be lost."""
    from dsig.encoding.writer import replace_files

    replace_files(items)


@dataclass(frozen=True, slots=True)
class CreateSummary:
    """What ``create`` did (frozen; ``records`` is a read-only mapping)."""

    out_dir: Path
    records: Mapping[str, Path]
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
    sizes: list[int] = []

    def written() -> Iterator[tuple[Path, bytes]]:  # one record in memory at a time
        for name, der in zip(names, records, strict=True):
            sizes.append(len(der))
            yield out_dir / name, der

    _write_all(written())
    made = MappingProxyType({n: out_dir / n for n in names})
    return CreateSummary(out_dir, made, stamped.time, stamped.tsa, 1, sum(sizes))


def record_files(directory: Path) -> list[Path]:
    """The ``.ers`` files of ``directory`` (sorted); raises when there is none."""
    if not directory.is_dir():
        raise EvidenceError(f"{directory} is not a directory")
    paths = sorted(directory.glob("*" + naming.RECORD_SUFFIX))
    if not paths:
        raise EvidenceError(f"{directory} holds no {naming.RECORD_SUFFIX} record")
    return paths


def read_record(path: Path) -> tuple[bytes, Record]:
    """(DER, parsed) of one record; raises :class:`RecordError` (its message says why)."""
    try:
        der = path.read_bytes()
    except OSError as e:
        raise RecordError(f"unreadable: {e.strerror or e}") from None
    return der, parse(der)


def stamp_time(rec: Record) -> dt.datetime | None:
    """genTime of the record's last timestamp (None if the token does not decode)."""
    info = check_token(rec.last.token, b"").info
    return info.gen_time if info else None


@dataclass(frozen=True, slots=True)
class RenewSummary:
    """What ``renew`` did: renewed, skipped (with why), failed (with why); frozen, the
    mappings read-only."""

    renewed: tuple[str, ...]
    skipped: Mapping[str, str]
    failed: Mapping[str, str]
    tsa_requests: int
    time: dt.datetime | None

    def __post_init__(self) -> None:  # read-only copies: the caller's dicts stay the caller's
        object.__setattr__(self, "skipped", MappingProxyType(dict(self.skipped)))
        object.__setattr__(self, "failed", MappingProxyType(dict(self.failed)))

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "renewed": list(self.renewed),
            "skipped": dict(self.skipped),
            "failed": dict(self.failed),
            "tsa_requests": self.tsa_requests,
            "time": self.time.isoformat() if self.time else None,
        }


@dataclass(frozen=True)
class _Renewal:
    """A record chosen for renewal, as little of it as the second pass needs."""

    name: str
    group: str  # the hash of the tree it joins (one TSA request per group)
    leaf: bytes
    fingerprint: bytes  # SHA-256 of the record file as checked
    last_time: dt.datetime | None


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
    alone and reported in ``failed``. Two passes keep memory small: the first checks each
    record and keeps its leaf, the second re-reads each (one at a time) to extend it, and
    leaves alone one that changed in between.
    """
    # what the summary accumulates (RenewSummary copies them, read-only)
    renewed_names: list[str] = []
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    now = clock()
    todo: list[_Renewal] = []
    found: dict[str, Path] | None = None
    times: dict[bytes, dt.datetime | None] = {}  # the records of one run share one token
    checked: dict[_CheckKey, str | None] = {}
    for path in record_files(directory):
        name = path.name
        try:
            der, rec = read_record(path)
        except RecordError as e:
            failed[name] = str(e)
            continue
        token = rec.last.token
        when = times[token] if token in times else times.setdefault(token, stamp_time(rec))
        file = None
        if rehash is not None:
            if rec.last.hash_algorithm == rehash:
                skipped[name] = f"its last hash tree already uses {rehash}"
                continue
            if found is None:
                found = name_files(discover(data, exclude=directory)) if data else {}
            if name not in found:
                failed[name] = "no data file for it among the data given"
                continue
            file = found[name]
        elif when is not None and now - when < min_age:
            skipped[name] = f"renewed at {when.isoformat()}, under the minimum age"
            continue
        problem = _precheck(rec, file, settings.trust, now, checked)
        if problem is not None:
            failed[name] = problem
            continue
        if rehash is not None and file is not None:
            group, leaf = rehash, record.rehash_leaf(rec, rehash, _hash_data(file, rehash))
        else:
            group, leaf = record.timestamp_renewal_leaf(rec)
        todo.append(_Renewal(name, group, leaf, hashlib.sha256(der).digest(), when))
    if not todo:
        return RenewSummary((), skipped, failed, 0, None)
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(todo):
        groups.setdefault(item.group, []).append(i)
    trees: list[list[list[bytes]]] = [[] for _ in todo]
    stamps: dict[str, RootStamp] = {}
    for group, indexes in groups.items():
        stamps[group], reduced = stamp_leaves([todo[i].leaf for i in indexes], group, settings)
        for i, tree in zip(indexes, reduced, strict=True):
            trees[i] = tree
    # A TSA whose clock is behind a record's last timestamp would make it BROKEN
    # (TIME_ORDER): nothing is written, the records keep the proof they have.
    newest = max((t.last_time for t in todo if t.last_time is not None), default=None)
    early = min(s.time for s in stamps.values())
    if newest is not None and early < newest:
        why = (f"TIME_ORDER: the TSA's time {early.isoformat()} precedes the last timestamp "
               f"{newest.isoformat()} of the records renewed: nothing written")  # fmt: skip
        failed.update(dict.fromkeys((t.name for t in todo), why))
        return RenewSummary((), skipped, failed, len(stamps), None)

    def renewed() -> Iterator[tuple[Path, bytes]]:  # one record in memory at a time
        for item, tree in zip(todo, trees, strict=True):
            path = directory / item.name
            try:
                der, rec = read_record(path)
            except RecordError as e:
                failed[item.name] = str(e)
                continue
            if hashlib.sha256(der).digest() != item.fingerprint:
                failed[item.name] = "changed while being renewed: left as it is now"
                continue
            stamped = stamps[item.group]
            if rehash is not None:
                new = record.renew_hash_tree(rec, rehash, tree, stamped.token, stamped.validation)
            else:
                new = record.renew_timestamp(rec, tree, stamped.token, stamped.validation)
            renewed_names.append(item.name)
            yield path, new

    _write_all(renewed())
    time = max(s.time for s in stamps.values())
    return RenewSummary(tuple(renewed_names), skipped, failed, len(stamps), time)


def _hash_data(path: Path, name: str) -> bytes:
    try:
        return hash_file(path, name)
    except OSError as e:
        raise EvidenceError(f"cannot read {path}: {e.strerror or e}") from None


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


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One record in ``dsig evidence status`` (frozen).

    ``action`` is the renewal due (``timestamp``, ``rehash``: the record still proves, as
    ``evidence verify`` says, RENEWAL_DUE included) or, when verify would not prove it now,
    ``overdue`` (RENEWAL_OVERDUE) or ``broken`` (the last timestamp or the record unreadable).
    """

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
    """Whether ``rec`` needs renewal before ``at + within``, which kind, and by when. A
    deadline already past is said as ``verify`` says it (RENEWAL_OVERDUE's or RENEWAL_DUE's
    message): both come from :mod:`dsig.evidence.verify`."""
    info = check_token(rec.last.token, b"", extra_certs=rec.validation.x509_certificates()).info
    if info is None or info.signer is None:
        return StatusRow(
            name, "broken", reason="the last timestamp does not decode or has no TSA certificate"
        )
    hash_end = lifetimes.hash_end(rec.last.hash_algorithm)
    key_end = lifetimes.certificate_key_end(info.signer)
    issuers = [c for c in rec.validation.x509_certificates() if c.subject == info.signer.issuer]
    chain = [info.signer, *issuers]
    cert_end = earliest(*(c.not_valid_after_utc for c in chain))
    deadline = earliest(hash_end, key_end, cert_end)
    row = StatusRow(name, "none", info.gen_time, deadline)
    if deadline is None or deadline > at + within:
        return row
    overdue = overdue_reason(rec.last, info.signer, lifetimes, at)
    if overdue is not None:  # verify: NOT_PROVABLE (RENEWAL_OVERDUE); reason: which renewal
        hash_over = hash_end is not None and hash_end < at
        return replace(row, action="overdue", deadline=hash_end if hash_over else key_end,
                       reason=overdue)  # fmt: skip
    expired = next((c for c in chain if c.not_valid_after_utc == cert_end), None)
    hash_due = hash_end is not None and hash_end <= at + within
    if cert_end is not None and cert_end < at and expired is not None:
        # verify: PROVEN with RENEWAL_DUE, so due (exit 3), not overdue: "overdue" and
        # "broken" (exit 1) are kept for records verify would not prove
        why = renewal_due(expired, info.signer, algorithms_end(rec.last, info.signer, lifetimes))
        action = "rehash" if hash_due else "timestamp"
        return replace(row, action=action, deadline=cert_end, reason=why)
    if hash_end is not None and hash_due:
        why = f"{rec.last.hash_algorithm} is secure until {hash_end.date()}"
        return replace(row, action="rehash", deadline=hash_end, reason=why)
    if key_end is not None and key_end == deadline:
        family, bits = key_kind(info.signer)
        why = f"the TSA's {family}-{bits} key is secure until {key_end.date()}"
        return replace(row, action="timestamp", reason=why)
    why = f"the TSA certificate expires {deadline.isoformat()}"
    return replace(row, action="timestamp", reason=why)


def status_evidence(
    directory: Path,
    *,
    at: dt.datetime | None = None,
    within: dt.timedelta = dt.timedelta(days=180),
    lifetimes: AlgorithmLifetimes = DEFAULT_LIFETIMES,
) -> list[StatusRow]:
    """:func:`status_of` for every record of ``directory`` (unreadable ones: ``broken``)."""
    moment = at or _now()
    rows = []
    for path in record_files(directory):  # one record in memory at a time
        try:
            _der, rec = read_record(path)
        except RecordError as e:
            rows.append(StatusRow(path.name, "broken", reason=str(e)))
            continue
        rows.append(status_of(path.name, rec, at=moment, within=within, lifetimes=lifetimes))
    return rows


def find_record(evidence: Path, data: Path) -> Path:
    """The record for ``data``: ``evidence`` itself if it is a file, else the file named after
    ``data`` in that directory (SOP Instance UID; for other files their path flattened from
    any parent, see :func:`naming.candidate_names`: when several exist, the one whose tree
    holds the file's hash, else the shortest name, which then fails as not covering it)."""
    if evidence.is_file():
        return evidence
    if not evidence.is_dir():
        raise EvidenceError(f"{evidence} does not exist")
    names = naming.candidate_names(data)
    found = [evidence / n for n in names if (evidence / n).is_file()]
    if not found:
        raise EvidenceError(f"no evidence record {names[0]} in {evidence}")
    if len(found) > 1:
        for path in found:
            if _covers(path, data):
                return path
    return found[0]


def _covers(record: Path, data: Path) -> bool:
    """Whether ``data``'s hash is a leaf of the first tree of ``record`` (a cheap pre-check
    to choose between records; the full check is :func:`verify_file_evidence`'s)."""
    try:
        first = parse(record.read_bytes()).chains[0][0]
        if first.reduced is None:
            return False
        return hash_file(data, first.hash_algorithm) in first.reduced[0]
    except (RecordError, OSError):
        return False


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
