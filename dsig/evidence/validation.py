"""Validation data kept with evidence: the TSA certificates, CRLs and OCSP responses as they
were when a timestamp was made, so that it can still be checked after the TSA certificate
expired and its CA stopped publishing.

Stored in the record's ``cryptoInfos`` as two CAdES attributes (RFC 5126): ``certValues``
(SEQUENCE OF Certificate) and ``revocationValues`` (CRLs; OCSP responses as
BasicOCSPResponse). Everything in them is signed by its issuer, so keeping it outside the
timestamped data loses nothing.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from asn1crypto import core, ocsp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from dsig.errors import DsigError
from dsig.evidence.asn1 import (
    CERT_VALUES_OID,
    REVOCATION_VALUES_OID,
    Attribute,
    CertificateValues,
    RevocationValues,
    tlv,
)
from pki.policy import RevocationMode, TrustPolicy
from tokens.faults import BadEnvironmentError

_MAX_CRL = 16 << 20


class ValidationDataError(DsigError, BadEnvironmentError, ValueError):
    """Validation data that cannot be fetched or decoded."""


@dataclass(frozen=True)
class ValidationData:
    """DER certificates, CRLs and (whole) OCSP responses; order kept, duplicates dropped."""

    certificates: tuple[bytes, ...] = ()
    crls: tuple[bytes, ...] = ()
    ocsp_responses: tuple[bytes, ...] = ()

    def merge(self, other: ValidationData) -> ValidationData:
        """Both sets, without duplicates."""
        return ValidationData(
            tuple(dict.fromkeys((*self.certificates, *other.certificates))),
            tuple(dict.fromkeys((*self.crls, *other.crls))),
            tuple(dict.fromkeys((*self.ocsp_responses, *other.ocsp_responses))),
        )

    def x509_certificates(self) -> list[x509.Certificate]:
        """The certificates, decoded (undecodable ones are skipped)."""
        out = []
        for der in self.certificates:
            try:
                out.append(x509.load_der_x509_certificate(der))
            except ValueError:
                continue
        return out

    def to_attributes(self) -> list[Attribute]:
        """The cryptoInfos attributes (none for empty data)."""
        attrs = []
        if self.certificates:
            attrs.append(_attribute(CERT_VALUES_OID, tlv(0x30, b"".join(self.certificates))))
        if self.crls or self.ocsp_responses:
            body = b""
            if self.crls:
                body += tlv(0xA0, tlv(0x30, b"".join(self.crls)))
            if self.ocsp_responses:
                basics = b"".join(_basic(r) for r in self.ocsp_responses)
                body += tlv(0xA1, tlv(0x30, basics))
            attrs.append(_attribute(REVOCATION_VALUES_OID, tlv(0x30, body)))
        return attrs

    @classmethod
    def from_attributes(cls, attrs: Iterable[Attribute]) -> ValidationData:
        """Read certValues / revocationValues; other attributes are ignored."""
        certs: list[bytes] = []
        crls: list[bytes] = []
        ocsps: list[bytes] = []
        for attr in attrs:
            oid = attr["type"].dotted
            for value in attr["values"]:
                raw = value.dump()
                if oid == CERT_VALUES_OID:
                    certs.extend(c.dump() for c in CertificateValues.load(raw))
                elif oid == REVOCATION_VALUES_OID:
                    rev = RevocationValues.load(raw)
                    if rev["crl_vals"].native is not None:
                        crls.extend(c.dump() for c in rev["crl_vals"])
                    if rev["ocsp_vals"].native is not None:
                        ocsps.extend(_wrap_basic(b.dump()) for b in rev["ocsp_vals"])
        return cls(tuple(dict.fromkeys(certs)), tuple(dict.fromkeys(crls)), tuple(ocsps))


def _attribute(oid: str, value_der: bytes) -> Attribute:
    return Attribute({"type": oid, "values": [core.Any.load(value_der)]})


def _basic(response_der: bytes) -> bytes:
    """The BasicOCSPResponse inside a successful OCSPResponse."""
    response = ocsp.OCSPResponse.load(response_der)
    if response["response_status"].native != "successful":
        raise ValidationDataError("an OCSP response to keep is not 'successful'")
    return bytes(response["response_bytes"]["response"].parsed.dump())


def _wrap_basic(basic_der: bytes) -> bytes:
    """An OCSPResponse (status successful) around a BasicOCSPResponse, as pki reads them."""
    return bytes(
        ocsp.OCSPResponse(
            {
                "response_status": "successful",
                "response_bytes": {
                    "response_type": "basic_ocsp_response",
                    "response": ocsp.BasicOCSPResponse.load(basic_der),
                },
            }
        ).dump()
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def crl_urls(cert: x509.Certificate) -> list[str]:
    """HTTP(S) CRL distribution points of a certificate."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    urls = []
    for point in points:
        for name in point.full_name or []:
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith(
                ("http://", "https://")
            ):
                urls.append(name.value)
    return urls


def fetch_crl(url: str, timeout: float) -> bytes:
    """GET one CRL (DER or PEM); raises :class:`ValidationDataError`."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http/https only)
            body: bytes = response.read(_MAX_CRL + 1)
    except (OSError, ValueError) as e:
        raise ValidationDataError(f"cannot fetch the CRL {url}: {e}") from None
    if len(body) > _MAX_CRL:
        raise ValidationDataError(f"the CRL at {url} is larger than 16 MiB")
    try:
        if body.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(body).public_bytes(Encoding.DER)
        return x509.load_der_x509_crl(body).public_bytes(Encoding.DER)
    except ValueError:
        raise ValidationDataError(f"{url} did not return a CRL") from None


def collect(
    chain: Sequence[x509.Certificate],
    *,
    policy: TrustPolicy | None = None,
    online: bool = False,
    timeout: float = 10.0,
) -> ValidationData:
    """Validation data for a TSA ``chain`` (leaf first): the certificates, the CRLs and OCSP
    responses the policy supplies, and with ``online`` the CRLs the certificates point to."""
    crls = list(policy.crls) if policy is not None else []
    ocsps = list(policy.ocsp_responses) if policy is not None else []
    if online:
        for cert in chain:
            if cert.issuer == cert.subject:
                continue  # an anchor is not checked for revocation
            for url in crl_urls(cert):
                crls.append(fetch_crl(url, timeout))
    return ValidationData(
        tuple(dict.fromkeys(_der(c) for c in chain)),
        tuple(dict.fromkeys(crls)),
        tuple(dict.fromkeys(ocsps)),
    )


def policy_with(policy: TrustPolicy, data: ValidationData) -> TrustPolicy:
    """``policy`` plus the kept certificates (as intermediates) and revocation data, offline.

    Revocation: the policy's explicit mode, else hard-fail (a certificate that names a CRL or
    OCSP responder needs kept data for it).
    """
    roots = {_der(c) for c in policy.trust_roots}
    extra = [c for c in data.x509_certificates() if _der(c) not in roots]
    return dataclasses.replace(
        policy,
        intermediates=(*policy.intermediates, *extra),
        crls=tuple(dict.fromkeys((*policy.crls, *data.crls))),
        ocsp_responses=tuple(dict.fromkeys((*policy.ocsp_responses, *data.ocsp_responses))),
        revocation=policy.revocation or RevocationMode.HARD_FAIL,
        online=False,
    )
