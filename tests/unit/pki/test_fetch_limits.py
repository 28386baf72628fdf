"""pki._fetching's network hygiene against a live 127.0.0.1 server that counts requests:
the per-evaluation request budget (``max_fetches``), caIssuers followed for the signer only,
http(s) URLs only and redirects never followed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509

import pki
from tests.helpers.pki_factory import NOW, Issued, issue
from tests.helpers.pki_servers import PkiServer

EC = "ec-p256"  # fast keys: these tests are about requests, not algorithms


@dataclass
class Net:
    server: PkiServer
    root: Issued
    mid: Issued  # issued by root; served at /certs/mid.der, never handed to the validator
    inter: Issued  # issued by mid; caIssuers -> mid; served at /certs/inter.der
    aia_signer: Issued  # caIssuers -> inter, nothing else
    busy_signer: Issued  # issued by root directly: CRL DP and OCSP, as is root-issued "ca"
    busy_ca: Issued  # root -> busy_ca (CRL DP + OCSP) -> busy_signer


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    with PkiServer() as server:
        root = issue("fetch root", ca=True, key_kind=EC)
        server.add_authority("root", root)
        mid = issue("fetch mid", issuer=root, ca=True, key_kind=EC)
        server.add_authority("mid", mid)
        aia_only = {"crl": False, "ocsp": False, "ca_issuers": True}
        inter = issue("fetch inter", issuer=mid, ca=True, key_kind=EC,
                      extensions=server.revinfo_extensions("mid", **aia_only))  # fmt: skip
        server.add_authority("inter", inter)
        aia_signer = issue("fetch aia signer", issuer=inter, key_kind=EC,
                           extensions=server.revinfo_extensions("inter", **aia_only))  # fmt: skip
        busy_ca = issue("fetch busy ca", issuer=root, ca=True, key_kind=EC,
                        extensions=server.revinfo_extensions("root"))  # fmt: skip
        server.add_authority("busy", busy_ca)
        busy_signer = issue("fetch busy signer", issuer=busy_ca, key_kind=EC,
                            extensions=server.revinfo_extensions("busy"))  # fmt: skip
        yield Net(server, root, mid, inter, aia_signer, busy_signer, busy_ca)


def online(n: Net, **kwargs: object) -> pki.TrustPolicy:
    kwargs.setdefault("timeout", 3.0)
    return pki.TrustPolicy(trust_roots=(n.root.cert,), online=True, **kwargs)  # type: ignore[arg-type]


def test_request_budget_caps_what_one_evaluation_fetches(net: Net) -> None:
    pol = online(net, intermediates=(net.busy_ca.cert,))
    net.server.hits.clear()
    full = pki.evaluate_chain(net.busy_signer.cert, pol, at=NOW)
    needed = len(net.server.hits)
    assert full.indication is pki.TrustIndication.VALID, full.findings
    assert needed >= 2  # the signer's and its CA's status, each from the server
    net.server.hits.clear()
    capped = pki.evaluate_chain(
        net.busy_signer.cert, online(net, intermediates=(net.busy_ca.cert,), max_fetches=1), at=NOW
    )
    assert len(net.server.hits) == 1, net.server.hits
    # one status could not be fetched within the budget: hard-fail cannot say VALID
    assert capped.indication is pki.TrustIndication.INDETERMINATE
    assert "REVOCATION_UNAVAILABLE" in [f.code for f in capped.findings]


def test_ca_issuers_followed_for_the_signer_only(net: Net) -> None:
    net.server.hits.clear()
    result = pki.evaluate_chain(net.aia_signer.cert, online(net), at=NOW)
    # the signer's caIssuers (inter) is fetched; inter's own caIssuers (mid) is not followed
    assert "GET /certs/inter.der" in net.server.hits
    assert "GET /certs/mid.der" not in net.server.hits, net.server.hits
    assert result.indication is not pki.TrustIndication.VALID
    assert "NO_TRUSTED_PATH" in [f.code for f in result.findings]
    # with mid supplied, the same path validates: only the AIA restriction stopped it
    net.server.hits.clear()
    supplied = pki.evaluate_chain(
        net.aia_signer.cert, online(net, intermediates=(net.mid.cert,)), at=NOW
    )
    assert supplied.indication is pki.TrustIndication.VALID, supplied.findings


def test_ca_issuers_of_offered_certificates_are_not_followed(net: Net) -> None:
    """A certificate a file hands us (extra_certs) is never a reason to fetch more."""
    net.server.hits.clear()
    result = pki.evaluate_chain(
        net.aia_signer.cert, online(net), at=NOW, extra_certs=(net.inter.cert,)
    )
    assert "GET /certs/mid.der" not in net.server.hits, net.server.hits
    assert "GET /certs/inter.der" not in net.server.hits  # already offered: nothing to fetch
    assert result.indication is not pki.TrustIndication.VALID


def _crl_signer(net: Net, name: str, url: str) -> Issued:
    point = x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)
    return issue(name, issuer=net.root, key_kind=EC,
                 extensions=[(x509.CRLDistributionPoints([point]), False)])  # fmt: skip


def test_only_http_urls_are_fetched_and_redirects_are_not_followed(net: Net) -> None:
    """A CRL URL naming a local file is never read; one that redirects (here to the real CRL
    on the same server) is not followed: without revocation information, no VALID."""
    real = f"{net.server.base_url}/crl/root.crl"

    class Redirector(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Silence."""

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", real)
            self.send_header("Content-Length", "0")
            self.end_headers()

    redirector = ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    threading.Thread(target=redirector.serve_forever, daemon=True).start()
    try:
        cases = {
            "file": "file:///etc/passwd",
            "redirect": f"http://127.0.0.1:{redirector.server_address[1]}/crl",
        }
        for name, url in cases.items():
            signer = _crl_signer(net, f"fetch {name} signer", url)
            net.server.hits.clear()
            result = pki.evaluate_chain(signer.cert, online(net), at=NOW)
            assert result.indication is pki.TrustIndication.INDETERMINATE, (name, result)
            assert "REVOCATION_UNAVAILABLE" in [f.code for f in result.findings], name
            assert "GET /crl/root.crl" not in net.server.hits, (name, net.server.hits)
        # the same signer with the real URL: only the URL made the difference
        result = pki.evaluate_chain(_crl_signer(net, "fetch real", real).cert, online(net), at=NOW)
        assert result.indication is pki.TrustIndication.VALID, result.findings
    finally:
        redirector.shutdown()
        redirector.server_close()


