"""Sign files: read, sign, optionally timestamp, write atomically (the ``dsig sign`` pipeline).

The CLI and the storage node's sender are callers of this module; a Python program signs the
same way::

    with open_key_provider("signer.key", cert="signer.pem", password=None) as key:
        for done in sign_files([("in.dcm", "out.dcm")], key):
            print(done.info.uid)
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from dsig.encoding.read_options import DEFAULT_READ, ReadOptions
from dsig.encoding.reader import read_dicom
from dsig.encoding.tags import ROOT, ItemPath, tag_str
from dsig.encoding.values import UNDEFINED, deferred_values
from dsig.encoding.writer import (
    Encoding,
    LaterCopies,
    atomic_output,
    save,
    sync_filesystem,
    target_encoding,
    write_dataset_file,
)
from dsig.files.outputs import check_output_path, in_place_target
from dsig.operations.signer import (
    SignedInfo,
    SignOptions,
    add_signature,
    check_algorithm_policy,
    mac_transfer_syntax_for,
    prepare_signature,
    signature_length,
)
from tokens.api import KeyProvider
from tokens.faults import ToolkitError

#: Adds a timestamp to a just-signed data set (signature UID given); returns a short note.
Timestamper = Callable[[Dataset, str], str]
StrPath = str | os.PathLike[str]


@dataclass(frozen=True)
class FileSigning:
    """How each file is signed and written. ``sign.mac_transfer_syntax`` is derived per file
    from the encoding it is written in (DCMTK's rule), unless set."""

    sign: SignOptions = field(default_factory=SignOptions)
    #: The item the signature goes into (the main data set by default).
    location: ItemPath = ROOT
    #: Encoding of the output: "same", "little", "big" or "implicit"; lengths None (as read),
    #: "explicit" or "undefined".
    write_xfer: str = "same"
    lengths: str | None = None
    read: ReadOptions = DEFAULT_READ
    #: Write the MAC stream of the signature to this file (replaced atomically).
    dump: Path | None = None
    timestamp: Timestamper | None = None


@dataclass(frozen=True)
class SignedFile:
    """One file signed: where it came from and went, what was added."""

    input: Path
    output: Path
    info: SignedInfo
    mac: str
    signer: str
    #: The timestamp's note ("" without one).
    timestamp: str = ""

    def record(self) -> dict[str, Any]:
        """The file's entry in ``dsig sign --json``."""
        return {
            "input": str(self.input),
            "output": str(self.output),
            "signature_uid": self.info.uid,
            "location": self.info.location,
            "signer": self.signer,
            "mac": self.mac,
            "covered_tag_count": len(self.info.signed_tags),
            "signed_tags": [tag_str(t) for t in self.info.signed_tags],
            "normalized": list(self.info.normalized),
            "timestamp": self.timestamp or None,
        }


def sign_dataset(
    ds: Dataset,
    key: KeyProvider,
    options: SignOptions,
    encoding: Encoding,
    *,
    location: ItemPath = ROOT,
    dump: Path | None = None,
) -> SignedInfo:
    """Sign ``ds`` (in place) for writing in ``encoding``: the MAC is calculated in the
    transfer syntax DCMTK would use for that encoding."""
    if options.mac_transfer_syntax is None:
        syntax = mac_transfer_syntax_for(encoding.transfer_syntax)
        options = dataclasses.replace(options, mac_transfer_syntax=syntax)
    if dump is None:
        return add_signature(ds, key, options, location=location)
    with atomic_output(dump) as fp:
        dumping = dataclasses.replace(options, dump_sinks=(*options.dump_sinks, fp.write))
        return add_signature(ds, key, dumping, location=location)


def sign_file(
    source: StrPath,
    target: StrPath | None,
    key: KeyProvider,
    options: FileSigning = FileSigning(),
    *,
    force: bool = False,
    durable: bool = True,
) -> SignedFile:
    """Sign ``source`` into ``target`` (None: in place, a symlink's target is replaced).

    An existing ``target`` is replaced only with ``force``; it is written atomically (a
    failed signature or timestamp leaves nothing behind). Raises :class:`~dsig.DsigError`
    subclasses (and the key provider's :class:`~tokens.TokenError`).
    """
    src = Path(source)
    dst = in_place_target(src) if target is None else Path(target)
    if target is not None:
        check_output_path(dst, inputs=[src], force=force, parent_must_exist=False)
    return _sign_one(src, dst, key, options, durable=durable)


def sign_files(
    jobs: Iterable[tuple[StrPath, StrPath]],
    key: KeyProvider,
    options: FileSigning = FileSigning(),
    *,
    force: bool = False,
    workers: int = 1,
) -> Iterator[SignedFile]:
    """Sign each (input, output) pair, yielding results in order as they are done.

    Every output is checked before the first is written. Weak algorithms are refused before
    any input is read. ``workers`` > 1 signs in forked processes, for key files only (a token
    session does not survive a fork) and never with a timestamp (one TSA round trip per
    file). New files are made durable together at the end (one filesystem sync).
    """
    pairs = [(Path(src), Path(dst)) for src, dst in jobs]
    check_algorithm_policy(options.sign.mac, key.certificate, options.sign.allow_weak)
    for src, dst in pairs:
        if src != dst:
            check_output_path(dst, inputs=[src], force=force, parent_must_exist=False)
    batch = len(pairs) > 1 and all(src != dst for src, dst in pairs)

    def one(pair: tuple[Path, Path]) -> SignedFile:
        return _sign_one(pair[0], pair[1], key, options, durable=not batch)

    from tokens.files import FileKeyProvider

    forked = workers > 1 and len(pairs) > 1 and isinstance(key, FileKeyProvider)
    try:
        if forked and options.timestamp is None:
            from dsig.operations.batch import forked_map

            yield from forked_map(one, pairs, workers, expected=(ToolkitError,))
        else:
            yield from map(one, pairs)
    finally:
        made = [dst.parent for _src, dst in pairs if dst.parent.is_dir()]
        if batch and made:
            sync_filesystem(made[0])


def _sign_one(
    src: Path, dst: Path, key: KeyProvider, options: FileSigning, *, durable: bool
) -> SignedFile:
    ds = read_dicom(src, read=options.read)
    encoding = target_encoding(ds, options.write_xfer, options.lengths)
    signature_size = _streamable(ds, key, options, encoding)
    if signature_size is not None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        info = _sign_streaming(ds, dst, key, options, encoding, signature_size, durable=durable)
        return SignedFile(src, dst, info, options.sign.mac.value, _signer(key))
    info = sign_dataset(
        ds, key, options.sign, encoding, location=options.location, dump=options.dump
    )
    # Before saving: a failed timestamp leaves no half-done output behind.
    note = options.timestamp(ds, info.uid) if options.timestamp is not None else ""
    dst.parent.mkdir(parents=True, exist_ok=True)
    save(ds, dst, encoding, durable=durable)
    return SignedFile(src, dst, info, options.sign.mac.value, _signer(key), note)


def _signer(key: KeyProvider) -> str:
    return key.certificate.subject.rfc4514_string()


#: Files whose values left in the source add up to this much are written while their MAC is
#: hashed (:func:`_sign_streaming`); smaller ones are hashed, then written.
STREAM_MIN = 16 << 20


def _streamable(
    ds: Dataset, key: KeyProvider, options: FileSigning, encoding: Encoding
) -> int | None:
    """The Signature's length when ``ds`` can be written while it is hashed: large values
    left in the file, a signature whose length is known before it is made (no timestamp
    added to the item afterwards, no dump file, not deflated); else None."""
    if options.timestamp is not None or options.dump is not None or encoding.deflated:
        return None
    left = deferred_values(ds)
    # encapsulated: as long as its items say (not known before they are walked)
    encapsulated = any(e.length == UNDEFINED for e in left)
    deferred = sum(e.length for e in left if e.length != UNDEFINED)
    if deferred < STREAM_MIN and not encapsulated:
        return None
    return signature_length(key)


def _sign_streaming(
    ds: Dataset,
    dst: Path,
    key: KeyProvider,
    options: FileSigning,
    encoding: Encoding,
    signature_size: int,
    *,
    durable: bool,
) -> SignedInfo:
    """Sign and write ``ds`` with the large values copied while the MAC is hashed: the items
    go in with a placeholder Signature of the known length, the file is laid out around the
    values, a second thread copies them (in the kernel, starting their writeback) while this
    one hashes the same values; the Signature is then written over the placeholder, and the
    file fsynced and renamed as :func:`save` does. The bytes are those :func:`save` writes
    after :func:`sign_dataset`; if the Signature's length turns out different, the file is
    written again that way."""
    sign = options.sign
    if sign.mac_transfer_syntax is None:
        syntax = mac_transfer_syntax_for(encoding.transfer_syntax)
        sign = dataclasses.replace(sign, mac_transfer_syntax=syntax)
    placeholder = os.urandom(signature_size)  # found once in the encoded output, nowhere else
    pending = prepare_signature(ds, key, sign, location=options.location, placeholder=placeholder)
    with atomic_output(dst, durable=durable) as fp, LaterCopies(fp) as copies:
        found = write_dataset_file(ds, fp, encoding, copier=copies, find=placeholder)
        fp.flush()
        failed: list[BaseException] = []
        stop = threading.Event()

        def copy() -> None:
            try:
                copies.run(stop)
            except BaseException as e:  # raised in this thread below
                failed.append(e)

        worker = threading.Thread(target=copy, name="dsig-copy-values", daemon=True)
        worker.start()
        try:
            digest = pending.mac_digest()
        except BaseException:
            stop.set()  # the output is dropped: no need to finish the copy
            raise
        finally:
            _join(worker, stop)
        if failed:
            raise failed[0]
        info = pending.finish(key, digest)
        if len(found) == 1 and len(info.signature) == len(placeholder):
            os.pwrite(fp.fileno(), info.signature, found[0])
        else:  # not laid out as expected: the whole file again, as save() writes it
            fp.seek(0)
            fp.truncate()
            write_dataset_file(ds, fp, encoding)
    return info


def _join(worker: threading.Thread, stop: threading.Event) -> None:
    """Wait for the copying thread: the output's descriptor must stay open until it ends (an
    interrupt while waiting stops it within one chunk, and still waits)."""
    try:
        worker.join()
    except BaseException:
        stop.set()
        worker.join()
        raise
