"""Refuse to sign with a certificate whose signatures could never verify VALID.

Expired or not yet valid now, no digitalSignature/nonRepudiation key usage, an extended key
usage that does not allow document signing, a CA certificate, or a key that does not match
the certificate: signing would produce a file every verifier rejects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from dsig.errors import SigningError
from pki.results import TrustFinding
from pki.signer_rules import SignerRules, check_signing_certificate
from tokens.api import KeyProvider
from tokens.digest import Digest, HashAlgorithm
from tokens.faults import BadKeyError

_DEFAULT_RULES = SignerRules()


class SignerCertificateError(SigningError, BadKeyError):
    """The signer certificate can never produce a valid signature (the message says why)."""


def signer_rules(policy_file: Path | None) -> SignerRules:
    """The signer rules of a trust policy file (key usage, EKUs, CA), else the defaults."""
    if policy_file is None:
        return SignerRules()
    from pki.policy import SIGNING_EKUS, SIGNING_KEY_USAGE
    from pki.policy_file import load_policy_file

    settings = load_policy_file(policy_file)
    return SignerRules(
        key_usage=(
            frozenset(settings.key_usage) if settings.key_usage is not None else SIGNING_KEY_USAGE
        ),
        signing_eku=(
            frozenset(settings.signing_eku) if settings.signing_eku is not None else SIGNING_EKUS
        ),
        required_eku=frozenset(settings.required_eku or ()),
        allow_ca_signer=bool(settings.allow_ca_signer),
    )


def signer_problems(
    provider: KeyProvider, *, at: dt.datetime, rules: SignerRules = _DEFAULT_RULES
) -> list[TrustFinding]:
    """Everything that keeps ``provider``'s signatures from ever verifying (empty: none).

    The key is probed with one signature over a fixed digest, verified with the
    certificate's public key (a token's key may not match the certificate given with it).
    """
    problems = check_signing_certificate(provider.certificate, at=at, rules=rules)
    if not _key_matches(provider):
        who = provider.certificate.subject.rfc4514_string()
        problems.append(
            TrustFinding("KEY_MISMATCH", f"the key does not match the certificate of {who}")
        )
    return problems


def check_signer(
    provider: KeyProvider, *, at: dt.datetime, rules: SignerRules = _DEFAULT_RULES
) -> None:
    """Raise :class:`SignerCertificateError` (one line) when :func:`signer_problems` finds any."""
    problems = signer_problems(provider, at=at, rules=rules)
    if problems:
        reasons = "; ".join(f"{p.code}: {p.message}" for p in problems)
        raise SignerCertificateError(
            f"refusing to sign: the signatures could never verify ({reasons}); "
            "forcing the certificate signs anyway",
            option="force_certificate",
        )


def _key_matches(provider: KeyProvider) -> bool:
    from dsig.operations.verifier import check_signature_value

    digest = hashlib.sha256(b"dsig signer key probe").digest()
    signature = provider.sign_digest(Digest(HashAlgorithm.SHA256, digest))
    ok = check_signature_value(provider.certificate, signature, HashAlgorithm.SHA256, digest)
    return ok is not False  # None: a key type this build cannot verify; not ours to refuse
