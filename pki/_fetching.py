"""Network hygiene for ``online`` evaluations (imported only then: it loads aiohttp).

What pyhanko-certvalidator's own aiohttp backend does not do, this one adds:

- a budget of ``policy.max_fetches`` requests per evaluation (pyhanko's ``FetchLimits``),
  and of ``policy.max_fetches_per_verification`` for all evaluations of one verification
  together (a :class:`pki.policy.FetchAllowance`: 128 signers would otherwise be 128 budgets);
- http and https only; redirects are never followed (a responder names its final URL);
- AIA ``caIssuers`` is followed for the signer only: certificates a file or a server
  hands us are never a reason to fetch more (a chain of AIA links was 200 requests);
- an OCSP response must echo the nonce we sent (pyhanko accepts a response without one,
  i.e. a replay);
- CRLs and OCSP responses dated in the future (beyond
  :data:`pki.revocation.FUTURE_SKEW`) are refused, as supplied ones are (pki.chain);
- every body is read up to a cap (:data:`MAX_BODY`: a CRL 10 MiB, an OCSP response or a
  certificate 64 KiB), never whole: a server cannot make an evaluation hold what it sends.

Refusals surface as the fetcher's usual errors, i.e. "revocation information unavailable".
"""

from __future__ import annotations

import urllib.parse
from types import TracebackType
from typing import Any

import aiohttp
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.x509 import ocsp
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.cert_fetch_client import (
    AIOHttpCertificateFetcher,
)
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.crl_client import AIOHttpCRLFetcher
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.ocsp_client import AIOHttpOCSPFetcher
from pyhanko_certvalidator.fetchers.api import Fetchers, FetchLimits
from pyhanko_certvalidator.fetchers.common_utils import (
    FetchBudget,
    complete_certificate_fetch_jobs,
)

from pki.policy import FetchAllowance
from pki.revocation import crl_future_date, ocsp_future_date


class FetchRefused(aiohttp.ClientError):
    """A request or its answer broke a network-hygiene rule (the message says which)."""


#: Bytes a response body may hold, by what is fetched. Real CRLs of large CAs run to a few
#: MiB; an OCSP response is a few KiB (with its responder's certificates), a certificate
#: 1-2 KiB (a PKCS#7 bundle of a chain a few times that). A larger body is refused unread.
MAX_BODY = {"crl": 10 << 20, "ocsp": 64 << 10, "cert": 64 << 10}


class _CappedResponse:
    """The response as the fetcher sees it: ``read()`` gives the body already read, within
    its cap (aiohttp's own ``read()`` would read the rest of an oversize one)."""

    def __init__(self, response: aiohttp.ClientResponse, body: bytes) -> None:
        self._response, self._body = response, body

    async def read(self) -> bytes:
        return self._body

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)


async def _read_capped(response: aiohttp.ClientResponse, cap: int, what: str, url: str) -> bytes:
    """The body, refused as soon as it is known to pass ``cap`` bytes (its Content-Length,
    else as it streams in)."""
    too_big = f"{what} from {url} is larger than {cap} bytes: not read"
    if response.content_length is not None and response.content_length > cap:
        raise FetchRefused(f"{too_big} (Content-Length {response.content_length})")
    body = bytearray()
    while chunk := await response.content.read(min(1 << 16, cap + 1 - len(body))):
        body += chunk
        if len(body) > cap:
            raise FetchRefused(too_big)
    return bytes(body)


