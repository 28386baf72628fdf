"""AlgorithmRule.short_key: the one key-size judgement shared by signer and TSA checks."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, rsa

import pki


def test_short_rsa_key_is_named_and_judged_by_the_floor() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    assert pki.AlgorithmRule().short_key(key) == (1024, "rsa1024", False)
    assert pki.AlgorithmRule.from_names(["rsa1024"]).short_key(key) == (1024, "rsa1024", True)


def test_full_size_and_ec_keys_are_not_short() -> None:
    big = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    assert pki.AlgorithmRule().short_key(big) is None
    assert (
        pki.AlgorithmRule().short_key(ec.generate_private_key(ec.SECP256R1()).public_key()) is None
    )
