"""The CLI's start-up placeholders (dsig.cli._startup): deferred modules still work when used.

Each check runs in a fresh interpreter: the placeholders are process-wide, for the dsig
command's own process only."""

from __future__ import annotations

import subprocess
import sys

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
