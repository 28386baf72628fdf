"""``dsig serve --layout patient-study-series`` with hostile IDs, end to end on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.uid import UID

from tests.helpers import net

HOSTILE_PATIENTS = ["../../../escape", "..", "/etc/passwd", "\x1b[2Jclear", "", "A/B"]


def _object(path: Path, index: int, patient: str, sop_uid: str | None = None) -> Path:
    net.small_object(path, index=index)
    ds = pydicom.dcmread(path)
    ds.PatientID = patient
    if sop_uid is not None:
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_hostile_ids_stay_inside_the_store(tmp_path: Path) -> None:
    files = [_object(tmp_path / f"in/{i}.dcm", i, p) for i, p in enumerate(HOSTILE_PATIENTS)]
    server = net.start_server(
        tmp_path / "node", "--integrity-only", "--layout", "patient-study-series",
        "--shutdown-grace", "1",
    )  # fmt: skip
    try:
        proc = net.run_dsig(
            "send", "127.0.0.1", str(server.port), *map(str, files), "--called-ae", "DSIGTEST"
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = server.wait_audit(len(files))
        assert [line["action"] for line in lines] == ["stored"] * len(files)
        store = server.store.resolve()
        stored = sorted(p for p in store.rglob("*.dcm") if ".dsig-" not in str(p))
        assert len(stored) == len(files)
        for path, line in zip(sorted(stored), sorted(lines, key=lambda x: x["path"]), strict=True):
            assert path.resolve().is_relative_to(store)
            depth = path.relative_to(store).parts
            assert len(depth) == 4, depth  # patient / study / series / UID.dcm
            assert all(not part.startswith(".") for part in depth)
            assert line["path"] in {str(p) for p in server.store.rglob("*.dcm")}
        assert not (tmp_path / "escape").exists() and not list(tmp_path.glob("*escape*"))
        # each object in the series folder named after its own data set
        for original in files:
            ds = pydicom.dcmread(original)
            (match,) = [p for p in stored if p.name == f"{ds.SOPInstanceUID}.dcm"]
            assert match.parent.name == ds.SeriesInstanceUID
            assert match.parent.parent.name == ds.StudyInstanceUID
            assert net.dataset_bytes(match) == net.dataset_bytes(original)
        # the same SOP Instance UID under another patient is still a duplicate (0x0111)
        first = pydicom.dcmread(files[0])
        impostor = _object(tmp_path / "impostor.dcm", 99, "OTHER", str(first.SOPInstanceUID))
        again = net.run_dsig(
            "send", "127.0.0.1", str(server.port), str(impostor), str(files[0]),
            "--called-ae", "DSIGTEST",
        )  # fmt: skip
        assert again.returncode == 1, again.stdout
        assert "0x0111" in again.stdout
        actions = [line["action"] for line in server.wait_audit(len(files) + 2)]
        assert actions[-2:] == ["refused", "duplicate"]
        assert not (store / "OTHER").exists()
    finally:
        assert server.stop() == 0, server.log()
