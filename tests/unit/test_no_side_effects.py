"""dsig changes nothing in pydicom for the process: settings, hooks and reader functions are
the same objects and values before and after reading, signing and verifying."""

from __future__ import annotations

import copy
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import pydicom.charset
import pydicom.config
import pydicom.dataelem
import pydicom.dataset
import pydicom.filereader
import pydicom.filewriter
import pydicom.hooks
import pydicom.uid
import pydicom.values

from dsig.encoding.reader import read_dicom
from dsig.encoding.writer import save, target_encoding
from dsig.operations.signer import add_signature
from dsig.operations.verifier import VerifyOptions, verify_file
from tests.conftest import CorePki, sample
from tokens import open_key_provider

_MODULES: tuple[ModuleType, ...] = (
    pydicom.charset,
    pydicom.config,
    pydicom.dataelem,
    pydicom.dataset,
    pydicom.filereader,
    pydicom.filewriter,
    pydicom.hooks,
    pydicom.values,
)


def _snapshot() -> dict[str, Any]:
    """Every module-level name of pydicom's reading modules, the settings and the hooks."""
    state: dict[str, Any] = {}
    for module in _MODULES:
        for name, value in vars(module).items():
            if not name.startswith("__"):
                state[f"{module.__name__}.{name}"] = value
    for name, value in vars(pydicom.config.settings).items():
        state[f"settings.{name}"] = copy.copy(value)
    for name, value in vars(pydicom.hooks.hooks).items():
        state[f"hooks.{name}"] = copy.copy(value)
    return state


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(
        name
        for name in before.keys() | after.keys()
        if name not in before
        or name not in after
        or (before[name] is not after[name] and before[name] != after[name])
    )


def _foreign_functions() -> list[str]:
    """Functions in pydicom's modules whose code is not pydicom's (a replacement, a wrapper)."""
    homes = (str(Path(pydicom.config.__file__).parent), sysconfig.get_paths()["stdlib"])
    found = []
    for module in _MODULES:
        for name, value in vars(module).items():
            while isinstance(value, FunctionType) and value.__module__.startswith("pydicom"):
                if not value.__code__.co_filename.startswith(homes):
                    found.append(f"{module.__name__}.{name}")
                value = getattr(value, "__wrapped__", None)  # contextmanager etc.
    return found


def test_importing_dsig_changes_nothing() -> None:
    """dsig is imported by now (this module imports it): pydicom's defaults are intact."""
    assert pydicom.config.replace_un_with_known_vr is True
    assert pydicom.config.settings.reading_validation_mode == pydicom.config.WARN
    assert _foreign_functions() == []


def test_read_sign_verify_leave_pydicom_as_it_was(core_pki: CorePki, tmp_path: Path) -> None:
    before = _snapshot()
    assert before["pydicom.config.replace_un_with_known_vr"] is True  # pydicom's default
    for name in ("CT_small.dcm", "rtplan.dcm"):  # rtplan: nested sequences of defined length
        ds = read_dicom(str(sample(name)))
        key = open_key_provider(str(core_pki.rsa_key), cert=core_pki.rsa_cert, password=None)
        try:
            add_signature(ds, key)
        finally:
            key.close()
        out = tmp_path / name
        save(ds, out, target_encoding(ds, "same", None))
        result = verify_file(out, VerifyOptions(integrity_only=True))
        assert result.error is None and result.signatures, result
    assert _changes(before, _snapshot()) == []
    assert _foreign_functions() == []


def _un_patient_name(path: Path) -> Path:
    """A file whose Patient Name is stored with VR UN (a known tag)."""
    ds = pydicom.dataset.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4"
    ds.add(pydicom.dataelem.DataElement(0x00100010, "OB", b"Doe^John"))
    ds[0x00100010].VR = "UN"
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dsig_and_plain_pydicom_read_side_by_side_in_threads(tmp_path: Path) -> None:
    """dsig keeps UN as stored while plain pydicom, in other threads at the same time, keeps
    its own default (UN replaced by the dictionary VR)."""
    path = _un_patient_name(tmp_path / "un.dcm")

    def plain() -> str:
        return str(pydicom.dcmread(path)[0x00100010].VR)

    def strict() -> str:
        return str(read_dicom(path)[0x00100010].VR)

    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = [pool.submit(fn) for _ in range(25) for fn in (plain, strict)]
        seen = [run.result() for run in runs]
    assert seen == ["PN", "UN"] * 25
