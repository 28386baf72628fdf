"""Provision a SoftHSM2 token with keys generated ON the token, for tests and the demo.

Shared by the pytest fixture (:mod:`tests.helpers.softhsm_fixtures`) and
``scripts/softhsm-setup.sh``, which runs ``python -m tests.helpers.softhsm provision``.

Everything lives in a private directory with its own ``softhsm2.conf``; the system token
directory is never touched. The PINs are demo values only (user 1234, SO 5678).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.helpers.pki_factory import NOW, Issued, issue, issue_for_public_key

DEMO_PIN = "1234"
DEMO_SO_PIN = "5678"
RSA_LABEL = "rsa-2048"
RSA_ID = b"\x01"
EC_LABEL = "ec-p256"
EC_ID = b"\x02"

_P11KIT_REGISTRATION = Path("/usr/share/p11-kit/modules/softhsm2.module")


class SoftHsmUnavailableError(RuntimeError):
    """softhsm2-util or libsofthsm2 is not installed."""


@dataclass(frozen=True)
class ProvisionedToken:
    """A token ready for signing: where it lives, how to log in, and the key URIs."""

    directory: Path
    conf: Path
    module: str
    label: str
    pin: str
    so_pin: str
    rsa_uri: str
    ec_uri: str
    ca_cert: Path
    rsa_cert: x509.Certificate
    ec_cert: x509.Certificate
    ca: Issued


def find_softhsm_module() -> str | None:
    """Locate libsofthsm2.so: env override, p11-kit registration, then the usual directories."""
    env = os.environ.get("DSIG_PKCS11_MODULE")
    if env and "softhsm" in Path(env).name and Path(env).is_file():
        return env
    if _P11KIT_REGISTRATION.is_file():
        for line in _P11KIT_REGISTRATION.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "module" and Path(value.strip()).is_file():
                return value.strip()
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    for candidate in (
        f"/usr/lib/{multiarch}/softhsm/libsofthsm2.so",
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
        "/usr/lib64/softhsm/libsofthsm2.so",
        "/opt/homebrew/lib/softhsm/libsofthsm2.so",
    ):
        if Path(candidate).is_file():
            return candidate
    return None


def softhsm_available() -> str | None:
    """Why SoftHSM2 cannot be used here, or None when it can."""
    if shutil.which("softhsm2-util") is None:
        return "softhsm2-util not found (apt-get install softhsm2)"
    if find_softhsm_module() is None:
        return "libsofthsm2.so not found (apt-get install softhsm2, or set DSIG_PKCS11_MODULE)"
    return None


def write_config(directory: Path, mechanisms: Sequence[str] | None = None) -> Path:
    """Create ``directory/tokens`` and ``directory/softhsm2.conf`` pointing at it.

    ``mechanisms`` restricts what every slot offers (SoftHSM2's ``slots.mechanisms``, e.g.
    ``["CKM_RSA_PKCS", "CKM_ECDSA"]`` for a card that only signs raw, or ``["-CKM_RSA_PKCS"]``
    to remove one); None offers all.
    """
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    restrict = f"slots.mechanisms = {','.join(mechanisms)}\n" if mechanisms else ""
    conf.write_text(
        f"directories.tokendir = {tokens.resolve()}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n" + restrict
    )
    return conf


def ec_label(curve: str) -> str:
    """Label (and certificate file stem) of the extra EC key on ``curve``."""
    return f"ec-{curve}"


def add_ec_keys(
    module: str, label: str, pin: str, ca: Issued, curves: Sequence[str], *, now: dt.datetime = NOW
) -> dict[str, x509.Certificate]:
    """Generate one EC key pair per named curve (e.g. brainpoolP256r1) on the token, ids
    0x10, 0x11, ... and labels :func:`ec_label`, with a certificate from ``ca`` beside each."""
    import pkcs11
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_named_curve_parameters

    token = pkcs11.lib(module).get_token(token_label=label)
    out: dict[str, x509.Certificate] = {}
    with token.open(user_pin=pin, rw=True) as session:
        for index, curve in enumerate(curves):
            key_id = bytes([0x10 + index])
            params = session.create_domain_parameters(
                KeyType.EC,
                {Attribute.EC_PARAMS: encode_named_curve_parameters(curve.lower())},
                local=True,
            )
            pub, _ = params.generate_keypair(
                id=key_id,
                label=ec_label(curve),
                store=True,
                private_template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True,
                },
                public_template={Attribute.VERIFY: True},
            )
            cert = issue_for_public_key(
                f"dsig {label} {ec_label(curve)}", _public_key(pub), issuer=ca, now=now
            )
            _store_certificate(session, cert, key_id, ec_label(curve))
            out[curve] = cert
    return out


def _softhsm_util(conf: Path, *args: str) -> str:
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    done = subprocess.run(
        ["softhsm2-util", *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        # softhsm2-util echoes no PINs in its messages, so its output is safe to show.
        raise RuntimeError(
            f"softhsm2-util {args[0]} failed: {(done.stderr or done.stdout).strip()}"
        )
    return done.stdout


def _token_labels(conf: Path) -> list[str]:
    out = _softhsm_util(conf, "--show-slots")
    return [
        line.split(":", 1)[1].strip()
        for line in out.splitlines()
        if line.strip().startswith("Label:")
    ]


def init_token(conf: Path, label: str, pin: str, so_pin: str) -> None:
    """(Re)initialise the token ``label`` in the private directory: an old one is deleted first."""
    if label in _token_labels(conf):
        _softhsm_util(conf, "--delete-token", "--token", label)
    _softhsm_util(
        conf, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin
    )


def _public_key(pub: object) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    import pkcs11
    from pkcs11.util.ec import encode_ec_public_key
    from pkcs11.util.rsa import encode_rsa_public_key

    assert isinstance(pub, pkcs11.PublicKey)
    if pub.key_type == pkcs11.KeyType.RSA:
        key = serialization.load_der_public_key(encode_rsa_public_key(pub))
    else:
        key = serialization.load_der_public_key(encode_ec_public_key(pub))
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return key


def _store_certificate(session: object, cert: x509.Certificate, key_id: bytes, label: str) -> None:
    import pkcs11
    from pkcs11.util.x509 import decode_x509_certificate

    assert isinstance(session, pkcs11.Session)
    attrs = decode_x509_certificate(cert.public_bytes(serialization.Encoding.DER))
    attrs.update(
        {pkcs11.Attribute.ID: key_id, pkcs11.Attribute.LABEL: label, pkcs11.Attribute.TOKEN: True}
    )
    session.create_object(attrs)


def generate_keys(
    module: str, label: str, pin: str, ca: Issued, *, now: dt.datetime = NOW
) -> tuple[x509.Certificate, x509.Certificate]:
    """Generate RSA-2048 and EC P-256 key pairs on the token and store certificates from ``ca``.

    Private keys are SENSITIVE and not EXTRACTABLE; certificates share the key's CKA_ID/label.
    """
    import pkcs11
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_named_curve_parameters

    lib = pkcs11.lib(module)
    lib.reinitialize()  # the token was created by softhsm2-util after this process loaded SoftHSM
    token = lib.get_token(token_label=label)
    private = {
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True,
        Attribute.DECRYPT: False,
    }
    with token.open(user_pin=pin, rw=True) as session:
        rsa_pub, _ = session.generate_keypair(
            KeyType.RSA,
            2048,
            id=RSA_ID,
            label=RSA_LABEL,
            store=True,
            private_template=private,
            public_template={Attribute.VERIFY: True, Attribute.ENCRYPT: False},
        )
        params = session.create_domain_parameters(
            KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
            local=True,
        )
        ec_pub, _ = params.generate_keypair(
            id=EC_ID,
            label=EC_LABEL,
            store=True,
            private_template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
            },
            public_template={Attribute.VERIFY: True},
        )
        rsa_cert = issue_for_public_key(
            f"dsig {label} {RSA_LABEL}", _public_key(rsa_pub), issuer=ca, now=now
        )
        ec_cert = issue_for_public_key(
            f"dsig {label} {EC_LABEL}", _public_key(ec_pub), issuer=ca, now=now
        )
        _store_certificate(session, rsa_cert, RSA_ID, RSA_LABEL)
        _store_certificate(session, ec_cert, EC_ID, EC_LABEL)
    return rsa_cert, ec_cert


def add_always_authenticate_key(
    token: ProvisionedToken, label: str, key_id: bytes
) -> x509.Certificate:
    """Add an RSA-2048 key with CKA_ALWAYS_AUTHENTICATE (re-login before each signature).

    Opens its own read-write login, so no provider may be open on the token meanwhile.
    """
    import pkcs11
    from pkcs11 import Attribute, KeyType

    lib = pkcs11.lib(token.module)
    p11_token = lib.get_token(token_label=token.label)
    with p11_token.open(user_pin=token.pin, rw=True) as session:
        pub, _ = session.generate_keypair(
            KeyType.RSA,
            2048,
            id=key_id,
            label=label,
            store=True,
            private_template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.ALWAYS_AUTHENTICATE: True,
            },
            public_template={Attribute.VERIFY: True},
        )
        cert = issue_for_public_key(f"dsig {label}", _public_key(pub), issuer=token.ca)
        _store_certificate(session, cert, key_id, label)
    return cert


def delete_objects(token: ProvisionedToken, key_id: bytes) -> None:
    """Destroy every object (keys, certificate) with CKA_ID ``key_id`` on the token."""
    import pkcs11

    lib = pkcs11.lib(token.module)
    p11_token = lib.get_token(token_label=token.label)
    with p11_token.open(user_pin=token.pin, rw=True) as session:
        for obj in list(session.get_objects({pkcs11.Attribute.ID: key_id})):
            obj.destroy()


def provision(
    directory: Path,
    label: str,
    *,
    pin: str = DEMO_PIN,
    so_pin: str = DEMO_SO_PIN,
    now: dt.datetime = NOW,
    curves: Sequence[str] = (),
    mechanisms: Sequence[str] | None = None,
) -> ProvisionedToken:
    """Create (or recreate) token ``label`` under ``directory`` with an RSA and an EC key,
    plus one EC key per name in ``curves``; then restrict the slot to ``mechanisms`` (the
    keys are generated first, with every mechanism available).

    Sets ``SOFTHSM2_CONF`` in this process, because SoftHSM reads it at C_Initialize; a
    restricted configuration only takes effect in processes that load SoftHSM afterwards.
    Raises :class:`SoftHsmUnavailableError` when SoftHSM2 is not installed.
    """
    reason = softhsm_available()
    if reason is not None:
        raise SoftHsmUnavailableError(reason)
    module = find_softhsm_module()
    assert module is not None
    directory = directory.resolve()
    conf = write_config(directory)
    os.environ["SOFTHSM2_CONF"] = str(conf)
    init_token(conf, label, pin, so_pin)
    ca = issue("dsig Demo CA", ca=True, now=now)
    ca_path = directory / "demo-ca.pem"
    ca_path.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    rsa_cert, ec_cert = generate_keys(module, label, pin, ca, now=now)
    extra = add_ec_keys(module, label, pin, ca, curves, now=now) if curves else {}
    named = [(RSA_LABEL, rsa_cert), (EC_LABEL, ec_cert)]
    named += [(ec_label(c), cert) for c, cert in extra.items()]
    for name, cert in named:
        (directory / f"{name}.cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if mechanisms:
        write_config(directory, mechanisms)
    return ProvisionedToken(
        directory=directory,
        conf=conf,
        module=module,
        label=label,
        pin=pin,
        so_pin=so_pin,
        rsa_uri=f"pkcs11:token={label};object={RSA_LABEL};type=private",
        ec_uri=f"pkcs11:token={label};object={EC_LABEL};type=private",
        ca_cert=ca_path,
        rsa_cert=rsa_cert,
        ec_cert=ec_cert,
        ca=ca,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.helpers.softhsm provision --dir D --label L``."""
    parser = argparse.ArgumentParser(prog="python -m tests.helpers.softhsm")
    sub = parser.add_subparsers(dest="command", required=True)
    prov = sub.add_parser("provision", help="(re)create a demo token with RSA and EC keys")
    prov.add_argument("--dir", type=Path, required=True, help="private SoftHSM2 directory")
    prov.add_argument("--label", default="dsig-demo", help="token label")
    prov.add_argument("--pin", default=DEMO_PIN, help="user PIN (demo/test tokens only)")
    prov.add_argument("--curve", action="append", default=[], help="extra EC key on this curve")
    prov.add_argument(
        "--mechanisms", help="restrict the slot afterwards (slots.mechanisms, comma-separated)"
    )
    args = parser.parse_args(argv)
    try:
        token = provision(
            args.dir,
            args.label,
            pin=args.pin,
            now=dt.datetime.now(dt.UTC),
            curves=args.curve,
            mechanisms=args.mechanisms.split(",") if args.mechanisms else None,
        )
    except SoftHsmUnavailableError as e:
        print(f"softhsm: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a one-line message beats a traceback for a setup script
        print(f"softhsm: provisioning failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"# token '{token.label}' ready in {token.directory}")
    print(f"# demo PINs (demo only, never for real keys): user {token.pin}, SO {token.so_pin}")
    print(f"export SOFTHSM2_CONF={token.conf}")
    print(f"export DSIG_PKCS11_MODULE={token.module}")
    print(f"# RSA-2048 key: {token.rsa_uri}")
    print(f"# EC P-256 key: {token.ec_uri}")
    print(f"# trust anchor for dsig verify --trust-store: {token.ca_cert}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
