"""The storage node's verifier pool is bounded: a fixed number of worker processes, a request
that finds them all busy past ``wait`` is refused (PoolBusyError, answered 0xA700 by the
node), and a verification past ``timeout`` is killed and its worker replaced (issue 13)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dsig.net.pool import PoolBusyError, Verdict, VerifierPool


def _task(path: Path, sop_class: str, seconds: str) -> Verdict:
    """Runs in a worker: sleeps, then names the process that ran it."""
    time.sleep(float(seconds))
    return Verdict(str(os.getpid()), True, 0, "")


@pytest.fixture
def pool() -> Iterator[VerifierPool]:
    p = VerifierPool(_task, size=2, timeout=3.0, wait=0.5)
    p.start()
    yield p
    p.close()


def _verify(pool: VerifierPool, seconds: float) -> str:
    try:
        return pool.verify(Path("unused"), "", str(seconds)).indication
    except PoolBusyError as e:
        return f"busy: {e}"


def test_two_workers_serve_everything_and_the_rest_waits_then_is_refused(
    pool: VerifierPool,
) -> None:
    with ThreadPoolExecutor(6) as threads:
        outcomes = list(threads.map(lambda _: _verify(pool, 1.5), range(6)))
    ran = [o for o in outcomes if not o.startswith("busy")]
    busy = [o for o in outcomes if o.startswith("busy")]
    assert len(ran) == 2 and len(busy) == 4, outcomes  # 1.5 s each, wait 0.5 s: no third
    assert busy[0] == "busy: every verifier was busy for 0.5 s"
    assert os.getpid() not in map(int, ran)  # never in the server's own process
    # many short ones, eight at a time: still only the two same processes
    with ThreadPoolExecutor(8) as threads:
        pids = set(threads.map(lambda _: _verify(pool, 0.01), range(40)))
    assert len(pids) <= 2 and not any(p.startswith("busy") for p in pids), pids
    assert pids <= set(ran)


def test_a_verification_past_its_deadline_is_killed_and_replaced(pool: VerifierPool) -> None:
    started = time.monotonic()
    verdict = pool.verify(Path("unused"), "", "30")
    took = time.monotonic() - started
    assert 3 <= took < 6, took
    assert not verdict.accepted and verdict.findings == ("VERIFY_ABORTED",)
    assert verdict.error == "verification took over 3 s and was stopped"
    assert pool.killed == 1
    with ThreadPoolExecutor(2) as threads:  # two workers again, one of them new
        pids = set(threads.map(lambda _: _verify(pool, 0.3), range(2)))
    assert len(pids) == 2 and not any(p.startswith("busy") for p in pids), pids
