"""A real RFC 3161 Time-Stamp Authority on 127.0.0.1 for tests, with two backends.

- ``backend="python"``: tokens built here with asn1crypto + cryptography (TSTInfo, signed
  attributes content-type / signing-time / message-digest / signing-certificate-v2, signature
  over the DER SET OF). The clock is injectable, so tests can certify a moment in the past.
- ``backend="openssl"``: every request is answered by ``openssl ts -reply`` with a generated
  config file (a second, independent implementation; system clock only).

``fault`` makes the server misbehave on purpose (wrong imprint, wrong nonce, rejection, HTTP
500, garbage, another policy). Every server binds 127.0.0.1 on an ephemeral port and is a
context manager: started on enter, shut down and joined on exit.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tests.helpers.pki_factory import Issued

DEFAULT_POLICY = "1.2.3.4.1"
FAULTS = ("wrong_imprint", "wrong_nonce", "reject", "http500", "garbage", "wrong_policy", "html")
_serials = itertools.count(1)


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def make_token(
    tsa: Issued,
    *,
    hash_algorithm: str,
    digest: bytes,
    nonce: int | None = None,
    policy: str = DEFAULT_POLICY,
    gen_time: dt.datetime | None = None,
    certs: Sequence[x509.Certificate] = (),
    include_certs: bool = True,
    ess_v2: bool = True,
    signature_hash: str = "sha256",
) -> bytes:
    """A DER TimeStampToken (ContentInfo/SignedData over TSTInfo) signed by ``tsa``;
    ``signature_hash`` (sha256, sha1) is the SignerInfo digest and signature hash."""
    sig_hash = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}[signature_hash]
    when = (gen_time or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    tst: dict[str, Any] = {
        "version": "v1",
        "policy": policy,
        "message_imprint": {
            "hash_algorithm": {"algorithm": hash_algorithm},
            "hashed_message": digest,
        },
        "serial_number": next(_serials),
        "gen_time": when,
        "accuracy": {"seconds": 1},
        "tsa": asn1_x509.GeneralName(name="directory_name", value=_asn1(tsa.cert).subject),
    }
    if nonce is not None:
        tst["nonce"] = nonce
    econtent = tsp.TSTInfo(tst).dump()
    cert_der = tsa.cert.public_bytes(serialization.Encoding.DER)
    if ess_v2:
        ess = cms.CMSAttribute(
            {
                "type": "signing_certificate_v2",
                "values": [{"certs": [{"cert_hash": hashlib.sha256(cert_der).digest()}]}],
            }
        )
    else:
        ess = cms.CMSAttribute(
            {
                "type": "signing_certificate",
                "values": [{"certs": [{"cert_hash": hashlib.sha1(cert_der).digest()}]}],
            }
        )
    signed_attrs = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": when})]}),
            cms.CMSAttribute(
                {
                    "type": "message_digest",
                    "values": [hashlib.new(signature_hash, econtent).digest()],
                }
            ),
            ess,
        ]
    )
    to_sign = signed_attrs.dump()
    key = tsa.key
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(to_sign, padding.PKCS1v15(), sig_hash)
        sig_alg = f"{signature_hash}_rsa"
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        signature = key.sign(to_sign, ec.ECDSA(sig_hash))
        sig_alg = f"{signature_hash}_ecdsa"
    asn1_cert = _asn1(tsa.cert)
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number},
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": signature_hash}),
            "signed_attrs": signed_attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": sig_alg}),
            "signature": signature,
        }
    )
    signed = {
        "version": "v3",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": signature_hash})],
        "encap_content_info": {
            "content_type": "tst_info",
            "content": core.ParsableOctetString(econtent),
        },
        "signer_infos": [signer_info],
    }
    if include_certs:
        signed["certificates"] = [asn1_cert, *(_asn1(c) for c in certs)]
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())


class _Resp(core.Sequence):  # type: ignore[misc]
    # asn1crypto's TimeStampResp makes the token mandatory; RFC 3161 says OPTIONAL.
    _fields: ClassVar[list[tuple[str, type, dict[str, bool]] | tuple[str, type]]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def make_response(token: bytes | None, status: str = "granted", text: str | None = None) -> bytes:
    """A DER TimeStampResp around ``token`` (or a refusal without one)."""
    status_info: dict[str, Any] = {"status": status}
    if text:
        status_info["status_string"] = [text]
    fields: dict[str, Any] = {"status": status_info}
    if token is not None:
        fields["time_stamp_token"] = cms.ContentInfo.load(token)
    return bytes(_Resp(fields).dump())


def answer_query(
    query_der: bytes,
    tsa: Issued,
    *,
    certs: Sequence[x509.Certificate] = (),
    gen_time: dt.datetime | None = None,
    policy: str = DEFAULT_POLICY,
    fault: str | None = None,
) -> bytes:
    """The TimeStampResp our python TSA sends for a DER TimeStampReq."""
    req = tsp.TimeStampReq.load(query_der)
    imprint = req["message_imprint"]
    digest = bytes(imprint["hashed_message"].native)
    nonce = req["nonce"].native if not isinstance(req["nonce"], core.Void) else None
    if fault == "reject":
        return make_response(None, "rejection", "policy says no")
    if fault == "wrong_imprint":
        digest = bytes(b ^ 0xFF for b in digest)
    if fault == "wrong_nonce":
        nonce = (nonce or 0) + 1
    requested = req["req_policy"].dotted if not isinstance(req["req_policy"], core.Void) else None
    chosen = "1.2.3.4.99" if fault == "wrong_policy" else (requested or policy)
    token = make_token(
        tsa,
        hash_algorithm=imprint["hash_algorithm"]["algorithm"].dotted,
        digest=digest,
        nonce=nonce,
        policy=chosen,
        gen_time=gen_time,
        certs=certs,
        include_certs=bool(req["cert_req"].native),
    )
    return make_response(token)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class OpensslTsa:
    """``openssl ts -reply`` with a generated ``tsa.cnf`` in a private directory."""

    def __init__(
        self, tsa: Issued, certs: Sequence[x509.Certificate] = (), *, policy: str = DEFAULT_POLICY
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="dsig-openssl-tsa-")
        d = Path(self._dir.name)
        key, cert = tsa.write(d, "tsa")
        chain = d / "chain.pem"
        chain.write_bytes(b"".join(_pem(c) for c in certs) or _pem(tsa.cert))
        (d / "serial").write_text("01\n")
        self.config = d / "tsa.cnf"
        self.config.write_text(
            "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\n"
            f"dir = {d}\nserial = {d}/serial\ncrypto_device = builtin\n"
            f"signer_cert = {cert}\ncerts = {chain}\nsigner_key = {key}\n"
            "signer_digest = sha256\n"
            f"default_policy = {policy}\nother_policies = 1.2.3.4.5\n"
            "digests = sha256, sha384, sha512\naccuracy = secs:1\nordering = yes\n"
            "tsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n"
        )
        self.directory = d
        self._lock = threading.Lock()

    def reply(self, query_der: bytes, *, token_only: bool = False) -> bytes:
        """Run ``openssl ts -reply`` on one query (serialised: the serial file is shared)."""
        with self._lock:
            q = self.directory / "q.tsq"
            r = self.directory / "r.tsr"
            q.write_bytes(query_der)
            cmd = [
                "openssl",
                "ts",
                "-reply",
                "-config",
                str(self.config),
                "-queryfile",
                str(q),
                "-out",
                str(r),
            ]
            if token_only:
                cmd.append("-token_out")
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            return r.read_bytes()

    def close(self) -> None:
        """Remove the key material."""
        self._dir.cleanup()


class TsaServer:
    """RFC 3161 over HTTP: ``POST /`` (any path) with ``application/timestamp-query``.

    ``clock`` (python backend) sets genTime; ``fault`` is one of :data:`FAULTS`; ``auth``
    ``(user, password)`` demands HTTP basic auth; ``hits`` counts requests; ``queries`` keeps
    the DER queries received.
    """

    def __init__(
        self,
        tsa: Issued,
        certs: Sequence[x509.Certificate] = (),
        *,
        backend: str = "python",
        clock: Callable[[], dt.datetime] | None = None,
        policy: str = DEFAULT_POLICY,
        fault: str | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        self.tsa = tsa
        self.certs = tuple(certs)
        self.backend = backend
        self.clock = clock
        self.policy = policy
        self.fault = fault
        self.auth = auth
        self.hits = 0
        self.queries: list[bytes] = []
        self._openssl = OpensslTsa(tsa, certs, policy=policy) if backend == "openssl" else None
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/tsa``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/tsa"

    def respond(self, query: bytes) -> bytes:
        """The reply body for one query (also usable without HTTP)."""
        if self._openssl is not None:
            return self._openssl.reply(query)
        gen_time = self.clock() if self.clock else None
        return answer_query(
            query,
            self.tsa,
            certs=self.certs,
            gen_time=gen_time,
            policy=self.policy,
            fault=self.fault,
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Silence the default stderr logging."""

            def _send(self, status: int, body: bytes = b"", ctype: str = "") -> None:
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="tsa"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                server.hits += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if server.auth is not None:
                    want = "Basic " + base64.b64encode(":".join(server.auth).encode()).decode()
                    if self.headers.get("Authorization") != want:
                        return self._send(401)
                if self.headers.get("Content-Type") != "application/timestamp-query":
                    return self._send(415)
                server.queries.append(body)
                if server.fault == "http500":
                    return self._send(500)
                if server.fault == "garbage":
                    return self._send(200, b"\x30\x03\x02\x01", "application/timestamp-reply")
                if server.fault == "html":
                    return self._send(200, b"<html>maintenance</html>", "text/html")
                try:
                    answer = server.respond(body)
                except (ValueError, subprocess.CalledProcessError):
                    return self._send(400)
                return self._send(200, answer, "application/timestamp-reply")

        return Handler

    def __enter__(self) -> TsaServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Shut down, close the socket, remove openssl's key material."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        if self._openssl is not None:
            self._openssl.close()


