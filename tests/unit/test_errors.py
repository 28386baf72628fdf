"""One error hierarchy for tokens, pki and dsig: a shared root, each error named by who is at
fault, no builtin exception out of the public API, no CLI flag in a library message."""

from __future__ import annotations

import ast
import importlib
import inspect
import pickle
import pkgutil
import re
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import dsig
import pki
import tokens
from dsig import read_dicom, sign_file, verify_file, verify_files
from pki import TrustPolicy, load_certificates
from tests.conftest import CorePki, sample
from tokens import (
    BadEnvironmentError,
    BadInputError,
    BadKeyError,
    BadPolicyError,
    ToolkitError,
    open_key_provider,
)

ROOT = Path(__file__).resolve().parents[2]
FAULTS = (BadInputError, BadKeyError, BadPolicyError, BadEnvironmentError)
LAYERS = {"tokens": tokens.TokenError, "pki": pki.PkiError, "dsig": dsig.DsigError}


def _public_errors() -> Iterator[type[BaseException]]:
    """Every public exception class defined in a module of the three packages that imports
    without optional extras (a module whose extra is missing is skipped)."""
    for package in (tokens, pki, dsig):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if any(part.startswith("_") for part in info.name.split(".")):
                continue
            try:
                module = importlib.import_module(info.name)
            except ImportError:
                continue
            for name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == module.__name__
                    and not name.startswith("_")
                ):
                    yield value


def test_the_shared_root_and_the_faults_are_exported_where_documented() -> None:
    assert dsig.ToolkitError is pki.PkiError.__mro__[1] is tokens.ToolkitError is ToolkitError
    assert {dsig.BadInputError, dsig.BadKeyError, dsig.BadPolicyError} <= set(FAULTS)
    assert all(issubclass(root, ToolkitError) for root in LAYERS.values())


def test_every_error_has_its_layer_root_and_a_fault() -> None:
    errors = set(_public_errors())
    assert len(errors) > 30 and dsig.OutputRefusedError in errors  # the scan found them
    wrong = []
    for error in errors:
        layer = LAYERS[error.__module__.split(".")[0]]
        if error in (*LAYERS.values(), ToolkitError, *FAULTS):
            continue
        if not (issubclass(error, layer) and issubclass(error, FAULTS)):
            wrong.append(f"{error.__module__}.{error.__qualname__}")
    assert wrong == []


def test_one_except_catches_every_layer() -> None:
    raised: list[type[BaseException]] = []
    for error in (tokens.PasswordError, pki.TrustConfigError, dsig.DicomFormatError):
        try:
            raise error("x")
        except ToolkitError as e:
            raised.append(type(e))
    assert raised == [tokens.PasswordError, pki.TrustConfigError, dsig.DicomFormatError]
    assert issubclass(tokens.LoginError, BadKeyError)
    assert issubclass(pki.CertificateLoadError, BadPolicyError)
    assert issubclass(tokens.BackendUnavailableError, BadEnvironmentError)
    assert issubclass(dsig.TagError, BadInputError)


def test_the_option_hint_survives_pickling() -> None:
    """Errors cross process boundaries (forked signing, Dask workers)."""
    error = dsig.SigningError("weak", option="allow_weak", value="sha1")
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.option, again.value) == ("weak", "allow_weak", "sha1")


# ---- no builtin exception out of the public API -------------------------------------------


