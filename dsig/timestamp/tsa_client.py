"""Online RFC 3161 client: POST a TimeStampReq to one TSA after another until one answers well.

Plain urllib (HTTP/1.1 POST, ``application/timestamp-query``). Each URL gets ``retries``
extra attempts for transport failures and 5xx answers; a reply that fails the checks of
:func:`dsig.timestamp.check_reply` (status, imprint, nonce, policy, token signature, TSA EKU)
is not retried at the same TSA but moves on to the next one. Credentials are never printed.
"""

from __future__ import annotations

import base64
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dsig.timestamp.rfc3161 import (
    QueryOptions,
    TimestampError,
    TimestampQuery,
    TokenInfo,
    build_query,
    check_reply,
    token_from_reply,
)
from tokens.faults import BadEnvironmentError

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPES = ("application/timestamp-reply", "application/timestamp-response")
MAX_REPLY = 1 << 20  # a token with a full chain is a few kB; refuse anything absurd


class TsaUnavailableError(TimestampError, BadEnvironmentError):
    """No TSA gave a usable reply (every URL unreachable, failing or answering badly)."""


@dataclass(frozen=True)
class TsaCredentials:
    """HTTP basic-auth credentials; the password never appears in repr or messages."""

    user: str
    password: str = field(repr=False)

    def header(self) -> str:
        """The ``Authorization`` header value."""
        raw = f"{self.user}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    @classmethod
    def load(
        cls, user: str | None, *, password_env: str | None, password_file: Path | None
    ) -> TsaCredentials | None:
        """From ``--tsa-user`` plus a password from an environment variable or a file."""
        if user is None:
            if password_env or password_file:
                raise TimestampError("a TSA password needs a TSA user name", option="tsa_user")
            return None
        if password_file is not None:
            try:
                password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as e:
                raise TimestampError(
                    f"cannot read the TSA password file {password_file}: {e.strerror or e}"
                ) from None
        elif password_env is not None:
            value = os.environ.get(password_env)
            if value is None:
                raise TimestampError(f"environment variable {password_env} is not set")
            password = value
        else:
            password = ""
        return cls(user, password)


@dataclass(frozen=True)
class TsaOptions:
    """Transport settings: per-request timeout, extra attempts per URL, pause between them."""

    timeout: float = 10.0
    retries: int = 1
    backoff: float = 0.5
    credentials: TsaCredentials | None = None

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise TimestampError(f"TSA timeout must be positive, got {self.timeout}")
        if self.retries < 0:
            raise TimestampError(f"TSA retries must be >= 0, got {self.retries}")


@dataclass(frozen=True)
class Stamp:
    """A checked token and where it came from."""

    token: bytes
    info: TokenInfo
    url: str
    query: TimestampQuery


class _TransientError(Exception):
    """A failure worth retrying at the same URL."""


def redact_url(url: str) -> str:
    """The URL without user:password@ (for messages)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _validate_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TimestampError(f"TSA URL must be http(s)://host/..., got {redact_url(url)!r}")


def _split_userinfo(url: str) -> tuple[str, TsaCredentials | None]:
    """``http://user:pw@host/`` -> (``http://host/``, credentials): urllib cannot use userinfo."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, None
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    return redact_url(url), TsaCredentials(user, password)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would resend the Authorization header to wherever a redirect points."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx then surfaces as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect())


def post_query(url: str, query: bytes, options: TsaOptions) -> bytes:
    """One POST; raises :class:`_TransientError` (retry) or :class:`TimestampError` (give up).

    Credentials: ``options.credentials``, else user:password given in the URL.
    """
    url, in_url = _split_userinfo(url)
    credentials = options.credentials or in_url
    headers = {"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPES[0], "User-Agent": "dsig"}
    if credentials is not None:
        headers["Authorization"] = credentials.header()
    request = urllib.request.Request(url, data=query, headers=headers, method="POST")  # noqa: S310
    try:
        with _OPENER.open(request, timeout=options.timeout) as response:
            body: bytes = response.read(MAX_REPLY + 1)
            ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    except urllib.error.HTTPError as e:
        if 300 <= e.code < 400:
            raise TimestampError(
                f"HTTP {e.code}: the TSA redirects; redirects are not followed "
                "(credentials stay with the host named)"
            ) from None
        if e.code >= 500 or e.code == 429:
            raise _TransientError(f"HTTP {e.code} {e.reason}") from None
        if e.code in (401, 403):
            raise TimestampError(f"HTTP {e.code}: the TSA refused the credentials") from None
        raise TimestampError(f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:  # URLError, timeouts
        reason = getattr(e, "reason", e)
        raise _TransientError(
            f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
        ) from None
    if len(body) > MAX_REPLY:
        raise TimestampError("the TSA reply is larger than 1 MiB")
    if ctype and ctype not in REPLY_TYPES:
        raise TimestampError(f"the TSA answered {ctype!r}, not {REPLY_TYPES[0]}")
    return body


def request_timestamp(
    urls: Sequence[str],
    data: bytes,
    query_options: QueryOptions | None = None,
    options: TsaOptions | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    prehashed: bool = False,
) -> Stamp:
    """Get a checked token over ``data`` from the first TSA of ``urls`` that delivers one
    (``prehashed``: ``data`` is the imprint itself, e.g. an RFC 4998 hash-tree root).

    A fresh query (fresh nonce) is built per TSA. Raises :class:`TsaUnavailableError` listing
    why each URL failed.
    """
    query_options = query_options or QueryOptions()
    options = options or TsaOptions()
    if not urls:
        raise TimestampError("no TSA URL given")
    for url in urls:
        _validate_url(url)
    failures: list[str] = []
    for url in urls:
        query = build_query(data, query_options, prehashed=prehashed)
        try:
            body = _post_with_retries(url, query.der, options, sleep)
            token = token_from_reply(body)
            info = check_reply(token, data, query=query, prehashed=prehashed)
        except TimestampError as e:
            failures.append(f"{redact_url(url)}: {e}")
            continue
        return Stamp(token, info, url, query)
    raise TsaUnavailableError("no TSA gave a usable timestamp: " + "; ".join(failures))


def _post_with_retries(
    url: str, der: bytes, options: TsaOptions, sleep: Callable[[float], None]
) -> bytes:
    last = ""
    for attempt in range(options.retries + 1):
        if attempt:
            sleep(options.backoff * attempt)
        try:
            return post_query(url, der, options)
        except _TransientError as e:
            last = str(e)
    tries = options.retries + 1
    raise TimestampError(f"unreachable after {tries} attempt{'s' if tries > 1 else ''} ({last})")
