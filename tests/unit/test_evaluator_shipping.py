"""A caching trust evaluator travels to other processes (Dask workers) without its lock or
cache, and judges there as it does here."""

from __future__ import annotations

import pki
from dsig.archive.shipping import pack, unpack
from dsig.operations.verifier import VerifyOptions
from tests.helpers.pki_factory import NOW, build_pki


def test_policy_evaluator_pickles_without_its_cache_and_judges_alike() -> None:
    test_pki = build_pki()
    leaf = test_pki.leaf("signer").cert
    policy = pki.TrustPolicy(
        trust_roots=(test_pki.root.cert,), intermediates=(test_pki.intermediate.cert,)
    )
    evaluator = pki.PolicyEvaluator(policy, ttl=5.0, max_entries=10)
    here = evaluator.evaluate(leaf, at=NOW)
    copy = unpack(pack(VerifyOptions(trust=evaluator))).trust  # certificates travel as DER
    assert isinstance(copy, pki.PolicyEvaluator)
    assert (copy.ttl, copy.max_entries) == (5.0, 10)
    assert copy._lock is not evaluator._lock and not copy._cache
    there = copy.evaluate(leaf, at=NOW)
    assert there.indication == here.indication
    assert here.indication is pki.TrustIndication.VALID, here


def test_verify_options_with_an_evaluator_ship_to_a_worker() -> None:
    test_pki = build_pki()
    policy = pki.TrustPolicy(trust_roots=(test_pki.root.cert,))
    options = VerifyOptions(trust=pki.PolicyEvaluator(policy))
    shipped = unpack(pack(options))
    assert isinstance(shipped.trust, pki.PolicyEvaluator)
    assert shipped.trust.policy.trust_roots == policy.trust_roots
