"""Frozen trust policy: anchors, intermediates, revocation material and rules."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, rsa

from pki.errors import TrustConfigError

if TYPE_CHECKING:  # pki.cert_input loads asn1crypto: only when a policy holds DER input
    from pki.cert_input import CertificateInput


class RevocationMode(enum.Enum):
    """How revocation is checked for every certificate of the path (the anchor excepted).

    - ``OFF``: not checked.
    - ``SOFT_FAIL``: check what is declared or supplied; failures to get it are notes only.
    - ``HARD_FAIL``: revocation info a certificate declares (or that was supplied) must be
      obtainable, else INDETERMINATE.
    - ``REQUIRE``: every certificate needs positive revocation info (CRL or OCSP).
    """

    OFF = "off"
    SOFT_FAIL = "soft-fail"
    HARD_FAIL = "hard-fail"
    REQUIRE = "require"

    @classmethod
    def parse(cls, value: str) -> RevocationMode:
        """Parse the CLI spelling; raises :class:`TrustConfigError` on unknown values."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            choices = "|".join(m.value for m in cls)
            raise TrustConfigError(f"invalid revocation mode {value!r} (use {choices})") from None


# MD2 stays forbidden whatever the policy says: it is not in the allowable names.
WEAK_HASHES: frozenset[str] = frozenset({"md2", "md5", "sha1"})
ALLOWABLE_HASHES: frozenset[str] = frozenset({"md5", "sha1"})
MIN_KEY_BITS = 2048
_KEY_NAME = re.compile(r"^(rsa|dsa)(\d{3,5})$")


def weak_refused(message: str, name: str) -> str:
    """The one wording of a weak algorithm refused under strict checking; ``name`` is what
    the allow list (``allow_weak``) would need to accept it."""
    return f"{message}: refused under strict checking unless {name} is allowed as weak"


@dataclass(frozen=True)
class AlgorithmRule:
    """Which weak algorithms are tolerated: hashes by name, RSA/DSA key size floors."""

    allowed_hashes: frozenset[str] = frozenset()
    min_rsa_bits: int = MIN_KEY_BITS
    min_dsa_bits: int = MIN_KEY_BITS

    def allowed_names(self) -> frozenset[str]:
        """The allow-list names this rule was built from (``sha1``, ``rsa1024``, ...)."""
        names = set(self.allowed_hashes)
        if self.min_rsa_bits < MIN_KEY_BITS:
            names.add(f"rsa{self.min_rsa_bits}")
        if self.min_dsa_bits < MIN_KEY_BITS:
            names.add(f"dsa{self.min_dsa_bits}")
        return frozenset(names)

    def short_key(self, key: object) -> tuple[int, str, bool] | None:
        """For an RSA or DSA key under :data:`MIN_KEY_BITS`: its size, its allow-list name
        (``rsa1024``) and whether this rule tolerates it; None for any other key."""
        if not isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey) or key.key_size >= MIN_KEY_BITS:
            return None
        kind = "rsa" if isinstance(key, rsa.RSAPublicKey) else "dsa"
        floor = self.min_rsa_bits if kind == "rsa" else self.min_dsa_bits
        return key.key_size, f"{kind}{key.key_size}", key.key_size >= floor

    @property
    def weak_hashes(self) -> frozenset[str]:
        """Hash names that make a signature in the path WEAK_ALGORITHM."""
        return WEAK_HASHES - self.allowed_hashes

    @classmethod
    def from_names(cls, names: Iterable[str]) -> AlgorithmRule:
        """Build from allow-list names: ``sha1``, ``md5``, ``rsa1024``, ``dsa1024``...

        ``rsa<N>`` / ``dsa<N>`` lower the key-size floor to N bits. Unknown names raise
        :class:`TrustConfigError`.
        """
        hashes: set[str] = set()
        rsa_bits = dsa_bits = MIN_KEY_BITS
        for raw in names:
            name = raw.strip().lower().replace("-", "")
            match = _KEY_NAME.match(name)
            if name in ALLOWABLE_HASHES:
                hashes.add(name)
            elif match and 512 <= int(match.group(2)) <= MIN_KEY_BITS:
                bits = int(match.group(2))
                if match.group(1) == "rsa":
                    rsa_bits = min(rsa_bits, bits)
                else:
                    dsa_bits = min(dsa_bits, bits)
            else:
                raise TrustConfigError(
                    f"unknown weak algorithm {raw!r} (allowed: sha1, md5, rsa<bits>, dsa<bits>)"
                )
        return cls(frozenset(hashes), rsa_bits, dsa_bits)


SIGNING_KEY_USAGE: frozenset[str] = frozenset({"digital_signature", "non_repudiation"})
_KU_NAMES = frozenset(
    {
        "digital_signature",
        "non_repudiation",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    }
)


