"""Thin subprocess wrappers around DCMTK 3.6.7 command-line tools used by the interop tests.

Flags were taken from ``dcmsign --help`` / ``dcmconv --help`` of DCMTK 3.6.7:

* ``+s KEY CERT`` sign the main data set, ``+si KEY CERT LOCATION`` sign a sequence item
  (location ``Seq[i].Seq[j]``, 0-based); keys/certificates are PEM by default (``-pem``),
  ``-der`` switches to DER.
* MAC: ``+mr`` RIPEMD160 (dcmsign's default!), ``+ms`` SHA1, ``+mm`` MD5, ``+m2`` SHA256,
  ``+m3`` SHA384, ``+m5`` SHA512.
* Profiles: ``-pf`` none (default), ``+pb`` base RSA, ``+pc`` creator, ``+pa`` authorization,
  ``+pr`` SR, ``+pv`` SR verification.
* ``-t TAG`` (repeatable; ``gggg,eeee`` or a keyword) / ``-tf FILE`` tag selection,
  ``+sp N`` purpose (CID 7007 code 1..18), ``+d FILE`` dump of the MAC byte stream,
  ``-fn``/``-fo`` new/old (pre-3.5.4) signature format (also for ``--verify``).
* Output: ``+t=`` same TS, ``+te`` explicit LE, ``+tb`` explicit BE, ``+ti`` implicit LE;
  ``+e`` explicit / ``-e`` undefined sequence and item lengths.
* Verification: ``--verify`` (default command), ``+rg`` fail without any signature,
  ``+cf`` trusted certificate, ``+uf`` untrusted intermediate. Without a trust anchor dcmsign
  reports "signature is OK but certificate verification failed" and exits non-zero, so
  :func:`dcmsign_verify` passes the configured test PKI (see :func:`set_default_trust`).
* Unencrypted keys never prompt; ``-pw`` (empty password) is passed anyway so that a stray
  encrypted key fails instead of waiting on stdin.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

StrPath = str | os.PathLike[str]

MAC_FLAGS: dict[str, str] = {
    "ripemd160": "+mr",
    "sha1": "+ms",
    "md5": "+mm",
    "sha256": "+m2",
    "sha384": "+m3",
    "sha512": "+m5",
}

PROFILE_FLAGS: dict[str | None, str | None] = {
    None: None,
    "none": "-pf",
    "base": "+pb",
    "creator": "+pc",
    "authorization": "+pa",
    "sr": "+pr",
    "sr-verification": "+pv",
}

WRITE_XFER_FLAGS: dict[str, str] = {
    "same": "+t=",
    "little": "+te",
    "big": "+tb",
    "implicit": "+ti",
}

LENGTH_FLAGS: dict[str, str] = {"explicit": "+e", "undefined": "-e"}

TIMEOUT = 120

_default_trust: tuple[list[str], list[str]] = ([], [])


class DcmtkError(RuntimeError):
    """A DCMTK tool exited with a non-zero status where success was expected."""

    def __init__(self, cmd: Sequence[str], proc: subprocess.CompletedProcess[str]) -> None:
        self.cmd = list(cmd)
        self.returncode = proc.returncode
        self.output = (proc.stdout or "") + (proc.stderr or "")
        super().__init__(f"{' '.join(self.cmd)} -> exit {proc.returncode}\n{self.output}")


def dcmsign_available() -> bool:
    """True when ``dcmsign``, ``dcmconv`` and ``dcmdump`` are on PATH and runnable."""
    for tool in ("dcmsign", "dcmconv", "dcmdump"):
        if shutil.which(tool) is None:
            return False
    try:
        proc = subprocess.run(
            ["dcmsign", "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0 and "dcmsign" in proc.stdout + proc.stderr


def dcmsign_version() -> str:
    proc = subprocess.run(
        ["dcmsign", "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    for line in (proc.stdout + proc.stderr).splitlines():
        if "dcmsign" in line:
            return line.strip()
    return "unknown"


def set_default_trust(ca_files: Iterable[StrPath], untrusted: Iterable[StrPath] = ()) -> None:
    """Trust anchors (``+cf``) and intermediates (``+uf``) used by :func:`dcmsign_verify`."""
    global _default_trust
    _default_trust = ([str(p) for p in ca_files], [str(p) for p in untrusted])


def _run(cmd: Sequence[str], *, check: bool) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
        check=False,
    )
    if check and proc.returncode != 0:
        raise DcmtkError(cmd, proc)
    return proc


def dcmsign_sign_cmd(
    inp: StrPath,
    out: StrPath,
    key_pem: StrPath,
    cert_pem: StrPath,
    *,
    mac: str = "sha256",
    profile: str | None = None,
    tags: Iterable[str] = (),
    tag_file: StrPath | None = None,
    item: str | None = None,
    purpose: int | None = None,
    dump: StrPath | None = None,
    old_format: bool = False,
    write_xfer: str | None = None,
    lengths: str | None = None,
    extra: Iterable[str] = (),
) -> list[str]:
    """The dcmsign command line for :func:`dcmsign_sign` (exposed for error messages)."""
    cmd: list[str] = ["dcmsign", "-pw"]
    if item is None:
        cmd += ["+s", str(key_pem), str(cert_pem)]
    else:
        cmd += ["+si", str(key_pem), str(cert_pem), item]
    cmd.append(MAC_FLAGS[mac.lower()])
    pflag = PROFILE_FLAGS[profile]
    if pflag:
        cmd.append(pflag)
    for tag in tags:
        cmd += ["-t", tag]
    if tag_file is not None:
        cmd += ["-tf", str(tag_file)]
    if purpose is not None:
        cmd += ["+sp", str(purpose)]
    if dump is not None:
        cmd += ["+d", str(dump)]
    cmd.append("-fo" if old_format else "-fn")
    if write_xfer is not None:
        cmd.append(WRITE_XFER_FLAGS[write_xfer])
    if lengths is not None:
        cmd.append(LENGTH_FLAGS[lengths])
    cmd += list(extra)
    cmd += [str(inp), str(out)]
    return cmd


def dcmsign_sign(
    inp: StrPath,
    out: StrPath,
    key_pem: StrPath,
    cert_pem: StrPath,
    *,
    mac: str = "sha256",
    profile: str | None = None,
    tags: Iterable[str] = (),
    item: str | None = None,
    purpose: int | None = None,
    dump: StrPath | None = None,
    old_format: bool = False,
    extra: Iterable[str] = (),
    tag_file: StrPath | None = None,
    write_xfer: str | None = None,
    lengths: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Sign ``inp`` into ``out`` with dcmsign. Raises :class:`DcmtkError` on failure if ``check``.

    ``mac`` is one of :data:`MAC_FLAGS` (dsig spelling), ``profile`` one of
    :data:`PROFILE_FLAGS` (dsig spelling), ``item`` a ``+si`` location, ``write_xfer``
    ``same|little|big|implicit``, ``lengths`` ``explicit|undefined``.
    """
    cmd = dcmsign_sign_cmd(
        inp,
        out,
        key_pem,
        cert_pem,
        mac=mac,
        profile=profile,
        tags=tags,
        tag_file=tag_file,
        item=item,
        purpose=purpose,
        dump=dump,
        old_format=old_format,
        write_xfer=write_xfer,
        lengths=lengths,
        extra=extra,
    )
    return _run(cmd, check=check)


