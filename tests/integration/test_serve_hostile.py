"""``dsig serve`` against hostile and careless peers on 127.0.0.1 (issue 13).

Duplicates never replace a stored object, the audit log is a hash chain that
``dsig serve audit-check`` verifies, an object is not kept when its audit line cannot be
written, files are private, objects stream to disk under a size cap, slow peers lose their
slots at the idle timeout, and slow verifications are stopped while the node keeps answering.
Every loop here is bounded by a deadline.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from tests.helpers import net


@dataclass
class Files:
    pki: net.NetPki
    signed: Path
    other: Path  # unsigned, but with the SOP Instance UID of ``signed``
    more: list[Path]  # signed, distinct UIDs


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    d = tmp_path_factory.mktemp("hostile")
    pki = net.make_pki(d / "pki")
    plain = net.small_object(d / "plain" / "a.dcm", index=1)
    for i in range(3):
        net.small_object(d / "plain" / "more" / f"m{i}.dcm", index=20 + i)
    signed = net.sign(plain, d / "signed.dcm", pki.key, pki.cert)
    more = net.sign(d / "plain" / "more", d / "more", pki.key, pki.cert)
    ds = pydicom.dcmread(plain)
    ds.PatientName = "Someone^Else"
    other = d / "other.dcm"
    ds.save_as(other)
    return Files(pki, signed, other, sorted(more.glob("*.dcm")))


ServeFactory = Callable[..., net.Server]


@pytest.fixture
def serve(tmp_path: Path, files: Files) -> Iterator[ServeFactory]:
    servers: list[net.Server] = []

    def start(*args: str | os.PathLike[str], name: str = "srv") -> net.Server:
        server = net.start_server(tmp_path / name, "--trust-store", files.pki.trust, *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        assert server.stop() == 0, server.log()
        assert "Traceback" not in server.log(), server.log()


def send(server: net.Server, *paths: Path, timeout: float = 120) -> tuple[int, str]:
    proc = net.run_dsig("send", "127.0.0.1", str(server.port), *paths, "--called-ae",
                        "DSIGTEST", timeout=timeout)  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def uid_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_a_stored_object_is_never_replaced(serve: ServeFactory, files: Files) -> None:
    server = serve()  # no --require: the unsigned object alone would be stored
    code, out = send(server, files.signed)
    assert code == 0, out
    stored = server.store / f"{uid_of(files.signed)}.dcm"
    before = stored.read_bytes()
    code, out = send(server, files.other)
    assert code == 1 and "(0x0111)" in out, out
    assert stored.read_bytes() == before
    assert server.stored() == [stored]
    lines = server.wait_audit(2)
    assert lines[1]["action"] == "refused" and "DUPLICATE_DIFFERS" in lines[1]["findings"]
    kept = Path(lines[1]["path"])  # the refused object is kept as evidence, with its report
    assert kept.parent == server.quarantine and net.dataset_bytes(kept) == net.dataset_bytes(
        files.other
    )
    # the same object again, 30 times: a no-op each time, reported as such
    code, out = send(server, *[files.signed] * 30)
    assert code == 0 and "30 stored" in out, out
    lines = server.wait_audit(32)
    assert [x["action"] for x in lines[2:]] == ["duplicate"] * 30
    assert {x["path"] for x in lines[2:]} == {str(stored)}
    assert server.stored() == [stored] and stored.read_bytes() == before


def test_keep_both_keeps_versions(serve: ServeFactory, files: Files) -> None:
    server = serve("--duplicates", "keep-both")
    code, out = send(server, files.signed, files.other, files.other)
    assert code == 0, out
    uid = uid_of(files.signed)
    assert [p.name for p in server.stored()] == [f"{uid}.1.dcm", f"{uid}.dcm"]
    lines = server.wait_audit(3)
    assert [(x["action"], x["version"]) for x in lines] == [
        ("stored", None), ("stored", 1), ("duplicate", None),
    ]  # fmt: skip
    assert net.dataset_bytes(server.store / f"{uid}.1.dcm") == net.dataset_bytes(files.other)


def test_audit_lines_are_chained_and_checked(serve: ServeFactory, files: Files) -> None:
    server = serve("--require", "signature")
    code, out = send(server, *files.more, files.other)
    assert code == 0, out
    lines = server.wait_audit(4)
    raw = server.audit.read_bytes().splitlines()
    prev = "0" * 64
    for line, entry in zip(raw, lines, strict=True):
        assert entry["prev"] == prev
        prev = hashlib.sha256(line).hexdigest()
        assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()
    check = net.run_dsig("serve", "audit-check", server.audit)
    assert check.returncode == 0 and "4 line(s), chain intact" in check.stdout, check.stdout
    assert prev in check.stdout
    server.stop()
    assert prev in server.log()  # the last chain hash is printed at stop, to keep elsewhere
    log = server.audit.read_bytes()
    lines_b = log.splitlines(keepends=True)
    removed = server.audit.parent / "removed.jsonl"
    removed.write_bytes(b"".join(lines_b[:1] + lines_b[2:]))
    edited = server.audit.parent / "edited.jsonl"
    edited.write_bytes(
        b"".join([lines_b[0], lines_b[1].replace(b'"VALID"', b'"INVALI"'), *lines_b[2:]])
    )
    for path, bad in ((removed, 2), (edited, 3)):
        check = net.run_dsig("serve", "audit-check", path)
        assert check.returncode == 1, check.stdout + check.stderr
        assert check.stdout.strip().splitlines() == [check.stdout.strip()]
        assert f"line {bad}:" in check.stdout
    assert net.run_dsig("serve", "audit-check", server.audit.parent / "none").returncode == 4
    # a restarted server continues the chain
    again = net.start_server(server.store.parent, "--trust-store", files.pki.trust)
    try:
        assert send(again, files.more[0])[0] == 0
        again.wait_audit(5)
    finally:
        assert again.stop() == 0
    check = net.run_dsig("serve", "audit-check", server.audit)
    assert check.returncode == 0 and "5 line(s)" in check.stdout, check.stdout


def test_no_audit_line_no_object(serve: ServeFactory, files: Files) -> None:
    """The audit log's disk is full (/dev/full): the object is refused, not stored."""
    server = serve("--audit-log", "/dev/full")
    code, out = send(server, files.signed)
    assert code == 1 and "(0xA700)" in out, out
    assert server.stored() == []
    assert list(server.quarantine.iterdir()) == []
    assert "cannot write the audit log" in out or "audit log" in server.log()


