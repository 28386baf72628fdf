"""Offline revocation material: load CRLs and OCSP responses, look a serial up in CRLs.

The path validator does the authoritative revocation checks; the look-ups here cover what it
leaves out by design (CRLs supplied for certificates that declare no distribution point, and
revocations dated after the validation moment, reported as notes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from pki.certs import iter_dir_files, list_dir, read_path
from pki.errors import CertificateLoadError
from tokens.certificates import PEM_BLOCK

#: How far in the future a CRL's thisUpdate or an OCSP response's producedAt/thisUpdate may
#: lie (clock skew between an issuer and us); later ones are refused, supplied or fetched.
FUTURE_SKEW = dt.timedelta(minutes=5)


def _after(when: dt.datetime | None, limit: dt.datetime) -> bool:
    return when is not None and when > limit


def crl_future_date(der: bytes, now: dt.datetime | None = None) -> dt.datetime | None:
    """The thisUpdate of the DER CRL ``der`` when it lies beyond ``now`` + :data:`FUTURE_SKEW`
    (no CRL can honestly be dated so), else None (also for what is not a DER CRL)."""
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError:
        return None
    limit = (now or dt.datetime.now(dt.UTC)) + FUTURE_SKEW
    return crl.last_update_utc if _after(crl.last_update_utc, limit) else None


def ocsp_future_date(der: bytes, now: dt.datetime | None = None) -> dt.datetime | None:
    """Like :func:`crl_future_date` for a successful DER OCSP response (producedAt, or the
    thisUpdate of one of its answers)."""
    try:
        response = ocsp.load_der_ocsp_response(der)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return None
        dates = [response.produced_at_utc, *(r.this_update_utc for r in response.responses)]
    except ValueError:
        return None
    limit = (now or dt.datetime.now(dt.UTC)) + FUTURE_SKEW
    return next((d for d in dates if _after(d, limit)), None)


def split_future_dated(
    crls: Iterable[bytes], responses: Iterable[bytes], now: dt.datetime | None = None
) -> tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[str, ...]]:
    """(CRLs, OCSP responses) usable, and one message per one refused for being dated in
    the future: the same rule as for fetched ones, whatever the validation moment."""
    kept_crls: list[bytes] = []
    kept_ocsp: list[bytes] = []
    refused: list[str] = []
    for der in crls:
        when = crl_future_date(der, now)
        if when is None:
            kept_crls.append(der)
        else:
            issuer = x509.load_der_x509_crl(der).issuer.rfc4514_string()
            refused.append(f"CRL of {issuer} is dated in the future ({when.isoformat()})")
    for der in responses:
        when = ocsp_future_date(der, now)
        if when is None:
            kept_ocsp.append(der)
        else:
            refused.append(f"OCSP response is dated in the future ({when.isoformat()})")
    return tuple(kept_crls), tuple(kept_ocsp), tuple(refused)


def parse_crls(data: bytes, *, source: str = "<data>") -> tuple[bytes, ...]:
    """DER encodings of the CRLs in ``data`` (PEM ``X509 CRL`` blocks or one DER CRL)."""
    try:
        if b"-----BEGIN" in data:
            crls = [
                x509.load_pem_x509_crl(m.group(0)).public_bytes(serialization.Encoding.DER)
                for m in PEM_BLOCK.finditer(data)
                if m.group(1) == b"X509 CRL"
            ]
        else:
            crls = [x509.load_der_x509_crl(data).public_bytes(serialization.Encoding.DER)]
    except ValueError as e:
        raise CertificateLoadError(f"{source}: not a CRL file ({str(e).splitlines()[0]})") from e
    if not crls:
        raise CertificateLoadError(f"{source}: no CRL found")
    return tuple(crls)


def parse_ocsp_response(data: bytes, *, source: str = "<data>") -> bytes:
    """Check that ``data`` is a DER OCSP response and return it."""
    try:
        ocsp.load_der_ocsp_response(data)
    except ValueError as e:
        raise CertificateLoadError(f"{source}: not a DER OCSP response") from e
    return data


def load_crls(*paths: Path) -> tuple[bytes, ...]:
    """Load CRLs (PEM or DER) from files or directories; returns DER encodings."""
    out: list[bytes] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files = list_dir(path, "CRL")
            found = [c for f in files for c in parse_crls(read_path(f, "CRL"), source=str(f))]
            if not found:
                raise CertificateLoadError(f"CRL directory {path} holds no CRL")
            out.extend(found)
        elif path.exists():
            out.extend(parse_crls(read_path(path, "CRL"), source=str(path)))
        else:
            raise CertificateLoadError(f"CRL {path} does not exist")
    return tuple(dict.fromkeys(out))


def load_ocsp_responses(*paths: Path) -> tuple[bytes, ...]:
    """Load DER OCSP responses from files or directories."""
    out: list[bytes] = []
    for path in paths:
        path = Path(path)
        files = iter_dir_files(path, "OCSP response") if path.is_dir() else [path]
        for f in files:
            if not f.exists():
                raise CertificateLoadError(f"OCSP response {f} does not exist")
            out.append(parse_ocsp_response(read_path(f, "OCSP response"), source=str(f)))
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class RevocationEntry:
    """A revocation found in a CRL or OCSP response whose signature was checked."""

    revoked_at: dt.datetime
    reason: str | None
    this_update: dt.datetime


def _signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | dsa.DSAPublicKey):
        return False
    try:
        return crl.is_signature_valid(key)
    except (InvalidSignature, ValueError, TypeError):
        return False


def crl_lookup(
    cert: x509.Certificate, issuer: x509.Certificate, crls: Iterable[bytes]
) -> tuple[bool, RevocationEntry | None]:
    """Search ``crls`` for ``cert``: (a CRL of the issuer was found, the revocation entry).

    Only CRLs issued by ``issuer`` (name and signature) count; delta and indirect CRLs are
    left to the path validator.
    """
    found, entry = crl_find(cert, issuer, crls)
    return found is not None, entry


def crl_find(
    cert: x509.Certificate, issuer: x509.Certificate, crls: Iterable[bytes]
) -> tuple[bytes | None, RevocationEntry | None]:
    """Like :func:`crl_lookup`, naming the DER CRL that covered ``cert`` (None: none did)."""
    covered: bytes | None = None
    for der in crls:
        try:
            crl = x509.load_der_x509_crl(der)
        except ValueError:
            continue
        if crl.issuer != cert.issuer or not _signed_by(crl, issuer):
            continue
        covered = covered or der
        entry = _revoked_entry(crl, cert.serial_number)
        if entry is not None:
            return der, RevocationEntry(
                entry.revocation_date_utc, _reason(entry), crl.last_update_utc
            )
    return covered, None


def _revoked_entry(
    crl: x509.CertificateRevocationList, serial: int
) -> x509.RevokedCertificate | None:
    try:
        return crl.get_revoked_certificate_by_serial_number(serial)
    except ValueError:  # negative serials (invalid, yet seen) are not indexable
        return next((e for e in crl if e.serial_number == serial), None)


def _reason(entry: x509.RevokedCertificate) -> str | None:
    try:
        ext = entry.extensions.get_extension_for_class(x509.CRLReason)
    except x509.ExtensionNotFound:
        return None
    return ext.value.reason.value


def declares_revinfo(cert: x509.Certificate) -> bool:
    """Whether ``cert`` names a CRL distribution point or an OCSP responder."""
    try:
        cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        return True
    except x509.ExtensionNotFound:
        pass
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return False
    return any(d.access_method == AuthorityInformationAccessOID.OCSP for d in aia)


def revocation_message(
    cert: x509.Certificate, revoked_at: dt.datetime, reason: str | None, source: str
) -> str:
    """One-line message for a revoked certificate."""
    why = f", reason {reason}" if reason else ""
    return (
        f"{cert.subject.rfc4514_string()} (serial {cert.serial_number:x}) was revoked on "
        f"{revoked_at.isoformat()}{why} ({source})"
    )


def ocsp_covers(cert: x509.Certificate, responses: Iterable[bytes]) -> bool:
    """Whether a successful stored OCSP response names ``cert``'s serial number."""
    for der in responses:
        try:
            response = ocsp.load_der_ocsp_response(der)
            if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
                continue
            if any(r.serial_number == cert.serial_number for r in response.responses):
                return True
        except ValueError:
            continue
    return False


