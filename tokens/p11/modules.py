"""PKCS#11 module discovery (p11-kit, ``$DSIG_PKCS11_MODULE``, install paths) and loading."""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from tokens.errors import (
    BackendUnavailableError,
)

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as _Lib  # noqa: N812


#: Environment variable naming the PKCS#11 module (shared library) to load.
ENV_MODULE = "DSIG_PKCS11_MODULE"
#: Where p11-kit registrations (``*.module`` files with a ``module:`` line) live.
#: The user's own registrations (``~/.config/pkcs11/modules``) come last and win, as in p11-kit.
DEFAULT_P11KIT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/p11-kit/modules"),
    Path("/etc/pkcs11/modules"),
    Path("~/.config/pkcs11/modules"),
)

_INSTALL_HINT = "install it with: pip install 'python-pkcs11>=0.10,<0.11'"


def _multiarch() -> str:
    value = sysconfig.get_config_var("MULTIARCH")
    return value if isinstance(value, str) and value else "x86_64-linux-gnu"


def _standard_candidates() -> tuple[str, ...]:
    ma = _multiarch()
    return (
        f"/usr/lib/{ma}/softhsm/libsofthsm2.so",
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
        "/usr/lib64/softhsm/libsofthsm2.so",
        f"/usr/lib/{ma}/opensc-pkcs11.so",
        f"/usr/lib/{ma}/pkcs11/opensc-pkcs11.so",
        "/usr/lib64/opensc-pkcs11.so",
        "/usr/local/lib/opensc-pkcs11.so",
        "/opt/homebrew/lib/softhsm/libsofthsm2.so",
    )


# p11-kit's trust module only holds CA anchors (no keys); it is registered on most desktops.
_NOT_KEY_MODULES = frozenset({"p11-kit-trust"})