def test_files_are_private_unless_configured(serve: ServeFactory, files: Files) -> None:
    server = serve("--require", "signature")
    assert send(server, files.signed, files.other)[0] == 0
    server.wait_audit(2)
    created = [server.store, server.quarantine, server.store / ".dsig-incoming"]
    assert {oct(p.stat().st_mode & 0o777) for p in created} == {"0o700"}
    made = [server.audit, *server.stored(), *server.quarantine.iterdir()]
    assert len(made) == 4
    assert {oct(p.stat().st_mode & 0o777) for p in made} == {"0o600"}
    shared = serve("--file-mode", "640", name="shared")
    assert send(shared, files.signed)[0] == 0
    shared.wait_audit(1)
    assert shared.store.stat().st_mode & 0o777 == 0o750
    assert {p.stat().st_mode & 0o777 for p in [shared.audit, *shared.stored()]} == {0o640}
    bad = net.run_dsig("serve", "--store", "s", "--quarantine", "q", "--file-mode", "4755")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def _big_object(path: Path, mib: int) -> Path:
    """An unsigned Secondary Capture object with ``mib`` MiB of pixel data, written without
    holding it in memory."""
    small = net.small_object(path.with_suffix(".small.dcm"), index=7, size=2)
    data = small.read_bytes()
    tag = struct.pack("<HH", 0x7FE0, 0x0010) + b"OB\0\0"
    at = data.index(tag)
    with path.open("wb") as fp:
        fp.write(data[:at] + tag + struct.pack("<I", mib << 20))
        block = bytes(range(256)) * 4096
        for _ in range(mib):
            fp.write(block)
    return path


