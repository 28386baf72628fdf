"""Outputs never destroy data (issues 11 and 13): every output path refuses inputs, existing
files (without --force), directories and devices; unwritable places, full files, closed
standard streams and closed pipes give one line (a closed pipe: nothing, SIGPIPE, as grep);
modes are never copied through symlinks nor setuid/setgid; --in-place on a symlink signs the
file it points to, atomically.

The commands run as real subprocesses (``python -m dsig``): standard streams and signals are
the subject. As root, "no permission" drops CAP_DAC_OVERRIDE with util-linux ``setpriv``.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import pytest

from dsig.operations.verifier import VerifyOptions, verify_file
from dsig.results import Indication
from tests.conftest import CorePki, sample

ROOT = Path(__file__).resolve().parents[2]


def run(*args: object, stdin: Any = subprocess.DEVNULL, stdout: Any = subprocess.PIPE,
        prefix: tuple[str, ...] = (), **kwargs: Any) -> subprocess.CompletedProcess[str]:  # fmt: skip
    cmd = [*prefix, sys.executable, "-m", "dsig", *map(str, args)]
    return subprocess.run(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True,
                          cwd=ROOT, check=False, timeout=120, **kwargs)  # fmt: skip


def one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == code, (proc.returncode, proc.stdout, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("dsig: error: "), err
    return err


def no_temp(directory: Path) -> bool:
    return not list(directory.glob("*.dsig-tmp")) and not list(directory.glob(".*.dsig-tmp"))


def signed_copy(core_pki: CorePki, out: Path) -> Path:
    proc = run("sign", sample("CT_small.dcm"), out, "--key", core_pki.rsa_key, "--cert",
               core_pki.rsa_cert, "--no-password")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def is_valid(path: Path) -> bool:
    result = verify_file(path, VerifyOptions(integrity_only=True))
    return result.indication is Indication.VALID and len(result.signatures) == 1


@pytest.fixture
def signed(core_pki: CorePki, tmp_path: Path) -> Path:
    return signed_copy(core_pki, tmp_path / "signed.dcm")


# --- --report and the other output paths ------------------------------------------------------


def test_report_never_replaces_an_input_or_an_existing_file(signed: Path, tmp_path: Path) -> None:
    original = signed.read_bytes()
    for extra in ((), ("--force",)):
        err = one_line(run("verify", signed, "--integrity-only", "--report", signed, *extra), 2)
        assert "is an input file" in err and signed.read_bytes() == original
    walked = tmp_path / "walk"
    walked.mkdir()
    inside = walked / "a.dcm"
    inside.write_bytes(original)  # an input found by the walk counts as an input too
    proc = run("verify", walked, "-r", "--integrity-only", "--report", inside, "--force")
    assert "is an input file" in one_line(proc, 2) and inside.read_bytes() == original
    existing = tmp_path / "audit.html"
    existing.write_text("keep me")
    err = one_line(run("verify", signed, "--integrity-only", "--report", existing), 2)
    assert "use --force" in err and existing.read_text() == "keep me"
    proc = run("verify", signed, "--integrity-only", "--report", existing, "--force")
    assert proc.returncode == 0 and existing.read_text().startswith("<!DOCTYPE html>")
    assert no_temp(tmp_path)


def test_report_refuses_directories_and_devices(signed: Path, tmp_path: Path) -> None:
    err = one_line(run("verify", signed, "--integrity-only", "--report", tmp_path), 2)
    assert "is a directory" in err
    for device in ("/dev/full", "/dev/null"):
        err = one_line(run("verify", signed, "--integrity-only", "--report", device, "--force"), 2)
        assert "not a regular file" in err
        assert stat.S_ISCHR(os.stat(device).st_mode)  # still the device
    err = one_line(run("verify", signed, "--integrity-only", "--report", tmp_path / "no" / "r"), 4)
    assert "does not exist" in err


def _without_dac_override() -> tuple[str, ...]:
    """As root, permissions only bind without CAP_DAC_OVERRIDE (util-linux setpriv)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test permissions as root"
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner")


