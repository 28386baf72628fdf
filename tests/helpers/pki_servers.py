"""CRL distribution point, OCSP responder and caIssuers server on 127.0.0.1 for tests.

Also the builders for real CRLs and OCSP responses (cryptography builders). Every server
binds 127.0.0.1 on an ephemeral port and is a context manager: started on enter, shut down
and joined on exit.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from tests.helpers.pki_factory import NOW, Issued

Revocation = tuple[int, dt.datetime, x509.ReasonFlags]


def make_crl(
    ca: Issued,
    revoked: Iterable[Revocation] = (),
    *,
    this_update: dt.datetime = NOW,
    next_update: dt.datetime | None = None,
    hash_alg: hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None = None,
) -> x509.CertificateRevocationList:
    """A CRL signed by ``ca`` listing ``(serial, revocation time, reason)`` entries."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(this_update)
        .next_update(next_update or this_update + dt.timedelta(days=7))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    for serial, when, reason in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(when)
            .add_extension(x509.CRLReason(reason), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca.key, hash_alg or hashes.SHA256())


def _key_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bits = asn1_keys.PublicKeyInfo.load(spki)["public_key"].contents[1:]  # drop unused-bits byte
    digest = hashes.Hash(algorithm)
    digest.update(bits)
    return digest.finalize()


def _name_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(cert.subject.public_bytes())
    return digest.finalize()


def make_ocsp_response(
    ca: Issued,
    serial: int,
    *,
    revoked: tuple[dt.datetime, x509.ReasonFlags] | None = None,
    this_update: dt.datetime = NOW,
    nonce: bytes | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
) -> ocsp.OCSPResponse:
    """A successful OCSP response for ``serial`` issued by ``ca``, signed by the CA itself."""
    alg = algorithm or hashes.SHA1()  # the CertID hash clients ask for
    status = ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=_name_hash(ca.cert, alg),
        issuer_key_hash=_key_hash(ca.cert, alg),
        serial_number=serial,
        algorithm=alg,
        cert_status=status,
        this_update=this_update,
        next_update=this_update + dt.timedelta(days=1),
        revocation_time=revoked[0] if revoked else None,
        revocation_reason=revoked[1] if revoked else None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, ca.cert)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


@dataclass
class Authority:
    """A CA known to the server: its revocations feed both its CRL and its OCSP answers."""

    ca: Issued
    revoked: dict[int, tuple[dt.datetime, x509.ReasonFlags]] = field(default_factory=dict)

    def revoke(
        self,
        cert: x509.Certificate,
        when: dt.datetime,
        reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise,
    ) -> None:
        """Mark ``cert`` revoked at ``when``."""
        self.revoked[cert.serial_number] = (when, reason)

    def crl(self, this_update: dt.datetime = NOW) -> x509.CertificateRevocationList:
        """The current CRL."""
        return make_crl(
            self.ca, [(s, w, r) for s, (w, r) in self.revoked.items()], this_update=this_update
        )


class PkiServer:
    """HTTP server: ``GET /crl/<name>.crl``, ``GET /certs/<name>.der``, ``POST /ocsp``.

    ``failing = True`` makes every request answer 503 (a responder that is "down" while
    the port stays open); ``delay`` stalls each answer; ``hits`` records request paths.
    """

    def __init__(self, *, this_update: dt.datetime = NOW) -> None:
        self.authorities: dict[str, Authority] = {}
        self.certs: dict[str, bytes] = {}
        self.hits: list[str] = []
        self.failing = False
        self.delay = 0.0  # seconds to stall before answering (timeout tests)
        self.this_update = this_update
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add_authority(self, name: str, ca: Issued) -> Authority:
        """Serve CRL/OCSP for certificates issued by ``ca`` (and its cert at /certs/name.der)."""
        self.authorities[name] = Authority(ca)
        self.certs[name] = ca.cert.public_bytes(serialization.Encoding.DER)
        return self.authorities[name]

    def revinfo_extensions(
        self, name: str, *, crl: bool = True, ocsp: bool = True, ca_issuers: bool = False
    ) -> list[tuple[x509.ExtensionType, bool]]:
        """Extensions pointing at this server for a certificate issued by authority ``name``."""
        exts: list[tuple[x509.ExtensionType, bool]] = []
        if crl:
            point = x509.DistributionPoint(
                [x509.UniformResourceIdentifier(f"{self.base_url}/crl/{name}.crl")],
                None,
                None,
                None,
            )
            exts.append((x509.CRLDistributionPoints([point]), False))
        access = []
        if ocsp:
            access.append(
                x509.AccessDescription(
                    AuthorityInformationAccessOID.OCSP,
                    x509.UniformResourceIdentifier(f"{self.base_url}/ocsp"),
                )
            )
        if ca_issuers:
            access.append(
                x509.AccessDescription(
                    AuthorityInformationAccessOID.CA_ISSUERS,
                    x509.UniformResourceIdentifier(f"{self.base_url}/certs/{name}.der"),
                )
            )
        if access:
            exts.append((x509.AuthorityInformationAccess(access), False))
        return exts

    def _ocsp_answer(self, body: bytes) -> bytes:
        request = ocsp.load_der_ocsp_request(body)
        alg = request.hash_algorithm
        nonce = None
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            nonce = None
        for auth in self.authorities.values():
            if _key_hash(auth.ca.cert, alg) == request.issuer_key_hash:
                response = make_ocsp_response(
                    auth.ca,
                    request.serial_number,
                    revoked=auth.revoked.get(request.serial_number),
                    this_update=self.this_update,
                    nonce=nonce,
                    algorithm=alg,
                )
                return response.public_bytes(serialization.Encoding.DER)
        unauthorized = ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.UNAUTHORIZED
        )
        return unauthorized.public_bytes(serialization.Encoding.DER)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Silence the default stderr logging."""

            def _send(self, status: int, body: bytes = b"", ctype: str = "") -> None:
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                server.hits.append(f"GET {self.path}")
                time.sleep(server.delay)
                if server.failing:
                    return self._send(503)
                for prefix, ext, table, ctype in (
                    ("/crl/", ".crl", None, "application/pkix-crl"),
                    ("/certs/", ".der", server.certs, "application/pkix-cert"),
                ):
                    if self.path.startswith(prefix) and self.path.endswith(ext):
                        name = self.path[len(prefix) : -len(ext)]
                        if table is None and name in server.authorities:
                            crl = server.authorities[name].crl(server.this_update)
                            return self._send(
                                200, crl.public_bytes(serialization.Encoding.DER), ctype
                            )
                        if table is not None and name in table:
                            return self._send(200, table[name], ctype)
                return self._send(404)

            def do_POST(self) -> None:
                server.hits.append(f"POST {self.path}")
                time.sleep(server.delay)
                if server.failing or self.path != "/ocsp":
                    return self._send(503 if server.failing else 404)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    answer = server._ocsp_answer(body)
                except ValueError:
                    return self._send(400)
                return self._send(200, answer, "application/ocsp-response")

        return Handler

    def __enter__(self) -> PkiServer:
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
        """Shut down and close the socket (a later request gets "connection refused")."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