@pytest.mark.slow
def test_objects_stream_to_disk_under_a_size_cap(
    serve: ServeFactory, files: Files, tmp_path: Path
) -> None:
    big = _big_object(tmp_path / "big.dcm", 256)
    server = serve("--max-object-size", "300M", "--quiet")
    code, out = send(server, big)
    assert code == 0, out
    (line,) = server.wait_audit(1)
    assert line["action"] == "stored" and line["size"] > 256 << 20
    peak = net.peak_rss_mib(server.proc.pid)
    print(f"\nserver peak RSS receiving a 256 MiB object: {peak:.0f} MiB")
    assert peak < 160, peak
    capped = serve("--max-object-size", "64M", name="capped")
    code, out = send(capped, big, files.signed)
    assert code == 4, out
    (line,) = capped.wait_audit(1)
    assert line["action"] == "dropped" and "over 67108864 bytes" in line["error"]
    assert capped.stored() == [] and list((capped.store / ".dsig-incoming").iterdir()) == []
    assert send(capped, files.signed)[0] == 0  # the node goes on


def _closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Whether the peer closes (or resets) the connection within ``timeout`` seconds."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass
    return True


def test_a_huge_pdu_length_is_refused_unread(serve: ServeFactory) -> None:
    server = serve()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"\x01\x00" + struct.pack(">I", 0xFFFFFFF0))
        assert _closed_by_peer(sock, 10)
    assert net.echo(server.port) == 0
    assert net.peak_rss_mib(server.proc.pid) < 200


def test_slow_peers_lose_their_slots_at_the_idle_timeout(serve: ServeFactory, files: Files) -> None:
    """Ten connections trickling an A-ASSOCIATE-RQ (one byte a second) fill every slot; at
    the idle timeout they are aborted and a real sender gets through."""
    server = serve("--idle-timeout", "4", "--max-associations", "10")
    stop = threading.Event()
    request = b"\x01\x00" + struct.pack(">I", 300) + b"\x00" * 300
    started = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        trickles = [pool.submit(net.trickle, server.port, request, 1.0, stop) for _ in range(10)]
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline and net.echo(server.port, timeout=1) is not None:
            time.sleep(0.1)
        assert net.echo(server.port, timeout=1) is None  # every slot is held
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and net.echo(server.port, timeout=2) != 0:
                time.sleep(0.5)
            freed = time.monotonic() - started
            outcomes = [t.result(timeout=20) for t in trickles]
        finally:
            stop.set()
    assert outcomes == ["closed"] * 10
    assert freed < 10, freed
    assert send(server, files.signed)[0] == 0
    lines = server.wait_audit(11)
    aborted = [x for x in lines if x["action"] == "aborted"]
    assert len(aborted) == 10 and all("no complete PDU for 4 s" in x["error"] for x in aborted)


