"""dsig signs (with ``--dump``) -> dcmsign ``--verify`` accepts the signature.

Per case:

* ``test_dcmsign_verifies``: dcmsign (trusting the test PKI) says "Signature Verification : OK"
  for every signature, and the stream dsig dumped is what the Signature actually signs
  (independent raw RSA / ECDSA check of ``--dump``). Together: dsig's dump is the stream
  dcmsign computes on verification.
* ``test_dump_matches_dcmsign_stream``: dsig's dump, minus its signature-item tail, is
  byte-identical to the data-element part of dcmsign's ``+d`` dump when dcmsign signs the same
  input with the same tags / item / format; the tail is the (0400,0005)... encoding of dsig's
  own signature item.
* ``test_dsig_verifies_own``: dsig verifies its own output (batched).

Matrix as in test_dcmsign_to_dsig, plus dsig's extras (``--item`` on deeper levels, purpose
on SR profile signatures, co-signing a dcmsign-signed file, ``--in-place``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import dcmtk, dicom_factory
from tests.helpers.dicom_factory import SR_NESTED_ITEM, first_difference, signature_refs
from tests.interop.conftest import Dsig, FileResult, PkiFiles, Sources, pmap


@dataclass(frozen=True)
class Step:
    signer: str = "rsa"
    mac: str = "sha256"
    profile: str | None = None
    tags: tuple[str, ...] = ()
    tag_file: tuple[str, ...] | None = None
    item: str | None = None
    purpose: int | None = None
    write_xfer: str | None = None
    lengths: str | None = None
    by: str = "dsig"  # or "dcmsign" (to build co-signed files)
    in_place: bool = False


@dataclass(frozen=True)
class Case:
    id: str
    source: str
    steps: tuple[Step, ...] = (Step(),)
    old_format: bool = False


def _c(cid: str, source: str, old_format: bool = False, **kw: Any) -> Case:
    return Case(cid, source, (Step(**kw),), old_format=old_format)


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
    *(_c(f"default-{s.removesuffix('.dcm')}", s) for s in ALL_SOURCES),
    # MACs
    *(
        _c(f"mac-{m}-CT_small", "CT_small.dcm", mac=m)
        for m in ("ripemd160", "sha1", "md5", "sha384", "sha512")
    ),
    _c("mac-ripemd160-JPEG-lossy", "JPEG-lossy.dcm", mac="ripemd160"),
    _c("mac-sha384-reportsi", "reportsi.dcm", mac="sha384"),
    _c("mac-sha512-mf_jpeg_bot", "mf_jpeg_bot", mac="sha512"),
    # EC P-256
    _c("ec-sha256-CT_small", "CT_small.dcm", signer="ec"),
    _c("ec-sha384-JPEG-lossy", "JPEG-lossy.dcm", signer="ec", mac="sha384"),
    _c("ec-sha512-reportsi", "reportsi.dcm", signer="ec", mac="sha512"),
    _c("ec-sha256-mf_jpeg_nobot", "mf_jpeg_nobot", signer="ec"),
    # profiles
    _c("profile-base-CT_small", "CT_small.dcm", profile="base"),
    _c("profile-creator-CT_small", "CT_small.dcm", profile="creator"),
    _c(
        "profile-creator-tags-JPEG-lossy",
        "JPEG-lossy.dcm",
        profile="creator",
        tags=("PatientName",),
    ),
    _c("profile-auth-MR_small", "MR_small.dcm", profile="authorization"),
    _c("profile-sr-p1-reportsi", "reportsi.dcm", profile="sr", purpose=1),
    _c("profile-srv-sr_verified_1obs", "sr_verified_1obs", profile="sr-verification"),
    # item signatures
    _c("item-rtplan-BeamSequence0", "rtplan.dcm", item="BeamSequence[0]"),
    _c("item-rtplan-tagform", "rtplan.dcm", item="(300A,00B0)[0]"),
    _c("item-testSR-ContentSequence1-p5", "test-SR.dcm", item="ContentSequence[1]", purpose=5),
    _c("item-sr_nested-deep-ec", "sr_nested", item=SR_NESTED_ITEM, signer="ec", purpose=1),
    Case(
        "nested-sr_nested-item-then-main",
        "sr_nested",
        (Step(item=SR_NESTED_ITEM, purpose=5), Step(signer="ec", mac="sha384", purpose=1)),
    ),
    Case(
        "nested-rtplan-dcmsign-item-then-dsig-main",
        "rtplan.dcm",
        (Step(item="BeamSequence[0]", by="dcmsign"), Step(purpose=1)),
    ),
    Case(
        "cosign-CT-dcmsign-then-dsig",
        "CT_small.dcm",
        (Step(by="dcmsign", mac="ripemd160"), Step(signer="ec", mac="sha512", purpose=2)),
    ),
    Case(
        "cosign-JPEG-dsig-then-dcmsign",
        "JPEG-lossy.dcm",
        (Step(), Step(by="dcmsign", mac="sha384")),
    ),
    # tag selection
    _c(
        "tags-CT_small-mixed",
        "CT_small.dcm",
        tags=(
            "PixelData",
            "PatientName",
            "(0008,0016)",
            "SOPInstanceUID",
            "OtherPatientIDsSequence",
        ),
    ),
    _c(
        "tagfile-reportsi",
        "reportsi.dcm",
        tag_file=("ContentSequence", "SOPInstanceUID", "(0010,0010)", "ConceptNameCodeSequence"),
    ),
    _c("tags-rtplan-sq", "rtplan.dcm", tags=("BeamSequence", "PatientName")),
    # purposes
    _c("purpose-1-CT_small", "CT_small.dcm", purpose=1),
    _c("purpose-5-reportsi", "reportsi.dcm", purpose=5),
    _c("purpose-18-MR_small", "MR_small.dcm", purpose=18),
    # old format
    _c("old-JPEG-lossy", "JPEG-lossy.dcm", old_format=True),
    _c("old-mf_jpeg_bot", "mf_jpeg_bot", old_format=True),
    _c("old-CT_small-native", "CT_small.dcm", old_format=True),
    # output encodings
    _c("out-big-CT_small", "CT_small.dcm", write_xfer="big"),
    _c("out-little-MR_small_bigendian", "MR_small_bigendian.dcm", write_xfer="little"),
    _c("out-implicit-rtplan", "rtplan.dcm", write_xfer="implicit"),
    _c("out-undefined-reportsi", "reportsi.dcm", lengths="undefined"),
    _c("out-explicit-sr_nested", "sr_nested", lengths="explicit"),
    _c("out-big-undefined-test-SR", "test-SR.dcm", write_xfer="big", lengths="undefined"),
    _c("out-undefined-mf_jpeg_bot", "mf_jpeg_bot", lengths="undefined"),
    _c("out-same-image_dfl", "image_dfl.dcm", write_xfer="same"),
    # in place
    _c("inplace-MR_small", "MR_small.dcm", in_place=True),
]

CASE_IDS = [c.id for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS)


@dataclass
class StepResult:
    step: Step
    input: Path
    output: Path
    uid: str
    dump: Path  # dsig --dump (or dcmsign +d for by="dcmsign")
    tag_file: Path | None


@dataclass
class Signed:
    case: Case
    path: Path | None = None
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None
    dcmsign_ok: bool = False
    dcmsign_output: str = ""
    result: FileResult | None = None


def _sign_case(case: Case, workdir: Path, pki: PkiFiles, sources: Sources, dsig: Dsig) -> Signed:
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
            if step.by == "dcmsign":
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
            else:
                if step.in_place:
                    out.write_bytes(Path(cur).read_bytes())
                dsig.sign(
                    out if step.in_place else cur,
                    None if step.in_place else out,
                    s,
                    mac=step.mac,
                    profile=step.profile,
                    tags=step.tags,
                    tag_file=tag_file,
                    item=step.item,
                    purpose=step.purpose,
                    write_xfer=step.write_xfer,
                    lengths=step.lengths,
                    fmt="old" if case.old_format else None,
                    dump=dump,
                    in_place=step.in_place,
                )
            new = [r.uid for r in signature_refs(out) if r.uid not in before]
            assert len(new) == 1, f"expected exactly one new signature in {out}, got {new}"
            assert dump.exists(), f"no MAC dump written to {dump}"
            signed.steps.append(StepResult(step, Path(cur), out, new[0], dump, tag_file))
            cur = out
        signed.path = Path(cur)
        signed.dcmsign_ok, signed.dcmsign_output = dcmtk.dcmsign_verify(
            cur, old_format=case.old_format
        )
    except Exception as exc:
        signed.error = f"{type(exc).__name__}: {exc}"
    return signed


@pytest.fixture(scope="module")
def signed_cases(
    tmp_path_factory: pytest.TempPathFactory, pki: PkiFiles, sources: Sources, dsig: Dsig
) -> dict[str, Signed]:
    workdir = tmp_path_factory.mktemp("dsig_signed")
    built = pmap(lambda c: _sign_case(c, workdir, pki, sources, dsig), CASES)
    out = {c.id: s for c, s in zip(CASES, built, strict=True)}
    for old in (False, True):
        batch = [s for s in out.values() if s.path is not None and s.case.old_format == old]
        results = dsig.verify_many([s.path for s in batch], format_old=old)
        for s in batch:
            s.result = results[str(s.path)]
    return out


def _get(signed_cases: dict[str, Signed], case: Case) -> Signed:
    s = signed_cases[case.id]
    if s.error is not None:
        pytest.fail(f"could not produce the signed file: {s.error}")
    return s


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_dcmsign_verifies(signed_cases: dict[str, Signed], case: Case) -> None:
    s = _get(signed_cases, case)
    assert s.dcmsign_ok, s.dcmsign_output
    n_ok = s.dcmsign_output.count("Signature Verification : OK")
    assert n_ok == len(case.steps), s.dcmsign_output
    refs = {r.uid: r for r in signature_refs(s.path)}  # type: ignore[arg-type]
    for st in s.steps:
        assert dicom_factory.signature_matches_stream(refs[st.uid], st.dump.read_bytes()), (
            f"the Signature of {st.uid} does not sign the stream in the dump {st.dump}"
        )


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_dump_matches_dcmsign_stream(
    signed_cases: dict[str, Signed], case: Case, pki: PkiFiles, tmp_path: Path
) -> None:
    s = _get(signed_cases, case)
    refs = {r.uid: r for r in signature_refs(s.path)}  # type: ignore[arg-type]
    failures = []
    for n, st in enumerate(s.steps):
        if st.step.by == "dcmsign":
            continue
        ours = st.dump.read_bytes()
        tail = dicom_factory.expected_tail(refs[st.uid].item)
        if not ours.endswith(tail):
            failures.append(
                f"step {n}: dsig dump does not end with its signature-item tail: "
                f"{first_difference(ours[-len(tail) :], tail)}"
            )
            continue
        ours_data = ours[: len(ours) - len(tail)]
        # dcmsign signs the same input the same way; compare the data-element parts
        ref_out = tmp_path / f"ref{n}.dcm"
        ref_dump = tmp_path / f"ref{n}.dump"
        signer = pki.rsa  # key type does not influence the data-element part
        step = st.step
        tags = step.tags
        profile = step.profile
        if step.profile in ("sr", "sr-verification", "authorization", "creator", "base"):
            # let dcmsign pick exactly the tags dsig chose (profiles may add tags)
            tags = tuple(f"{t >> 16:04x},{t & 0xFFFF:04x}" for t in refs[st.uid].signed_tags)
            profile = None
        tags = tuple(t.strip("()") for t in tags)  # dcmsign -t wants gggg,eeee or a keyword
        dcmtk.dcmsign_sign(
            st.input,
            ref_out,
            signer.key,
            signer.cert,
            mac="sha256",
            profile=profile,
            tags=tags,
            tag_file=st.tag_file,
            item=step.item,
            dump=ref_dump,
            old_format=case.old_format,
        )
        had = {r.uid for r in signature_refs(st.input)}
        ref_new = [r for r in signature_refs(ref_out) if r.uid not in had]
        assert len(ref_new) == 1
        theirs_data, _ = dicom_factory.split_stream(ref_dump.read_bytes(), ref_new[0].item)
        if ours_data != theirs_data:
            failures.append(
                f"step {n}: data-element part dsig --dump vs dcmsign +d: "
                f"{first_difference(ours_data, theirs_data)}"
            )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_dsig_verifies_own(signed_cases: dict[str, Signed], case: Case) -> None:
    s = _get(signed_cases, case)
    assert s.result is not None
    s.result.assert_valid(n_signatures=len(case.steps))


# ---------------------------------------------------------------------------------------------
# Odd-length signature values created by dsig: correctly padded, verifiable by dsig and by an
# independent check; dcmsign's verdict (known DCMTK bugs, doc 10.3 items 3-4) only recorded.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [("p521", "ec-p521"), ("rsa2056", "rsa2056")])
def test_dsig_odd_length_signatures(
    name: str,
    kind: str,
    pki: PkiFiles,
    sources: Sources,
    dsig: Dsig,
    tmp_path: Path,
    record_property: Any,
) -> None:
    signer = pki.extra(name, kind)
    tries = 12 if name == "p521" else 1
    seen = []
    for i in range(tries):
        out, dump = tmp_path / f"{name}-{i}.dcm", tmp_path / f"{name}-{i}.dump"
        dsig.sign(sources("reportsi.dcm"), out, signer, mac="sha512", dump=dump)
        ref = signature_refs(out)[0]
        sig = ref.signature
        if name == "rsa2056":
            assert len(sig) == 258 and sig[-1] == 0, f"RSA-2056 Signature length {len(sig)}"
        else:
            der = dicom_factory.der_trim(sig)
            assert len(sig) == len(der) + (len(der) % 2), "ECDSA DER must be padded to even"
        assert len(sig) % 2 == 0
        assert dicom_factory.signature_matches_stream(ref, dump.read_bytes())
        dsig.verify_one(out).assert_valid(n_signatures=1)
        ok, _ = dcmtk.dcmsign_verify(out)
        odd = len(dicom_factory.der_trim(sig)) % 2 == 1 if name == "p521" else True
        seen.append(f"{'odd' if odd else 'even'}: dcmsign {'accepts' if ok else 'REJECTS'}")
        if name == "p521" and odd:
            break
    record_property(f"dcmsign_{name}_observation", "; ".join(seen))
    print(f"observation {name}:", "; ".join(seen))


def test_sr_profile_refused_with_two_verifying_observers(
    pki: PkiFiles, sources: Sources, dsig: Dsig, tmp_path: Path
) -> None:
    """PS3.15 C.4 covers SR/KOS with at most one Verifying Observer; test-SR has two.
    (dcmsign +pv signs it anyway - see test_dcmsign_to_dsig profile-srv-test-SR-2observers.)"""
    out = tmp_path / "srv.dcm"
    proc = dsig.sign_proc(sources("test-SR.dcm"), out, pki.rsa, profile="sr-verification")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# dsig remove on dcmsign-signed files (doc section 3.2/7: inner and outer signatures are
# independent, so removing one leaves the other valid for dcmsign too)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dcmsign_nested(
    tmp_path_factory: pytest.TempPathFactory, pki: PkiFiles, sources: Sources
) -> Path:
    d = tmp_path_factory.mktemp("remove")
    item = d / "item.dcm"
    both = d / "both.dcm"
    dcmtk.dcmsign_sign(sources("sr_nested"), item, pki.rsa.key, pki.rsa.cert, item=SR_NESTED_ITEM)
    dcmtk.dcmsign_sign(item, both, pki.ec.key, pki.ec.cert, purpose=1)
    return both


@pytest.mark.parametrize("which", ["item", "main"])
def test_dsig_remove_one_keeps_other_valid_in_dcmsign(
    dcmsign_nested: Path, which: str, dsig: Dsig, tmp_path: Path
) -> None:
    refs = signature_refs(dcmsign_nested)
    gone = next(r for r in refs if bool(r.location) == (which == "item"))
    out = tmp_path / "removed.dcm"
    proc = dsig.run("remove", dcmsign_nested, out, "--uid", gone.uid)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    left = signature_refs(out)
    assert [r.uid for r in left] == [r.uid for r in refs if r.uid != gone.uid]
    ok, output = dcmtk.dcmsign_verify(out)
    assert ok and output.count("Signature Verification : OK") == 1, output
    dsig.verify_one(out).assert_valid(n_signatures=1)


def test_dsig_remove_all_dcmsign_sees_none(
    dcmsign_nested: Path, dsig: Dsig, tmp_path: Path
) -> None:
    out = tmp_path / "none.dcm"
    proc = dsig.run("remove", dcmsign_nested, out, "--all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert signature_refs(out) == []
    leftovers = [e.tag for e in dicom_factory.read_raw(out).iterall() if int(e.tag) == 0x4FFE0001]
    assert not leftovers, "MAC Parameters Sequence left behind (dcmsign +ra removes it)"
    ok, output = dcmtk.dcmsign_verify(out, require_signature=False)
    assert ok is True or "no signatures found" in output, output
    assert "no signatures found" in output, output
    ok_req, output_req = dcmtk.dcmsign_verify(out)
    assert not ok_req, output_req
