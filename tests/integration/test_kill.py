"""Data safety under SIGKILL: a large sign killed at random moments never damages the input and
never leaves a partial file under the output name (issue 7).

One ~100 MiB object is signed once to learn how long a run takes; then KILL_POINTS runs are
SIGKILLed at random moments spread over that duration, alternating ``--in-place`` and
``INPUT OUTPUT``. After each kill: the input is byte-identical to the original (or, for
``--in-place`` when the rename already happened, a complete signed file), and the output name
holds nothing or a complete signed file. Temp files of killed runs (``.NAME.*.dsig-tmp``, beside
the target) are the only debris allowed; they never carry the output's name.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from dsig.encoding.reader import read_dicom
from dsig.operations.verifier import VerifyOptions, verify_file
from dsig.results import Indication
from dsig.signature.model import find_signatures
from tests.conftest import CorePki

ROOT = Path(__file__).resolve().parents[2]
KILL_POINTS = 10
ROWS = COLUMNS = 512
FRAMES = 200  # 512 * 512 * 2 bytes * 200 frames = 100 MiB of pixel data


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def make_large_ct(path: Path) -> Path:
    """A multi-frame CT of ~100 MiB, written in chunks (explicit VR LE, pixel data last)."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.PatientName = "Large^Object"
    ds.PatientID = "KILL-TEST"
    ds.Rows, ds.Columns, ds.NumberOfFrames = ROWS, COLUMNS, FRAMES
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    length = ROWS * COLUMNS * 2 * FRAMES
    rng = random.Random(7)
    block = bytes(rng.getrandbits(8) for _ in range(1 << 16)) * 16  # 1 MiB, cheap to build
    with path.open("ab") as fp:
        fp.write(struct.pack("<HH", 0x7FE0, 0x0010) + b"OW\x00\x00" + struct.pack("<I", length))
        for _ in range(length // len(block)):
            fp.write(block)
    return path


def _sign_cmd(core_pki: CorePki, src: Path, dst: Path | None) -> list[str]:
    target = ["--in-place"] if dst is None else [str(dst)]
    return [sys.executable, "-m", "dsig", "sign", str(src), *target, "--key", str(core_pki.rsa_key),
            "--cert", str(core_pki.rsa_cert), "--no-password"]  # fmt: skip


def _complete_and_valid(path: Path) -> bool:
    result = verify_file(path, VerifyOptions(integrity_only=True))
    return result.indication is Indication.VALID and len(result.signatures) == 1


def _size_without_signature_uid(path: Path) -> int:
    """File size minus the stored Digital Signature UID: every signed output of one input has
    the same value (generated UIDs differ in length, 0-padded to even; the rest is fixed)."""
    (ref,) = find_signatures(read_dicom(path))
    return path.stat().st_size - (len(ref.uid) + len(ref.uid) % 2)


@pytest.mark.slow
def test_sigkill_during_large_sign_never_damages_data(core_pki: CorePki, tmp_path: Path) -> None:
    original = make_large_ct(tmp_path / "original.dcm")
    assert original.stat().st_size > 100 * (1 << 20)
    original_digest = _digest(original)

    # Complete runs (the second with a warm cache), to learn the duration and the output size.
    reference = tmp_path / "reference.dcm"
    # Each run also times its write phase (temp output seen -> exit), which bounds the
    # "writing" kill moments: a fixed window let fast machines finish before the kill.
    durations, writes = [], []
    for _ in range(2):
        reference.unlink(missing_ok=True)
        started = time.monotonic()
        child = subprocess.Popen(_sign_cmd(core_pki, original, reference), cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        seen = None
        while child.poll() is None:
            if seen is None and any(p.name.endswith(".dsig-tmp") for p in tmp_path.iterdir()):
                seen = time.monotonic()
            time.sleep(0.002)
        ended = time.monotonic()
        assert child.wait(timeout=300) == 0, child.stderr.read() if child.stderr else ""
        durations.append(ended - started)
        writes.append(ended - (seen if seen is not None else started))
    duration, write_phase = min(durations), min(writes)
    complete_size = _size_without_signature_uid(reference)
    assert _complete_and_valid(reference)
    reference.unlink()

    # Half the kills at a random moment of the run, half at a random moment after the temp
    # output appeared (the write / fsync / rename phase).
    rng = random.Random(int(os.environ.get("DSIG_KILL_SEED", "2026")))
    plan = [("timer", rng.uniform(0.05, duration * 0.8)) for _ in range(KILL_POINTS // 2)]
    window = min(0.25, write_phase * 0.6)
    plan += [("writing", rng.uniform(0.0, window)) for _ in range(KILL_POINTS - len(plan))]
    outcomes = []
    for n, (phase, moment) in enumerate(plan):
        in_place = n % 2 == 0
        work = tmp_path / f"run{n}"
        work.mkdir()
        if in_place:
            src, dst = work / "study.dcm", None
            shutil.copyfile(original, src)
            name = src
        else:
            src, dst = original, work / "signed.dcm"
            name = dst
        child = subprocess.Popen(_sign_cmd(core_pki, src, dst), cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        if phase == "writing":
            deadline = time.monotonic() + 30
            while child.poll() is None and time.monotonic() < deadline:
                if any(p.name.endswith(".dsig-tmp") for p in work.iterdir()):
                    break
                time.sleep(0.002)
        time.sleep(moment)
        killed = child.poll() is None
        if killed:
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)

        assert _digest(original) == original_digest, f"kill {n}: the original changed"
        debris = sorted(p.name for p in work.iterdir() if p.name.endswith(".dsig-tmp"))
        assert all(p.startswith(f".{name.name}.") for p in debris), debris
        if in_place:
            if _digest(src) == original_digest:
                outcome = "original kept"
            else:
                complete = _size_without_signature_uid(src) == complete_size
                assert complete and _complete_and_valid(src), (
                    f"kill {n} at {moment:.2f}s: --in-place left a damaged input"
                )
                outcome = "replaced by the complete signed file"
        elif dst is not None and dst.exists():
            assert _size_without_signature_uid(dst) == complete_size and _complete_and_valid(dst), (
                f"kill {n} at {moment:.2f}s: partial output under the output name"
            )
            outcome = "complete output"
        else:
            outcome = "no output"
        if debris:
            outcome += f", killed while writing ({len(debris)} temp file left beside it)"
        mode = "in-place" if in_place else "output"
        outcomes.append((phase, round(moment, 3), mode, killed, outcome))
        shutil.rmtree(work)
    # The kills must really land inside runs, not after them.
    assert sum(1 for *_x, killed, _o in outcomes if killed) >= KILL_POINTS - 3, outcomes
    print(f"\nSIGKILL points (duration {duration:.2f}s, write phase {write_phase:.2f}s):",
          *outcomes, sep="\n  ")  # fmt: skip
