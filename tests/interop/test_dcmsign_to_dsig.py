"""dcmsign signs (with ``+d`` MAC dump) -> dsig verifies and rebuilds the identical MAC stream.

For every case:

* ``test_dsig_verifies``: ``dsig verify --integrity-only --json`` says VALID for the file and
  every signature, with MAC algorithm / MAC transfer syntax / Data Elements Signed / purpose
  as written by dcmsign (files are verified in one batched dsig call per format).
* ``test_dump_mac_matches_dcmsign``: ``dsig inspect --dump-mac UID`` is byte-identical to
  dcmsign's ``+d`` dump for every signature created in the case (nested cases have two).

Matrix: every source with default options (RSA-2048, SHA256), then each option across a few
sources: the six MACs, EC P-256, profiles, item signatures, tag selection, purposes, the old
(pre-3.5.4) format, and dcmsign's output transfer syntaxes / length encodings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import dcmtk, dicom_factory
from tests.helpers.dicom_factory import SR_NESTED_ITEM, first_difference, signature_refs
from tests.interop.conftest import (
    Dsig,
    DsigCliError,
    FileResult,
    PkiFiles,
    Sources,
    pmap,
    tag_str,
)


@dataclass(frozen=True)
class Step:
    """One dcmsign signing operation."""

    signer: str = "rsa"
    mac: str = "sha256"
    profile: str | None = None
    tags: tuple[str, ...] = ()
    tag_file: tuple[str, ...] | None = None
    item: str | None = None
    purpose: int | None = None
    write_xfer: str | None = None
    lengths: str | None = None


@dataclass(frozen=True)
class Case:
    id: str
    source: str
    steps: tuple[Step, ...] = (Step(),)
    old_format: bool = False
    require: str | None = None  # dsig verify --require value expected to be met


def _c(
    cid: str, source: str, old_format: bool = False, require: str | None = None, **kw: Any
) -> Case:
    return Case(cid, source, (Step(**kw),), old_format=old_format, require=require)


ALL_SOURCES = (
    *dicom_factory.SAMPLE_NAMES,
    "mf_jpeg_bot",
    "mf_jpeg_nobot",
    "sr_nested",
    "gl_sr",
    "gl_ct",
    "empty_ct",
    "sr_verified_1obs",
    "ct_implicit",
    "gl_rtplan_implicit",
    # exclusion corner cases (doc 12.1): group 0001 SQ, private UN/undefined-length SQ, UN
    "nested_priv_SQ.dcm",
    "UN_sequence.dcm",
    "priv_SQ.dcm",
)

CASES: list[Case] = [
    # every source, default options
    *(_c(f"default-{s.removesuffix('.dcm')}", s) for s in ALL_SOURCES),
    # MACs
    *(
        _c(f"mac-{m}-CT_small", "CT_small.dcm", mac=m)
        for m in ("ripemd160", "sha1", "md5", "sha384", "sha512")
    ),
    _c("mac-ripemd160-JPEG-lossy", "JPEG-lossy.dcm", mac="ripemd160"),
    _c("mac-ripemd160-reportsi", "reportsi.dcm", mac="ripemd160"),
    _c("mac-sha512-mf_jpeg_bot", "mf_jpeg_bot", mac="sha512"),
    _c("mac-sha384-MR_small_bigendian", "MR_small_bigendian.dcm", mac="sha384"),
    # EC P-256
    _c("ec-sha256-CT_small", "CT_small.dcm", signer="ec"),
    _c("ec-sha384-JPEG-lossy", "JPEG-lossy.dcm", signer="ec", mac="sha384"),
    _c("ec-sha512-reportsi", "reportsi.dcm", signer="ec", mac="sha512"),
    _c("ec-sha256-mf_jpeg_nobot", "mf_jpeg_nobot", signer="ec"),
    _c("ec-md5-MR_small_implicit", "MR_small_implicit.dcm", signer="ec", mac="md5"),
    # profiles
    _c("profile-base-CT_small", "CT_small.dcm", profile="base", require="signature"),
    _c("profile-base-MR_small_implicit", "MR_small_implicit.dcm", profile="base", mac="sha512"),
    _c("profile-creator-CT_small", "CT_small.dcm", profile="creator", require="creator"),
    _c(
        "profile-creator-tags-JPEG-lossy",
        "JPEG-lossy.dcm",
        profile="creator",
        tags=("PatientName", "SOPClassUID"),
    ),
    _c("profile-auth-MR_small", "MR_small.dcm", profile="authorization", require="authorization"),
    _c("profile-sr-reportsi", "reportsi.dcm", profile="sr"),
    _c("profile-srv-sr_verified_1obs", "sr_verified_1obs", profile="sr-verification", require="sr"),
    # test-SR has two Verifying Observers: dcmsign +pv signs it, C.4 does not apply (no --require)
    _c("profile-srv-test-SR-2observers", "test-SR.dcm", profile="sr-verification"),
    # item signatures
    _c("item-rtplan-BeamSequence0", "rtplan.dcm", item="BeamSequence[0]"),
    _c("item-testSR-ContentSequence1-p5", "test-SR.dcm", item="ContentSequence[1]", purpose=5),
    _c("item-reportsi-ContentSequence1-ec", "reportsi.dcm", item="ContentSequence[1]", signer="ec"),
    _c("item-sr_nested-deep-p1", "sr_nested", item=SR_NESTED_ITEM, purpose=1),
    Case(
        "nested-sr_nested-item-then-main",
        "sr_nested",
        (Step(item=SR_NESTED_ITEM, purpose=5), Step(purpose=1)),
    ),
    Case(
        "nested-rtplan-item-then-main-ec384",
        "rtplan.dcm",
        (Step(item="BeamSequence[0]", purpose=5), Step(signer="ec", mac="sha384")),
    ),
    Case(
        "nested-CT-main-then-second-main",
        "CT_small.dcm",
        (Step(), Step(signer="ec", mac="sha512", purpose=2)),
    ),
    # tag selection
    _c(
        "tags-CT_small-mixed",
        "CT_small.dcm",
        tags=("PixelData", "PatientName", "0008,0016", "SOPInstanceUID", "OtherPatientIDsSequence"),
    ),
    _c(
        "tagfile-reportsi",
        "reportsi.dcm",
        tag_file=("ContentSequence", "SOPInstanceUID", "(0010,0010)", "ConceptNameCodeSequence"),
    ),
    _c("tags-rtplan-sq", "rtplan.dcm", tags=("BeamSequence", "PatientName")),
    _c("tags-mf_jpeg_bot-pixels", "mf_jpeg_bot", tags=("PixelData", "NumberOfFrames")),
    # purposes
    _c("purpose-1-CT_small", "CT_small.dcm", purpose=1),
    _c("purpose-5-reportsi", "reportsi.dcm", purpose=5),
    _c("purpose-18-MR_small", "MR_small.dcm", purpose=18),
    # old format (-fo)
    _c("old-JPEG-lossy", "JPEG-lossy.dcm", old_format=True),
    _c("old-mf_jpeg_bot", "mf_jpeg_bot", old_format=True),
    _c("old-mf_jpeg_nobot", "mf_jpeg_nobot", old_format=True),
    _c("old-examples_jpeg2k", "examples_jpeg2k.dcm", old_format=True),
    _c("old-CT_small-native", "CT_small.dcm", old_format=True),
    # dcmsign output encodings
    _c("out-big-CT_small", "CT_small.dcm", write_xfer="big"),
    _c("out-little-MR_small_bigendian", "MR_small_bigendian.dcm", write_xfer="little"),
    _c("out-implicit-rtplan", "rtplan.dcm", write_xfer="implicit"),
    _c("out-implicit-reportsi", "reportsi.dcm", write_xfer="implicit"),
    _c("out-undefined-reportsi", "reportsi.dcm", lengths="undefined"),
    _c("out-big-undefined-test-SR", "test-SR.dcm", write_xfer="big", lengths="undefined"),
    _c("out-undefined-JPEG-lossy", "JPEG-lossy.dcm", lengths="undefined"),
    _c("out-little-image_dfl", "image_dfl.dcm", write_xfer="little"),
]

CASE_IDS = [c.id for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS)


@dataclass
class Signed:
    case: Case
    path: Path | None = None
    dumps: list[tuple[str, Path]] = field(default_factory=list)  # (signature UID, dump)
    error: str | None = None
    dcmsign_ok: bool | None = None
    dcmsign_output: str = ""
    result: FileResult | None = None
    new_format_dumps: list[Path] = field(default_factory=list)  # old-format cases only
    dsig_dumps: dict[str, bytes | str] = field(default_factory=dict)  # uid -> stream | error


def _sign_case(case: Case, workdir: Path, pki: PkiFiles, sources: Sources) -> Signed:
    signed = Signed(case)
    signers = {"rsa": pki.rsa, "ec": pki.ec}
    cur = sources(case.source)
    try:
        for n, step in enumerate(case.steps):
            out = workdir / f"{case.id}.{n}.dcm"
            dump = workdir / f"{case.id}.{n}.dump"
            tag_file = None
            if step.tag_file is not None:
                tag_file = workdir / f"{case.id}.{n}.tags.txt"
                tag_file.write_text("\n".join(step.tag_file) + "\n")
            before = {r.uid for r in signature_refs(cur)}
            s = signers[step.signer]
            dcmtk.dcmsign_sign(
                cur,
                out,
                s.key,
                s.cert,
                mac=step.mac,
                profile=step.profile,
                tags=step.tags,
                tag_file=tag_file,
                item=step.item,
                purpose=step.purpose,
                dump=dump,
                old_format=case.old_format,
                write_xfer=step.write_xfer,
                lengths=step.lengths,
            )
            new = [r.uid for r in signature_refs(out) if r.uid not in before]
            assert len(new) == 1, f"expected one new signature, got {new}"
            signed.dumps.append((new[0], dump))
            if case.old_format:
                # same signature in the new format: its data-element part is what a
                # format-unaware stream builder produces for the old-format file
                alt = workdir / f"{case.id}.{n}.newfmt.dump"
                dcmtk.dcmsign_sign(
                    cur,
                    workdir / f"{case.id}.{n}.newfmt.dcm",
                    s.key,
                    s.cert,
                    mac=step.mac,
                    tags=step.tags,
                    item=step.item,
                    purpose=step.purpose,
                    dump=alt,
                )
                signed.new_format_dumps.append(alt)
            cur = out
        signed.path = cur
        signed.dcmsign_ok, signed.dcmsign_output = dcmtk.dcmsign_verify(
            cur, old_format=case.old_format
        )
    except Exception as exc:  # reported by each test of the case
        signed.error = f"{type(exc).__name__}: {exc}"
    return signed


@pytest.fixture(scope="module")
def signed_cases(
    tmp_path_factory: pytest.TempPathFactory, pki: PkiFiles, sources: Sources, dsig: Dsig
) -> dict[str, Signed]:
    workdir = tmp_path_factory.mktemp("dcmsign_signed")
    built = pmap(lambda c: _sign_case(c, workdir, pki, sources), CASES)
    out = {c.id: s for c, s in zip(CASES, built, strict=True)}
    for old in (False, True):
        batch = [s for s in out.values() if s.path is not None and s.case.old_format == old]
        results = dsig.verify_many([s.path for s in batch], format_old=old)
        for s in batch:
            s.result = results[str(s.path)]
    # dsig inspect --dump-mac for every signature, computed up front in parallel
    tasks = [(s, uid) for s in out.values() if s.path is not None for uid, _ in s.dumps]

    def dump(task: tuple[Signed, str]) -> bytes | str:
        s, uid = task
        try:
            return dsig.dump_mac(s.path, uid, workdir / f"{s.case.id}.{uid}.dsig.dump")  # type: ignore[arg-type]
        except DsigCliError as exc:
            return str(exc)

    for (s, uid), got in zip(tasks, pmap(dump, tasks), strict=True):
        s.dsig_dumps[uid] = got
    return out


def _get(signed_cases: dict[str, Signed], case: Case) -> Signed:
    s = signed_cases[case.id]
    if s.error is not None:
        pytest.fail(f"dcmsign failed to produce the case: {s.error}")
    return s


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_dcmsign_accepts_own_signature(signed_cases: dict[str, Signed], case: Case) -> None:
    """Oracle sanity: dcmsign verifies what it signed, and its dump matches its Signature."""
    s = _get(signed_cases, case)
    assert s.dcmsign_ok, s.dcmsign_output
    refs = {r.uid: r for r in signature_refs(s.path)}  # type: ignore[arg-type]
    for uid, dump in s.dumps:
        assert dicom_factory.signature_matches_stream(refs[uid], dump.read_bytes())


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_dsig_verifies(signed_cases: dict[str, Signed], case: Case) -> None:
    s = _get(signed_cases, case)
    assert s.result is not None
    res = s.result
    res.assert_valid(n_signatures=len(case.steps))
    refs = {r.uid: r for r in signature_refs(s.path)}  # type: ignore[arg-type]
    for (uid, _dump), step in zip(s.dumps, case.steps, strict=True):
        ref = refs[uid]
        rep = res.sig(uid)
        ctx = res.describe()
        assert str(rep.get("mac_algorithm", "")).upper() == ref.mac_algorithm, ctx
        assert rep.get("mac_transfer_syntax") == ref.mac_transfer_syntax, ctx
        assert [t.upper() for t in rep.get("signed_tags") or []] == [
            tag_str(t) for t in ref.signed_tags
        ], ctx
        if step.item is not None:
            assert rep.get("location") == step.item, f"item location != {step.item}\n{ctx}"
        else:
            assert not rep.get("location"), f"main signature with a location\n{ctx}"
        if step.purpose is not None or step.profile == "sr-verification":
            want = str(step.purpose or 5)
            got = rep.get("purpose")
            code = got.get("code") if isinstance(got, dict) else got
            assert str(code) == want, f"purpose {want} not reported\n{ctx}"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_dump_mac_matches_dcmsign(
    signed_cases: dict[str, Signed], case: Case, dsig: Dsig, tmp_path: Path
) -> None:
    s = _get(signed_cases, case)
    assert s.path is not None
    refs = {r.uid: r for r in signature_refs(s.path)}
    failures = []
    for n, (uid, dump) in enumerate(s.dumps):
        ours = s.dsig_dumps[uid]
        if isinstance(ours, str):
            failures.append(f"signature {uid}: {ours}")
            continue
        theirs = dump.read_bytes()
        if ours == theirs:
            continue
        if case.old_format:
            # inspect has no --format-old in the contract: accept the new-format stream too
            data_part, _ = dicom_factory.split_stream(
                s.new_format_dumps[n].read_bytes(),
                signature_refs(s.new_format_dumps[n].with_suffix(".dcm"))[0].item,
            )
            new_style = data_part + dicom_factory.expected_tail(refs[uid].item)
            if ours == new_style:
                continue
            failures.append(
                f"signature {uid} (old format): dsig vs new-format stream: "
                f"{first_difference(ours, new_style)}"
            )
        failures.append(f"signature {uid}: dsig vs dcmsign +d: {first_difference(ours, theirs)}")
    assert not failures, "\n".join(failures)


REQUIRE_CASES = [c for c in CASES if c.require]


@pytest.mark.parametrize("case", REQUIRE_CASES, ids=[c.id for c in REQUIRE_CASES])
def test_profile_requirement_met(signed_cases: dict[str, Signed], case: Case, dsig: Dsig) -> None:
    """dcmsign-enforced profiles: ``dsig verify --require <profile>`` is satisfied (exit 0)."""
    s = _get(signed_cases, case)
    res = dsig.verify([s.path], "--require", case.require)  # type: ignore[list-item, arg-type]
    assert res.returncode == 0, res.describe()


def test_old_format_needs_format_old(signed_cases: dict[str, Signed], dsig: Dsig) -> None:
    """An old-format (-fo) signature over encapsulated pixels fails without --format-old."""
    s = _get(signed_cases, next(c for c in CASES if c.id == "old-JPEG-lossy"))
    res = dsig.verify([s.path])  # type: ignore[list-item]
    assert res.returncode == 1, res.describe()
    res.file(s.path).assert_invalid()  # type: ignore[arg-type]
    ok, out = dcmtk.dcmsign_verify(s.path)  # type: ignore[arg-type]
    assert not ok, out


def test_exit_codes_single_file(signed_cases: dict[str, Signed], dsig: Dsig) -> None:
    """Exit 0 with --integrity-only; 3 (indeterminate, trust not checked) without it."""
    s = _get(signed_cases, CASES[0])
    res = dsig.verify([s.path])  # type: ignore[list-item]
    assert res.returncode == 0, res.describe()
    res3 = dsig.verify([s.path], integrity_only=False)  # type: ignore[list-item]
    assert res3.returncode == 3, res3.describe()
    f = res3.file(s.path)  # type: ignore[arg-type]
    assert f.indication == "INDETERMINATE", f.describe()
    assert all(sig.get("integrity") == "VALID" for sig in f.signatures), f.describe()


def test_batch_exit_codes(signed_cases: dict[str, Signed], dsig: Dsig) -> None:
    """Several files in one call: 0 when all are valid; 1 as soon as one is invalid."""
    paths = [
        signed_cases[f"default-{n.removesuffix('.dcm')}"].path
        for n in ("CT_small.dcm", "JPEG-lossy.dcm", "reportsi.dcm", "MR_small_bigendian.dcm")
    ]
    assert all(p is not None for p in paths)
    res = dsig.verify(paths)  # type: ignore[arg-type]
    assert res.returncode == 0, res.describe()
    assert res.data is not None and len(res.data["files"]) == len(paths), res.describe()
    old = signed_cases["old-JPEG-lossy"].path  # invalid without --format-old
    res1 = dsig.verify([*paths, old])  # type: ignore[list-item]
    assert res1.returncode == 1, res1.describe()
    assert [res1.file(p).indication for p in paths] == ["VALID"] * len(paths), res1.describe()  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Odd-length signature values (doc section 10.3 items 3-4): dsig must verify dcmsign's
# signatures even where dcmsign itself rejects them. dcmsign's own verdict is only recorded.
# ---------------------------------------------------------------------------------------------

P521_MAX_TRIES = 24


def _check_dsig_against_dcmsign(
    dsig: Dsig, signed: Path, dump: Path, tmp_path: Path
) -> tuple[FileResult, str]:
    ref = signature_refs(signed)[0]
    assert dicom_factory.signature_matches_stream(ref, dump.read_bytes()), "oracle broken"
    res = dsig.verify_one(signed)
    ours = dsig.dump_mac(signed, ref.uid, tmp_path / "dsig.dump")
    return res, first_difference(ours, dump.read_bytes())


def test_p521_odd_length_signature(
    pki: PkiFiles, sources: Sources, dsig: Dsig, tmp_path: Path, record_property: Any
) -> None:
    signer = pki.extra("p521", "ec-p521")
    src = sources("reportsi.dcm")
    found: dict[str, tuple[Path, Path]] = {}
    for i in range(P521_MAX_TRIES):
        out, dump = tmp_path / f"p521-{i}.dcm", tmp_path / f"p521-{i}.dump"
        dcmtk.dcmsign_sign(src, out, signer.key, signer.cert, mac="sha512", dump=dump)
        sig = signature_refs(out)[0].signature
        der = dicom_factory.der_trim(sig)
        kind = "odd" if len(der) % 2 else "even"
        if kind == "odd":
            assert len(sig) == len(der) + 1 and sig[-1] == 0, "odd DER must carry one pad byte"
        found.setdefault(kind, (out, dump))
        if len(found) == 2:
            break
    assert "odd" in found, f"no odd-length P-521 signature in {P521_MAX_TRIES} tries"
    observations = []
    for kind, (out, dump) in sorted(found.items()):
        res, diff = _check_dsig_against_dcmsign(dsig, out, dump, tmp_path)
        res.assert_valid(n_signatures=1)
        assert diff == "identical", f"{kind}-length P-521: dsig dump vs dcmsign +d: {diff}"
        ok, _ = dcmtk.dcmsign_verify(out)
        observations.append(f"{kind}: dcmsign {'accepts' if ok else 'REJECTS'}")
    record_property("dcmsign_p521_observation", "; ".join(observations))
    print("observation (doc 10.3 item 3):", "; ".join(observations))


def test_rsa2056_odd_modulus_signature(
    pki: PkiFiles, sources: Sources, dsig: Dsig, tmp_path: Path, record_property: Any
) -> None:
    signer = pki.extra("rsa2056", "rsa2056")
    out, dump = tmp_path / "r2056.dcm", tmp_path / "r2056.dump"
    dcmtk.dcmsign_sign(sources("CT_small.dcm"), out, signer.key, signer.cert, dump=dump)
    sig = signature_refs(out)[0].signature
    assert len(sig) == 258 and sig[-1] == 0, "257-byte RSA signature must be padded to 258"
    res, diff = _check_dsig_against_dcmsign(dsig, out, dump, tmp_path)
    res.assert_valid(n_signatures=1)
    assert diff == "identical", f"RSA-2056: dsig dump vs dcmsign +d: {diff}"
    ok, _ = dcmtk.dcmsign_verify(out)
    obs = f"dcmsign {'accepts' if ok else 'REJECTS'} its own RSA-2056 signature"
    record_property("dcmsign_rsa2056_observation", obs)
    print("observation (doc 10.3 item 4):", obs)
