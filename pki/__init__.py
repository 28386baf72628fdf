"""Trust: the second verification phase (certificate path, validity, key usage, revocation).

``import pki`` stays cheap: pyhanko_certvalidator (and aiohttp) load on the first evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pki._lazy import lazy_exports

if TYPE_CHECKING:  # imported on first use: `import pki` (and pki.results, which dsig's
    # reports need) stays cheap when no trust is evaluated
    from pki.cert_input import CertificateInput
    from pki.certs import fingerprint, load_certificates
    from pki.chain import aevaluate_chain, evaluate_chain
    from pki.check import check_certificate
    from pki.codes import FindingCode, Phase
    from pki.errors import CertificateLoadError, PkiError, TrustConfigError
    from pki.evaluator import PolicyEvaluator, build_evaluator, build_policy, policy_from_settings
    from pki.moment import at_claimed_time
    from pki.policy import AlgorithmRule, RevocationMode, TrustPolicy
    from pki.policy_file import PolicySettings, load_policy_file
    from pki.results import (
        FINDING_CODES,
        NOT_CHECKED,
        Indication,
        RevocationCheck,
        TrustEvaluator,
        TrustFinding,
        TrustIndication,
        TrustResult,
    )
    from pki.revocation import load_crls, load_ocsp_responses
    from pki.signer_rules import SignerRules, check_signing_certificate

__getattr__ = lazy_exports(__name__)


__all__ = [
    "FINDING_CODES",
    "NOT_CHECKED",
    "AlgorithmRule",
    "CertificateInput",
    "CertificateLoadError",
    "FindingCode",
    "Indication",
    "Phase",
    "PkiError",
    "PolicyEvaluator",
    "PolicySettings",
    "RevocationCheck",
    "RevocationMode",
    "SignerRules",
    "TrustConfigError",
    "TrustEvaluator",
    "TrustFinding",
    "TrustIndication",
    "TrustPolicy",
    "TrustResult",
    "aevaluate_chain",
    "at_claimed_time",
    "build_evaluator",
    "build_policy",
    "check_certificate",
    "check_signing_certificate",
    "evaluate_chain",
    "fingerprint",
    "load_certificates",
    "load_crls",
    "load_ocsp_responses",
    "load_policy_file",
    "policy_from_settings",
]
