"""A private openCryptoki soft token (Debian ``opencryptoki`` 3.8) for the token tests.

openCryptoki 3.8 has no option or variable for its configuration and data directories
(``/etc/opencryptoki``, ``/var/lib/opencryptoki``, ``/run/pkcsslotd.socket`` and
``/run/lock/opencryptoki`` are compiled in), and ``pkcsslotd`` shares slot state through
System V shared memory. So the test token lives in a private mount and IPC namespace
(``unshare --mount --ipc``, as root): the test's own directories are bind-mounted over those
paths there, ``pkcsslotd`` runs inside, and every command that uses the token is started in the
namespace with ``nsenter``. The system's openCryptoki state is never read or touched, and
parallel test runs do not meet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

API_MODULE = "/usr/lib/x86_64-linux-gnu/pkcs11/PKCS11_API.so"
DEFAULT_SO_PIN = "87654321"  # what a fresh openCryptoki token has; changed at once
_SLOT_CONF = "version opencryptoki-3.1\n\nslot 0\n{\nstdll = libpkcs11_sw.so\n}\n"
_MOUNTS = (
    ("etc", "/etc/opencryptoki"),
    ("lib", "/var/lib/opencryptoki"),
    ("run", "/run"),
    ("log", "/var/log/opencryptoki"),
)


class OpenCryptokiUnavailableError(RuntimeError):
    """openCryptoki, unshare/nsenter or root rights are missing."""


def opencryptoki_available() -> str | None:
    """Why the private openCryptoki token cannot be made here, or None when it can."""
    for tool in ("pkcsslotd", "pkcsconf", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install opencryptoki util-linux)"
    if not Path(API_MODULE).is_file():
        return f"{API_MODULE} not found (apt-get install opencryptoki)"
    if os.geteuid() != 0:
        return "a private mount namespace for pkcsslotd needs root"
    for _name, target in _MOUNTS:
        if not Path(target).is_dir():
            return f"{target} does not exist (is opencryptoki installed?)"
    return None


@dataclass
class OpenCryptokiToken:
    """An initialised soft token in its own namespace. Stop it with :meth:`stop`."""

    directory: Path
    label: str
    pin: str
    so_pin: str
    holder: subprocess.Popen[bytes]

    @property
    def module(self) -> str:
        return API_MODULE

    def prefix(self) -> list[str]:
        """Command prefix that runs a program inside the token's namespace."""
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-i", f"--wd={os.getcwd()}", "--"]

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace (never a shell)."""
        return subprocess.run(
            [*self.prefix(), *argv],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            check=False,
        )

    def stop(self) -> None:
        """Stop pkcsslotd (by the pid it wrote in our private /run) and the namespace."""
        pid_file = self.directory / "run" / "pkcsslotd.pid"
        with contextlib.suppress(OSError, ValueError):  # never started, or already gone
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        if self.holder.poll() is None:
            self.holder.terminate()
            try:
                self.holder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.holder.kill()
                self.holder.wait(timeout=10)


def start(directory: Path, label: str, pin: str, so_pin: str = "12345678") -> OpenCryptokiToken:
    """Start pkcsslotd in a private namespace over ``directory`` and initialise the token.

    PINs must be 4 to 8 characters (the soft token's limits).
    """
    reason = opencryptoki_available()
    if reason is not None:
        raise OpenCryptokiUnavailableError(reason)
    directory = directory.resolve()
    for name, _target in _MOUNTS:
        (directory / name).mkdir(parents=True, exist_ok=True)
    (directory / "lib" / "swtok" / "TOK_OBJ").mkdir(parents=True, exist_ok=True)
    (directory / "run" / "lock" / "opencryptoki" / "swtok").mkdir(parents=True, exist_ok=True)
    (directory / "etc" / "opencryptoki.conf").write_text(_SLOT_CONF)
    mounts = " && ".join(f"mount --bind {directory / name} {target}" for name, target in _MOUNTS)
    # The holder keeps the namespace alive; it ends when its stdin (our pipe) closes or on TERM.
    script = f"{mounts} && pkcsslotd && echo ready && exec cat"
    holder = subprocess.Popen(
        ["unshare", "--mount", "--ipc", "--fork", "--kill-child", "sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    token = OpenCryptokiToken(directory, label, pin, so_pin, holder)
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        if line.strip() != b"ready":
            err = holder.stderr.read().decode(errors="replace") if holder.stderr else ""
            raise OpenCryptokiUnavailableError(f"pkcsslotd did not start: {err.strip()}")
        _init_token(token)
    except BaseException:
        token.stop()
        raise
    return token


def _pkcsconf(token: OpenCryptokiToken, *args: str, answers: Sequence[str]) -> None:
    done = token.run(["pkcsconf", *args, "-c", "0"], stdin="".join(a + "\n" for a in answers))
    if done.returncode != 0:
        # pkcsconf does not echo the PINs it reads, so its output is safe to show.
        raise RuntimeError(
            f"pkcsconf {' '.join(args)} failed: {(done.stderr or done.stdout)[-300:]}"
        )


def _init_token(token: OpenCryptokiToken) -> None:
    _pkcsconf(token, "-I", answers=[DEFAULT_SO_PIN, token.label])
    _pkcsconf(token, "-P", answers=[DEFAULT_SO_PIN, token.so_pin, token.so_pin])
    _pkcsconf(token, "-u", answers=[token.so_pin, token.pin, token.pin])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        shown = token.run(["pkcsconf", "-t", "-c", "0"]).stdout
        if "TOKEN_INITIALIZED" in shown and "USER_PIN_INITIALIZED" in shown:
            return
        time.sleep(0.2)
    raise RuntimeError("the openCryptoki token did not become initialised")


def provision_keys(token: OpenCryptokiToken, python: str) -> Path:
    """Generate an RSA-2048 key (id 01, label ``rsa-2048``) ON the token, with a certificate
    from a fresh CA stored beside it; returns the CA certificate file (trust anchor).

    Runs ``python -m tests.helpers.opencryptoki keys`` inside the namespace.
    """
    done = token.run(
        [
            python,
            "-m",
            "tests.helpers.opencryptoki",
            "keys",
            "--dir",
            str(token.directory),
            "--label",
            token.label,
            "--pin",
            token.pin,
        ]
    )
    if done.returncode != 0:
        raise RuntimeError(f"key generation on openCryptoki failed: {done.stderr[-500:]}")
    return token.directory / "demo-ca.pem"


def _keys_main(directory: Path, label: str, pin: str) -> None:
    import datetime as dt

    import pkcs11
    from cryptography.hazmat.primitives import serialization
    from pkcs11 import Attribute, KeyType

    from tests.helpers.pki_factory import issue, issue_for_public_key
    from tests.helpers.softhsm import RSA_ID, RSA_LABEL, _public_key, _store_certificate

    now = dt.datetime.now(dt.UTC)
    ca = issue("dsig openCryptoki test CA", ca=True, now=now)
    token = pkcs11.lib(API_MODULE).get_token(token_label=label)
    with token.open(user_pin=pin, rw=True) as session:
        pub, _ = session.generate_keypair(
            KeyType.RSA,
            2048,
            id=RSA_ID,
            label=RSA_LABEL,
            store=True,
            private_template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
            },
            public_template={Attribute.VERIFY: True},
        )
        cert = issue_for_public_key(f"dsig {label} {RSA_LABEL}", _public_key(pub), issuer=ca)
        _store_certificate(session, cert, RSA_ID, RSA_LABEL)
    (directory / "demo-ca.pem").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.helpers.opencryptoki")
    sub = parser.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys", help="generate the test key (run inside the namespace)")
    keys.add_argument("--dir", type=Path, required=True)
    keys.add_argument("--label", required=True)
    keys.add_argument("--pin", required=True)
    args = parser.parse_args()
    _keys_main(args.dir, args.label, args.pin)
