"""The CLI's start-up placeholders (dsig.cli._startup): deferred modules still work when used.

Each check runs in a fresh interpreter: the placeholders are process-wide, for the dsig
command's own process only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.dicom_factory import sample

_CHECK = """
import sys
from dsig.cli._startup import defer_modules
defer_modules()
import urllib.request
assert "http.client" not in sys.modules, "urllib.request was imported for real"
assert urllib.request is sys.modules["urllib.request"]
from urllib.request import Request  # the placeholder imports the real module here
assert "http.client" in sys.modules
assert Request("http://127.0.0.1/").host == "127.0.0.1"
assert urllib.request.urlopen is sys.modules["urllib.request"].urlopen
import requests
assert requests.Session is not None
try:
    import numpy  # noqa: F401
except ImportError:
    pass
else:
    raise AssertionError("numpy importable")
print("ok")
"""


def test_deferred_modules_import_for_real_on_first_use() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CHECK], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"


# A process whose entry is dsig's main: an atexit handler registered first, and an object
# whose __del__ runs only in the interpreter's teardown (module globals are freed there).
_ENTRY = """
import atexit, gc, os, sys
atexit.register(lambda: print("atexit ran", "gc on" if gc.isenabled() else "gc off", flush=True))
class Teardown:
    def __del__(self, write=os.write) -> None:  # sys.stdout is the guarded one's leftover
        write(1, b"teardown ran\\n")
keep = Teardown()
from dsig.cli import main
sys.argv = ["dsig", *sys.argv[1:]]
main()
"""
# A host process that calls main as a function: it gets SystemExit back, as always.
_HOSTED = """
import gc, sys
from dsig.cli import main as dsig_main
def main() -> None:
    sys.argv = ["dsig", *sys.argv[1:]]
    try:
        dsig_main()
    except SystemExit as e:
        print("host got exit", e.code, "gc on" if gc.isenabled() else "gc off", flush=True)
main()
"""


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=False
    )


def test_verify_ends_without_teardown_after_atexit_with_its_exit_code(tmp_path: Path) -> None:
    """``dsig verify`` as the process skips the interpreter's teardown (cold-start cost,
    issue 18) but runs the atexit handlers and keeps its exit status and output."""
    ct = str(sample("CT_small.dcm"))  # unsigned: exit 0
    ok = _run(_ENTRY, "verify", "--integrity-only", ct)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("UNSIGNED") and ok.stdout.endswith("atexit ran gc off\n")
    with_store = _run(_ENTRY, "verify", "--trust-store", str(tmp_path), "--integrity-only", ct)
    assert with_store.stdout.endswith("atexit ran gc off\n"), with_store.stderr
    assert "teardown ran" not in ok.stdout
    missing = _run(_ENTRY, "verify", "--integrity-only", str(tmp_path / "absent.dcm"))
    assert missing.returncode == 4 and "atexit ran" in missing.stdout, missing.stderr
    usage = _run(_ENTRY, "verify", "--no-such-option")
    assert usage.returncode == 2 and "No such option" in usage.stderr
    assert "atexit ran" in usage.stdout and "teardown ran" not in usage.stdout


def test_other_commands_and_hosted_calls_exit_normally() -> None:
    """Commands other than verify tear down as usual; a program calling main() gets the
    SystemExit back instead of its process ending."""
    other = _run(_ENTRY, "purposes")
    assert other.returncode == 0, other.stderr
    assert "atexit ran" in other.stdout and "teardown ran" in other.stdout
    hosted = _run(_HOSTED, "verify", "--integrity-only", str(sample("CT_small.dcm")))
    assert hosted.returncode == 0, hosted.stderr
    assert hosted.stdout.splitlines()[-1] == "host got exit 0 gc on"


def test_gc_stays_on_for_what_may_be_many_files(tmp_path: Path) -> None:
    """The collector is paused only for a verify of a few named files (a trust store may be
    a directory)."""
    (tmp_path / "a.dcm").write_bytes(sample("CT_small.dcm").read_bytes())
    for args in (["-r", str(tmp_path)], ["--recursive", str(tmp_path)], ["-jr2", str(tmp_path)],
                 [f"file://{tmp_path}/a.dcm"],
                 ["--integrity-only", *[str(tmp_path / "a.dcm")] * 13]):  # fmt: skip
        run = _run(_ENTRY, "verify", *args)
        assert "atexit ran gc on" in run.stdout, (args, run.stdout, run.stderr)
