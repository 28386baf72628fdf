"""Timestamping just-signed data sets (``dsig sign --tsa`` / ``--timestamp-query``) and DCMTK's
"UID file" (the small DICOM file ``dcmsign +ts`` writes to name a signature)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ImplicitVRLittleEndian, generate_uid

from dsig.encoding.reader import read_dicom
from dsig.encoding.values import raw_text
from dsig.encoding.writer import Encoding, atomic_output, save
from dsig.errors import DicomFormatError
from dsig.signature.model import find_signature
from dsig.timestamp.dicom import insert_token, timestamped_bytes
from dsig.timestamp.rfc3161 import QueryOptions, build_query

if TYPE_CHECKING:
    from dsig.timestamp.tsa_client import TsaOptions

#: DCMTK's private SOP Class of the "UID file" written by ``dcmsign +ts``.
UID_FILE_SOP_CLASS = "1.2.276.0.7230010.3.1.0.1"


def write_uid_file(path: Path, uid: str) -> None:
    """DCMTK's UID file (``dcmsign +ts q u``): a tiny DICOM file with Digital Signature UID."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(UID_FILE_SOP_CLASS)
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.add_new(0x04000100, "UI", uid)
    save(ds, path, Encoding(ImplicitVRLittleEndian))


def read_uid_file(path: Path) -> str:
    """Digital Signature UID from a DCMTK UID file."""
    uid = raw_text(read_dicom(path), 0x04000100)
    if not uid:
        raise DicomFormatError(f"{path} holds no Digital Signature UID (0400,0100)")
    return uid


@dataclass(frozen=True)
class SignTimestamping:
    """What ``dsig sign`` does after each signature (``FileSigning.timestamp``): an online token
    from the TSAs and/or an offline query (with DCMTK's UID file)."""

    urls: tuple[str, ...]
    query: QueryOptions
    tsa: TsaOptions
    query_out: Path | None = None
    uid_out: Path | None = None

    def apply(self, ds: Dataset, uid: str) -> str:
        """Timestamp signature ``uid`` of ``ds`` (in place); returns a line for the user."""
        from dsig.timestamp.tsa_client import (  # HTTP only when stamping
            redact_url,
            request_timestamp,
        )

        item = find_signature(ds, uid).item
        data = timestamped_bytes(item)
        notes = []
        if self.urls:
            stamp = request_timestamp(self.urls, data, self.query, self.tsa)
            insert_token(item, stamp.token)
            notes.append(
                f"timestamped {stamp.info.gen_time.isoformat()} by {redact_url(stamp.url)}"
            )
        if self.query_out is not None:
            query = build_query(data, self.query)
            with atomic_output(self.query_out) as fp:
                fp.write(query.der)
            notes.append(f"timestamp query written to {self.query_out}")
            if self.uid_out is not None:
                write_uid_file(self.uid_out, uid)
        return "; ".join(notes)
