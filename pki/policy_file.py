"""The trust policy file (TOML): one place for everything the trust options hold.

Example (paths are relative to the file's directory)::

    anchors = ["roots.pem"]
    intermediates = ["intermediates/"]
    crls = ["crls/"]
    ocsp = []
    revocation = "hard-fail"          # off | soft-fail | hard-fail | require
    online = false
    timeout = 10                       # seconds per request when online
    max_fetches = 16                   # requests per evaluation when online
    max_fetches_per_verification = 32  # requests of one file's evaluations together
    allow_weak = []                    # sha1, md5, rsa1024, dsa1024 ...
    key_usage = ["digital_signature", "non_repudiation"]
    signing_eku = ["documentSigning", "anyExtendedKeyUsage"]  # add "emailProtection" to accept it
    required_eku = []                  # EKUs every signer must list
    policies = ["2.16.840.1.101.3.2.1.48.1"]  # user-initial-policy-set; [] or ["any"] = any
    require_explicit_policy = false
    inhibit_policy_mapping = false
    inhibit_any_policy = false
    tsa_anchors = []                   # anchors for timestamp authorities (default: anchors)
    allow_ca_signer = false            # true only to test paths (e.g. NIST PKITS), never to sign

Unknown keys are an error (a misspelt key must not silently weaken the policy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from pki.errors import TrustConfigError
from pki.policy import RevocationMode, parse_eku, parse_policy_oid


@dataclass(frozen=True)
class PolicySettings:
    """Trust settings before loading any file: what the policy file and CLI options hold.

    ``None`` / empty means "not set here"; :meth:`overridden_by` lets CLI values win.
    """

    anchors: tuple[Path, ...] = ()
    intermediates: tuple[Path, ...] = ()
    crls: tuple[Path, ...] = ()
    ocsp: tuple[Path, ...] = ()
    tsa_anchors: tuple[Path, ...] = ()
    revocation: str | None = None
    online: bool | None = None
    timeout: float | None = None
    max_fetches: int | None = None
    max_fetches_per_verification: int | None = None
    allow_weak: tuple[str, ...] | None = None
    key_usage: tuple[str, ...] | None = None
    signing_eku: tuple[str, ...] | None = None
    required_eku: tuple[str, ...] | None = None
    policies: tuple[str, ...] | None = None
    require_explicit_policy: bool | None = None
    inhibit_policy_mapping: bool | None = None
    inhibit_any_policy: bool | None = None
    allow_ca_signer: bool | None = None
    source: str | None = None

    def overridden_by(self, other: PolicySettings) -> PolicySettings:
        """``self`` with every value ``other`` sets replacing it (lists replace, not extend)."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "source":
                continue
            value = getattr(other, f.name)
            if value is None or value == ():
                continue
            changes[f.name] = value
        return replace(self, **changes)


_PATH_KEYS = ("anchors", "intermediates", "crls", "ocsp", "tsa_anchors")
_LIST_KEYS = ("allow_weak", "key_usage", "signing_eku", "required_eku", "policies")
_BOOL_KEYS = (
    "online",
    "require_explicit_policy",
    "inhibit_policy_mapping",
    "inhibit_any_policy",
    "allow_ca_signer",
)


def load_policy_file(path: Path) -> PolicySettings:
    """Parse a policy file; raises :class:`TrustConfigError` with one line on any problem."""
    import tomllib  # here: every trusted verify imports this module, few read a policy file

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TrustConfigError(f"cannot read policy file {path}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise TrustConfigError(f"policy file {path}: not valid TOML ({e})") from None
    return parse_policy_settings(data, base=path.parent, source=str(path))


def parse_policy_settings(
    data: Mapping[str, Any], *, base: Path, source: str = "<policy>"
) -> PolicySettings:
    """Settings from a parsed TOML mapping; relative paths are taken from ``base``."""
    known = {f.name for f in fields(PolicySettings)} - {"source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TrustConfigError(f"{source}: unknown key(s) {', '.join(unknown)}")
    values: dict[str, Any] = {"source": source}
    for key, value in data.items():
        where = f"{source}: {key}"
        if key in _PATH_KEYS:
            values[key] = tuple(base / p for p in _strings(value, where))
        elif key in _LIST_KEYS:
            items = _strings(value, where)
            if key in ("signing_eku", "required_eku"):
                items = tuple(parse_eku(i) for i in items)
            elif key == "policies":
                items = tuple(parse_policy_oid(i) for i in items)
            values[key] = items
        elif key in _BOOL_KEYS:
            if not isinstance(value, bool):
                raise TrustConfigError(f"{where} must be true or false")
            values[key] = value
        elif key == "revocation":
            if not isinstance(value, str):
                raise TrustConfigError(f"{where} must be a string")
            values[key] = RevocationMode.parse(value).value
        elif key == "timeout":
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise TrustConfigError(f"{where} must be a positive number of seconds")
            values[key] = float(value)
        elif key in ("max_fetches", "max_fetches_per_verification"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TrustConfigError(f"{where} must be a non-negative integer")
            values[key] = value
    return PolicySettings(**values)


def _strings(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TrustConfigError(f"{where} must be a list of strings")
    return tuple(value)
