"""pki._fetching's network hygiene against a live 127.0.0.1 server that counts requests:
the per-evaluation request budget (``max_fetches``) and the per-verification allowance
(``max_fetches_per_verification``), caIssuers followed for the signer only, nothing fetched
for a certificate with no path to an anchor, http(s) URLs only, redirects never followed,
OCSP answers without our nonce or dated in the future refused."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

import pki
from pki.policy import FetchAllowance
from tests.helpers.pki_factory import NOW, Issued, issue
from tests.helpers.pki_servers import PkiServer, make_ocsp_response

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


def test_one_allowance_bounds_every_evaluation_of_a_verification(net: Net) -> None:
    """Evaluations drawing from one verification's allowance stop fetching when it is spent
    (whatever their own budgets), say why, and such a cut-short verdict is never cached."""
    evaluator = pki.PolicyEvaluator(online(net, intermediates=(net.busy_ca.cert,)))
    allowance = FetchAllowance(1)
    scoped = evaluator.within(allowance)
    net.server.hits.clear()
    first = scoped.evaluate(net.busy_signer.cert, at=NOW)
    assert len(net.server.hits) == 1, net.server.hits
    assert first.indication is pki.TrustIndication.INDETERMINATE
    details = " ".join(str(f) for f in first.findings)
    assert "the verification made its 1 requests" in details, details
    again = scoped.evaluate(net.busy_ca.cert, at=NOW)  # another certificate: nothing left
    assert len(net.server.hits) == 1 and again.indication is not pki.TrustIndication.VALID
    assert allowance.used == 1 and allowance.refused >= 2
    # the same evaluator (same cache, same moment), with nobody else's allowance: VALID
    net.server.hits.clear()
    fresh = evaluator.evaluate(net.busy_signer.cert, at=NOW)
    assert fresh.indication is pki.TrustIndication.VALID, fresh.findings
    assert len(net.server.hits) >= 2
    assert evaluator.allowance().limit == pki.TrustPolicy.max_fetches_per_verification == 32


def test_nothing_is_fetched_for_a_signer_with_no_path_to_an_anchor(net: Net) -> None:
    """A signer of another PKI that points everything at the server: its issuer is looked up
    once (its own caIssuers), that issuer leads to no anchor, so no CRL, no OCSP, no more."""
    stranger = issue("fetch stranger root", ca=True, key_kind=EC)
    net.server.add_authority("stranger", stranger)
    signer = issue("fetch stranger signer", issuer=stranger, key_kind=EC,
                   extensions=net.server.revinfo_extensions("stranger", ca_issuers=True))  # fmt: skip
    net.server.hits.clear()
    result = pki.evaluate_chain(signer.cert, online(net), at=NOW)
    assert result.indication is not pki.TrustIndication.VALID
    assert "NO_TRUSTED_PATH" in [f.code for f in result.findings]
    assert net.server.hits == ["GET /certs/stranger.der"], net.server.hits


def test_ocsp_answers_without_our_nonce_or_dated_in_the_future_are_refused(net: Net) -> None:
    """The responder answers a replay (no nonce), another request's answer (another nonce),
    or a response dated 30 days ahead: each refused with its reason, no VALID; the same
    answer with our nonce, dated now, is VALID."""
    signer = issue("fetch ocsp signer", issuer=net.root, key_kind=EC,
                   extensions=net.server.revinfo_extensions("root", crl=False))  # fmt: skip

    def responder(*, echo: bool = True, **kwargs: object) -> Callable[[bytes], bytes]:
        def answer(body: bytes) -> bytes:
            request = ocsp.load_der_ocsp_request(body)
            if echo:
                nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
                kwargs.setdefault("nonce", nonce)
            response = make_ocsp_response(
                net.root, signer.cert.serial_number, algorithm=request.hash_algorithm,
                **kwargs,  # type: ignore[arg-type]
            )  # fmt: skip
            return response.public_bytes(serialization.Encoding.DER)

        return answer

    cases = {
        "without the nonce we sent": responder(echo=False),
        "with another nonce": responder(echo=False, nonce=bytes(range(16))),
        "dated in the future": responder(this_update=NOW + dt.timedelta(days=30)),
    }
    original = net.server._ocsp_answer
    try:
        for why, answer in cases.items():
            net.server._ocsp_answer = answer  # type: ignore[method-assign,assignment]
            net.server.hits.clear()
            result = pki.evaluate_chain(signer.cert, online(net), at=NOW)
            assert net.server.hits == ["POST /ocsp"], (why, net.server.hits)
            assert result.indication is pki.TrustIndication.INDETERMINATE, (why, result)
            details = " ".join(str(f) for f in result.findings)
            assert "REVOCATION_UNAVAILABLE" in [f.code for f in result.findings], why
            assert why in details, (why, details)
        net.server._ocsp_answer = responder()  # type: ignore[method-assign,assignment]
        result = pki.evaluate_chain(signer.cert, online(net), at=NOW)
        assert result.indication is pki.TrustIndication.VALID, result.findings
    finally:
        net.server._ocsp_answer = original  # type: ignore[method-assign]


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
