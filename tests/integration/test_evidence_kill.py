"""``dsig evidence renew`` (timestamp renewal, and hash-tree renewal with ``--rehash``)
SIGKILLed while it writes its records (the moment the first record is replaced): every
record is left either as it was or renewed (never half-written), and the same command re-run
completes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsig.evidence import EvidenceStatus, verify_file_evidence
from dsig.evidence.record import parse
from pki.policy import TrustPolicy
from tests.helpers.tsa import TimestampPki
from tests.integration.test_evidence import REPO

# this interpreter with the code under test (cwd=REPO), not whatever "dsig" is installed
DSIG = (sys.executable, "-m", "dsig")
FILES = 40
KILLS = 2


def _stamp_counts(directory: Path) -> list[int]:
    return [len(parse(p.read_bytes()).stamps) for p in sorted(directory.glob("*.ers"))]


@pytest.mark.parametrize("rehash", [False, True], ids=["timestamp", "rehash"])
def test_sigkill_mid_renew_leaves_records_old_or_new(tmp_path: Path, rehash: bool) -> None:
    tp = TimestampPki(tmp_path / "pki")
    data = tmp_path / "data"
    data.mkdir()
    for i in range(FILES):
        (data / f"f{i:04d}.bin").write_bytes(f"object {i}\n".encode() * 50)
    trust = TrustPolicy(trust_roots=(tp.root.cert,))
    with tp.server() as tsa:
        base = ["--tsa", tsa.url, "--tsa-trust-store", str(tp.root_pem)]
        original = tmp_path / "ev"
        made = subprocess.run([*DSIG, "evidence", "create", str(data), "--out-dir", str(original),
                               *base], capture_output=True, text=True, cwd=REPO)  # fmt: skip
        assert made.returncode == 0, made.stderr
        kind = ["--rehash", "sha512", "--data", str(data)] if rehash else ["--min-age", "0"]
        renew = [*DSIG, "evidence", "renew", *kind, *base]
        outcomes = []
        for k in range(KILLS):
            work = tmp_path / f"kill{k}"
            shutil.copytree(original, work)
            inodes = {p: p.stat().st_ino for p in work.glob("*.ers")}
            child = subprocess.Popen([*renew, str(work)], cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            deadline = time.monotonic() + 120
            # kill as soon as a record is replaced (k=1: a few ms later, further into the loop)
            while child.poll() is None and time.monotonic() < deadline:
                if any(p.stat().st_ino != ino for p, ino in inodes.items()):
                    time.sleep(0.002 * k)
                    break
            child.send_signal(signal.SIGKILL)
            child.wait(30)
            counts = _stamp_counts(work)  # every record still parses: old (1) or new (2)
            assert len(counts) == FILES and set(counts) <= {1, 2}, counts
            outcomes.append(f"{counts.count(2)} of {FILES} renewed")
            for record in (sorted(work.glob("*.ers"))[0], sorted(work.glob("*.ers"))[-1]):
                name = record.name.removesuffix(".ers")
                result = verify_file_evidence(data / name, record, tsa_trust=trust)
                assert result.status is EvidenceStatus.PROVEN, (k, result.findings)
            # the same command run again completes: every record renewed at least once
            again = subprocess.run([*renew, str(work)], capture_output=True, text=True, cwd=REPO)
            assert again.returncode == 0, again.stderr
            assert min(_stamp_counts(work)) >= 2
    print(f"\nSIGKILL mid-renew ({'rehash' if rehash else 'timestamp'}): {outcomes}")
