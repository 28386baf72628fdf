"""Signing a big file writes the output while hashing (issue 18's sign speed): the bytes are
those of the plain path (hash, sign, then write), whatever the key, encoding or path taken."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from dsig.encoding.reader import read_dicom
from dsig.encoding.writer import save, target_encoding
from dsig.operations.file_signing import (
    STREAM_MIN,
    FileSigning,
    _sign_streaming,
    _streamable,
    sign_dataset,
    sign_file,
)
from dsig.operations.signer import SignOptions, signature_length
from dsig.operations.verifier import VerifyOptions, verify_file
from dsig.results import Indication
from tests.conftest import CorePki
from tests.helpers.bigfile import write_big_file
from tokens.api import KeyProvider
from tokens.errors import TokenError
from tokens.registry import open_key_provider

AT = dt.datetime(2026, 12, 4, 22, 0, tzinfo=dt.UTC)
FRAMES = STREAM_MIN // (512 * 512 * 2) + 4  # just over the streaming threshold


def _key(pki: CorePki, kind: str) -> KeyProvider:
    if kind == "rsa":
        return open_key_provider(str(pki.rsa_key), cert=pki.rsa_cert, password=None)
    return open_key_provider(str(pki.ec_key), cert=pki.ec_cert, password=None)


def _reference(src: Path, out: Path, key: KeyProvider, options: FileSigning, defer: bool) -> None:
    """The plain path: the whole MAC hashed, then signed, then the file written."""
    ds = read_dicom(src, defer=defer)
    encoding = target_encoding(ds, options.write_xfer, options.lengths)
    sign_dataset(ds, key, options.sign, encoding, location=options.location)
    save(ds, out, encoding)


@pytest.mark.parametrize(
    ("syntax", "encapsulated", "write_xfer"),
    [
        (ExplicitVRLittleEndian, False, "same"),
        (ExplicitVRLittleEndian, True, "same"),
        (ImplicitVRLittleEndian, False, "same"),  # MAC in explicit LE, file implicit
        (ExplicitVRBigEndian, False, "same"),
        (ExplicitVRLittleEndian, False, "big"),  # values byte-swapped while written
    ],
)
def test_streamed_rsa_output_is_byte_identical_to_the_plain_path(
    core_pki: CorePki, tmp_path: Path, syntax: str, encapsulated: bool, write_xfer: str
) -> None:
    src = write_big_file(
        tmp_path / "big.dcm", frames=FRAMES, transfer_syntax=syntax, encapsulated=encapsulated
    )
    options = FileSigning(sign=SignOptions(at=AT, uid=generate_uid()), write_xfer=write_xfer)
    with _key(core_pki, "rsa") as key:
        ds = read_dicom(src)
        encoding = target_encoding(ds, write_xfer, None)
        assert _streamable(ds, key, options, encoding) == 256  # the streaming path is taken
        streamed = sign_file(src, tmp_path / "streamed.dcm", key, options).output
        _reference(src, tmp_path / "deferred.dcm", key, options, defer=True)
        _reference(src, tmp_path / "in-memory.dcm", key, options, defer=False)
    data = streamed.read_bytes()
    assert data == (tmp_path / "deferred.dcm").read_bytes()
    assert data == (tmp_path / "in-memory.dcm").read_bytes()  # values never left in the file
    result = verify_file(streamed, options=VerifyOptions(integrity_only=True))
    assert [s.integrity for s in result.signatures] == [Indication.VALID]
    assert not list(tmp_path.glob(".*.dsig-tmp"))


def test_a_signature_of_another_length_rewrites_the_file(core_pki: CorePki, tmp_path: Path) -> None:
    """The layout assumed a Signature of 255 bytes; RSA-2048 gives 256: the file is written
    again the plain way, with the same bytes as the plain path."""
    src = write_big_file(tmp_path / "big.dcm", frames=FRAMES)
    options = FileSigning(sign=SignOptions(at=AT, uid=generate_uid()))
    out = tmp_path / "out.dcm"
    with _key(core_pki, "rsa") as key:
        ds = read_dicom(src)
        encoding = target_encoding(ds, "same", None)
        info = _sign_streaming(ds, out, key, options, encoding, 255, durable=True)
        assert len(info.signature) == 256
        _reference(src, tmp_path / "ref.dcm", key, options, defer=True)
    assert out.read_bytes() == (tmp_path / "ref.dcm").read_bytes()


def test_ecdsa_and_small_files_take_the_plain_path(core_pki: CorePki, tmp_path: Path) -> None:
    """An ECDSA Signature's DER length varies, a small file gains nothing: both are hashed,
    then written; the output verifies and holds the same data set as the plain path's."""
    big = write_big_file(tmp_path / "big.dcm", frames=FRAMES)
    small = write_big_file(tmp_path / "small.dcm", frames=2, rows=64, cols=64)
    with _key(core_pki, "ec") as ec, _key(core_pki, "rsa") as rsa:
        assert signature_length(ec) is None and signature_length(rsa) == 256
        ds = read_dicom(big)
        assert _streamable(ds, ec, FileSigning(), target_encoding(ds, "same", None)) is None
        ds = read_dicom(small)
        assert _streamable(ds, rsa, FileSigning(), target_encoding(ds, "same", None)) is None
        out = sign_file(big, tmp_path / "ec.dcm", ec, FileSigning(sign=SignOptions(at=AT))).output
        ref = tmp_path / "ec-ref.dcm"
        _reference(big, ref, ec, FileSigning(sign=SignOptions(at=AT)), defer=True)
    result = verify_file(out, options=VerifyOptions(integrity_only=True))
    assert [s.integrity for s in result.signatures] == [Indication.VALID]
    # Same size up to the DER lengths of the two (random) ECDSA signatures.
    sig_out = read_dicom(out).DigitalSignaturesSequence[0].Signature
    sig_ref = read_dicom(ref).DigitalSignaturesSequence[0].Signature
    assert out.stat().st_size - len(sig_out) == ref.stat().st_size - len(sig_ref)