#: id-kp-documentSigning (RFC 9336), anyExtendedKeyUsage, id-kp-emailProtection.
DOCUMENT_SIGNING_EKU = "1.3.6.1.5.5.7.3.36"
ANY_EKU = "2.5.29.37.0"
EMAIL_PROTECTION_EKU = "1.3.6.1.5.5.7.3.4"
TIMESTAMPING_EKU = "1.3.6.1.5.5.7.3.8"
#: The EKUs that let a certificate sign DICOM when it has an EKU extension at all.
SIGNING_EKUS: frozenset[str] = frozenset({DOCUMENT_SIGNING_EKU, ANY_EKU})
EKU_NAMES: dict[str, str] = {
    "documentsigning": DOCUMENT_SIGNING_EKU,
    "anyextendedkeyusage": ANY_EKU,
    "emailprotection": EMAIL_PROTECTION_EKU,
    "timestamping": "1.3.6.1.5.5.7.3.8",
    "ocspsigning": "1.3.6.1.5.5.7.3.9",
    "serverauth": "1.3.6.1.5.5.7.3.1",
    "clientauth": "1.3.6.1.5.5.7.3.2",
    "codesigning": "1.3.6.1.5.5.7.3.3",
}
ANY_POLICY = "2.5.29.32.0"
DEFAULT_MAX_FETCHES = 16
#: Requests of one verification, all its evaluations together (signatures, timestamps,
#: evidence): a file with many signers cannot multiply ``max_fetches``.
DEFAULT_MAX_FETCHES_PER_VERIFICATION = 32
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


def parse_oid(text: str, what: str) -> str:
    """A dotted OID, or :class:`TrustConfigError` naming ``what``."""
    value = text.strip()
    if not _OID.match(value):
        raise TrustConfigError(f"{what}: {text!r} is not a dotted OID")
    return value


def parse_eku(text: str) -> str:
    """An EKU by name (``documentSigning``, ``emailProtection``, ...) or dotted OID."""
    name = text.strip().replace("-", "").replace("_", "").lower()
    return EKU_NAMES.get(name) or parse_oid(text, "extended key usage")


def parse_policy_oid(text: str) -> str:
    """A certificate policy OID; ``any`` (or anyPolicy) is 2.5.29.32.0."""
    if text.strip().lower() in ("any", "anypolicy", "any-policy", "any_policy"):
        return ANY_POLICY
    return parse_oid(text, "certificate policy")


class FetchAllowance:
    """The HTTP requests left to one verification, shared by all its evaluations (each still
    bounded by ``max_fetches``); thread-safe. ``refused`` counts requests it turned down."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.refused = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Count one request; False (and counted as refused) once ``limit`` are made."""
        with self._lock:
            if self.used >= self.limit:
                self.refused += 1
                return False
            self.used += 1
            return True


