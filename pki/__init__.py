"""Trust: the second verification phase (certificate path, validity, key usage, revocation)."""

from pki.results import NOT_CHECKED, TrustEvaluator, TrustFinding, TrustIndication, TrustResult

__all__ = ["NOT_CHECKED", "TrustEvaluator", "TrustFinding", "TrustIndication", "TrustResult"]
