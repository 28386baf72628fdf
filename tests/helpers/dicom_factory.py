"""Builders for DICOM test objects that pydicom does not ship.

Every builder writes a Part-10 file and returns its path. Only pydicom is used (no DCMTK).

* :func:`multiframe_multifragment_jpeg` - JPEG-lossy.dcm's codestream repeated over N frames,
  each frame split into 2-3 fragments at even offsets (no fragment padding needed), Basic
  Offset Table filled or empty.
* :func:`sr_with_nested_item` - reportsi.dcm with a deeper content tree, so that an item two
  levels down (:data:`SR_NESTED_ITEM`) can carry an item signature.
* :func:`with_group_lengths_and_padding` - any file rewritten with (gggg,0000) group lengths
  at every level (main data set and sequence items) plus (FFFC,FFFC) trailing padding at the
  end of the data set and inside items.
* :func:`with_empty_values` - CT_small.dcm plus an empty SQ, an SQ holding one empty item, and
  zero-length values (text and binary).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path
from struct import pack

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

StrPath = str | os.PathLike[str]

#: +si / --item location of the deepest signable content item built by sr_with_nested_item
SR_NESTED_ITEM = "ContentSequence[4].ContentSequence[0]"

SAMPLE_NAMES: tuple[str, ...] = (
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "image_dfl.dcm",
    "JPEG-lossy.dcm",
    "JPGExtended.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "JPEG2000.dcm",
    "examples_jpeg2k.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "waveform_ecg.dcm",
    "reportsi.dcm",
    "test-SR.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
)


def sample(name: str) -> Path:
    """Path of a pydicom test file (never downloads)."""
    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {name!r} is not available locally")
    return Path(str(path))


def _read(name_or_path: StrPath) -> Dataset:
    p = Path(name_or_path)
    if not p.exists():
        p = sample(str(name_or_path))
    return pydicom.dcmread(p, force=True)


def jpeg_codestream() -> bytes:
    """The single JPEG frame of JPEG-lossy.dcm (as stored, incl. any even-length pad)."""
    ds = pydicom.dcmread(sample("JPEG-lossy.dcm"))
    frames = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    return frames[0]


def split_even(data: bytes, parts: int) -> list[bytes]:
    """Split ``data`` (even length) into ``parts`` non-empty even-length pieces."""
    if len(data) % 2:
        raise ValueError("codestream must have even length")
    words = len(data) // 2
    base, rem = divmod(words, parts)
    out: list[bytes] = []
    pos = 0
    for i in range(parts):
        n = 2 * (base + (1 if i < rem else 0))
        out.append(data[pos : pos + n])
        pos += n
    assert b"".join(out) == data
    return out


def encapsulate_fragments(frames_fragments: list[list[bytes]], *, bot: bool) -> bytes:
    """Build an encapsulated Pixel Data value from explicit per-frame fragment lists.

    With ``bot`` the Basic Offset Table holds the offset of each frame's first fragment item
    (relative to the first byte after the BOT item), otherwise it is empty.
    """
    offsets: list[int] = []
    body = BytesIO()
    for fragments in frames_fragments:
        offsets.append(body.tell())
        for frag in fragments:
            if len(frag) % 2:
                raise ValueError("fragments must have even length")
            body.write(pack("<HHL", 0xFFFE, 0xE000, len(frag)))
            body.write(frag)
    bot_value = b"".join(pack("<L", o) for o in offsets) if bot else b""
    out = BytesIO()
    out.write(pack("<HHL", 0xFFFE, 0xE000, len(bot_value)))
    out.write(bot_value)
    out.write(body.getvalue())
    # no sequence delimiter: pydicom's writer appends it for undefined-length Pixel Data
    return out.getvalue()


def multiframe_multifragment_jpeg(
    out: StrPath,
    *,
    frames: int = 3,
    bot: bool = True,
    fragments_per_frame: Iterable[int] = (2, 3),
) -> Path:
    """A multi-frame JPEG baseline-extended object (TS 1.2.840.10008.1.2.4.51).

    Frame ``i`` is JPEG-lossy.dcm's codestream split into ``fragments_per_frame[i % len]``
    fragments. Each frame's codestream gets a distinct JPEG COM marker segment right after SOI
    so that frames differ.
    """
    src = pydicom.dcmread(sample("JPEG-lossy.dcm"))
    code = jpeg_codestream()
    assert code[:2] == b"\xff\xd8"
    counts = list(fragments_per_frame)
    per_frame: list[list[bytes]] = []
    for i in range(frames):
        comment = f"dsig frame {i:03d}".encode()
        if len(comment) % 2:
            comment += b" "
        # COM segment: FFFE + 2-byte length (incl. itself) + text; keeps the total even
        com = b"\xff\xfe" + pack(">H", len(comment) + 2) + comment
        frame = code[:2] + com + code[2:]
        per_frame.append(split_even(frame, counts[i % len(counts)]))
    ds = src
    ds.NumberOfFrames = frames
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PixelData = encapsulate_fragments(per_frame, bot=bot)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    out = Path(out)
    ds.save_as(out, enforce_file_format=True)
    return out


def _content_item(value_type: str, relationship: str, code: tuple[str, str, str]) -> Dataset:
    it = Dataset()
    it.RelationshipType = relationship
    it.ValueType = value_type
    cn = Dataset()
    cn.CodeValue, cn.CodingSchemeDesignator, cn.CodeMeaning = code
    it.ConceptNameCodeSequence = Sequence([cn])
    return it


def sr_with_nested_item(out: StrPath) -> Path:
    """reportsi.dcm whose CONTAINER item (ContentSequence[4]) gets a first child CONTAINER with
    two TEXT grandchildren; :data:`SR_NESTED_ITEM` points at that child (two levels deep)."""
    ds = _read("reportsi.dcm")
    container = ds.ContentSequence[4]
    child = _content_item("CONTAINER", "CONTAINS", ("111028", "DCM", "Image Library"))
    child.ContinuityOfContent = "SEPARATE"
    grand: list[Dataset] = []
    for i, text in enumerate(("nested finding one", "nested finding two, odd")):
        t = _content_item("TEXT", "CONTAINS", ("121071", "DCM", "Finding"))
        t.TextValue = text
        t.ObservationDateTime = f"2026110112000{i}"
        grand.append(t)
    child.ContentSequence = Sequence(grand)
    container.ContentSequence.insert(0, child)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = Path(out)
    ds.save_as(out, enforce_file_format=True)
    return out


def _encode_elem(elem: DataElement) -> bytes:
    """Explicit VR LE encoding of one element; sequences with explicit lengths, recursively."""
    if elem.VR == "SQ":
        items = b""
        for item in elem.value:
            body = _encode_level(item)
            items += pack("<HHL", 0xFFFE, 0xE000, len(body)) + body
        return (
            pack("<HH", elem.tag.group, elem.tag.element)
            + b"SQ\0\0"
            + pack("<L", len(items))
            + items
        )
    fp = pydicom.filebase.DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_data_element(fp, elem)
    return fp.getvalue()


def _encode_level(ds: Dataset) -> bytes:
    """Encode a data set level in tag order, including (gggg,0000) group length elements
    (pydicom's own writer drops those)."""
    encoded: dict[int, bytes] = {}
    for tag in sorted(ds.keys()):
        if tag.group < 0x0008 and tag.group != 0:
            continue
        encoded[int(tag)] = _encode_elem(ds[tag])
    return b"".join(encoded[t] for t in sorted(encoded))


def _add_group_lengths(ds: Dataset, *, padding: bytes | None, item_padding: bytes | None) -> None:
    for elem in list(ds):
        if elem.VR == "SQ":
            for item in elem.value:
                _add_group_lengths(item, padding=item_padding, item_padding=item_padding)
    # drop stale group lengths, then compute fresh ones (explicit VR LE lengths)
    for elem in list(ds):
        if elem.tag.element == 0 and elem.tag.group >= 0x0008:
            del ds[elem.tag]
    if padding is not None:
        ds.add_new(0xFFFCFFFC, "OB", padding)
    groups: dict[int, int] = {}
    for elem in ds:
        g = elem.tag.group
        if g < 0x0008 or g == 0xFFFC:
            continue
        groups[g] = groups.get(g, 0) + len(_encode_elem(elem))
    for g, length in groups.items():
        ds.add_new(Tag(g, 0), "UL", length)


def with_group_lengths_and_padding(
    src: StrPath,
    out: StrPath,
    *,
    file_padding: int = 64,
    item_padding: int = 8,
) -> Path:
    """Rewrite ``src`` (path or pydicom test-file name, uncompressed) as explicit VR LE with
    explicit lengths, group length elements in the main data set and in every sequence item,
    a (FFFC,FFFC) Data Set Trailing Padding of ``file_padding`` zero bytes at the end, and
    ``item_padding`` bytes of (FFFC,FFFC) inside every sequence item. Group length values are
    correct for the bytes written. Sequence/item group lengths include nested group lengths."""
    ds = _read(src)
    ts = ds.file_meta.get("TransferSyntaxUID") if getattr(ds, "file_meta", None) else None
    if ts is not None and ts.is_compressed:
        raise ValueError("use an uncompressed source")
    # force parsing with the source encoding before we rewrite as explicit VR LE
    for _ in ds.iterall():
        pass
    ds = pydicom.filewriter.correct_ambiguous_vr(ds, True)
    _add_group_lengths(
        ds,
        padding=b"\x00" * file_padding if file_padding else None,
        item_padding=b"\x00" * item_padding if item_padding else None,
    )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta_fp = pydicom.filebase.DicomBytesIO()
    meta_fp.is_little_endian = True
    meta_fp.is_implicit_VR = False
    pydicom.filewriter.write_file_meta_info(meta_fp, meta, enforce_standard=True)
    out = Path(out)
    out.write_bytes(b"\0" * 128 + b"DICM" + meta_fp.getvalue() + _encode_level(ds))
    return out


def with_empty_values(out: StrPath, src: StrPath = "CT_small.dcm") -> Path:
    """``src`` plus: an empty SQ (ReferencedStudySequence), an SQ with one empty item
    (ReferencedPerformedProcedureStepSequence), zero-length text values (AccessionNumber,
    StudyID), zero-length binary values with a long VR (EncapsulatedDocument OB) and a short
    VR (SmallestImagePixelValue US), and a sequence item holding only zero-length values
    (ProcedureCodeSequence[0])."""
    ds = _read(src)
    ds.ReferencedStudySequence = Sequence([])
    ds.ReferencedPerformedProcedureStepSequence = Sequence([Dataset()])
    ds.AccessionNumber = ""
    ds.StudyID = ""
    # zero-length binary value with a long VR (OB) and one with a short VR (US)
    ds.add_new(0x00420011, "OB", b"")  # EncapsulatedDocument, empty
    ds.add_new(0x00280106, "US", None)  # SmallestImagePixelValue, zero length
    # sequence item containing only zero-length values
    proc = Dataset()
    proc.CodeValue = ""
    proc.CodingSchemeDesignator = ""
    proc.CodeMeaning = ""
    ds.ProcedureCodeSequence = Sequence([proc])
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = Path(out)
    ds.save_as(out, enforce_file_format=True)
    return out


#: pydicom's UN handling is a global switch; serialise the readers that flip it
_CONFIG_LOCK = threading.RLock()


def resave_with_pydicom(src: StrPath, out: StrPath) -> Path:
    """Read with pydicom (no UN conversion) and write back unchanged (same TS)."""
    with _CONFIG_LOCK:
        return _resave(src, out)


def _resave(src: StrPath, out: StrPath) -> Path:
    old = pydicom.config.replace_un_with_known_vr
    pydicom.config.replace_un_with_known_vr = False
    try:
        ds = pydicom.dcmread(src, force=True)
        # make sure everything is parsed (deferred values, raw elements -> real elements)
        for _ in ds.iterall():
            pass
        out = Path(out)
        ds.save_as(out)
    finally:
        pydicom.config.replace_un_with_known_vr = old
    return out


def set_file_meta_if_missing(ds: Dataset) -> None:
    if not getattr(ds, "file_meta", None):
        ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


# ---------------------------------------------------------------------------------------------
# Signature inspection helpers (independent of dsig): locate signature items, rebuild the
# signature-item tail of the MAC stream, check a Signature value against a MAC stream.
# ---------------------------------------------------------------------------------------------

SIG_SEQ = 0xFFFAFFFA
MAC_PARAMS_SEQ = 0x4FFE0001
_TAIL_EXCLUDED = {0x04000115, 0x04000120, 0x04000305, 0x04000310}

MAC_HASHES = {
    "RIPEMD160": "ripemd160",
    "MD5": "md5",
    "SHA1": "sha1",
    "SHA256": "sha256",
    "SHA384": "sha384",
    "SHA512": "sha512",
}

DIGEST_INFO_PREFIX = {
    "MD5": bytes.fromhex("3020300c06082a864886f70d020505000410"),
    "SHA1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "RIPEMD160": bytes.fromhex("3021300906052b2403020105000414"),
    "SHA256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "SHA384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "SHA512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


class SigRef:
    """One signature found in a file: its level, its (FFFA,FFFA) item and its MAC item."""

    def __init__(self, location: str, level: Dataset, item: Dataset, mac_item: Dataset | None):
        self.location = location
        self.level = level
        self.item = item
        self.mac_item = mac_item

    @property
    def uid(self) -> str:
        return str(self.item[0x04000100].value)

    @property
    def mac_algorithm(self) -> str:
        assert self.mac_item is not None
        return str(self.mac_item[0x04000015].value)

    @property
    def mac_transfer_syntax(self) -> str:
        assert self.mac_item is not None
        return str(self.mac_item[0x04000010].value)

    @property
    def signed_tags(self) -> list[int]:
        assert self.mac_item is not None
        v = self.mac_item[0x04000020].value
        vals = v if isinstance(v, list | tuple | pydicom.multival.MultiValue) else [v]
        return [int(t) for t in vals]

    @property
    def signature(self) -> bytes:
        return bytes(self.item[0x04000120].value)

    @property
    def certificate_der(self) -> bytes:
        return der_trim(bytes(self.item[0x04000115].value))

    def __repr__(self) -> str:
        return f"SigRef({self.location or '<main>'}, {self.uid})"


def read_raw(path: StrPath) -> Dataset:
    """dcmread without UN -> known-VR conversion (as a verifier must)."""
    with _CONFIG_LOCK:
        return _read_raw(path)


def _read_raw(path: StrPath) -> Dataset:
    old = pydicom.config.replace_un_with_known_vr
    pydicom.config.replace_un_with_known_vr = False
    try:
        ds = pydicom.dcmread(path, force=True)
        for _ in ds.iterall():
            pass
    finally:
        pydicom.config.replace_un_with_known_vr = old
    return ds


def signature_refs(path_or_ds: StrPath | Dataset) -> list[SigRef]:
    """All signatures at every level, main data set first, then items depth-first."""
    ds = path_or_ds if isinstance(path_or_ds, Dataset) else read_raw(path_or_ds)
    out: list[SigRef] = []

    def walk(level: Dataset, loc: str) -> None:
        if SIG_SEQ in level:
            macs = {
                int(m[0x04000005].value): m
                for m in (level[MAC_PARAMS_SEQ].value if MAC_PARAMS_SEQ in level else [])
            }
            for item in level[SIG_SEQ].value:
                out.append(SigRef(loc, level, item, macs.get(int(item[0x04000005].value))))
        for elem in level:
            if elem.VR != "SQ" or int(elem.tag) in (SIG_SEQ, MAC_PARAMS_SEQ):
                continue
            name = elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"
            for i, item in enumerate(elem.value):
                walk(item, f"{loc}.{name}[{i}]" if loc else f"{name}[{i}]")

    walk(ds, "")
    return out


def der_trim(blob: bytes) -> bytes:
    """Cut a DER TLV (SEQUENCE) at its encoded length, dropping an OB pad byte."""
    if len(blob) < 2 or blob[0] != 0x30:
        return blob
    first = blob[1]
    if first < 0x80:
        return blob[: 2 + first]
    n = first & 0x7F
    length = int.from_bytes(blob[2 : 2 + n], "big")
    return blob[: 2 + n + length]


def _stream_elem(elem: DataElement) -> bytes:
    """MAC-stream encoding of an element without encapsulated data (enough for the tail)."""
    if elem.VR == "SQ":
        out = pack("<HH", elem.tag.group, elem.tag.element) + b"SQ\0\0"
        for item in elem.value:
            out += b"\xfe\xff\x00\xe0"
            for tag in sorted(item.keys()):
                if tag.element == 0 or tag.group < 8 or tag.group == 0xFFFA:
                    continue
                if int(tag) in (MAC_PARAMS_SEQ, 0xFFFCFFFC):
                    continue
                out += _stream_elem(item[tag])
        return out + b"\xfe\xff\xdd\xe0"
    fp = pydicom.filebase.DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_data_element(fp, elem)
    return fp.getvalue()


def expected_tail(item: Dataset) -> bytes:
    """The signature-item part of the MAC stream (doc section 3.4) for a (FFFA,FFFA) item."""
    out = b""
    for tag in sorted(item.keys()):
        if int(tag) in _TAIL_EXCLUDED:
            continue
        if tag.element == 0 or tag.group < 8 or tag.group == 0xFFFA:
            continue
        out += _stream_elem(item[tag])
    return out


def split_stream(stream: bytes, item: Dataset) -> tuple[bytes, bytes]:
    """Split a MAC stream into (data-element part, signature-item tail); asserts the tail."""
    tail = expected_tail(item)
    if not stream.endswith(tail):
        raise AssertionError(
            f"stream does not end with the expected signature-item tail "
            f"({len(tail)} bytes): {first_difference(stream[-len(tail) :], tail)}"
        )
    return stream[: len(stream) - len(tail)], tail


def first_difference(a: bytes, b: bytes, context: int = 16) -> str:
    """Human-readable first differing offset of two byte strings (or 'identical')."""
    if a == b:
        return "identical"
    n = min(len(a), len(b))
    off = next((i for i in range(n) if a[i] != b[i]), n)
    lo = max(0, off - context)
    return (
        f"lengths {len(a)} vs {len(b)}, first difference at offset {off} (0x{off:x}): "
        f"a[{lo}:{off + context}]={a[lo : off + context].hex(' ')} | "
        f"b[{lo}:{off + context}]={b[lo : off + context].hex(' ')}"
    )


def signature_matches_stream(ref: SigRef, stream: bytes) -> bool:
    """Independent cryptographic check: does ``ref``'s Signature sign ``stream``?

    RSA: raw PKCS#1 v1.5 recovery and DigestInfo comparison (works for RIPEMD160);
    ECDSA: DER Ecdsa-Sig-Value over the prehashed MAC.
    """
    import hashlib

    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    mac = ref.mac_algorithm
    digest = hashlib.new(MAC_HASHES[mac], stream).digest()
    cert = x509.load_der_x509_certificate(ref.certificate_der)
    key = cert.public_key()
    sig = ref.signature
    if isinstance(key, rsa.RSAPublicKey):
        k = (key.key_size + 7) // 8
        try:
            recovered = key.recover_data_from_signature(sig[:k], padding.PKCS1v15(), None)
        except InvalidSignature:
            return False
        return recovered == DIGEST_INFO_PREFIX[mac] + digest
    if isinstance(key, ec.EllipticCurvePublicKey):
        halg = {
            "SHA256": hashes.SHA256(),
            "SHA384": hashes.SHA384(),
            "SHA512": hashes.SHA512(),
            "SHA1": hashes.SHA1(),
            "MD5": hashes.MD5(),
        }.get(mac)
        if halg is None:  # RIPEMD160: cryptography has no Prehashed RIPEMD160 object
            halg = hashes.SHA256() if len(digest) == 32 else hashes.SHA1()
        try:
            key.verify(der_trim(sig), digest, ec.ECDSA(utils.Prehashed(halg)))
        except (InvalidSignature, ValueError):
            return False
        return True
    raise TypeError(f"unsupported key type {type(key)}")


def verified_sr_single_observer(out: StrPath) -> Path:
    """test-SR.dcm (Verification Flag VERIFIED, two Verifying Observers) reduced to one
    Verifying Observer, so that PS3.15 C.4 (SR RSA profile: SR/KOS with at most one
    Verifying Observer) applies."""
    ds = _read("test-SR.dcm")
    ds.VerifyingObserverSequence = Sequence([ds.VerifyingObserverSequence[0]])
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = Path(out)
    ds.save_as(out, enforce_file_format=True)
    return out