def test_a_timestamp_takes_the_plain_path(core_pki: CorePki, tmp_path: Path) -> None:
    """The timestamp goes into the signature item after the Signature is made (its length is
    not known before): the plain path, with the timestamper's addition in the output."""
    src = write_big_file(tmp_path / "big.dcm", frames=FRAMES)
    seen: list[str] = []

    def stamp(ds: object, uid: str) -> str:
        item = ds.DigitalSignaturesSequence[0]  # type: ignore[attr-defined]
        item.add_new(0x04000305, "CS", "PKCS7")
        seen.append(uid)
        return "stamped"

    options = FileSigning(sign=SignOptions(at=AT), timestamp=stamp)
    with _key(core_pki, "rsa") as key:
        ds = read_dicom(src)
        assert _streamable(ds, key, options, target_encoding(ds, "same", None)) is None
        done = sign_file(src, tmp_path / "out.dcm", key, options)
    assert done.timestamp == "stamped" and seen == [done.info.uid]
    item = read_dicom(done.output).DigitalSignaturesSequence[0]
    assert item.CertifiedTimestampType == "PKCS7"


class _FailingToken:
    """A key provider whose signing fails after the hash (a token pulled out, a PIN
    locked): the certificate and scheme of a real key, ``sign_digest`` raising."""

    def __init__(self, real: KeyProvider) -> None:
        self._real = real
        self.certificate = real.certificate
        self.chain = real.chain
        self.scheme = real.scheme
        self.asked = 0

    def sign_digest(self, digest: object) -> bytes:
        self.asked += 1
        raise TokenError("the token was removed")

    def close(self) -> None:
        self._real.close()

    def __enter__(self) -> _FailingToken:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_a_failed_signature_leaves_no_partial_output(core_pki: CorePki, tmp_path: Path) -> None:
    src = write_big_file(tmp_path / "big.dcm", frames=FRAMES)
    before = src.read_bytes()
    target = tmp_path / "out.dcm"
    old = tmp_path / "old.dcm"
    old.write_bytes(b"previous content")
    with _key(core_pki, "rsa") as real:
        token = _FailingToken(real)
        with pytest.raises(TokenError, match="removed"):
            sign_file(src, target, token, FileSigning())
        with pytest.raises(TokenError):
            sign_file(src, old, token, FileSigning(), force=True)
        assert token.asked == 2  # it failed after the temp file had been laid out and copied
    assert not target.exists()
    assert old.read_bytes() == b"previous content"  # an existing target is kept
    assert not list(tmp_path.glob(".*.dsig-tmp"))
    assert src.read_bytes() == before
    assert not [t for t in threading.enumerate() if t.name == "dsig-copy-values"]


def test_a_source_truncated_while_copied_is_an_error_without_output(
    core_pki: CorePki, tmp_path: Path
) -> None:
    """The file shrinks between the parse and the copy: a one-line truncation error from
    the hash or the copy, whichever comes first, and nothing written."""
    from dsig.errors import DicomFormatError

    src = write_big_file(tmp_path / "big.dcm", frames=FRAMES)
    target = tmp_path / "out.dcm"
    with _key(core_pki, "rsa") as key:
        ds = read_dicom(src)
        with src.open("r+b") as fp:
            fp.truncate(src.stat().st_size // 2)
        encoding = target_encoding(ds, "same", None)
        with pytest.raises(DicomFormatError, match="truncated"):
            _sign_streaming(ds, target, key, FileSigning(), encoding, 256, durable=True)
    assert not target.exists()
    assert not list(tmp_path.glob(".*.dsig-tmp"))


def test_in_place_streamed_signing(core_pki: CorePki, tmp_path: Path) -> None:
    """In place, the values are copied from the file being replaced before the rename."""
    src = write_big_file(tmp_path / "big.dcm", frames=FRAMES)
    copy = tmp_path / "copy.dcm"
    copy.write_bytes(src.read_bytes())
    options = FileSigning(sign=SignOptions(at=AT, uid=generate_uid()))
    with _key(core_pki, "rsa") as key:
        sign_file(src, None, key, options)
        _reference(copy, tmp_path / "ref.dcm", key, options, defer=True)
    assert src.read_bytes() == (tmp_path / "ref.dcm").read_bytes()
    assert read_dicom(src).DigitalSignaturesSequence[0].DigitalSignatureUID == options.sign.uid