def _p11kit_registrations(dirs: Sequence[Path]) -> dict[str, str]:
    """name → module path, from p11-kit ``*.module`` files (relative paths resolved)."""
    found: dict[str, str] = {}
    for directory in dirs:
        try:
            files = sorted(directory.expanduser().glob("*.module"))
        except OSError:
            continue
        for file in files:
            try:
                lines = file.read_text(errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip() != "module" or not value.strip():
                    continue
                module = value.strip()
                if file.stem in _NOT_KEY_MODULES:
                    continue
                if not os.path.isabs(module):
                    # p11-kit resolves bare names against its module directory.
                    module = f"/usr/lib/{_multiarch()}/pkcs11/{module}"
                found[file.stem] = module  # a later (user) file overrides a system one
    return found


def find_module(
    *,
    module_path: str | None = None,
    module_name: str | None = None,
    env: Mapping[str, str] | None = None,
    p11kit_dirs: Sequence[Path] = DEFAULT_P11KIT_DIRS,
    candidates: Sequence[str] | None = None,
) -> str:
    """Find the PKCS#11 module (shared library) to load.

    Order: ``module_path`` (the URI's ``module-path``); ``$DSIG_PKCS11_MODULE``; the p11-kit
    registration named ``module_name`` or, without a name, the only registration present;
    then the usual Debian/Fedora/Homebrew locations of SoftHSM2 and OpenSC.
    Raises BackendUnavailableError saying where it looked.
    """
    env = os.environ if env is None else env
    if module_path:
        if not Path(module_path).is_file():
            raise BackendUnavailableError(f"PKCS#11 module {module_path} does not exist")
        return module_path
    override = env.get(ENV_MODULE)
    if override:
        if not Path(override).is_file():
            raise BackendUnavailableError(
                f"PKCS#11 module {override} (${ENV_MODULE}) does not exist"
            )
        return override
    registered = {
        name: path
        for name, path in _p11kit_registrations(p11kit_dirs).items()
        if Path(path).is_file()
    }
    pool = _standard_candidates() if candidates is None else tuple(candidates)
    if module_name:
        stem = module_name.removesuffix(".so")
        if stem in registered:
            return registered[stem]
        for path in pool:
            base = Path(path).name.removesuffix(".so")
            if stem in (base, base.removeprefix("lib")) and Path(path).is_file():
                return path
        raise BackendUnavailableError(
            f"PKCS#11 module named {module_name!r} not found (p11-kit registrations: "
            f"{', '.join(sorted(registered)) or 'none'}); set ${ENV_MODULE} to its path"
        )
    if len(registered) == 1:
        return next(iter(registered.values()))
    if len(registered) > 1:
        raise BackendUnavailableError(
            f"several PKCS#11 modules are registered ({', '.join(sorted(registered))}); "
            f"choose one with module-name=/module-path= in the URI or ${ENV_MODULE}"
        )
    for path in pool:
        if Path(path).is_file():
            return path
    looked = [str(d) for d in p11kit_dirs] + list(pool)
    raise BackendUnavailableError(
        f"no PKCS#11 module found (looked in ${ENV_MODULE}, {', '.join(looked)}); "
        f"set ${ENV_MODULE} to the module path (e.g. libsofthsm2.so or opensc-pkcs11.so)"
    )


@dataclass(frozen=True)
class ModuleCandidate:
    """A PKCS#11 module worth trying, with the name and source it was found under."""

    name: str  # p11-kit registration name, or the file name without ``.so``
    path: str
    source: str  # "uri" | "env" | "p11-kit" | "standard path"


def candidate_modules(
    *,
    env: Mapping[str, str] | None = None,
    p11kit_dirs: Sequence[Path] = DEFAULT_P11KIT_DIRS,
    candidates: Sequence[str] | None = None,
) -> list[ModuleCandidate]:
    """Every module a key URI without ``module-name``/``module-path`` is searched in.

    ``$DSIG_PKCS11_MODULE`` first, then every p11-kit registration, then the usual install
    paths of SoftHSM2 and OpenSC; existing files only, each library once (by real path).
    Raises BackendUnavailableError when there is none.
    """
    env = os.environ if env is None else env
    found: list[ModuleCandidate] = []
    seen: set[str] = set()

    def add(name: str, path: str, source: str) -> None:
        real = os.path.realpath(path)
        if real not in seen and Path(path).is_file():
            seen.add(real)
            found.append(ModuleCandidate(name, path, source))

    override = env.get(ENV_MODULE)
    if override:
        if not Path(override).is_file():
            raise BackendUnavailableError(
                f"PKCS#11 module {override} (${ENV_MODULE}) does not exist"
            )
        add(_stem(override), override, "env")
    for name, path in sorted(_p11kit_registrations(p11kit_dirs).items()):
        add(name, path, "p11-kit")
    for path in _standard_candidates() if candidates is None else candidates:
        add(_stem(path), path, "standard path")
    if not found:
        looked = [str(d) for d in p11kit_dirs] + list(
            _standard_candidates() if candidates is None else candidates
        )
        raise BackendUnavailableError(
            f"no PKCS#11 module found (looked in ${ENV_MODULE}, {', '.join(looked)}); "
            f"set ${ENV_MODULE} to the module path (e.g. libsofthsm2.so or opensc-pkcs11.so)"
        )
    return found


def _stem(path: str) -> str:
    return Path(path).name.removesuffix(".so")


def _import_pkcs11() -> ModuleType:
    try:
        import pkcs11
    except ImportError as e:
        raise BackendUnavailableError(
            f"PKCS#11 support needs python-pkcs11, which is not installed ({e.name}); "
            f"{_INSTALL_HINT}"
        ) from None
    return pkcs11


def _load_lib(module: str) -> _Lib:
    p11 = _import_pkcs11()
    try:
        lib: _Lib = p11.lib(module)
    except (OSError, RuntimeError, p11.PKCS11Error) as e:
        # e.g. openCryptoki without its pkcsslotd daemon fails C_Initialize (CKR_FUNCTION_FAILED)
        raise BackendUnavailableError(
            f"cannot load PKCS#11 module {module}: {_describe(e)}"
        ) from None
    return lib


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
