"""pytest plugin: a session-scoped SoftHSM2 token with RSA and EC keys generated on it.

Register with ``pytest_plugins = ["tests.helpers.softhsm_fixtures"]`` (or ``-p``).
Tests that use ``softhsm_token`` skip when SoftHSM2 is missing, and fail instead when
``DSIG_REQUIRE_SOFTHSM=1`` (so CI cannot go green by skipping).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.helpers.softhsm import ProvisionedToken, provision, softhsm_available

TOKEN_LABEL = "dsig-test"


def softhsm_required() -> bool:
    """True when missing SoftHSM2 must fail the run instead of skipping."""
    return os.environ.get("DSIG_REQUIRE_SOFTHSM") == "1"


def skip_or_fail_without_softhsm() -> None:
    """Skip (or fail under DSIG_REQUIRE_SOFTHSM=1) when SoftHSM2 is not installed."""
    reason = softhsm_available()
    if reason is None:
        return
    if softhsm_required():
        pytest.fail(f"DSIG_REQUIRE_SOFTHSM=1 but SoftHSM2 is unusable: {reason}")
    pytest.skip(f"SoftHSM2 not available: {reason}")


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProvisionedToken]:
    """A fresh token ``dsig-test`` (PIN 1234) in a temp dir, with RSA-2048 and EC P-256 keys.

    Sets ``SOFTHSM2_CONF`` and ``DSIG_PKCS11_MODULE`` for the session (SoftHSM reads its config
    at C_Initialize, so it must be set before any provider opens) and restores them afterwards.
    """
    skip_or_fail_without_softhsm()
    saved = {name: os.environ.get(name) for name in ("SOFTHSM2_CONF", "DSIG_PKCS11_MODULE")}
    # Distinctive PINs, so that "the PIN never appears in output" cannot pass or fail by chance.
    token = provision(
        tmp_path_factory.mktemp("softhsm"), TOKEN_LABEL, pin="pin-7g3Kq9", so_pin="so-5Rw2x8"
    )
    os.environ["DSIG_PKCS11_MODULE"] = token.module
    try:
        yield token
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
