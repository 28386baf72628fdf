"""Fixtures of the property tests: signed seed objects and a hypothesis budget.

``DSIG_PROPERTY_EXAMPLES`` scales every test's example count (CI keeps the default; a developer
can raise it for a longer local run; ``scripts/fuzz.py`` is the long run).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CorePki
from tests.property import mutations
from tokens.api import KeyProvider

SCALE = float(os.environ.get("DSIG_PROPERTY_EXAMPLES", "1"))


def examples(n: int) -> int:
    """``n`` hypothesis examples, scaled by DSIG_PROPERTY_EXAMPLES."""
    return max(1, int(n * SCALE))


@pytest.fixture(scope="session")
def seed_key(core_pki: CorePki) -> Iterator[KeyProvider]:
    provider = mutations.open_key(core_pki.rsa_key, core_pki.rsa_cert)
    yield provider
    provider.close()


@pytest.fixture(scope="session")
def seeds(tmp_path_factory: pytest.TempPathFactory, seed_key: KeyProvider) -> dict[str, bytes]:
    """Signed seed files (bytes) by name: ct, jpeg, ecg, sr_nested."""
    d = tmp_path_factory.mktemp("property-seeds")
    return {n: mutations.make_signed(n, d, seed_key).read_bytes() for n in mutations.SEEDS}


@pytest.fixture(scope="session")
def covered(
    tmp_path_factory: pytest.TempPathFactory, seeds: dict[str, bytes]
) -> dict[str, list[mutations.Covered]]:
    d = tmp_path_factory.mktemp("property-covered")
    out = {}
    for name, data in seeds.items():
        path = d / f"{name}.dcm"
        path.write_bytes(data)
        out[name] = mutations.covered_ranges(path)
    return out


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file path the tests overwrite with each input (hypothesis reuses the session)."""
    return tmp_path_factory.mktemp("property-scratch") / "input.dcm"
