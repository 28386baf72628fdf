"""Tests for dsig.signature.profiles: tag lists, creation checks, satisfied profiles, dcmsign parity."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from dsig.signature import profiles
from dsig.signature.profiles import (
    Profile,
    ProfileError,
    check_creation,
    satisfied_profiles,
    tags_to_sign,
)
from tokens.api import SignatureScheme
from tokens.digest import HashAlgorithm

RSA = SignatureScheme.RSA_PKCS1V15
ECDSA = SignatureScheme.ECDSA_DER
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


def _load(name: str) -> Dataset:
    ds = get_testdata_file(name, read=True)
    assert isinstance(ds, Dataset)
    return ds


def _t(keyword: str) -> int:
    return int(Tag(keyword))


def _signable(ds: Dataset) -> set[int]:
    """Tags a default dcmsign signature would cover (tag-level exclusions; no UN in samples)."""
    return {int(t) for t in ds.keys() if profiles._signable_tag(int(t))}


def _single_observer_sr() -> Dataset:
    ds = _load("test-SR.dcm")
    ds.VerifyingObserverSequence = Sequence([ds.VerifyingObserverSequence[0]])
    return ds


def _create(profile: Profile, ds: Dataset, **kw: object) -> int | None:
    args: dict[str, object] = {
        "top_level": True,
        "scheme": RSA,
        "mac": HashAlgorithm.SHA256,
        "purpose": None,
        "transfer_syntax": EXPLICIT_LE,
    }
    args.update(kw)
    return check_creation(profile, ds, **args)  # type: ignore[arg-type]


def _satisfied(ds: Dataset, signed: set[int], **kw: object) -> list[str]:
    args: dict[str, object] = {
        "signed_tags": signed,
        "top_level": True,
        "scheme": RSA,
        "mac": HashAlgorithm.SHA256,
        "purpose": None,
        "mac_transfer_syntax": EXPLICIT_LE,
    }
    args.update(kw)
    return satisfied_profiles(ds, **args)  # type: ignore[arg-type]


# --- tag lists ------------------------------------------------------------------------------


def test_list_sizes_and_relations() -> None:
    assert len(profiles.CREATOR_REQUIRED) == 4
    assert len(profiles.AUTHORIZATION_REQUIRED) == 4
    assert len(profiles.SR_REQUIRED) == 3
    assert len(profiles.SR_VERIFICATION_REQUIRED) == 6
    # 16 overlay groups x 13 + 16 curve groups x 15 repeating tags
    assert len(profiles.OVERLAY_PLANE) == 208
    assert len(profiles.CURVE) == 240
    assert profiles.AUTHORIZATION_REQUIRED_IF_PRESENT < profiles.CREATOR_REQUIRED_IF_PRESENT
    gone = profiles.CREATOR_REQUIRED_IF_PRESENT - profiles.AUTHORIZATION_REQUIRED_IF_PRESENT
    names = {pydicom.datadict.keyword_for_tag(t) for t in gone}
    # General Equipment (Manufacturer stays via Implant Template), creation date/time, tracts
    assert {"InstitutionName", "InstanceCreationDate", "TrackSetSequence"} <= names
    assert "Manufacturer" not in names
    assert profiles.SR_REQUIRED_IF_PRESENT < profiles.SR_VERIFICATION_REQUIRED_IF_PRESENT
    for frozen in (
        profiles.CREATOR_REQUIRED_IF_PRESENT,
        profiles.AUTHORIZATION_REQUIRED_IF_PRESENT,
        profiles.SR_VERIFICATION_REQUIRED_IF_PRESENT,
    ):
        assert isinstance(frozen, frozenset)
        assert all(isinstance(t, int) for t in frozen)


def test_unknown_keyword_fails_loudly() -> None:
    with pytest.raises(ValueError, match="NoSuchKeyword"):
        profiles._tags("NoSuchKeyword")


# --- tags_to_sign ---------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [Profile.NONE, Profile.BASE])
def test_no_attribute_rules(profile: Profile) -> None:
    assert tags_to_sign(profile, _load("CT_small.dcm"), top_level=True) == set()
    assert tags_to_sign(profile, Dataset(), top_level=False) == set()


def test_creator_on_ct() -> None:
    ds = _load("CT_small.dcm")
    tags = tags_to_sign(Profile.CREATOR, ds, top_level=True)
    assert all(isinstance(t, pydicom.tag.BaseTag) for t in tags)
    for kw in (
        "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
        "InstanceCreationDate", "Manufacturer", "PixelData", "Rows", "Columns",
        "BitsAllocated", "ImageType", "InstanceNumber", "ContentDate",
    ):  # fmt: skip
        assert _t(kw) in tags, kw
    for kw in ("PatientName", "PatientID", "SliceThickness", "PatientPosition"):
        assert _t(kw) not in tags, kw
    # KVP is listed for Enhanced Mammography; the list is by tag, so a CT's KVP counts too
    assert _t("KVP") in tags
    assert {int(t) for t in tags} <= {int(t) for t in ds.keys()}


def test_creator_missing_unconditional_attribute() -> None:
    ds = _load("CT_small.dcm")
    del ds.StudyInstanceUID
    with pytest.raises(ProfileError, match="StudyInstanceUID"):
        tags_to_sign(Profile.CREATOR, ds, top_level=True)


@pytest.mark.parametrize("profile", [Profile.CREATOR, Profile.AUTHORIZATION, Profile.SR])
def test_top_level_only_profiles(profile: Profile) -> None:
    with pytest.raises(ProfileError, match="top-level"):
        tags_to_sign(profile, _load("reportsi.dcm"), top_level=False)


def test_authorization_drops_equipment_and_creation_time() -> None:
    ds = _load("CT_small.dcm")
    tags = {int(t) for t in tags_to_sign(Profile.AUTHORIZATION, ds, top_level=True)}
    assert _t("InstitutionName") not in tags
    assert _t("InstanceCreationDate") not in tags
    assert {_t("Manufacturer"), _t("PixelData"), _t("SOPInstanceUID")} <= tags


def test_all_overlay_groups_required() -> None:
    ds = _load("CT_small.dcm")
    ds.add_new(0x60020010, "US", 4)  # Overlay Rows, second overlay group
    ds.add_new(0x601E3000, "OW", b"\0\0")  # Overlay Data, last group
    ds.add_new(0x50040005, "US", 1)  # retired Curve Dimensions
    tags = {int(t) for t in tags_to_sign(Profile.CREATOR, ds, top_level=True)}
    assert {0x60020010, 0x601E3000, 0x50040005} <= tags


def test_raw_data_pulls_in_private_tags() -> None:
    ds = _load("CT_small.dcm")
    private = {int(t) for t in ds.keys() if t.is_private}
    assert private
    plain = {int(t) for t in tags_to_sign(Profile.CREATOR, ds, top_level=True)}
    assert not private & plain
    ds.CreatorVersionUID = "1.2.3.4"
    raw = {int(t) for t in tags_to_sign(Profile.CREATOR, ds, top_level=True)}
    assert private | {_t("CreatorVersionUID")} <= raw
    auth = {int(t) for t in tags_to_sign(Profile.AUTHORIZATION, ds, top_level=True)}
    assert private <= auth


def test_sr_tags_on_reportsi() -> None:
    ds = _load("reportsi.dcm")
    tags = {int(t) for t in tags_to_sign(Profile.SR, ds, top_level=True)}
    for kw in ("SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID", "ValueType",
               "ConceptNameCodeSequence", "ContentSequence", "ContinuityOfContent"):  # fmt: skip
        assert _t(kw) in tags, kw
    assert _t("SOPInstanceUID") not in tags  # C.4 general list has SOP Class UID only


def test_sr_verification_tags() -> None:
    ds = _single_observer_sr()
    tags = {int(t) for t in tags_to_sign(Profile.SR_VERIFICATION, ds, top_level=True)}
    for kw in ("SOPInstanceUID", "VerificationFlag", "VerifyingObserverSequence",
               "SOPClassUID", "ContentSequence"):  # fmt: skip
        assert _t(kw) in tags, kw


def test_sr_verification_needs_verification_datetime() -> None:
    ds = _single_observer_sr()
    del ds.VerifyingObserverSequence[0].VerificationDateTime
    with pytest.raises(ProfileError, match="VerificationDateTime"):
        tags_to_sign(Profile.SR_VERIFICATION, ds, top_level=True)
    ds.VerificationDateTime = "20010213184746"  # directly at the level is fine too
    assert _t("VerificationDateTime") in tags_to_sign(Profile.SR_VERIFICATION, ds, top_level=True)


# --- check_creation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "profile",
    [Profile.BASE, Profile.CREATOR, Profile.AUTHORIZATION, Profile.SR, Profile.SR_VERIFICATION],
)
def test_ecdsa_refused(profile: Profile) -> None:
    ds = _single_observer_sr() if profile in (Profile.SR, Profile.SR_VERIFICATION) else None
    with pytest.raises(ProfileError, match=f"profile {profile.value} requires an RSA key"):
        _create(profile, ds or _load("CT_small.dcm"), scheme=ECDSA, purpose=5)


def test_none_allows_anything_sensible() -> None:
    ct = _load("CT_small.dcm")
    assert _create(Profile.NONE, ct, scheme=ECDSA, top_level=False) is None
    assert _create(Profile.NONE, ct, scheme=ECDSA, purpose=3, mac=HashAlgorithm.MD5) == 3


@pytest.mark.parametrize("mac", list(HashAlgorithm))
def test_all_six_macs_allowed(mac: HashAlgorithm) -> None:
    assert mac in profiles.PROFILE_MACS
    assert _create(Profile.CREATOR, _load("CT_small.dcm"), mac=mac, purpose=1) == 1


@pytest.mark.parametrize("profile", list(Profile))
@pytest.mark.parametrize("ts", [IMPLICIT_LE, EXPLICIT_BE, "1.2.3.4", ""])
def test_bad_mac_transfer_syntax(profile: Profile, ts: str) -> None:
    with pytest.raises(ProfileError, match="transfer syntax"):
        _create(profile, _load("CT_small.dcm"), transfer_syntax=ts)


@pytest.mark.parametrize("ts", [EXPLICIT_LE, DEFLATED, JPEG_BASELINE])
def test_good_mac_transfer_syntax(ts: str) -> None:
    assert _create(Profile.BASE, _load("CT_small.dcm"), transfer_syntax=ts) is None


def test_base_allows_item_level() -> None:
    assert _create(Profile.BASE, Dataset(), top_level=False, purpose=1) == 1


def test_sr_on_ct_refused() -> None:
    with pytest.raises(ProfileError, match="Structured Report"):
        _create(Profile.SR, _load("CT_small.dcm"), purpose=1)
    with pytest.raises(ProfileError, match="Structured Report"):
        tags_to_sign(Profile.SR, _load("CT_small.dcm"), top_level=True)


def test_sr_requires_purpose() -> None:
    with pytest.raises(ProfileError, match="purpose"):
        _create(Profile.SR, _load("reportsi.dcm"))
    assert _create(Profile.SR, _load("reportsi.dcm"), purpose=1) == 1


def test_sr_verification_on_unverified_refused() -> None:
    with pytest.raises(ProfileError, match="UNVERIFIED"):
        _create(Profile.SR_VERIFICATION, _load("reportsi.dcm"))


def test_sr_verification_forces_purpose_5() -> None:
    ds = _single_observer_sr()
    assert _create(Profile.SR_VERIFICATION, ds) == 5
    assert _create(Profile.SR_VERIFICATION, ds, purpose=5) == 5
    with pytest.raises(ProfileError, match="purpose 5"):
        _create(Profile.SR_VERIFICATION, ds, purpose=1)


@pytest.mark.parametrize("profile", [Profile.SR, Profile.SR_VERIFICATION])
def test_sr_profiles_refuse_two_verifying_observers(profile: Profile) -> None:
    ds = _load("test-SR.dcm")  # VERIFIED, two observers: outside C.4's scope
    assert len(ds.VerifyingObserverSequence) == 2
    with pytest.raises(ProfileError, match="at most one verifying observer"):
        _create(profile, ds, purpose=5)


def test_waveform_and_rtplan_creator() -> None:
    ecg = _load("waveform_ecg.dcm")
    assert _t("WaveformSequence") in tags_to_sign(Profile.CREATOR, ecg, top_level=True)
    plan = _load("rtplan.dcm")
    tags = tags_to_sign(Profile.CREATOR, plan, top_level=True)
    assert _t("SOPInstanceUID") in tags
    assert _t("BeamSequence") not in tags


# --- satisfied_profiles ---------------------------------------------------------------------


def test_fully_signed_ct() -> None:
    ds = _load("CT_small.dcm")
    assert _satisfied(ds, _signable(ds)) == ["base", "creator", "authorization"]


def test_missing_rows_drops_creator() -> None:
    ds = _load("CT_small.dcm")
    got = _satisfied(ds, _signable(ds) - {_t("Rows")})
    assert "creator" not in got
    assert "authorization" not in got
    assert "base" in got
    got = _satisfied(ds, _signable(ds) - {_t("InstitutionName")})
    assert got == ["base", "authorization"]


def test_algorithm_rules_in_satisfied() -> None:
    ds = _load("CT_small.dcm")
    assert _satisfied(ds, _signable(ds), scheme=ECDSA) == []
    assert _satisfied(ds, _signable(ds), mac_transfer_syntax=IMPLICIT_LE) == []
    assert _satisfied(ds, _signable(ds), mac=HashAlgorithm.RIPEMD160) != []


def test_item_level_only_base() -> None:
    ds = _load("CT_small.dcm")
    assert _satisfied(ds, _signable(ds), top_level=False) == ["base"]


def test_sr_satisfied() -> None:
    ds = _load("reportsi.dcm")
    assert _satisfied(ds, _signable(ds), purpose=1) == ["base", "creator", "authorization", "sr"]
    assert "sr" not in _satisfied(ds, _signable(ds))  # no purpose
    assert "sr" not in _satisfied(ds, _signable(ds) - {_t("ContentSequence")}, purpose=1)


def test_sr_verification_satisfied() -> None:
    ds = _single_observer_sr()
    full = _signable(ds)
    assert "sr-verification" in _satisfied(ds, full, purpose=5)
    assert "sr" in _satisfied(ds, full, purpose=5)
    assert "sr-verification" not in _satisfied(ds, full, purpose=1)
    assert "sr-verification" not in _satisfied(ds, full - {_t("VerificationFlag")}, purpose=5)
    assert "sr-verification" not in _satisfied(ds, full - {_t("SOPInstanceUID")}, purpose=5)
    unverified = copy.deepcopy(ds)
    unverified.VerificationFlag = "UNVERIFIED"
    assert "sr-verification" not in _satisfied(unverified, full, purpose=5)


@pytest.mark.parametrize("profile", [Profile.BASE, Profile.CREATOR, Profile.AUTHORIZATION])
@settings(max_examples=25, deadline=None)
@given(extra=st.sets(st.sampled_from(sorted(_signable(_load("CT_small.dcm"))))))
def test_tags_to_sign_satisfies_profile(profile: Profile, extra: set[int]) -> None:
    """Signing what tags_to_sign asks for (plus anything) meets the profile: the two agree."""
    ds = _load("CT_small.dcm")
    signed = {int(t) for t in tags_to_sign(profile, ds, top_level=True)} | extra
    assert profile.value in _satisfied(ds, signed)


# --- dcmsign parity -------------------------------------------------------------------------

_DCMSIGN = shutil.which("dcmsign")


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cryptography.hazmat.primitives import serialization

    from tests.helpers.pki_factory import build_pki

    d = tmp_path_factory.mktemp("profiles-pki")
    pki = build_pki()
    pki.leaf("x").write(d, "x")
    for name, issued in (("root", pki.root), ("inter", pki.intermediate)):
        (d / f"{name}.pem").write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    return d


def _dcmsign_sign(pki: Path, src: Path, out: Path, *opts: str) -> list[int]:
    cmd = ["dcmsign", "--sign", str(pki / "x.key.pem"), str(pki / "x.cert.pem"), *opts]
    proc = subprocess.run([*cmd, str(src), str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    signed = pydicom.dcmread(out)
    return [int(t) for t in signed.MACParametersSequence[0].DataElementsSigned]


_OPT = {
    Profile.CREATOR: "+pc",
    Profile.AUTHORIZATION: "+pa",
    Profile.SR: "+pr",
    Profile.SR_VERIFICATION: "+pv",
}
_REQUIRE = {Profile.CREATOR: "+rc", Profile.AUTHORIZATION: "+ru", Profile.SR: "+rs"}


@pytest.mark.interop
@pytest.mark.skipif(_DCMSIGN is None, reason="dcmsign not on PATH")
@pytest.mark.parametrize(
    ("name", "profile"),
    [
        ("CT_small.dcm", Profile.CREATOR),
        ("CT_small.dcm", Profile.AUTHORIZATION),
        ("MR_small.dcm", Profile.CREATOR),
        ("MR_small.dcm", Profile.AUTHORIZATION),
        ("reportsi.dcm", Profile.CREATOR),
        ("reportsi.dcm", Profile.AUTHORIZATION),
        ("reportsi.dcm", Profile.SR),
        ("waveform_ecg.dcm", Profile.CREATOR),
        ("test-SR-single-observer", Profile.SR_VERIFICATION),
    ],
)
def test_dcmsign_data_elements_signed_match(
    pki_dir: Path, tmp_path: Path, name: str, profile: Profile
) -> None:
    """``dcmsign +pX -t SOPClassUID`` signs exactly SOPClassUID + our tags_to_sign()."""
    if name == "test-SR-single-observer":
        src = tmp_path / "sr1.dcm"
        _single_observer_sr().save_as(src)
    else:
        src = Path(str(get_testdata_file(name)))
    ds = pydicom.dcmread(src)
    ours = {int(t) for t in tags_to_sign(profile, ds, top_level=True)} | {_t("SOPClassUID")}
    out = tmp_path / "signed.dcm"
    theirs = _dcmsign_sign(pki_dir, src, out, _OPT[profile], "+m2", "-t", "SOPClassUID")
    assert set(theirs) == ours
    # And dcmsign's verifier agrees with satisfied_profiles on the profile it checks.
    purpose = 5 if profile is Profile.SR_VERIFICATION else 1
    got = _satisfied(ds, set(theirs), purpose=purpose)
    assert profile.value in got
    if profile in _REQUIRE:
        cmd = ["dcmsign", "--verify", _REQUIRE[profile], "+cf", str(pki_dir / "root.pem")]
        cmd += ["+uf", str(pki_dir / "inter.pem"), str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.interop
@pytest.mark.skipif(_DCMSIGN is None, reason="dcmsign not on PATH")
def test_dcmsign_differences(pki_dir: Path, tmp_path: Path) -> None:
    """Where we knowingly differ from dcmsign 3.6.7 (both follow from PS3.15 C.2/C.4)."""
    # 1. dcmsign only knows overlay group 6000; the standard means every overlay group.
    ds = _load("CT_small.dcm")
    ds.add_new(0x60020010, "US", 4)
    src = tmp_path / "overlay.dcm"
    ds.save_as(src)
    theirs = set(_dcmsign_sign(pki_dir, src, tmp_path / "o.dcm", "+pc", "-t", "SOPClassUID"))
    ours = {int(t) for t in tags_to_sign(Profile.CREATOR, ds, top_level=True)}
    assert ours - theirs == {0x60020010}
    # 2. dcmsign +pr writes no purpose (C.4 requires one) and +pv accepts two observers.
    sr = Path(str(get_testdata_file("reportsi.dcm")))
    _dcmsign_sign(pki_dir, sr, tmp_path / "sr.dcm", "+pr", "-t", "SOPClassUID")
    item = pydicom.dcmread(tmp_path / "sr.dcm").DigitalSignaturesSequence[0]
    assert "DigitalSignaturePurposeCodeSequence" not in item
    verified = Path(str(get_testdata_file("test-SR.dcm")))
    _dcmsign_sign(pki_dir, verified, tmp_path / "v.dcm", "+pv", "-t", "SOPClassUID")
    with pytest.raises(ProfileError):
        tags_to_sign(Profile.SR_VERIFICATION, pydicom.dcmread(verified), top_level=True)
    # 3. dcmsign's verifier does not look at the purpose; we need one for "sr".
    signed = _dcmsign_sign(pki_dir, sr, tmp_path / "sr2.dcm", "+pr")
    assert "sr" not in _satisfied(pydicom.dcmread(sr), set(signed), purpose=None)


def _whole_dictionary_dataset() -> Dataset:
    """One empty element per signable dictionary tag; looks like a VERIFIED SR."""
    from pydicom._dicom_dict import DicomDictionary
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    for tag, (vr, _vm, _name, _retired, _kw) in DicomDictionary.items():
        vr = vr.split(" or ")[0]
        if not profiles._signable_tag(tag) or vr in ("UN", "NONE"):
            continue
        ds.add_new(tag, vr, [] if vr == "SQ" else None)
    for tag in (0x60000010, 0x50000005, 0x50020005):  # repeating groups
        ds.add_new(tag, "US", None)
    del ds[_t("CreatorVersionUID")]  # keep the raw-data private-tag rule out of it
    del ds[_t("PixelDataProviderURL")]  # dcmsign refuses to write such a file
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.ValueType = "CONTAINER"
    ds.VerificationFlag = "VERIFIED"
    ds.VerificationDateTime = "20200101120000"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


@pytest.mark.interop
@pytest.mark.skipif(_DCMSIGN is None, reason="dcmsign not on PATH")
@pytest.mark.parametrize("profile", list(_OPT))
def test_dcmsign_whole_dictionary(pki_dir: Path, tmp_path: Path, profile: Profile) -> None:
    """Every dictionary attribute present at once: our lists == dcmsign's, tag for tag."""
    ds = _whole_dictionary_dataset()
    src = tmp_path / "all.dcm"
    ds.save_as(src, enforce_file_format=True)
    theirs = set(
        _dcmsign_sign(pki_dir, src, tmp_path / "s.dcm", _OPT[profile], "-t", "SOPClassUID")
    )
    ours = {int(t) for t in tags_to_sign(profile, ds, top_level=True)} | {_t("SOPClassUID")}
    assert ours == theirs
    assert len(ours) > 25


@pytest.mark.interop
@pytest.mark.skipif(_DCMSIGN is None, reason="dcmsign not on PATH")
def test_dcmsign_verifier_rejects_what_we_reject(pki_dir: Path, tmp_path: Path) -> None:
    """Only the four UIDs signed: neither dcmsign +rc/+ru nor we call it creator/authorization."""
    src = Path(str(get_testdata_file("CT_small.dcm")))
    out = tmp_path / "uids.dcm"
    tags = ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"]
    opts = [x for kw in tags for x in ("-t", kw)]
    signed = _dcmsign_sign(pki_dir, src, out, "+pb", "+m2", *opts)
    assert _satisfied(pydicom.dcmread(src), set(signed)) == ["base"]
    for flag in ("+rc", "+ru"):
        cmd = ["dcmsign", "--verify", flag, "+cf", str(pki_dir / "root.pem")]
        cmd += ["+uf", str(pki_dir / "inter.pem"), str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode != 0
        assert "policy" in proc.stderr
