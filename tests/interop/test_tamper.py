"""Tampering with anything signed breaks the signature in both dcmsign and dsig; adding an
element outside Data Elements Signed keeps it valid and dsig lists it in ``unsigned_tags``.

Originals are signed by dcmsign and by dsig (RSA-2048 unless noted, SHA256, purpose 1; the
nested SR carries an item signature on :data:`SR_NESTED_ITEM` plus a main signature).
Tampering is done with pydicom (read without UN conversion, change one thing, save in the same
transfer syntax); a pydicom re-save alone is shown to keep signatures valid in
test_reencoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from pydicom.dataset import Dataset

from tests.helpers import dcmtk, dicom_factory
from tests.helpers.dicom_factory import SR_NESTED_ITEM, read_raw, signature_refs
from tests.interop.conftest import Dsig, FileResult, PkiFiles, Sources, pmap, tag_str


@dataclass(frozen=True)
class Original:
    id: str
    source: str
    by: str
    signer: str = "rsa"
    item: str | None = None


ORIGINALS = [
    Original("dcmsign-CT_small", "CT_small.dcm", "dcmsign"),
    Original("dsig-CT_small", "CT_small.dcm", "dsig"),
    Original("dcmsign-ec-CT_small", "CT_small.dcm", "dcmsign", signer="ec"),
    Original("dsig-ec-CT_small", "CT_small.dcm", "dsig", signer="ec"),
    Original("dcmsign-JPEG-lossy", "JPEG-lossy.dcm", "dcmsign"),
    Original("dcmsign-mf_jpeg_bot", "mf_jpeg_bot", "dcmsign"),
    Original("dsig-mf_jpeg_bot", "mf_jpeg_bot", "dsig"),
    Original("dcmsign-waveform_ecg", "waveform_ecg.dcm", "dcmsign"),
    Original("dsig-waveform_ecg", "waveform_ecg.dcm", "dsig"),
    Original("dcmsign-sr_nested", "sr_nested", "dcmsign", item=SR_NESTED_ITEM),
    Original("dsig-sr_nested", "sr_nested", "dsig", item=SR_NESTED_ITEM),
]
_ORIG = {o.id: o for o in ORIGINALS}


def _flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0x01
    return bytes(b)


def _main_item(ds: Dataset) -> Dataset:
    return ds[0xFFFAFFFA].value[0]  # type: ignore[no-any-return]


def _nested_item(ds: Dataset) -> Dataset:
    return ds.ContentSequence[4].ContentSequence[0]  # type: ignore[no-any-return]


class Ctx:
    def __init__(self, pki: PkiFiles) -> None:
        self.pki = pki


def t_patient_name(ds: Dataset, ctx: Ctx) -> None:
    ds.PatientName = str(ds.PatientName) + "X"


def t_remove_signed(ds: Dataset, ctx: Ctx) -> None:
    del ds[0x00081030 if 0x00081030 in ds else 0x00100020]  # StudyDescription / PatientID


def t_signature_byte(ds: Dataset, ctx: Ctx) -> None:
    it = _main_item(ds)
    it[0x04000120].value = _flip(bytes(it[0x04000120].value), 40)


def t_signature_datetime(ds: Dataset, ctx: Ctx) -> None:
    it = _main_item(ds)
    v = str(it[0x04000105].value)
    it[0x04000105].value = v[:12] + ("1" if v[12] != "1" else "2") + v[13:]


def t_purpose_code(ds: Dataset, ctx: Ctx) -> None:
    it = _main_item(ds)
    code = it[0x04000401].value[0]
    code.CodeValue = "2"
    code.CodeMeaning = "Coauthor's Signature"


def t_cert_replaced(ds: Dataset, ctx: Ctx) -> None:
    """Swap in another valid certificate of the same key type (different key)."""
    other = ctx.pki._pki.leaf("tamper-other-rsa", key_kind="rsa2048")
    it = _main_item(ds)
    cert_der = bytes(it[0x04000115].value)
    from cryptography import x509

    kind = x509.load_der_x509_certificate(dicom_factory.der_trim(cert_der)).public_key()
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(kind, ec.EllipticCurvePublicKey):
        other = ctx.pki._pki.leaf("tamper-other-ec", key_kind="ec-p256")
    der = other.cert.public_bytes(serialization.Encoding.DER)
    it[0x04000115].value = der + (b"\0" if len(der) % 2 else b"")


def t_cert_corrupted(ds: Dataset, ctx: Ctx) -> None:
    """Flip a byte in the middle of the certificate's public key (modulus / EC point)."""
    from cryptography import x509

    it = _main_item(ds)
    der = bytes(it[0x04000115].value)
    cert = x509.load_der_x509_certificate(dicom_factory.der_trim(der))
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pos = der.find(spki)
    assert pos > 0
    it[0x04000115].value = _flip(der, pos + len(spki) // 2)


def t_jpeg_fragment_byte(ds: Dataset, ctx: Ctx) -> None:
    """Flip one byte in the middle of the *second* pixel item (first fragment when single)."""
    from pydicom.encaps import parse_fragments

    data = bytes(ds.PixelData)
    # walk items: BOT, then fragments
    pos = 0
    items = []
    while pos + 8 <= len(data):
        import struct

        g, e, ln = struct.unpack("<HHL", data[pos : pos + 8])
        if (g, e) != (0xFFFE, 0xE000):
            break
        items.append((pos + 8, ln))
        pos += 8 + ln
    assert parse_fragments is not None and len(items) >= 2
    start, ln = items[2] if len(items) > 2 else items[1]
    ds.PixelData = _flip(data, start + ln // 2)


def t_waveform_sample(ds: Dataset, ctx: Ctx) -> None:
    w = ds.WaveformSequence[0]
    data = bytes(w.WaveformData)
    w.WaveformData = _flip(data, len(data) // 3)


def t_sr_nested_text(ds: Dataset, ctx: Ctx) -> None:
    """Change a TEXT item inside the item-signed container: breaks item and main signature."""
    t = _nested_item(ds).ContentSequence[1]
    t.TextValue = str(t.TextValue) + "!"


def t_sr_outside_item(ds: Dataset, ctx: Ctx) -> None:
    """Change a content item outside the signed item: breaks only the main signature."""
    t = ds.ContentSequence[2]
    t.TextValue = str(t.TextValue) + "!"


def t_sr_swap_items(ds: Dataset, ctx: Ctx) -> None:
    seq = ds.ContentSequence
    seq[0], seq[1] = seq[1], seq[0]


def t_sr_private_in_item(ds: Dataset, ctx: Ctx) -> None:
    """Add a private element inside the item-signed container item (not in its own Data
    Elements Signed, but inside the main signature's ContentSequence)."""
    it = _nested_item(ds)
    it.add_new(0x00990010, "LO", "DSIG TAMPER")
    it.add_new(0x00991001, "LO", "extra")


UNSIGNED_TAG = 0x00324000  # StudyComments (absent from the originals)


def t_add_unsigned(ds: Dataset, ctx: Ctx) -> None:
    assert UNSIGNED_TAG not in ds
    ds.add_new(UNSIGNED_TAG, "LT", "added after signing")


TAMPERS: dict[str, Callable[[Dataset, Ctx], None]] = {
    "patient-name": t_patient_name,
    "remove-signed-element": t_remove_signed,
    "signature-byte": t_signature_byte,
    "signature-datetime": t_signature_datetime,
    "purpose-code": t_purpose_code,
    "cert-replaced": t_cert_replaced,
    "cert-corrupted": t_cert_corrupted,
    "jpeg-fragment-byte": t_jpeg_fragment_byte,
    "waveform-sample": t_waveform_sample,
    "sr-nested-text": t_sr_nested_text,
    "sr-outside-item": t_sr_outside_item,
    "sr-swap-items": t_sr_swap_items,
    "sr-private-in-item": t_sr_private_in_item,
    "add-unsigned": t_add_unsigned,
}


@dataclass(frozen=True)
class T:
    original: str
    tamper: str
    #: expected dsig integrity per signature: "main"/"item" -> VALID|INVALID|NOTVALID
    #: (NOTVALID = INVALID or INDETERMINATE)
    expect: tuple[tuple[str, str], ...] = (("main", "INVALID"),)

    @property
    def id(self) -> str:
        return f"{self.original}--{self.tamper}"


_BOTH_BROKEN = (("main", "INVALID"), ("item", "INVALID"))

MATRIX: list[T] = [
    *(T(o, "patient-name") for o in ("dcmsign-CT_small", "dsig-CT_small", "dsig-ec-CT_small")),
    T("dcmsign-CT_small", "remove-signed-element"),
    T("dsig-CT_small", "remove-signed-element"),
    *(
        T(o, "signature-byte")
        for o in ("dcmsign-CT_small", "dsig-CT_small", "dcmsign-ec-CT_small", "dsig-ec-CT_small")
    ),
    T("dcmsign-CT_small", "signature-datetime"),
    T("dsig-CT_small", "signature-datetime"),
    T("dcmsign-CT_small", "purpose-code"),
    T("dsig-ec-CT_small", "purpose-code"),
    T("dcmsign-CT_small", "cert-replaced"),
    T("dsig-CT_small", "cert-replaced"),
    T("dcmsign-ec-CT_small", "cert-replaced"),
    T("dcmsign-CT_small", "cert-corrupted", (("main", "NOTVALID"),)),
    T("dcmsign-JPEG-lossy", "jpeg-fragment-byte"),
    T("dcmsign-mf_jpeg_bot", "jpeg-fragment-byte"),
    T("dsig-mf_jpeg_bot", "jpeg-fragment-byte"),
    T("dcmsign-waveform_ecg", "waveform-sample"),
    T("dsig-waveform_ecg", "waveform-sample"),
    T("dcmsign-sr_nested", "sr-nested-text", _BOTH_BROKEN),
    T("dsig-sr_nested", "sr-nested-text", _BOTH_BROKEN),
    T("dcmsign-sr_nested", "sr-outside-item", (("main", "INVALID"), ("item", "VALID"))),
    T("dsig-sr_nested", "sr-outside-item", (("main", "INVALID"), ("item", "VALID"))),
    T("dcmsign-sr_nested", "sr-swap-items", (("main", "INVALID"), ("item", "VALID"))),
    # the item signature's own Data Elements Signed does not list the new element (stays
    # valid); the main signature covers the whole ContentSequence (breaks)
    T("dcmsign-sr_nested", "sr-private-in-item", (("main", "INVALID"), ("item", "VALID"))),
    T("dsig-sr_nested", "sr-private-in-item", (("main", "INVALID"), ("item", "VALID"))),
    # not tampering: element added outside Data Elements Signed
    T("dcmsign-CT_small", "add-unsigned", (("main", "VALID"),)),
    T("dsig-CT_small", "add-unsigned", (("main", "VALID"),)),
    T("dcmsign-sr_nested", "add-unsigned", (("main", "VALID"), ("item", "VALID"))),
    T("dsig-mf_jpeg_bot", "add-unsigned", (("main", "VALID"),)),
]
MATRIX_IDS = [m.id for m in MATRIX]
assert len(set(MATRIX_IDS)) == len(MATRIX_IDS)


@dataclass
class Tampered:
    case: T
    path: Path | None = None
    error: str | None = None
    dcmsign: tuple[bool, str] = (False, "")
    result: FileResult | None = None
    kinds: dict[str, str] = field(default_factory=dict)  # uid -> "main" | "item"


@dataclass
class Built:
    originals: dict[str, Path] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    tampered: dict[str, Tampered] = field(default_factory=dict)
    original_results: dict[str, FileResult] = field(default_factory=dict)


def _sign(o: Original, d: Path, pki: PkiFiles, sources: Sources, dsig: Dsig) -> Path:
    signer = pki.rsa if o.signer == "rsa" else pki.ec
    cur = sources(o.source)
    steps = ([o.item] if o.item else []) + [None]
    for n, item in enumerate(steps):
        out = d / f"{o.id}.{n}.dcm"
        if o.by == "dcmsign":
            dcmtk.dcmsign_sign(cur, out, signer.key, signer.cert, item=item, purpose=1)
        else:
            dsig.sign(cur, out, signer, item=item, purpose=1)
        cur = out
    return cur


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, pki: PkiFiles, sources: Sources, dsig: Dsig
) -> Built:
    d = tmp_path_factory.mktemp("tamper")
    b = Built()
    ctx = Ctx(pki)

    def sign(o: Original) -> Path | str:
        try:
            return _sign(o, d, pki, sources, dsig)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    for o, got in zip(ORIGINALS, pmap(sign, ORIGINALS), strict=True):
        if isinstance(got, str):
            b.errors[o.id] = got
        else:
            b.originals[o.id] = got
    for m in MATRIX:
        t = Tampered(m)
        b.tampered[m.id] = t
        if m.original not in b.originals:
            t.error = f"signing the original failed: {b.errors.get(m.original)}"
            continue
        src = b.originals[m.original]
        try:
            ds = read_raw(src)
            TAMPERS[m.tamper](ds, ctx)
            dst = d / f"{m.id}.dcm"
            ds.save_as(dst)
            t.path = dst
            t.kinds = {r.uid: ("item" if r.location else "main") for r in signature_refs(src)}
            t.dcmsign = dcmtk.dcmsign_verify(dst)
        except Exception as exc:
            t.error = f"tampering failed: {type(exc).__name__}: {exc}"
    paths = [t.path for t in b.tampered.values() if t.path is not None]
    results = dsig.verify_many([*paths, *b.originals.values()])
    for t in b.tampered.values():
        if t.path is not None:
            t.result = results[str(t.path)]
    for oid, p in b.originals.items():
        b.original_results[oid] = results[str(p)]
    return b


@pytest.mark.parametrize("orig", ORIGINALS, ids=[o.id for o in ORIGINALS])
def test_original_valid(built: Built, orig: Original) -> None:
    if orig.id in built.errors:
        pytest.fail(built.errors[orig.id])
    ok, out = dcmtk.dcmsign_verify(built.originals[orig.id])
    assert ok, out
    built.original_results[orig.id].assert_valid(n_signatures=2 if orig.item else 1)


def _get(built: Built, m: T) -> Tampered:
    t = built.tampered[m.id]
    if t.error is not None:
        pytest.fail(t.error)
    return t


@pytest.mark.parametrize("m", MATRIX, ids=MATRIX_IDS)
def test_dcmsign_verdict(built: Built, m: T) -> None:
    t = _get(built, m)
    ok, out = t.dcmsign
    want = dict(m.expect)
    n_ok = out.count("Signature Verification : OK")
    n_valid = sum(1 for v in want.values() if v == "VALID")
    if all(v == "VALID" for v in want.values()):
        assert ok, out
    else:
        assert not ok, out
    assert n_ok == n_valid, f"expected {n_valid} signatures OK in dcmsign\n{out}"


@pytest.mark.parametrize("m", MATRIX, ids=MATRIX_IDS)
def test_dsig_verdict(built: Built, m: T) -> None:
    t = _get(built, m)
    assert t.result is not None
    res = t.result
    want = dict(m.expect)
    ctx = res.describe()
    sigs = res.signatures
    assert len(sigs) == len(t.kinds), f"expected {len(t.kinds)} signatures\n{ctx}"
    for s in sigs:
        kind = t.kinds.get(str(s.get("uid")))
        assert kind is not None, f"unknown signature uid {s.get('uid')}\n{ctx}"
        exp = want[kind]
        got = s.get("integrity")
        if exp == "NOTVALID":
            assert got != "VALID" and s.get("indication") != "VALID", f"{kind}: {got}\n{ctx}"
        else:
            assert got == exp, f"{kind} signature: integrity {got}, expected {exp}\n{ctx}"
    if all(v == "VALID" for v in want.values()):
        assert res.indication == "VALID", ctx
    elif any(v == "INVALID" for v in want.values()):
        assert res.indication == "INVALID", ctx
    else:
        assert res.indication != "VALID", ctx


@pytest.mark.parametrize(
    "m",
    [m for m in MATRIX if m.tamper == "add-unsigned"],
    ids=[m.id for m in MATRIX if m.tamper == "add-unsigned"],
)
def test_unsigned_tag_reported(built: Built, m: T) -> None:
    t = _get(built, m)
    assert t.result is not None
    main = [s for s in t.result.signatures if t.kinds.get(str(s.get("uid"))) == "main"]
    assert main, t.result.describe()
    for s in main:
        unsigned = [u.upper() for u in s.get("unsigned_tags") or []]
        assert tag_str(UNSIGNED_TAG) in unsigned, t.result.describe()
        signed = [u.upper() for u in s.get("signed_tags") or []]
        assert tag_str(UNSIGNED_TAG) not in signed, t.result.describe()


def test_tampered_exit_code(built: Built, dsig: Dsig) -> None:
    m = next(x for x in MATRIX if x.id == "dcmsign-CT_small--patient-name")
    t = _get(built, m)
    assert t.path is not None
    res = dsig.verify([t.path])
    assert res.returncode == 1, res.describe()
    res.file(t.path).assert_invalid("MAC_MISMATCH")
