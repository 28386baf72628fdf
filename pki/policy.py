"""Frozen trust policy: anchors, intermediates, revocation material and rules."""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509

from pki.errors import TrustConfigError


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


@dataclass(frozen=True)
class AlgorithmRule:
    """Which weak algorithms are tolerated: hashes by name, RSA/DSA key size floors."""

    allowed_hashes: frozenset[str] = frozenset()
    min_rsa_bits: int = MIN_KEY_BITS
    min_dsa_bits: int = MIN_KEY_BITS

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


@dataclass(frozen=True)
class TrustPolicy:
    """Everything the second verification phase needs, except the moment.

    Trust anchors are required: there is never an implicit system store. ``revocation``
    None means: hard-fail when any revocation source is configured (CRLs, OCSP responses,
    ``online``), else off; read :attr:`revocation_mode` for the effective value.
    """

    trust_roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
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

    def __post_init__(self) -> None:
        # Accept any iterable from callers; store immutable containers (the policy is shared).
        for name in ("trust_roots", "intermediates", "crls", "ocsp_responses"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("key_usage", "extended_key_usage"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        if not self.trust_roots:
            raise TrustConfigError("a trust policy needs at least one trust anchor")
        if not all(isinstance(c, x509.Certificate) for c in self.trust_roots + self.intermediates):
            raise TrustConfigError("trust anchors and intermediates must be x509.Certificate")
        if not self.timeout > 0:
            raise TrustConfigError(f"timeout must be positive, got {self.timeout}")
        unknown = set(self.key_usage) - _KU_NAMES
        if unknown:
            raise TrustConfigError(f"unknown key usage names: {', '.join(sorted(unknown))}")
        if self.revocation is not None and not isinstance(self.revocation, RevocationMode):
            raise TrustConfigError("revocation must be a RevocationMode or None")

    @property
    def revocation_mode(self) -> RevocationMode:
        """The effective revocation mode (see the class docstring for the default)."""
        if self.revocation is not None:
            return self.revocation
        has_source = bool(self.crls or self.ocsp_responses or self.online)
        return RevocationMode.HARD_FAIL if has_source else RevocationMode.OFF

    def summary(self) -> dict[str, str]:
        """Short description for reports (``policy_summary``)."""
        return {
            "trust_anchors": str(len(self.trust_roots)),
            "revocation": self.revocation_mode.value,
            "online": "yes" if self.online else "no",
        }