def test_oversize_bodies_are_refused_unread(net: Net) -> None:
    """A CRL server that sends 11 MiB, announced (Content-Length) or not (the body ends
    when the connection closes), is refused past the 10 MiB cap as unavailable, with a
    detail that says so."""
    size = 11 << 20

    class Flood(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Silence."""

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/pkix-crl")
            if self.path == "/announced":
                self.send_header("Content-Length", str(size))
            self.end_headers()
            block = bytes(1 << 16)
            try:
                for _ in range(size // len(block)):
                    self.wfile.write(block)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client hung up on the refused body

    flood = ThreadingHTTPServer(("127.0.0.1", 0), Flood)
    threading.Thread(target=flood.serve_forever, daemon=True).start()
    try:
        for path in ("/announced", "/streamed"):
            url = f"http://127.0.0.1:{flood.server_address[1]}{path}"
            signer = _crl_signer(net, f"fetch flood {path}", url)
            result = pki.evaluate_chain(signer.cert, online(net), at=NOW)
            assert result.indication is pki.TrustIndication.INDETERMINATE, (path, result)
            unavailable = [f for f in result.findings if f.code == "REVOCATION_UNAVAILABLE"]
            assert unavailable, (path, result.findings)
            details = " ".join(str(f) for f in result.findings)
            assert f"larger than {10 << 20} bytes" in details, (path, details)
    finally:
        flood.shutdown()
        flood.server_close()