def dcmsign_verify_cmd(
    path: StrPath,
    *,
    old_format: bool = False,
    require_signature: bool = True,
    ca_files: Iterable[StrPath] | None = None,
    untrusted: Iterable[StrPath] | None = None,
    extra: Iterable[str] = (),
) -> list[str]:
    cas = [str(p) for p in ca_files] if ca_files is not None else _default_trust[0]
    ints = [str(p) for p in untrusted] if untrusted is not None else _default_trust[1]
    cmd = ["dcmsign", "--verify"]
    if require_signature:
        cmd.append("+rg")
    cmd.append("-fo" if old_format else "-fn")
    for ca in cas:
        cmd += ["+cf", ca]
    for ic in ints:
        cmd += ["+uf", ic]
    cmd += list(extra)
    cmd.append(str(path))
    return cmd


def dcmsign_verify(
    path: StrPath,
    *,
    old_format: bool = False,
    require_signature: bool = True,
    ca_files: Iterable[StrPath] | None = None,
    untrusted: Iterable[StrPath] | None = None,
    extra: Iterable[str] = (),
) -> tuple[bool, str]:
    """Verify every signature in ``path`` with dcmsign; returns ``(ok, combined output)``.

    ``ok`` is dcmsign's exit status 0 **and** at least one "Signature Verification : OK"
    line with no failure line. By default ``+rg`` (a file without signatures is a failure) and
    the trust configured by :func:`set_default_trust` are used.
    """
    cmd = dcmsign_verify_cmd(
        path,
        old_format=old_format,
        require_signature=require_signature,
        ca_files=ca_files,
        untrusted=untrusted,
        extra=extra,
    )
    proc = _run(cmd, check=False)
    output = (proc.stdout or "") + (proc.stderr or "")
    n_ok = output.count("Signature Verification : OK")
    failed = "verification failed" in output or "corrupted" in output
    ok = proc.returncode == 0 and not failed and (n_ok > 0 or not require_signature)
    return ok, f"$ {' '.join(cmd)}\n[exit {proc.returncode}]\n{output}"


def dcmsign_integrity_ok(output: str) -> bool:
    """From dcmsign verify output: every signature's *cryptographic* check passed.

    True when each "Signature Verification" line says either OK or "signature is OK but
    certificate verification failed" (a trust problem only) and there is at least one.
    """
    lines = [ln for ln in output.splitlines() if "Signature Verification" in ln]
    if not lines:
        return False
    return all(ln.rstrip().endswith(": OK") or "signature is OK but" in ln for ln in lines)


def dcmsign_remove_all(inp: StrPath, out: StrPath) -> subprocess.CompletedProcess[str]:
    return _run(["dcmsign", "+ra", str(inp), str(out)], check=True)


def dcmconv(inp: StrPath, out: StrPath, *opts: str) -> subprocess.CompletedProcess[str]:
    """``dcmconv [opts] inp out``; raises :class:`DcmtkError` on failure."""
    return _run(["dcmconv", *opts, str(inp), str(out)], check=True)


def dcmdump(path: StrPath, *opts: str) -> str:
    proc = _run(["dcmdump", *opts, str(path)], check=True)
    return proc.stdout


def dcmodify(path: StrPath, *opts: str) -> subprocess.CompletedProcess[str]:
    """``dcmodify -nb [opts] path`` (modifies in place, no backup)."""
    return _run(["dcmodify", "-nb", *opts, str(path)], check=True)


def read_dump(path: StrPath) -> bytes:
    return Path(path).read_bytes()
