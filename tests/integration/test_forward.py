"""``dsig serve --forward``: a durable queue to a real PACS (DCMTK storescp), at least once.

The PACS is DCMTK's storescp in bit-preserving mode; the node is a ``dsig serve`` subprocess
killed with SIGKILL and restarted on the same directories. Everything on 127.0.0.1.
"""

from __future__ import annotations

import collections
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.helpers import net


@pytest.fixture(scope="module")
def storescp() -> str:
    exe = net.dcmtk_tool("storescp")
    if exe is None:
        if os.environ.get("DSIG_REQUIRE_DCMTK") == "1":
            pytest.fail("DCMTK storescp not found")
        pytest.skip("DCMTK storescp not installed")
    return exe


@pytest.fixture
def cleanup() -> Iterator[list[net.Server | net.Pacs]]:
    running: list[net.Server | net.Pacs] = []
    yield running
    for process in running:
        if isinstance(process, net.Server):
            process.stop(signal.SIGKILL)
        else:
            process.stop()


def _objects(directory: Path, count: int) -> list[Path]:
    return [net.small_object(directory / f"{i}.dcm", index=i) for i in range(count)]


def _uids(files: list[Path]) -> list[str]:
    return [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in files]


def _send(server: net.Server, files: list[Path]) -> None:
    proc = net.run_dsig(
        "send", "127.0.0.1", str(server.port), *map(str, files), "--called-ae", "DSIGTEST"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _queued(node: Path) -> list[Path]:
    return sorted((node / "store" / ".dsig-forward").glob("*/*.dcm"))


def _wait(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _serve(node: Path, pacs_target: str, *extra: str) -> net.Server:
    return net.start_server(
        node, "--integrity-only", "--forward", pacs_target, "--forward-retry-max", "1",
        "--shutdown-grace", "1", *extra,
    )  # fmt: skip


def test_pacs_down_then_up_after_a_kill_and_restart(
    storescp: str, tmp_path: Path, cleanup: list[net.Server | net.Pacs]
) -> None:
    files = _objects(tmp_path / "in", 5)
    port = net.free_port()
    node = tmp_path / "node"
    server = _serve(node, f"PACS@127.0.0.1:{port}")
    cleanup.append(server)
    _send(server, files)  # acknowledged although the PACS is down: queued on disk
    assert len(_queued(node)) == 5
    _wait(lambda: "cannot forward to PACS@127.0.0.1:" in server.log())
    server.stop(signal.SIGKILL)
    pacs = net.start_pacs(storescp, tmp_path / "pacs", port=port)
    cleanup.append(pacs)
    again = _serve(node, pacs.target)
    cleanup.append(again)
    assert "(5 object(s) queued)" in again.log()
    _wait(lambda: len(pacs.received()) == 5 and not _queued(node))
    assert sorted(_uids(pacs.received())) == sorted(_uids(files))
    # forwarded byte for byte: the data sets the PACS holds are the ones sent to the node
    assert sorted(map(net.dataset_bytes, pacs.received())) == sorted(map(net.dataset_bytes, files))
    forwarded = [line for line in again.audit_lines() if line["action"] == "forwarded"]
    assert sorted(line["sop_instance_uid"] for line in forwarded) == sorted(_uids(files))
    assert again.stop() == 0, again.log()
    audit = net.run_dsig("serve", "audit-check", again.audit)
    assert audit.returncode == 0, audit.stdout


def test_kill_during_forwarding_loses_nothing(
    storescp: str, tmp_path: Path, cleanup: list[net.Server | net.Pacs]
) -> None:
    count = 4
    files = _objects(tmp_path / "in", count)
    pacs = net.start_pacs(storescp, tmp_path / "pacs", "--sleep-during", "1")  # a slow PACS
    cleanup.append(pacs)
    node = tmp_path / "node"
    server = _serve(node, pacs.target)
    cleanup.append(server)
    _send(server, files)
    _wait(lambda: len(pacs.received()) >= 2)
    server.stop(signal.SIGKILL)  # mid-batch: some delivered, one maybe in flight
    delivered_before = len(pacs.received())
    assert delivered_before < count, "the kill came too late to test anything"
    again = _serve(node, pacs.target)
    cleanup.append(again)
    _wait(lambda: not _queued(node), timeout=90)
    _wait(lambda: set(_uids(pacs.received())) == set(_uids(files)))
    copies = collections.Counter(_uids(pacs.received()))
    # at least once: every object arrived; a copy twice only for the one in flight at the kill
    assert set(copies) == set(_uids(files))
    assert sum(n - 1 for n in copies.values()) <= 1, copies
    assert again.stop() == 0, again.log()


def test_refused_objects_are_set_aside_not_retried_forever(
    tmp_path: Path, cleanup: list[net.Server | net.Pacs]
) -> None:
    # the "PACS" is a second dsig serve that refuses unsigned objects (0xC212)
    pacs = net.start_server(
        tmp_path / "pacs", "--integrity-only", "--require", "signature", "--reject-invalid",
        "--shutdown-grace", "1",
    )  # fmt: skip
    cleanup.append(pacs)
    node = tmp_path / "node"
    server = _serve(node, f"DSIGTEST@127.0.0.1:{pacs.port}")
    cleanup.append(server)
    _send(server, _objects(tmp_path / "in", 1))
    # the note, the dequeue and the audit line are three writes: wait for all of them
    _wait(
        lambda: (
            any(server.store.glob(".dsig-forward/*/refused/*.json"))
            and not _queued(node)
            and any(line["action"] == "forward-refused" for line in server.audit_lines())
        )
    )
    (note,) = server.store.glob(".dsig-forward/*/refused/*.json")
    assert '"0xC212"' in note.read_text()
    assert note.with_suffix(".dcm").exists()
    assert any(line["action"] == "forward-refused" for line in server.audit_lines())
    assert "refused" in server.log()
    assert server.stop() == 0, server.log()


def test_bad_forward_target_is_a_usage_error(tmp_path: Path) -> None:
    for bad in ("PACS@host", "@host:104", "PACS@host:99999", "TOO-LONG-AE-TITLE-X@h:104"):
        proc = net.run_dsig(
            "serve", "--store", tmp_path / "s", "--quarantine", tmp_path / "q", "--forward", bad
        )
        assert proc.returncode == 2, (bad, proc.stderr)
        assert "--forward" in proc.stderr and "Traceback" not in proc.stderr
