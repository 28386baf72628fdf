"""The public Python API, used as a program would: sign files with a key provider as a context
manager, verify with a pki.TrustPolicy or explicitly integrity-only, stream a directory."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from types import FunctionType, ModuleType

import pytest

import dsig
import dsig.net
import pki
import tokens
from dsig import (
    FileSigning,
    Indication,
    OptionsError,
    SignOptions,
    sign_file,
    sign_files,
    verify_file,
    verify_files,
)
from pki import TrustPolicy, load_certificates
from pki._lazy import exported as lazy_exported
from tests.conftest import CorePki, sample
from tests.unit.test_cli_public_imports import PUBLIC_PLACES
from tokens import open_key_provider

#: Every documented public place (the ones the CLI may import from, too).
PACKAGES = tuple(PUBLIC_PLACES)


def test_the_public_places_are_the_packages() -> None:
    assert {dsig.__name__, dsig.net.__name__, pki.__name__, tokens.__name__} <= set(PACKAGES)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_imports_from_its_package(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__")  # noqa: B009
    assert exported and exported == sorted(set(exported), key=exported.index)  # no duplicates
    for source in set(lazy_exported(name).values()):
        importlib.import_module(source)  # a submodule must not shadow a public name
    for public in exported:
        value = getattr(module, public)
        assert not isinstance(value, ModuleType), f"{name}.{public} is a module"
        if isinstance(value, type | FunctionType):
            assert (value.__doc__ or "").strip(), f"{name}.{public} has no docstring"


def _policy(core_pki: CorePki) -> TrustPolicy:
    return TrustPolicy(
        trust_roots=tuple(load_certificates(core_pki.root)),
        intermediates=tuple(load_certificates(core_pki.intermediate)),
    )


def test_sign_then_verify_with_a_policy(core_pki: CorePki, tmp_path: Path) -> None:
    out = tmp_path / "signed.dcm"
    with open_key_provider(str(core_pki.rsa_key), cert=str(core_pki.rsa_cert)) as key:
        done = sign_file(str(sample("CT_small.dcm")), str(out), key)
        with pytest.raises(dsig.OutputRefusedError, match="exists"):
            sign_file(sample("CT_small.dcm"), out, key)  # never replaced without force
    assert done.output == out and done.info.uid and done.record()["signature_uid"] == done.info.uid
    result = verify_file(out, trust=_policy(core_pki))
    assert result.indication is Indication.VALID, result.to_json()
    assert verify_file(out, integrity_only=True).indication is Indication.VALID
    # a policy given through VerifyOptions works too (it used to be an "internal error")
    options = dsig.VerifyOptions(trust=_policy(core_pki))  # type: ignore[arg-type]
    assert dsig.operations.verifier.verify_file(out, options).indication is Indication.VALID
    # another anchor: the signature is intact, the signer not trusted
    other = TrustPolicy(trust_roots=tuple(load_certificates(core_pki.ec_cert)))
    assert verify_file(out, trust=other).indication is not Indication.VALID


def test_trust_is_a_required_choice(tmp_path: Path, core_pki: CorePki) -> None:
    with pytest.raises(OptionsError, match="integrity_only=True"):
        verify_file(sample("CT_small.dcm"))
    with pytest.raises(OptionsError, match="exclude"):
        verify_file(sample("CT_small.dcm"), trust=_policy(core_pki), integrity_only=True)


def test_sign_files_and_stream_a_directory(core_pki: CorePki, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    shutil.copy(sample("CT_small.dcm"), inputs / "a.dcm")
    shutil.copy(sample("MR_small.dcm"), inputs / "sub" / "b.dcm")
    outputs = tmp_path / "out"
    jobs = [(inputs / "a.dcm", outputs / "a.dcm"), (inputs / "sub" / "b.dcm", outputs / "b.dcm")]
    options = FileSigning(sign=SignOptions(tags=None), write_xfer="little")
    with open_key_provider(str(core_pki.ec_key), cert=core_pki.ec_cert) as key:
        signed = list(sign_files(jobs, key, options))
    assert [s.output for s in signed] == [dst for _src, dst in jobs]
    (outputs / "junk.dcm").write_bytes(b"not DICOM")
    results = verify_files([outputs], trust=_policy(core_pki))
    assert not isinstance(results, list)  # a generator: results stream
    by_name = {Path(r.path).name: r for r in results}
    assert by_name["a.dcm"].indication is Indication.VALID
    assert by_name["b.dcm"].indication is Indication.VALID
    assert by_name["junk.dcm"].error and by_name["junk.dcm"].indication is not Indication.VALID
    with pytest.raises(dsig.InputError):
        list(verify_files([outputs], integrity_only=True, recursive=False))


def test_option_errors_are_dsig_errors() -> None:
    assert issubclass(dsig.ProfileError, dsig.DsigError)
    with pytest.raises(dsig.OptionsError):
        dsig.ReadOptions(mode="tape")
    with pytest.raises(dsig.OptionsError):
        dsig.ParseLimits(max_depth=0)
    with pytest.raises(dsig.OptionsError):
        dsig.VerifyOptions(require_coverage="some")