@dataclass(frozen=True)
class TrustPolicy:
    """Everything the second verification phase needs, except the moment.

    Trust anchors are required: there is never an implicit system store. ``revocation``
    None means hard-fail: every certificate of the path that publishes a CRL distribution
    point or an OCSP responder needs its status from the supplied CRLs/OCSP responses or,
    ``online``, fetched; read :attr:`revocation_mode` for the effective value.

    PKIX initial inputs (RFC 5280 6.1.1): ``policies`` is the user-initial-policy-set
    (dotted OIDs; empty = anyPolicy), with ``require_explicit_policy``,
    ``inhibit_policy_mapping`` and ``inhibit_any_policy``.

    Signer rules: when the signer has an EKU extension it must list one of
    ``signing_eku`` (empty: no such rule, e.g. for timestamp authorities); a CA
    certificate never signs unless ``allow_ca_signer``.
    """

    trust_roots: tuple[x509.Certificate, ...]
    #: cryptography certificates, or DER / asn1crypto for those cryptography refuses
    #: (e.g. inherited DSA parameters); DER is checked to be a certificate here.
    intermediates: tuple[CertificateInput, ...] = ()
    crls: tuple[bytes, ...] = ()  # DER CRLs
    ocsp_responses: tuple[bytes, ...] = ()  # DER OCSP responses
    revocation: RevocationMode | None = None
    online: bool = False  # fetch CRLs, OCSP and missing intermediates (AIA) over HTTP
    timeout: float = 10.0  # seconds per network request when online
    algorithms: AlgorithmRule = field(default_factory=AlgorithmRule)
    key_usage: frozenset[str] = SIGNING_KEY_USAGE  # the signer needs at least one of these
    extended_key_usage: frozenset[str] = frozenset()  # dotted OIDs the signer must all have
    # Revocation info is usually gathered after the moment validated; without this, a CRL
    # issued later than ``at`` would be "too recent". Risk: reversible holds (rare today).
    retroactive_revinfo: bool = True
    time_tolerance: dt.timedelta = dt.timedelta(seconds=1)
    policies: frozenset[str] = frozenset()
    require_explicit_policy: bool = False
    inhibit_policy_mapping: bool = False
    inhibit_any_policy: bool = False
    signing_eku: frozenset[str] = SIGNING_EKUS
    allow_ca_signer: bool = False
    #: Most HTTP requests one evaluation may make when ``online`` (CRLs, OCSP, AIA).
    max_fetches: int = DEFAULT_MAX_FETCHES
    #: Most HTTP requests of one verification (see :class:`FetchAllowance`).
    max_fetches_per_verification: int = DEFAULT_MAX_FETCHES_PER_VERIFICATION
    #: Where the policy came from (a policy file path), for reports.
    source: str | None = None
    #: Trust anchors for timestamp authorities; empty = ``trust_roots``.
    tsa_roots: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        # Accept any iterable from callers; store immutable containers (the policy is shared).
        for name in ("trust_roots", "intermediates", "crls", "ocsp_responses", "tsa_roots"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("key_usage", "extended_key_usage", "policies", "signing_eku"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        if not self.trust_roots:
            raise TrustConfigError("a trust policy needs at least one trust anchor")
        if not all(isinstance(c, x509.Certificate) for c in self.trust_roots):
            raise TrustConfigError("trust anchors must be x509.Certificate")
        if not all(isinstance(c, x509.Certificate) for c in self.intermediates):
            from pki.cert_input import as_certs

            as_certs(self.intermediates)  # CertificateLoadError for what is not a certificate
        if not self.timeout > 0:
            raise TrustConfigError(f"timeout must be positive, got {self.timeout}")
        unknown = set(self.key_usage) - _KU_NAMES
        if unknown:
            raise TrustConfigError(f"unknown key usage names: {', '.join(sorted(unknown))}")
        if self.revocation is not None and not isinstance(self.revocation, RevocationMode):
            raise TrustConfigError("revocation must be a RevocationMode or None")
        for oid in (*self.policies, *self.extended_key_usage, *self.signing_eku):
            parse_oid(oid, "policy or EKU")
        for name in ("max_fetches", "max_fetches_per_verification"):
            if getattr(self, name) < 0:
                raise TrustConfigError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def revocation_mode(self) -> RevocationMode:
        """The effective revocation mode (see the class docstring for the default)."""
        return self.revocation if self.revocation is not None else RevocationMode.HARD_FAIL

    def for_timestamp_authority(self) -> TrustPolicy:
        """This policy as it applies to TSA certificates: timeStamping EKU required, the
        document-signing EKU and certificate-policy inputs not applied."""
        return dataclasses.replace(
            self,
            trust_roots=self.tsa_roots or self.trust_roots,
            tsa_roots=(),
            extended_key_usage=frozenset({TIMESTAMPING_EKU}),
            signing_eku=frozenset(),
            policies=frozenset(),
            require_explicit_policy=False,
        )

    def summary(self) -> dict[str, object]:
        """The policy in effect, for reports (JSON ``policy``, human footer, HTML)."""
        out: dict[str, object] = {
            "source": self.source or "command line",
            "trust_anchors": len(self.trust_roots),
            "intermediates": len(self.intermediates),
            "crls": len(self.crls),
            "ocsp_responses": len(self.ocsp_responses),
            "revocation": self.revocation_mode.value,
            "online": self.online,
            "timeout": self.timeout,
            "allow_weak": sorted(self.algorithms.allowed_names()),
            "key_usage": sorted(self.key_usage),
            "required_eku": sorted(self.extended_key_usage),
            "signing_eku": sorted(self.signing_eku),
            "policies": sorted(self.policies) or [ANY_POLICY],
            "require_explicit_policy": self.require_explicit_policy,
            "inhibit_policy_mapping": self.inhibit_policy_mapping,
            "inhibit_any_policy": self.inhibit_any_policy,
            "anchors": _anchors(self.trust_roots),
            "algorithms": {
                "rejected_hashes": sorted(self.algorithms.weak_hashes),
                "min_rsa_bits": self.algorithms.min_rsa_bits,
                "min_dsa_bits": self.algorithms.min_dsa_bits,
            },
        }
        if self.tsa_roots:
            out["tsa_anchors"] = _anchors(self.tsa_roots)
        return out

    def describe(self) -> str:
        """One line for a human footer."""
        extras = []
        if self.policies:
            extras.append("policies " + ",".join(sorted(self.policies)))
        if self.require_explicit_policy:
            extras.append("explicit policy required")
        if self.inhibit_policy_mapping:
            extras.append("policy mapping inhibited")
        if self.inhibit_any_policy:
            extras.append("anyPolicy inhibited")
        weak = sorted(self.algorithms.allowed_names())
        if weak:
            extras.append("weak allowed: " + ",".join(weak))
        tail = "; " + "; ".join(extras) if extras else ""
        return (
            f"{self.source or 'command line'}: {len(self.trust_roots)} anchor(s), "
            f"revocation {self.revocation_mode.value}, {'online' if self.online else 'offline'}"
            f"{tail}"
        )


def _anchors(certs: Iterable[x509.Certificate]) -> list[dict[str, str]]:
    """Anchors as a report names them: subject (RFC 4514) and SHA-256 fingerprint."""
    from pki.certs import fingerprint

    return [{"subject": c.subject.rfc4514_string(), "sha256": fingerprint(c)} for c in certs]
