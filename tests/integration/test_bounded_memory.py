"""Large values are streamed from the file: same bytes as in memory, memory flat in file size."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import cast

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dsig.encoding.reader import read_dicom
from dsig.encoding.values import DEFER_SIZE, is_deferred, stored
from dsig.encoding.walk import is_signable
from dsig.encoding.writer import Encoding, write_dataset_file
from dsig.errors import DicomFormatError
from dsig.signature.mac_stream import write_mac_stream
from tests.conftest import CorePki
from tests.helpers.bigfile import BigValue, write_big_file

REPO = Path(__file__).resolve().parents[2]

# Odd-length OB (Encapsulated Document) and big endian OF (Float Pixel Data) exercise padding
# and 4-byte swapping of streamed values.
EXTRA = (
    BigValue(0x00420011, "OB", DEFER_SIZE * 2 + 1),
    BigValue(0x7FE00008, "OF", DEFER_SIZE + 4096),
)


def mac_bytes(ds: Dataset, *, old_format: bool = False) -> bytes:
    from dsig.signature.mac_stream import StreamOptions

    out = io.BytesIO()
    tags = [t for t in ds.keys() if is_signable(ds, t)]
    item = Dataset()
    item.add_new(0x04000005, "US", 1)
    write_mac_stream(ds, tags, item, [out.write], options=StreamOptions(old_format=old_format))
    return out.getvalue()


def written(ds: Dataset, ts: str) -> bytes:
    out = io.BytesIO()
    write_dataset_file(ds, out, Encoding(ts))
    return out.getvalue()


@pytest.mark.parametrize(
    ("ts", "encapsulated"),
    [
        (ExplicitVRLittleEndian, False),
        (ExplicitVRBigEndian, False),
        (ImplicitVRLittleEndian, False),
        (ExplicitVRLittleEndian, True),
    ],
)
def test_streamed_values_equal_in_memory(tmp_path: Path, ts: str, encapsulated: bool) -> None:
    extra = () if ts == ImplicitVRLittleEndian else EXTRA  # OF/OB would be UN-free anyway
    path = write_big_file(
        tmp_path / "f.dcm",
        frames=3,
        rows=512 if encapsulated else 256,
        cols=256,
        transfer_syntax=ts,
        encapsulated=encapsulated,
        extra=extra,
    )
    deferred = read_dicom(path)
    whole = read_dicom(path, defer=False)
    assert is_deferred(stored(deferred, 0x7FE00010, keep_deferred=True))
    assert not is_deferred(stored(whole, 0x7FE00010, keep_deferred=True))
    assert mac_bytes(deferred) == mac_bytes(whole)
    if encapsulated:
        assert mac_bytes(deferred, old_format=True) == mac_bytes(whole, old_format=True)
        targets = [ts]
    else:
        targets = [
            ExplicitVRLittleEndian,
            ExplicitVRBigEndian,
            ImplicitVRLittleEndian,
            DeflatedExplicitVRLittleEndian,
        ]
    for target in targets:
        assert written(deferred, target) == written(whole, target), target
    # the streamed value never became a loaded element
    assert is_deferred(stored(deferred, 0x7FE00010, keep_deferred=True))


def test_truncated_deferred_values_are_errors(tmp_path: Path) -> None:
    path = write_big_file(tmp_path / "f.dcm", frames=4, rows=256, cols=256)
    with path.open("r+b") as fp:
        fp.truncate(path.stat().st_size - 10)
    with pytest.raises(DicomFormatError, match="truncated"):
        read_dicom(path)
    enc = write_big_file(tmp_path / "e.dcm", frames=4, rows=512, cols=512, encapsulated=True)
    with enc.open("r+b") as fp:
        fp.truncate(enc.stat().st_size - 100)
    with pytest.raises(DicomFormatError, match="truncated"):
        read_dicom(enc)


_MEASURE = """
import os, subprocess, sys, json
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(p.pid, 0)
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}))
"""


def peak(*args: object) -> tuple[int, int]:
    """(exit code, peak RSS in MiB) of one ``python -m dsig`` run."""
    cmd = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "dsig", *map(str, args)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, cwd=REPO)
    data = json.loads(out.stdout)
    return int(data["rc"]), int(data["maxrss_kib"]) // 1024


def test_sign_and_verify_200_mib_in_bounded_memory(core_pki: CorePki, tmp_path: Path) -> None:
    started = time.monotonic()
    src = write_big_file(tmp_path / "big.dcm", frames=400)  # 400 x 512 x 512 x 2 = 200 MiB
    assert src.stat().st_size > 200 * 2**20
    out = tmp_path / "signed.dcm"
    rc, sign_mib = peak(
        "sign", src, out, "--key", core_pki.rsa_key, "--cert", core_pki.rsa_cert, "--no-password"
    )
    assert rc == 0
    assert out.stat().st_size > src.stat().st_size
    src.unlink()
    rc, verify_mib = peak(
        "verify", out, "--trust-store", core_pki.root, "--untrusted", core_pki.intermediate
    )
    assert rc == 0
    assert sign_mib < 100, f"sign peaked at {sign_mib} MiB"
    assert verify_mib < 100, f"verify peaked at {verify_mib} MiB"
    # a flipped byte deep in the pixel data is found
    with out.open("r+b") as fp:
        fp.seek(150 * 2**20)
        byte = fp.read(1)
        fp.seek(150 * 2**20)
        fp.write(bytes([byte[0] ^ 1]))
    rc, _ = peak("verify", out, "--integrity-only")
    assert rc == 1
    assert time.monotonic() - started < 60


def test_read_ahead_yields_the_exact_bytes_and_reports_truncation(tmp_path: Path) -> None:
    import hashlib

    from dsig.encoding.values import READ_AHEAD_MIN, read_range

    data = os.urandom(READ_AHEAD_MIN + 12345)
    f = tmp_path / "blob"
    f.write_bytes(b"head" + data)
    with f.open("rb", buffering=0) as fp:
        h = hashlib.sha256()
        for chunk in read_range(fp, 4, len(data)):
            h.update(chunk)
        assert h.digest() == hashlib.sha256(data).digest()
        kept = list(read_range(fp, 4, len(data), reuse=False))  # fresh chunks may be kept
        assert all(isinstance(c, bytes) for c in kept) and b"".join(kept) == data
        with pytest.raises(DicomFormatError, match="truncated"):
            for _ in read_range(fp, 4, len(data) + 10):
                pass
        chunks = cast(Generator[bytes | memoryview, None, None], read_range(fp, 4, len(data)))
        next(chunks)
        chunks.close()  # stopping early ends the reader thread
    import threading

    assert not [t for t in threading.enumerate() if t.name == "dsig-read-ahead"]


@pytest.mark.parametrize("encapsulated", [False, True])
def test_kernel_copy_writes_the_same_bytes(
    tmp_path: Path, encapsulated: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsig.encoding.writer import save, target_encoding

    path = write_big_file(
        tmp_path / "f.dcm", frames=3, rows=512, cols=256, encapsulated=encapsulated
    )
    ds = read_dicom(path)
    calls: list[int] = []
    real = os.copy_file_range

    def counting(*args: int) -> int:
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(os, "copy_file_range", counting)
    out = tmp_path / "out.dcm"
    save(ds, out, target_encoding(ds, "same", None))
    assert calls  # the kernel copied the values left in the file
    assert out.read_bytes() == written(
        read_dicom(path, defer=False), str(ds.file_meta.TransferSyntaxUID)
    )
    # a kernel that refuses (EXDEV, ...) falls back to reading
    monkeypatch.setattr(
        os, "copy_file_range", lambda *a: (_ for _ in ()).throw(OSError(18, "EXDEV"))
    )
    save(ds, out, target_encoding(ds, "same", None))
    assert out.read_bytes() == written(
        read_dicom(path, defer=False), str(ds.file_meta.TransferSyntaxUID)
    )