class _Guarded:
    """``async with session.get(...)``: one checked request."""

    def __init__(
        self, owner: GuardedSession, kind: str, method: str, url: str, kwargs: dict[str, Any]
    ) -> None:
        self._owner, self._kind, self._method, self._url = owner, kind, method, url
        self._kwargs = kwargs
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> _CappedResponse:
        try:
            return await self._checked()
        except FetchRefused as e:
            self._owner.refusals.append(str(e))
            raise

    async def _checked(self) -> _CappedResponse:
        parts = urllib.parse.urlsplit(self._url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchRefused(f"not an http(s) URL: {self._url!r}")
        allowance = self._owner.allowance
        if allowance is not None and not allowance.take():
            raise FetchRefused(
                f"{self._url}: not requested, the verification made its {allowance.limit} requests"
            )
        self._kwargs["allow_redirects"] = False
        response = await self._owner.session().request(self._method, self._url, **self._kwargs)
        self._response = response
        if 300 <= response.status < 400:
            raise FetchRefused(f"{self._url} redirects (HTTP {response.status}): not followed")
        what = {"crl": "CRL", "ocsp": "OCSP response", "cert": "certificate"}[self._kind]
        body = await _read_capped(response, MAX_BODY[self._kind], what, self._url)
        if self._kind == "ocsp":
            _check_ocsp(self._kwargs.get("data"), body, self._url)
        elif self._kind == "crl":
            _check_crl(body, self._url)
        return _CappedResponse(response, body)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            self._response.release()


class GuardedSession:
    """The slice of ``aiohttp.ClientSession`` pyhanko's fetchers use, with the rules above.

    The real session is made on first use, inside the evaluation's event loop; each fetcher
    gets a :meth:`view` of it that knows what it fetches (a body's cap depends on it).
    """

    def __init__(
        self, refusals: list[str] | None = None, allowance: FetchAllowance | None = None
    ) -> None:
        self._session: aiohttp.ClientSession | None = None
        #: each refusal's message, for the evaluation's findings
        self.refusals = refusals if refusals is not None else []
        #: requests left to the whole verification (None: only the evaluation's budget)
        self.allowance = allowance

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def view(self, kind: str) -> _SessionView:
        """The session for one fetcher: ``kind`` is a key of :data:`MAX_BODY`."""
        return _SessionView(self, kind)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


class _SessionView:
    """``get``/``post`` of one fetcher (CRL, OCSP or certificate) on the shared session."""

    def __init__(self, owner: GuardedSession, kind: str) -> None:
        self._owner, self._kind = owner, kind

    def get(self, url: str, **kwargs: Any) -> _Guarded:
        return _Guarded(self._owner, self._kind, "GET", url, kwargs)

    def post(self, url: str, **kwargs: Any) -> _Guarded:
        return _Guarded(self._owner, self._kind, "POST", url, kwargs)


def _check_crl(body: bytes, url: str) -> None:
    # not a DER CRL (a certificate, PEM...): None, and the fetcher judges it
    when = crl_future_date(body)
    if when is not None:
        raise FetchRefused(f"CRL from {url} is dated in the future ({when})")


def _check_ocsp(request_der: object, body: bytes, url: str) -> None:
    try:
        response = ocsp.load_der_ocsp_response(body)
    except ValueError:
        return  # the fetcher reports malformed responses itself
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return
    if ocsp_future_date(body) is not None:
        raise FetchRefused(f"OCSP response from {url} is dated in the future")
    sent = _request_nonce(request_der)
    if sent is None:
        return
    try:
        got: bytes | None = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        got = None
    if got != sent:
        what = "without the nonce we sent" if got is None else "with another nonce"
        raise FetchRefused(f"OCSP response from {url} came {what} (a replay?)")


def _request_nonce(request_der: object) -> bytes | None:
    if not isinstance(request_der, bytes):
        return None
    try:
        nonce = asn1_ocsp.OCSPRequest.load(request_der).nonce_value
    except ValueError:
        return None
    if nonce is None:
        return None
    native: bytes = nonce.native
    return native


class _SignerOnlyCertFetcher(AIOHttpCertificateFetcher):
    """Follows caIssuers of the signer certificate only."""

    def __init__(self, *args: Any, signer_der: bytes, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signer_der = signer_der

    def fetch_cert_issuers(self, cert: Any) -> Any:
        if getattr(cert, "dump", None) is None or cert.dump() != self._signer_der:
            return complete_certificate_fetch_jobs([])  # type: ignore[no-untyped-call]
        return super().fetch_cert_issuers(cert)

    def fetch_crl_issuers(self, certificate_list: Any) -> Any:
        # A CRL's AIA is the server's say-so.
        return complete_certificate_fetch_jobs([])  # type: ignore[no-untyped-call]


class GuardedFetcherBackend(AIOHttpFetcherBackend):
    """pyhanko's aiohttp backend over a :class:`GuardedSession`, budget ``max_requests``."""

    def __init__(
        self,
        *,
        signer_der: bytes,
        timeout: float,
        max_requests: int,
        refusals: list[str] | None = None,
        allowance: FetchAllowance | None = None,
    ) -> None:
        limits = FetchLimits(
            max_requests=max_requests, max_cert_requests=min(2, max_requests),
            max_aia_urls_per_object=2,
        )  # fmt: skip
        super().__init__(per_request_timeout=timeout, limits=limits)
        self.guarded = GuardedSession(refusals, allowance)
        self._signer_der = signer_der

    def get_fetchers(self) -> Fetchers:
        session: Any = self.guarded
        to = self.per_request_timeout
        budget = FetchBudget(self.limits)
        return Fetchers(
            ocsp_fetcher=AIOHttpOCSPFetcher(
                session.view("ocsp"), per_request_timeout=to, budget=budget
            ),
            crl_fetcher=AIOHttpCRLFetcher(
                session.view("crl"), per_request_timeout=to, budget=budget
            ),
            cert_fetcher=_SignerOnlyCertFetcher(
                session.view("cert"), per_request_timeout=to, budget=budget,
                signer_der=self._signer_der,
            ),
        )  # fmt: skip

    async def close(self) -> None:
        await self.guarded.close()
