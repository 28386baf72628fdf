"""DICOM TLS (PS3.15 B.10 profile) for ``dsig serve`` and ``dsig send``, against DCMTK.

Real parts only: DCMTK storescu/storescp with ``+tls``, ``dsig serve``/``dsig send``
subprocesses, certificates from the test PKI factory; every server listens on 127.0.0.1 and is
stopped at the end of its test.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import net


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> net.TlsPki:
    return net.make_tls_pki(tmp_path_factory.mktemp("tls-pki"))


@pytest.fixture(scope="module")
def dcmtk() -> tuple[str, str]:
    storescu, storescp = net.dcmtk_storescu(), net.dcmtk_tool("storescp")
    if storescu is None or storescp is None:
        if os.environ.get("DSIG_REQUIRE_DCMTK") == "1":
            pytest.fail("DCMTK storescu/storescp not found")
        pytest.skip("DCMTK storescu/storescp not installed")
    return storescu, storescp


@pytest.fixture
def tls_server(tmp_path: Path, tls: net.TlsPki) -> Iterator[net.Server]:
    """``dsig serve`` with TLS, client certificates required, the key password from env."""
    os.environ["DSIG_TEST_TLS_PASSWORD"] = tls.password
    server = net.start_server(
        tmp_path / "node", "--integrity-only", "--tls-cert", tls.server_cert,
        "--tls-key", tls.server_key, "--tls-ca", tls.ca,
        "--tls-key-password-env", "DSIG_TEST_TLS_PASSWORD", "--shutdown-grace", "1",
    )  # fmt: skip
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log()
        assert tls.password not in server.log()


def _unsigned(tmp_path: Path, count: int = 2) -> list[Path]:
    return [net.small_object(tmp_path / f"in/{i}.dcm", index=i) for i in range(count)]


def test_dcmtk_storescu_over_tls_to_dsig_serve(
    tls_server: net.Server, tls: net.TlsPki, dcmtk: tuple[str, str], tmp_path: Path
) -> None:
    files = _unsigned(tmp_path)
    proc = net.storescu(
        dcmtk[0], tls_server.port, files,
        "+tls", str(tls.client_key), str(tls.client_cert), "+cf", str(tls.ca),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = tls_server.wait_audit(2)
    assert [line["action"] for line in lines] == ["stored", "stored"]
    assert {net.dataset_bytes(p) for p in tls_server.stored()} == {
        net.dataset_bytes(p) for p in files
    }
    assert "DICOM TLS, non-downgrading BCP 195" in tls_server.log()


def test_client_without_certificate_or_from_another_pki_is_refused(
    tls_server: net.Server, tls: net.TlsPki, dcmtk: tuple[str, str], tmp_path: Path
) -> None:
    files = _unsigned(tmp_path, 1)
    anonymous = net.run_dsig(
        "send", "127.0.0.1", str(tls_server.port), *map(str, files),
        "--called-ae", "DSIGTEST", "--tls-ca", tls.ca, "--timeout", "10",
    )  # fmt: skip
    assert anonymous.returncode == 4, anonymous.stdout + anonymous.stderr
    assert "Traceback" not in anonymous.stderr
    stranger = net.storescu(
        dcmtk[0], tls_server.port, files,
        "+tls", str(tls.stranger_key), str(tls.stranger_cert), "+cf", str(tls.ca),
    )  # fmt: skip
    assert stranger.returncode != 0
    plain = net.storescu(dcmtk[0], tls_server.port, files)  # no TLS at all
    assert plain.returncode != 0
    assert tls_server.stored() == []
    refusals = [line for line in tls_server.audit_lines() if str(line["error"]).startswith("TLS")]
    assert len(refusals) >= 2, tls_server.audit_lines()  # the anonymous and the stranger
    # the node still serves a proper client, even while a silent one holds a connection
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10):
        good = net.run_dsig(
            "send", "127.0.0.1", str(tls_server.port), *map(str, files), "--called-ae",
            "DSIGTEST", "--tls-ca", tls.ca, "--tls-cert", tls.client_cert,
            "--tls-key", tls.client_key, "--timeout", "20",
        )  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr
    assert len(tls_server.stored()) == 1


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_weak_protocol_client_is_refused(
    tls_server: net.Server, tls: net.TlsPki, version: ssl.TLSVersion
) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(tls.ca)
    context.load_cert_chain(tls.client_cert, tls.client_key)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer the old protocol at all
    context.minimum_version = context.maximum_version = version
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                conn.recv(1)  # the handshake happens on the server's first read
    # the same client with TLS 1.2 gets through the handshake
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(tls.ca)
    context.load_cert_chain(tls.client_cert, tls.client_key)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            assert conn.version() == "TLSv1.2"
            cipher = conn.cipher()
            assert cipher is not None and cipher[0] in net_ciphers()


def net_ciphers() -> set[str]:
    from dsig.net.tls import BCP195_CIPHERS

    return set(BCP195_CIPHERS.split(":"))


def test_dsig_send_over_tls_to_dcmtk_storescp(
    tls: net.TlsPki, dcmtk: tuple[str, str], tmp_path: Path
) -> None:
    pacs = net.start_pacs(
        dcmtk[1], tmp_path / "pacs", "+tls", str(tls.server_key), str(tls.server_cert),
        "+pw", tls.password, "+cf", str(tls.ca),
    )  # fmt: skip
    try:
        files = _unsigned(tmp_path, 2)
        proc = net.run_dsig(
            "send", "127.0.0.1", str(pacs.port), *map(str, files), "--called-ae", "PACS",
            "--tls-ca", tls.ca, "--tls-cert", tls.client_cert, "--tls-key", tls.client_key,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert sorted(net.dataset_bytes(p) for p in pacs.received()) == sorted(
            net.dataset_bytes(p) for p in files
        )
        # a server certificate the CA does not vouch for is refused by dsig send
        other = net.run_dsig(
            "send", "127.0.0.1", str(pacs.port), *map(str, files), "--called-ae", "PACS",
            "--tls-ca", tls.stranger_cert, "--tls-cert", tls.client_cert,
            "--tls-key", tls.client_key, "--timeout", "10",
        )  # fmt: skip
        assert other.returncode == 4, other.stdout + other.stderr
        assert "certificate verify failed" in other.stderr
        assert "Traceback" not in other.stderr
    finally:
        pacs.stop()


def test_encrypted_key_without_password_is_one_line(tls: net.TlsPki, tmp_path: Path) -> None:
    proc = net.run_dsig(
        "serve", "--store", tmp_path / "s", "--quarantine", tmp_path / "q", "--port", "0",
        "--tls-cert", tls.server_cert, "--tls-key", tls.server_key, "--tls-ca", tls.ca,
    )  # fmt: skip
    assert proc.returncode == 4
    assert "--tls-key-password-file" in proc.stderr
    assert "Traceback" not in proc.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    proc = net.run_dsig(
        "serve", "--store", tmp_path / "s", "--quarantine", tmp_path / "q", "--port", "0",
        "--tls-cert", tls.server_cert, "--tls-key", tls.server_key, "--tls-ca", tls.ca,
        "--tls-key-password-file", wrong,
    )  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    assert "password" in proc.stderr and "Traceback" not in proc.stderr


def test_forward_over_tls_to_dcmtk_storescp(
    tls: net.TlsPki, dcmtk: tuple[str, str], tmp_path: Path
) -> None:
    pacs = net.start_pacs(
        dcmtk[1], tmp_path / "pacs", "+tls", str(tls.server_key), str(tls.server_cert),
        "+pw", tls.password, "+cf", str(tls.ca),
    )  # fmt: skip
    password = tmp_path / "password"
    password.write_text(tls.password + "\n")
    node = net.start_server(
        tmp_path / "node", "--integrity-only", "--tls-cert", tls.server_cert,
        "--tls-key", tls.server_key, "--tls-ca", tls.ca, "--tls-key-password-file", password,
        "--forward", pacs.target, "--forward-tls", "--forward-retry-max", "1",
        "--shutdown-grace", "1",
    )  # fmt: skip
    try:
        files = _unsigned(tmp_path, 2)
        proc = net.run_dsig(
            "send", "127.0.0.1", str(node.port), *map(str, files), "--called-ae", "DSIGTEST",
            "--tls-ca", tls.ca, "--tls-cert", tls.client_cert, "--tls-key", tls.client_key,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        deadline = time.monotonic() + 60
        while len(pacs.received()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(map(net.dataset_bytes, pacs.received())) == sorted(
            map(net.dataset_bytes, files)
        )
    finally:
        assert node.stop() == 0, node.log()
        pacs.stop()