def _verify_signed(
    key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> bool:
    if algorithm is None:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _ocsp_signer_key(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> object | None:
    """The key that may sign ``response`` for ``issuer``: the CA's own, or a delegated
    responder's (issued by the CA, EKU OCSPSigning, carried in the response)."""
    issuer_key_id = x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest
    if response.responder_key_hash == issuer_key_id or response.responder_name == issuer.subject:
        return issuer.public_key()
    for cert in response.certificates:
        try:
            cert.verify_directly_issued_by(issuer)
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
            return cert.public_key()
    return None


@dataclass(frozen=True)
class OcspStatus:
    """What an authentic OCSP response says about one certificate."""

    response: bytes  # the DER response it came from
    revoked: RevocationEntry | None  # None: good
    unknown: bool = False


def ocsp_status(
    cert: x509.Certificate, issuer: x509.Certificate, responses: Iterable[bytes]
) -> OcspStatus | None:
    """The status an authentic OCSP response gives ``cert``, if any does.

    Authentic: SHA-1 CertID matching ``issuer``'s key, signed by the issuer or by its
    delegated responder.
    """
    key_id = x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest
    for der in responses:
        try:
            response = ocsp.load_der_ocsp_response(der)
            if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
                continue
            key = _ocsp_signer_key(response, issuer)
            if key is None or not _verify_signed(
                key,
                response.signature,
                response.tbs_response_bytes,
                response.signature_hash_algorithm,
            ):
                continue
            for single in response.responses:
                if not (
                    single.serial_number == cert.serial_number
                    and isinstance(single.hash_algorithm, hashes.SHA1)
                    and single.issuer_key_hash == key_id
                ):
                    continue
                status = single.certificate_status
                if status is ocsp.OCSPCertStatus.REVOKED and single.revocation_time_utc:
                    reason = single.revocation_reason
                    entry = RevocationEntry(
                        single.revocation_time_utc,
                        reason.value if reason else None,
                        single.this_update_utc,
                    )
                    return OcspStatus(der, entry)
                return OcspStatus(der, None, unknown=status is ocsp.OCSPCertStatus.UNKNOWN)
        except ValueError:
            continue
    return None


def ocsp_revocation(
    cert: x509.Certificate, issuer: x509.Certificate, responses: Iterable[bytes]
) -> RevocationEntry | None:
    """The revocation an authentic OCSP response reports for ``cert``, if any.

    Used only to recognise "revoked after the validation moment".
    """
    status = ocsp_status(cert, issuer, responses)
    return status.revoked if status is not None else None