def dead_url() -> str:
    """A URL on 127.0.0.1 whose port is closed (bound once, then released)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/tsa"


class TimestampPki:
    """A test PKI with signers and TSAs, written to ``directory`` as PEM files.

    ``tsa`` has a critical timeStamping EKU; ``tsa_no_eku`` has none; ``other_tsa`` is issued
    by a separate root (``other_root``) to test ``--tsa-trust-store``.
    """

    def __init__(self, directory: Path, now: dt.datetime | None = None) -> None:
        from tests.helpers.pki_factory import TIMESTAMPING, build_pki, issue

        self.now = now or dt.datetime.now(dt.UTC)
        self.directory = directory
        p = build_pki(now=self.now)
        self.pki = p
        self.root, self.intermediate = p.root, p.intermediate
        self.rsa = p.leaf("rsa", now=self.now)
        self.ec = p.leaf("ec", key_kind="ec-p256", now=self.now)
        self.tsa = issue(
            "dsig TSA",
            issuer=p.intermediate,
            eku=[TIMESTAMPING],
            now=self.now,
            key_usage={"digital_signature", "non_repudiation"},
        )
        self.tsa_no_eku = issue("dsig TSA without EKU", issuer=p.intermediate, now=self.now)
        self.other_root = issue("dsig Other Root CA", ca=True, now=self.now)
        self.other_tsa = issue(
            "dsig Other TSA", issuer=self.other_root, eku=[TIMESTAMPING], now=self.now
        )
        directory.mkdir(parents=True, exist_ok=True)
        self.root_pem = self._pem("root.pem", self.root.cert)
        self.inter_pem = self._pem("intermediate.pem", self.intermediate.cert)
        self.other_root_pem = self._pem("other-root.pem", self.other_root.cert)
        self.rsa_key, self.rsa_cert = self.rsa.write(directory, "rsa")
        self.ec_key, self.ec_cert = self.ec.write(directory, "ec")

    def _pem(self, name: str, cert: x509.Certificate) -> Path:
        path = self.directory / name
        path.write_bytes(_pem(cert))
        return path

    def signer(self, name: str, **kwargs: Any) -> tuple[Issued, Path, Path]:
        """Issue a named leaf (kwargs for ``issue``) and write its key and certificate."""
        from tests.helpers.pki_factory import issue

        leaf = issue(f"dsig {name}", issuer=self.intermediate, now=self.now, **kwargs)
        key, cert = leaf.write(self.directory, name)
        return leaf, key, cert

    def server(self, tsa: Issued | None = None, **kwargs: Any) -> TsaServer:
        """A :class:`TsaServer` for ``tsa`` (default: the good one) with its chain."""
        tsa = tsa or self.tsa
        chain = [self.intermediate.cert] if tsa is not self.other_tsa else []
        return TsaServer(tsa, chain, **kwargs)