def test_slow_verifications_are_stopped_and_the_node_stays_responsive(
    serve: ServeFactory, files: Files, tmp_path: Path
) -> None:
    """Ten objects whose verification is slow (deflate floods of empty items), sent at once:
    the node answers echoes meanwhile, none is stored, and they are over within a bound."""
    floods = [net.deflate_flood(tmp_path / f"flood{i}.dcm", 10_000_000) for i in range(10)]
    assert all(f.stat().st_size < 200_000 for f in floods)
    server = serve(
        "--require",
        "signature",
        "--verify-timeout",
        "4",
        "--workers",
        "2",
        "--max-associations",
        "12",
    )
    started = time.monotonic()
    with ThreadPoolExecutor(10) as pool:  # dsig send would parse them itself: raw C-STOREs
        senders = [pool.submit(net.store_raw, server.port, flood, 120) for flood in floods]
        time.sleep(2)
        for _ in range(3):
            t = time.monotonic()
            assert net.echo(server.port, timeout=5) == 0
            assert time.monotonic() - t < 3
        statuses = [s.result(timeout=150) for s in senders]
    elapsed = time.monotonic() - started
    lines = server.wait_audit(10)
    assert len(lines) == 10, statuses
    assert set(statuses) <= {0x0000, 0xA700}  # quarantined (answered success), or busy
    assert {x["action"] for x in lines} <= {"quarantined", "failed"}
    assert server.stored() == []
    print(f"\nten slow-to-verify objects handled in {elapsed:.1f} s "
          f"({sum('VERIFY_ABORTED' in x['findings'] for x in lines)} stopped at the timeout)")  # fmt: skip
    assert elapsed < 10 * 4 / 2 + 30
    assert send(server, files.signed)[0] == 0
    assert json.loads(server.audit.read_text().splitlines()[-1])["action"] == "stored"


def test_a_busy_association_ends_at_the_association_timeout(serve: ServeFactory) -> None:
    """A peer that never idles (a C-ECHO every half second) still loses its slot once the
    association has lasted --association-timeout; the node keeps serving others."""
    from pynetdicom import AE

    server = serve("--association-timeout", "3", "--idle-timeout", "60", "--max-associations", "1")
    ae = AE(ae_title="BUSYSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", server.port, ae_title="DSIGTEST")

    def established() -> bool:  # a call, so that the checker does not pin the state
        return bool(assoc.is_established)

    assert established()
    started = time.monotonic()
    echoes = 0
    try:
        while established() and time.monotonic() - started < 20:
            if "Status" in assoc.send_c_echo():
                echoes += 1
            time.sleep(0.5)
        lasted = time.monotonic() - started
        assert not established(), "still associated after 20 s"
    finally:
        if established():
            assoc.abort()
    assert 3 <= lasted < 10 and echoes >= 4, (lasted, echoes)
    assert net.echo(server.port) == 0  # the one slot is free again
    (line,) = [x for x in server.wait_audit(1) if x["action"] == "aborted"]
    assert "association lasted over 3 s" in line["error"]


def test_a_polyglot_is_never_stored(serve: ServeFactory, files: Files, tmp_path: Path) -> None:
    """The review's polyglot sent as it is (the data set bytes under the meta's implicit VR
    context): the node reads what the context says (the hidden data set, no signature) and
    quarantines it; the same bytes as explicit VR keep the signature but carry content no
    signature covers, which --require-coverage all refuses too."""
    from tests.helpers.rawdicom import EXPLICIT_LE, IMPLICIT_LE, basic_dataset, element, part10
    from tests.helpers.rawdicom import meta as meta_of

    uid = uid_of(files.signed)
    signed = net.dataset_bytes(files.signed)
    first = element(0x00060010, "SH", b"ABCD")  # read as implicit VR, its length swallows all
    swallow = struct.unpack_from("<I", first, 4)[0]
    hidden = basic_dataset(uid, implicit=True, patient="Hidden^Patient")
    pad = element(0xFFFCFFFC, "OB", bytes(swallow - 4 - len(signed) - 12) + hidden)
    server = serve("--require", "signature", "--require-coverage", "all")
    for name, syntax in (("implicit", IMPLICIT_LE), ("explicit", EXPLICIT_LE)):
        poly = tmp_path / f"poly-{name}.dcm"
        poly.write_bytes(part10(meta_of(syntax, uid), first + signed + pad))
        assert net.store_raw(server.port, poly) == 0x0000  # quarantined: answered success
    lines = server.wait_audit(2)
    assert [x["action"] for x in lines] == ["quarantined", "quarantined"], lines
    assert "SIGNATURE_REQUIRED" in lines[0]["findings"]
    assert {"COVERAGE_INCOMPLETE", "UNSIGNABLE_CONTENT"} <= set(lines[1]["findings"])
    assert server.stored() == []