def test_outputs_in_a_directory_without_permission(
    core_pki: CorePki, signed: Path, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        prefix = _without_dac_override()
        err = one_line(run("verify", signed, "--integrity-only", "--report", locked / "r.html",
                           prefix=prefix), 4)  # fmt: skip
        assert "permission" in err
        proc = run("sign", sample("CT_small.dcm"), locked / "o.dcm", "--key", core_pki.rsa_key,
                   "--cert", core_pki.rsa_cert, "--no-password", prefix=prefix)  # fmt: skip
        assert "permission" in one_line(proc, 4)
        proc = run("timestamp", "query", signed, "-o", locked / "q.tsq", prefix=prefix)
        assert "permission" in one_line(proc, 4)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_a_report_that_cannot_be_written_in_full(signed: Path, tmp_path: Path) -> None:
    """The file size limit (EFBIG) stands in for a full disk: same code path, one line."""

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    report = tmp_path / "audit.html"
    proc = run("verify", signed, "--integrity-only", "--report", report, preexec_fn=small_files)
    assert "cannot write" in one_line(proc, 4)
    assert not report.exists() and no_temp(tmp_path)


def test_other_outputs_refuse_existing_files(
    core_pki: CorePki, signed: Path, tmp_path: Path
) -> None:
    existing = tmp_path / "exists.bin"
    existing.write_bytes(b"keep")
    uid = run("inspect", signed, "--json").stdout.split('"uid": "')[1].split('"')[0]
    assert "use --force" in one_line(run("inspect", signed, "--dump-mac", uid, existing), 2)
    assert existing.read_bytes() == b"keep"
    assert run("inspect", signed, "--dump-mac", uid, existing, "--force").returncode == 0
    assert existing.read_bytes() != b"keep"
    existing.write_bytes(b"keep")
    common = ["--key", core_pki.rsa_key, "--cert", core_pki.rsa_cert, "--no-password"]
    out = tmp_path / "o.dcm"
    proc = run("sign", sample("CT_small.dcm"), out, *common, "--dump", existing)
    assert "--dump" in one_line(proc, 2) and not out.exists()
    proc = run("sign", sample("CT_small.dcm"), out, *common, "--timestamp-query", existing)
    assert "--timestamp-query" in one_line(proc, 2) and not out.exists()
    assert "use --force" in one_line(run("timestamp", "query", signed, "-o", existing), 2)
    assert "is a directory" in one_line(run("timestamp", "query", signed, "-o", tmp_path), 2)
    assert "is a directory" in one_line(run("remove", signed, tmp_path, "--all", "--force"), 2)
    assert existing.read_bytes() == b"keep" and no_temp(tmp_path)


# --- standard streams --------------------------------------------------------------------------


def test_stdout_to_a_full_device(signed: Path) -> None:
    with open("/dev/full", "w") as full:
        proc = run("verify", signed, "--integrity-only", stdout=full)
    err = one_line(proc, 4)
    assert "cannot write to standard output" in err and "No space left" in err
    with open("/dev/full", "w") as full:
        proc = run("verify", signed, "--integrity-only", "--json", stdout=full)
    assert "No space left" in one_line(proc, 4)


def _closed(fd: int) -> Any:
    def close() -> None:
        os.close(fd)

    return close


def test_closed_stdout_and_stdin(core_pki: CorePki, signed: Path, tmp_path: Path) -> None:
    proc = run("verify", signed, "--integrity-only", preexec_fn=_closed(1), stdout=None)
    assert "standard output is closed" in one_line(proc, 4)
    # stdin closed: nothing reads it; a needed password is asked for by option, not prompted
    proc = run("verify", signed, "--integrity-only", preexec_fn=_closed(0), stdin=None)
    assert proc.returncode == 0 and proc.stdout.startswith("VALID"), proc.stderr
    out = tmp_path / "o.dcm"
    proc = run("sign", sample("CT_small.dcm"), out, "--key", core_pki.encrypted_key, "--cert",
               core_pki.rsa_cert, preexec_fn=_closed(0), stdin=None)  # fmt: skip
    assert "--password-file" in one_line(proc, 4) and not out.exists()
    # and a closed stdin is never reused for an output: the signed file is a real file
    proc = run("sign", sample("CT_small.dcm"), out, "--key", core_pki.rsa_key, "--cert",
               core_pki.rsa_cert, "--no-password", preexec_fn=_closed(0), stdin=None)  # fmt: skip
    assert proc.returncode == 0 and is_valid(out), proc.stderr


def test_closed_pipe_ends_quietly(signed: Path, tmp_path: Path) -> None:
    many = tmp_path / "many"
    many.mkdir()
    for i in range(300):
        os.link(signed, many / f"f{i:03d}.dcm")
    cmd = [sys.executable, "-m", "dsig", "verify", many, "-r", "--integrity-only", "--jobs", "1"]
    for extra in ((), ("--jsonl",)):
        with subprocess.Popen([*map(str, cmd), *extra], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=ROOT) as child:  # fmt: skip
            stdout: IO[bytes] | None = child.stdout
            assert stdout is not None
            first = stdout.readline()
            stdout.close()  # the reader goes away, as `| head -1` does
            stderr = child.stderr.read() if child.stderr else b""
            code = child.wait(timeout=60)
        assert first, stderr
        assert code == -signal.SIGPIPE, (code, stderr)  # as grep: killed by SIGPIPE, silent
        assert stderr == b"", stderr


# --- symlinks and modes -----------------------------------------------------------------------


def test_in_place_on_a_symlink_signs_its_target(core_pki: CorePki, tmp_path: Path) -> None:
    real = tmp_path / "real.dcm"
    real.write_bytes(sample("CT_small.dcm").read_bytes())
    real.chmod(0o640)
    link = tmp_path / "link.dcm"
    link.symlink_to(real.name)
    before = real.stat().st_ino
    proc = run("sign", link, "--in-place", "--key", core_pki.rsa_key, "--cert",
               core_pki.rsa_cert, "--no-password")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == real.name  # the link stays as it was
    assert is_valid(real) and is_valid(link)
    assert real.stat().st_ino != before  # replaced by rename (atomic), not rewritten
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    # remove --in-place follows the same rule
    proc = run("remove", link, "--in-place", "--all")
    assert proc.returncode == 0 and link.is_symlink(), proc.stderr
    assert not verify_file(real, VerifyOptions(integrity_only=True)).signatures
    dangling = tmp_path / "dangling.dcm"
    dangling.symlink_to(tmp_path / "nowhere.dcm")
    proc = run("sign", dangling, "--in-place", "--key", core_pki.rsa_key, "--cert",
               core_pki.rsa_cert, "--no-password")  # fmt: skip
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert dangling.is_symlink() and no_temp(tmp_path)


def test_modes_are_never_copied_through_symlinks_nor_setuid(
    core_pki: CorePki, tmp_path: Path
) -> None:
    common = ["--key", core_pki.rsa_key, "--cert", core_pki.rsa_cert, "--no-password", "--force"]
    src = sample("CT_small.dcm")
    # replacing a setuid/setgid file keeps its permission bits, never the special bits
    special = tmp_path / "special.dcm"
    special.write_bytes(b"old")
    special.chmod(0o6755)
    assert run("sign", src, special, *common).returncode == 0
    assert stat.S_IMODE(special.stat().st_mode) == 0o755
    # an output that is a symlink: replaced by a new file of the default mode; target untouched
    target = tmp_path / "target.bin"
    target.write_bytes(b"target")
    target.chmod(0o6777)
    link = tmp_path / "out.dcm"
    link.symlink_to(target)
    assert run("sign", src, link, *common).returncode == 0
    assert not link.is_symlink() and is_valid(link)
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(link.stat().st_mode) == 0o666 & ~umask
    assert target.read_bytes() == b"target" and stat.S_IMODE(target.stat().st_mode) == 0o6777
    # --in-place on a setuid file (through a symlink too)
    real = tmp_path / "suid.dcm"
    real.write_bytes(src.read_bytes())
    real.chmod(0o4750)
    via = tmp_path / "via.dcm"
    via.symlink_to(real)
    proc = run("sign", via, "--in-place", "--key", core_pki.rsa_key, "--cert",
               core_pki.rsa_cert, "--no-password")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(real.stat().st_mode) == 0o750 and is_valid(real)


# --- walks ------------------------------------------------------------------------------------


def test_walk_verifies_dicom_without_preamble_and_lists_what_it_skips(
    signed: Path, tmp_path: Path
) -> None:
    import json

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    data = signed.read_bytes()
    (tree / "with-preamble.dcm").write_bytes(data)
    # the same object without the 128-byte preamble and DICM: still DICOM, still verified
    meta_length = int.from_bytes(data[140:144], "little")  # (0002,0000) UL after DICM
    bare = tree / "sub" / "bare.dcm"
    bare.write_bytes(data[144 + meta_length :])  # the data set alone, explicit VR LE
    assert bare.read_bytes()[128:132] != b"DICM"
    (tree / "notes.txt").write_text("not DICOM\n")
    (tree / "sub" / "garbage.bin").write_bytes(os.urandom(300))
    proc = run("verify", tree, "-r", "--integrity-only", "--json")
    report = json.loads(proc.stdout)
    verified = {Path(f["path"]).name: f["indication"] for f in report["files"]}
    assert verified == {"with-preamble.dcm": "VALID", "bare.dcm": "VALID"}, report
    assert sorted(Path(p).name for p in report["skipped"]) == ["garbage.bin", "notes.txt"]
    assert report["summary"]["skipped"] == 2 and proc.returncode == 0
    human = run("verify", tree, "-r", "--integrity-only")
    assert human.returncode == 0 and "2 file(s) verified" in human.stdout
    assert "2 skipped (not DICOM)" in human.stdout
    named = run("verify", bare, "--integrity-only")  # the same verdict when named directly
    assert named.returncode == 0 and named.stdout.startswith("VALID")


def test_nothing_verified_fails_a_requirement(tmp_path: Path) -> None:
    import json

    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.txt").write_text("hello")
    for directory, detail in ((empty, "no file found"), (junk, "1 file(s) skipped")):
        proc = run("verify", directory, "-r", "--integrity-only", "--require", "signature")
        assert proc.returncode == 1 and "NOTHING_VERIFIED" in proc.stdout and detail in proc.stdout
        proc = run("verify", directory, "-r", "--integrity-only", "--require", "signature",
                   "--json")  # fmt: skip
        report = json.loads(proc.stdout)
        assert proc.returncode == 1 and [f["code"] for f in report["findings"]] == [
            "NOTHING_VERIFIED"]  # fmt: skip
        proc = run("verify", directory, "-r", "--integrity-only", "--require", "signature",
                   "--jsonl")  # fmt: skip
        last = json.loads(proc.stdout.splitlines()[-1])
        assert proc.returncode == 1 and last["findings"][0]["code"] == "NOTHING_VERIFIED"
        # without a requirement an empty run is not a failure
        assert run("verify", directory, "-r", "--integrity-only").returncode == 0
