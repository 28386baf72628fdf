"""Level walks (issue 18, speed): one walk per level gives what the per-call helpers give."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from dsig import sign_file
from dsig.encoding.reader import check_complete, read_dicom
from dsig.encoding.values import element_vr, is_sequence
from dsig.encoding.walk import Walks, is_signable_tag
from dsig.signature.mac_stream import write_mac_stream
from dsig.signature.model import find_signatures
from tests.conftest import CorePki
from tests.helpers.dicom_factory import sample
from tokens import open_key_provider

#: Explicit and implicit VR, big endian, nested sequences, private elements, UN.
SAMPLES = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "rtplan.dcm",
           "test-SR.dcm", "waveform_ecg.dcm"]  # fmt: skip


def _levels(
    ds: Dataset, ancestors: tuple[Dataset, ...] = ()
) -> list[tuple[Dataset, tuple[Dataset, ...]]]:
    """Every level with its ancestors, found with the per-call helpers."""
    found = [(ds, ancestors)]
    for tag in ds.keys():
        if is_sequence(ds, tag, element_vr(ds, tag, ancestors)):
            for item in ds[tag].value:
                found += _levels(item, (ds, *ancestors))
    return found


def _reference_signable(level: Dataset, tag: int, ancestors: tuple[Dataset, ...]) -> bool:
    """C.12.1.1.3.1.1 written out directly: tag rules, no UN, no sequence holding UN."""
    if not is_signable_tag(tag):
        return False
    vr = element_vr(level, tag, ancestors)
    if not is_sequence(level, tag, vr):
        return vr != "UN"

    def has_un(item: Dataset, anc: tuple[Dataset, ...]) -> bool:
        for t in item.keys():
            v = element_vr(item, t, anc)
            if is_sequence(item, t, v):
                if any(has_un(i, (item, *anc)) for i in item[t].value):
                    return True
            elif v == "UN":
                return True
        return False

    return not any(has_un(item, (level, *ancestors)) for item in level[tag].value)


@pytest.mark.parametrize("name", SAMPLES)
def test_walk_agrees_with_the_per_call_helpers(name: str) -> None:
    ds = read_dicom(sample(name))
    walks = Walks()
    for level, ancestors in _levels(ds):
        walk = walks.of(level, ancestors)
        assert [e.tag for e in walk.in_tag_order()] == sorted(int(t) for t in level.keys())
        for tag in level.keys():
            entry = walk.entry(tag)
            assert entry.vr == element_vr(level, tag, ancestors), (name, tag)
            assert entry.sequence == is_sequence(level, tag, entry.vr)
            assert walk.signable(tag) == _reference_signable(level, tag, ancestors), (name, tag)


def test_walks_are_made_once_per_level_and_ancestors() -> None:
    ds = read_dicom(sample("rtplan.dcm"))
    walks = Walks()
    assert walks.of(ds) is walks.of(ds)
    item = ds.BeamSequence[0]
    assert walks.of(item, (ds,)) is walks.of(item, (ds,))
    assert walks.of(item, (ds,)) is not walks.of(item)  # a VR may depend on the ancestors


def test_an_element_converted_in_place_is_looked_at_again() -> None:
    ds = read_dicom(sample("CT_small.dcm"))
    walk = Walks().of(ds)
    raw = walk.entry(0x00100010).elem
    assert isinstance(raw, RawDataElement)
    _ = ds.PatientName  # pydicom converts the raw element in place
    now = walk.entry(0x00100010).elem
    assert isinstance(now, DataElement)
    assert id(now) != id(raw)
    assert walk.entry(0x00100010).vr == "PN"


@pytest.mark.parametrize("name", SAMPLES)
def test_shared_walks_give_the_same_mac_stream(name: str) -> None:
    """The walks filled by reading (check_complete) and the signature search, reused by the
    MAC encoder, give the bytes a fresh encoder gives."""
    path = sample(name)
    shared = Walks()
    ds = read_dicom(path, walks=shared)
    check_complete(ds, path.stat().st_size, walks=shared)
    find_signatures(ds, walks=shared)
    tags = sorted(int(t) for t in ds.keys() if shared.of(ds).signable(t))

    def digest(walks: Walks | None) -> str:
        h = hashlib.sha256()
        write_mac_stream(ds, tags, Dataset(), [h.update], walks=walks)
        return h.hexdigest()

    assert digest(shared) == digest(None) == digest(Walks())


def _modules_of_cold_verify(tmp_path: Path, *args: str) -> set[str]:
    """sys.modules at the exit of ``dsig verify ARGS`` in a fresh interpreter (not -X
    importtime: the lazy exports import with importlib, which importtime does not log)."""
    listing = tmp_path / "modules.txt"
    script = (
        "import atexit, runpy, sys\n"
        f"atexit.register(lambda: open({str(listing)!r}, 'w').write('\\n'.join(sys.modules)))\n"
        "runpy.run_module('dsig', run_name='__main__', alter_sys=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "verify", *args], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(listing.read_text().splitlines())


def test_cold_verify_imports_only_what_it_needs(tmp_path: Path) -> None:
    """`dsig verify --integrity-only FILE` loads neither the other commands' modules nor the
    trust policy nor pydantic (typer's converter), nor the audit outputs, the resume index, the
    secret prompt or pydicom's download stack (cold-start cost, issue 18)."""
    ct = sample("CT_small.dcm")  # an unsigned file: exit 0 (UNSIGNED)
    loaded = _modules_of_cold_verify(tmp_path, "--integrity-only", str(ct))
    assert "dsig.operations.verifier" in loaded
    unneeded = {"dsig.cli.sign", "dsig.cli.cert", "dsig.cli.net", "dsig.cli.tokens",
                "dsig.cli.timestamp", "dsig.cli.manifest", "dsig.cli.evidence", "pki.policy",
                "pydantic", "dsig.reports", "sqlite3", "getpass", "http.client", "ssl"}  # fmt: skip
    assert not unneeded & loaded, unneeded & loaded


def test_cold_trusted_verify_imports_only_what_it_needs(core_pki: CorePki, tmp_path: Path) -> None:
    """A trusted verify of a signature without a timestamp loads neither the timestamp code
    (asn1crypto's CMS) nor the policy-file parser (cold-start cost, issue 18)."""
    signed = tmp_path / "signed.dcm"
    with open_key_provider(str(core_pki.rsa_key), cert=str(core_pki.rsa_cert)) as key:
        sign_file(sample("CT_small.dcm"), signed, key)
    trust = ["--trust-store", str(core_pki.root), "--untrusted", str(core_pki.intermediate)]
    loaded = _modules_of_cold_verify(tmp_path, *trust, str(signed))
    assert "pki.chain" in loaded  # trust was evaluated
    unneeded = {"dsig.timestamp", "dsig.timestamp.rfc3161", "tomllib", "pydantic"}
    assert not unneeded & loaded, unneeded & loaded
