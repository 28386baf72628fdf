"""Network hygiene for ``online`` evaluations (imported only then: it loads aiohttp).

What pyhanko-certvalidator's own aiohttp backend does not do, this one adds:

- a budget of ``policy.max_fetches`` requests per evaluation (pyhanko's ``FetchLimits``);
- http and https only; redirects are never followed (a responder names its final URL);
- AIA ``caIssuers`` is followed for the signer only: certificates a file or a server
  hands us are never a reason to fetch more (a chain of AIA links was 200 requests);
- an OCSP response must echo the nonce we sent (pyhanko accepts a response without one,
  i.e. a replay);
- CRLs and OCSP responses dated in the future (beyond
  :data:`pki.revocation.FUTURE_SKEW`) are refused, as supplied ones are (pki.chain).

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

from pki.revocation import crl_future_date, ocsp_future_date


class FetchRefused(aiohttp.ClientError):
    """A request or its answer broke a network-hygiene rule (the message says which)."""


class _Guarded:
    """``async with session.get(...)``: one checked request."""

    def __init__(self, owner: GuardedSession, method: str, url: str, kwargs: dict[str, Any]):
        self._owner, self._method, self._url, self._kwargs = owner, method, url, kwargs
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        parts = urllib.parse.urlsplit(self._url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchRefused(f"not an http(s) URL: {self._url!r}")
        self._kwargs["allow_redirects"] = False
        response = await self._owner.session().request(self._method, self._url, **self._kwargs)
        self._response = response
        if 300 <= response.status < 400:
            raise FetchRefused(f"{self._url} redirects (HTTP {response.status}): not followed")
        body = await response.read()  # cached by aiohttp: the fetcher's read() gets it again
        if self._method == "POST":
            _check_ocsp(self._kwargs.get("data"), body, self._url)
        else:
            _check_crl(body, self._url)
        return response

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

    The real session is made on first use, inside the evaluation's event loop.
    """

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def get(self, url: str, **kwargs: Any) -> _Guarded:
        return _Guarded(self, "GET", url, kwargs)

    def post(self, url: str, **kwargs: Any) -> _Guarded:
        return _Guarded(self, "POST", url, kwargs)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


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

    def __init__(self, *, signer_der: bytes, timeout: float, max_requests: int) -> None:
        limits = FetchLimits(
            max_requests=max_requests, max_cert_requests=min(2, max_requests),
            max_aia_urls_per_object=2,
        )  # fmt: skip
        super().__init__(per_request_timeout=timeout, limits=limits)
        self.guarded = GuardedSession()
        self._signer_der = signer_der

    def get_fetchers(self) -> Fetchers:
        session: Any = self.guarded
        to = self.per_request_timeout
        budget = FetchBudget(self.limits)
        return Fetchers(
            ocsp_fetcher=AIOHttpOCSPFetcher(session, per_request_timeout=to, budget=budget),
            crl_fetcher=AIOHttpCRLFetcher(session, per_request_timeout=to, budget=budget),
            cert_fetcher=_SignerOnlyCertFetcher(
                session, per_request_timeout=to, budget=budget, signer_der=self._signer_der
            ),
        )

    async def close(self) -> None:
        await self.guarded.close()
