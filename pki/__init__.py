"""Trust: the second verification phase (certificate path, validity, key usage, revocation).

``import pki`` stays cheap: pyhanko_certvalidator (and aiohttp) load on the first evaluation.
"""

from pki.certs import fingerprint, load_certificates
from pki.chain import aevaluate_chain, evaluate_chain
from pki.errors import CertificateLoadError, PkiError, TrustConfigError
from pki.evaluator import PolicyEvaluator, build_evaluator, build_policy
from pki.policy import AlgorithmRule, RevocationMode, TrustPolicy
from pki.results import (
    FINDING_CODES,
    NOT_CHECKED,
    TrustEvaluator,
    TrustFinding,
    TrustIndication,
    TrustResult,
)
from pki.revocation import load_crls, load_ocsp_responses

__all__ = [
    "FINDING_CODES",
    "NOT_CHECKED",
    "AlgorithmRule",
    "CertificateLoadError",
    "PkiError",
    "PolicyEvaluator",
    "RevocationMode",
    "TrustConfigError",
    "TrustEvaluator",
    "TrustFinding",
    "TrustIndication",
    "TrustPolicy",
    "TrustResult",
    "aevaluate_chain",
    "build_evaluator",
    "build_policy",
    "evaluate_chain",
    "fingerprint",
    "load_certificates",
    "load_crls",
    "load_ocsp_responses",
]
