"""Verify options as bytes for Dask workers on other processes or machines.

The options hold cryptography objects (certificates, CRLs, OCSP responses) that do not
pickle; a private pickler writes them as DER and rebuilds them with cryptography's loaders
(no global copyreg registration). The run's frozen clock becomes a picklable value. Workers
unpack a given blob once and keep it, so the trust cache lives as long as the worker.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import pickle
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

if TYPE_CHECKING:
    from dsig.operations.verifier import VerifyOptions


@dataclass(frozen=True)
class FrozenClock:
    """The run's "now", fixed (what :func:`dsig.operations.batch.frozen_now` does, picklable)."""

    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass(frozen=True)
class Packed:
    """Pickled options and their digest (the key workers cache them under)."""

    digest: str
    blob: bytes


def _certificate(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def _crl(der: bytes) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(der)


def _ocsp_response(der: bytes) -> ocsp.OCSPResponse:
    return ocsp.load_der_ocsp_response(der)


class _DerPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, x509.Certificate):
            return _certificate, (obj.public_bytes(Encoding.DER),)
        if isinstance(obj, x509.CertificateRevocationList):
            return _crl, (obj.public_bytes(Encoding.DER),)
        if isinstance(obj, ocsp.OCSPResponse):
            return _ocsp_response, (obj.public_bytes(Encoding.DER),)
        return NotImplemented


def pack(options: VerifyOptions) -> Packed:
    """``options`` with "now" frozen at this moment, as bytes."""
    frozen = dataclasses.replace(options, clock=FrozenClock(options.clock()))
    buf = io.BytesIO()
    _DerPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(frozen)
    blob = buf.getvalue()
    return Packed(hashlib.sha256(blob).hexdigest(), blob)


_unpacked: dict[str, VerifyOptions] = {}


def unpack(packed: Packed) -> VerifyOptions:
    """The options of ``packed``, unpickled once per process (only blobs this run's client
    produced reach a worker: the Dask cluster is trusted like the machine running dsig)."""
    options = _unpacked.get(packed.digest)
    if options is None:
        options = pickle.loads(packed.blob)  # noqa: S301 - our own pack(), see above
        _unpacked.clear()  # one run at a time per worker: drop an older run's trust cache
        _unpacked[packed.digest] = options
    return options
