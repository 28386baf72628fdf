"""Issue 12: dcmsign parity on the vendor-oddities corpus (tests/helpers/oddities.py).

For every file of the corpus, in both directions:

* dsig signs (``--dump``) -> ``dcmsign --verify`` accepts the signature;
* dcmsign signs (``+d``) -> dsig verifies it VALID and ``dsig inspect --dump-mac`` rebuilds
  dcmsign's stream byte for byte;
* dsig's stream (data-element part) equals dcmsign's ``+d`` stream when dcmsign signs the same
  elements: of the original file, and of dsig's output (where the stored values are already
  normalised; the two only differ for the values DCMTK 3.6.7 keeps, see
  ``Oddity.dcmtk_367_differs``).

Plus the reason for normalising: a signature over the stored padded bytes is refused by
dcmsign ("corrupted").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dsig.encoding.reader import read_dicom
from dsig.encoding.writer import save, target_encoding
from dsig.operations.signer import SignOptions, add_signature
from tests.helpers import dcmtk, dicom_factory
from tests.helpers.oddities import Oddity, build_corpus
from tests.interop.conftest import Dsig, PkiFiles
from tests.property import mutations

CORPUS_NAMES = (
    "padded-explicit-le", "padded-implicit-le", "padded-explicit-be", "nul-padded",
    "un-elements", "odd-lengths", "private-sq-implicit", "wrong-group-lengths",
    "wrong-meta-xfer", "meta-no-preamble", "bare-dataset", "trailing-padding",
)  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Oddity]:
    built = {o.name: o for o in build_corpus(tmp_path_factory.mktemp("oddities"))}
    assert set(built) == set(CORPUS_NAMES)
    return built


def _last_ref(path: Path) -> dicom_factory.SigRef:
    return dicom_factory.signature_refs(read_dicom(path))[-1]


def _tags(ref: dicom_factory.SigRef) -> list[str]:
    return [f"{t >> 16:04x},{t & 0xFFFF:04x}" for t in ref.signed_tags]


def _dcmsign_data_stream(src: Path, out: Path, pki: PkiFiles, tags: list[str],
                         read: tuple[str, ...] = ()) -> bytes:  # fmt: skip
    dump = out.with_suffix(".dump")
    dcmtk.dcmsign_sign(src, out, pki.rsa.key, pki.rsa.cert, mac="sha256", tags=tags, dump=dump,
                       extra=read)  # fmt: skip
    data, _ = dicom_factory.split_stream(dump.read_bytes(), _last_ref(out).item)
    return data


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_dsig_signs_dcmsign_verifies(
    corpus: dict[str, Oddity], name: str, dsig: Dsig, pki: PkiFiles, tmp_path: Path
) -> None:
    odd = corpus[name]
    out, dump = tmp_path / "dsig.dcm", tmp_path / "dsig.dump"
    dsig.sign(odd.path, out, pki.rsa, dump=dump, extra=odd.dsig_read)
    ok, output = dcmtk.dcmsign_verify(out)
    assert ok, output
    ref = _last_ref(out)
    assert dicom_factory.signature_matches_stream(ref, dump.read_bytes())
    ours, _ = dicom_factory.split_stream(dump.read_bytes(), ref.item)
    # dcmsign over dsig's output (normalised values): the same stream
    assert ours == _dcmsign_data_stream(out, tmp_path / "re.dcm", pki, _tags(ref))
    # dcmsign over the original, reading it the same way
    theirs = _dcmsign_data_stream(
        odd.path, tmp_path / "orig.dcm", pki, _tags(ref), odd.dcmsign_read
    )
    if odd.dcmtk_367_differs and " v3.6." in dcmtk.dcmsign_version():
        assert ours != theirs  # documented: DCMTK 3.6.x keeps NUL-stopped padding
    else:
        assert ours == theirs, dicom_factory.first_difference(ours, theirs)


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_dcmsign_signs_dsig_verifies(
    corpus: dict[str, Oddity], name: str, dsig: Dsig, pki: PkiFiles, tmp_path: Path
) -> None:
    odd = corpus[name]
    out, dump = tmp_path / "dcmtk.dcm", tmp_path / "dcmtk.dump"
    dcmtk.dcmsign_sign(odd.path, out, pki.rsa.key, pki.rsa.cert, mac="sha256", dump=dump,
                       extra=odd.dcmsign_read)  # fmt: skip
    result = dsig.verify_one(out)
    result.assert_valid(1)
    uid = _last_ref(out).uid
    assert dsig.dump_mac(out, uid, tmp_path / "ours.dump") == dump.read_bytes()


def test_stored_padding_unnormalised_is_refused_by_dcmsign(
    corpus: dict[str, Oddity], pki: PkiFiles, tmp_path: Path
) -> None:
    """Why signing normalises: the stored bytes are not what dcmsign hashes."""
    key = mutations.open_key(pki.rsa.key, pki.rsa.cert)
    try:
        for normalise, expect_ok in ((False, False), (True, True)):
            ds = read_dicom(corpus["padded-explicit-le"].path)
            info = add_signature(ds, key, SignOptions(normalize_strings=normalise))
            assert bool(info.normalized) == normalise
            out = tmp_path / f"n{normalise}.dcm"
            save(ds, out, target_encoding(ds, "same", None))
            ok, output = dcmtk.dcmsign_verify(out)
            assert ok == expect_ok, output
            if not expect_ok:
                assert "corrupted" in output
    finally:
        key.close()