def _hostile_files(tmp_path: Path) -> dict[str, Path]:
    ct = sample("CT_small.dcm").read_bytes()
    files = {
        "missing": tmp_path / "missing.dcm",
        "empty": tmp_path / "empty.dcm",
        "garbage": tmp_path / "garbage.dcm",
        "truncated": tmp_path / "truncated.dcm",
        "prefix only": tmp_path / "prefix.dcm",
        "directory": tmp_path / "a directory",
    }
    files["empty"].write_bytes(b"")
    files["garbage"].write_bytes(bytes(range(256)) * 4)
    files["truncated"].write_bytes(ct[: len(ct) // 3])
    files["prefix only"].write_bytes(b"\0" * 128 + b"DICM\x02\x00\x10\x00UI\xff\xff")
    files["directory"].mkdir()
    return files


def _calls(core_pki: CorePki, tmp_path: Path) -> Iterator[tuple[str, Callable[[], object]]]:
    files = _hostile_files(tmp_path)
    policy = TrustPolicy(trust_roots=tuple(load_certificates(core_pki.root)))
    for what, path in files.items():
        yield f"read_dicom {what}", partial(read_dicom, path)
        yield f"verify_file {what}", partial(verify_file, path, trust=policy)
        yield f"load_certificates {what}", partial(load_certificates, path)
        yield f"open_key_provider {what}", partial(open_key_provider, str(path))
        yield (
            f"open_key_provider cert {what}",
            partial(open_key_provider, str(core_pki.rsa_key), cert=path),
        )

        def verify_all(p: Path = path) -> object:
            return list(verify_files([p], integrity_only=True))

        yield f"verify_files {what}", verify_all

        def sign(p: Path = path) -> object:
            with open_key_provider(str(core_pki.rsa_key), cert=str(core_pki.rsa_cert)) as key:
                return sign_file(p, tmp_path / "out" / f"{p.name}.signed", key, force=True)

        yield f"sign_file {what}", sign
    yield "NUL in a path", lambda: read_dicom(str(tmp_path / "a\0b"))
    yield "verify NUL path", lambda: verify_file(str(tmp_path / "a\0b"), integrity_only=True)
    yield "bad pkcs11 URI", lambda: open_key_provider("pkcs11:token=%zz;object")
    yield (
        "key with a wrong password",
        lambda: open_key_provider(
            str(core_pki.rsa_key), cert=str(core_pki.rsa_cert), password=b"wrong"
        ),
    )
    yield "a certificate as a key", lambda: open_key_provider(str(core_pki.rsa_cert))

    def into_directory() -> object:
        with open_key_provider(str(core_pki.rsa_key), cert=str(core_pki.rsa_cert)) as key:
            return sign_file(sample("CT_small.dcm"), files["directory"], key, force=True)

    yield "sign into a directory", into_directory


def test_hostile_inputs_raise_only_the_hierarchy(core_pki: CorePki, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    leaked, messages = [], []
    for name, call in _calls(core_pki, tmp_path):
        try:
            call()
        except ToolkitError as e:
            messages.append(str(e))
        except Exception as e:  # anything else is a leak
            leaked.append(f"{name}: {type(e).__name__}: {e}")
    assert leaked == []
    assert all(m and "\n" not in m for m in messages), messages  # one line each
    raised = len(messages)
    assert raised > 20  # most of them are refused (verify reports content problems instead)


# ---- no CLI flag in a library message -----------------------------------------------------

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def _message_strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """The string parts of every ``raise X(...)`` argument (f-strings included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            for arg in [*node.exc.args, *(k.value for k in node.exc.keywords)]:
                for part in ast.walk(arg):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        yield part.lineno, part.value


def test_library_error_messages_name_no_cli_flag() -> None:
    found, scanned = [], 0
    for package in ("dsig", "pki", "tokens"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.is_relative_to(ROOT / "dsig" / "cli"):
                continue
            for line, text in _message_strings(ast.parse(path.read_text(), str(path))):
                scanned += 1
                if FLAG.search(text):
                    found.append(f"{path.relative_to(ROOT)}:{line}: {text}")
    assert scanned > 300  # the scan reads the messages
    assert found == []


def test_the_scan_sees_a_flag() -> None:
    tree = ast.parse('raise OutputError(f"{p} exists: use --force")')
    assert [FLAG.search(t) is not None for _, t in _message_strings(tree)] == [True]


def test_the_cli_adds_the_flag() -> None:
    from dsig.cli._common import cli_flag, error_line

    assert cli_flag("force") == "--force" and cli_flag("allow_weak", "sha1") == "--allow-weak sha1"
    error = dsig.OutputRefusedError("output x exists: not replaced unless forced", option="force")
    assert error_line(error) == "output x exists: not replaced unless forced (use --force)"
    assert error_line(ValueError("plain")) == "plain"


#: Library modules whose strings may spell CLI flags, and why. The Orthanc plugin builds the
#: argv of ``dsig orthanc verifier``: it is a caller of the CLI, not a message.
FLAG_EXEMPT = {"dsig/orthanc/plugin/dsig_orthanc.py"}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of docstrings and attribute docs: prose for readers of the code, never output."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def _string_constants(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every string constant that is not a docstring (f-string parts included)."""
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def test_library_strings_name_no_cli_flag() -> None:
    """Findings, report text, code meanings, probe lines: not only error messages."""
    found, scanned = [], 0
    for package in ("dsig", "pki", "tokens"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if path.is_relative_to(ROOT / "dsig" / "cli") or name in FLAG_EXEMPT:
                continue
            for line, text in _string_constants(ast.parse(path.read_text(), str(path))):
                scanned += 1
                if FLAG.search(text):
                    found.append(f"{name}:{line}: {text}")
    assert scanned > 3000
    assert found == []
    for name in FLAG_EXEMPT:  # an exemption that no longer needs one goes
        tree = ast.parse((ROOT / name).read_text())
        assert any(FLAG.search(t) for _, t in _string_constants(tree)), name


def test_the_string_scan_sees_a_finding_and_skips_docstrings() -> None:
    tree = ast.parse(
        'def f():\n    """Use --force."""\n'
        '    return Finding("LEGACY_FORMAT", f"{x}: verify with --format-old")'
    )
    assert [t for _, t in _string_constants(tree) if FLAG.search(t)] == [
        ": verify with --format-old"
    ]


def test_the_cli_adds_the_flag_of_a_finding() -> None:
    from dsig.cli._common import with_flag

    legacy = dsig.Finding("LEGACY_FORMAT", "valid only in the old format", option="old_format")
    assert with_flag(legacy.message, legacy) == "valid only in the old format (use --format-old)"
    weak = dsig.Finding("WEAK_ALGORITHM", "sha1: refused", option="allow_weak", value="sha1")
    assert with_flag(weak.message, weak).endswith("(use --allow-weak sha1)")
    plain = dsig.Finding("MAC_MISMATCH", "changed")
    assert with_flag(plain.message, plain) == "changed"
    assert "option" not in weak.to_json()  # the JSON contract is unchanged
