"""RFC 3161 time-stamp protocol and CMS TimeStampToken checks, with no DICOM in them.

Queries (TimeStampReq), replies (TimeStampResp) and tokens: build, parse, and check status,
imprint, nonce, policy, the TSA's CMS signature and its certificate's timeStamping EKU.
Built on asn1crypto (structures) and cryptography (signature checks). The DICOM glue (which
bytes of a signature are stamped, where the token is stored, what the verifier reports) is
:mod:`dsig.timestamp.dicom`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from asn1crypto import algos, cms, core, tsp  # tsp registers TSTInfo/ESS attributes in cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from dsig.encoding.der import strip_der_pad
from dsig.errors import DsigError
from tokens.digest import HashAlgorithm
from tokens.errors import UnsupportedAlgorithmError
from tokens.faults import BadInputError

#: Imprint hashes offered for new queries (DCMTK's default is SHA-256).
QUERY_HASHES = ("sha256", "sha384", "sha512")
TIMESTAMPING_OID = ExtendedKeyUsageOID.TIME_STAMPING.dotted_string
_RIPEMD160_OID = "1.3.36.3.2.1"  # not in asn1crypto's table; dcmsign +tmr uses it
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)


class TimestampError(DsigError, BadInputError):
    """A query, reply or token is unusable (bad reply, mismatch, not a token): exit 4."""


# ---------------------------------------------------------------------------------------------
# Hash names
# ---------------------------------------------------------------------------------------------


def _hash_name(algorithm: algos.DigestAlgorithm) -> str:
    oid = algorithm["algorithm"].dotted
    return "ripemd160" if oid == _RIPEMD160_OID else str(algorithm["algorithm"].native)


def _digest(name: str, data: bytes) -> bytes:
    try:
        hasher = HashAlgorithm.from_name(name).new()
    except UnsupportedAlgorithmError:
        try:
            return hashlib.new(name, data).digest()
        except ValueError:
            raise TimestampError(f"unsupported hash algorithm {name}") from None
    hasher.update(data)
    return hasher.digest()


def _digest_algorithm(name: str) -> dict[str, Any]:
    if name == "ripemd160":
        return {"algorithm": _RIPEMD160_OID, "parameters": core.Null()}
    # DCMTK and OpenSSL write an explicit NULL; some TSAs compare the AlgorithmIdentifier.
    return {"algorithm": name, "parameters": core.Null()}


def _prehashed(name: str, digest: bytes) -> bytes:
    if len(digest) != len(_digest(name, b"")):
        raise TimestampError(
            f"a {name} imprint has {len(_digest(name, b''))} bytes, not {len(digest)}"
        )
    return digest


_CRYPTO_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha3_256": hashes.SHA3_256,
    "sha3_384": hashes.SHA3_384,
    "sha3_512": hashes.SHA3_512,
}


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryOptions:
    """TimeStampReq fields: imprint hash, nonce on/off, certReq, requested policy."""

    hash_algorithm: str = "sha256"
    nonce: bool = True
    cert_req: bool = True
    policy: str | None = None

    def __post_init__(self) -> None:
        if self.hash_algorithm not in QUERY_HASHES:
            raise TimestampError(
                f"timestamp hash must be one of {', '.join(QUERY_HASHES)}, "
                f"got {self.hash_algorithm!r}"
            )
        if self.policy is not None:
            try:
                core.ObjectIdentifier(self.policy).dump()
                valid = all(p.isdigit() for p in self.policy.split(".")) and "." in self.policy
            except (ValueError, TypeError):
                valid = False
            if not valid:
                raise TimestampError(f"timestamp policy {self.policy!r} is not a dotted OID")


@dataclass(frozen=True)
class TimestampQuery:
    """A parsed (or freshly built) TimeStampReq."""

    der: bytes
    hash_algorithm: str
    digest: bytes
    nonce: int | None
    cert_req: bool
    policy: str | None

    @classmethod
    def parse(cls, der: bytes) -> TimestampQuery:
        """Decode a TimeStampReq (e.g. a ``.tsq`` written by ``dcmsign +ts`` or openssl)."""
        try:
            req = tsp.TimeStampReq.load(der, strict=True)
            imprint = req["message_imprint"]
            policy = req["req_policy"]
            nonce = req["nonce"]
            return cls(
                der=der,
                hash_algorithm=_hash_name(imprint["hash_algorithm"]),
                digest=bytes(imprint["hashed_message"].native),
                nonce=None if isinstance(nonce, core.Void) else int(nonce.native),
                cert_req=bool(req["cert_req"].native),
                policy=None if isinstance(policy, core.Void) else policy.dotted,
            )
        except (ValueError, TypeError, KeyError) as e:
            raise TimestampError(f"not an RFC 3161 timestamp query: {first_line(e)}") from None


def build_query(
    data: bytes, options: QueryOptions = QueryOptions(), *, prehashed: bool = False
) -> TimestampQuery:
    """A TimeStampReq over ``data`` (the timestamped Signature bytes); ``prehashed``: ``data``
    is already the imprint (an RFC 4998 hash-tree root)."""
    digest = (
        _prehashed(options.hash_algorithm, data)
        if prehashed
        else _digest(options.hash_algorithm, data)
    )
    # 63 random bits with the top bit set: positive, never shorter than 8 bytes (as DCMTK).
    nonce = secrets.randbits(63) | (1 << 62) if options.nonce else None
    fields: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": _digest_algorithm(options.hash_algorithm),
            "hashed_message": digest,
        },
        "cert_req": options.cert_req,
    }
    if options.policy:
        fields["req_policy"] = options.policy
    if nonce is not None:
        fields["nonce"] = nonce
    der = tsp.TimeStampReq(fields).dump()
    return TimestampQuery(
        der, options.hash_algorithm, digest, nonce, options.cert_req, options.policy
    )


# ---------------------------------------------------------------------------------------------
# Replies and tokens
# ---------------------------------------------------------------------------------------------


class _TimeStampResp(core.Sequence):  # type: ignore[misc]
    """RFC 3161 TimeStampResp; asn1crypto's class wrongly makes the token mandatory, so a
    rejection (status only) would not even parse."""

    _fields: ClassVar[list[tuple[str, type, dict[str, bool]] | tuple[str, type]]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


_STATUS_TEXT = {
    "rejection": "rejected",
    "waiting": "waiting (no token yet)",
    "revocation_warning": "revocation warning",
    "revocation_notification": "the TSA certificate has been revoked",
}


def token_from_reply(der: bytes) -> bytes:
    """The DER TimeStampToken from a TimeStampResp (status must be granted) or a bare token."""
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native == "signed_data":
            return der
    except (ValueError, TypeError):
        pass
    try:
        resp = _TimeStampResp.load(der, strict=True)
        status_info = resp["status"]
        status = status_info["status"].native
    except (ValueError, TypeError, KeyError) as e:
        raise TimestampError(f"not an RFC 3161 timestamp reply: {first_line(e)}") from None
    if status not in ("granted", "granted_with_mods"):
        text = _STATUS_TEXT.get(str(status), str(status))
        detail = status_info["status_string"].native if status_info["status_string"] else None
        failure = status_info["fail_info"].native if status_info["fail_info"] else None
        extra = "; ".join(str(x) for x in (detail, failure) if x)
        raise TimestampError(
            f"the TSA refused the request: {text}" + (f" ({extra})" if extra else "")
        )
    token = resp["time_stamp_token"]
    if isinstance(token, core.Void):
        raise TimestampError("the TSA reply is 'granted' but carries no token")
    return bytes(token.dump())


@dataclass(frozen=True)
class TokenInfo:
    """What a cryptographically checked token says."""

    der: bytes
    gen_time: dt.datetime
    hash_algorithm: str
    digest: bytes
    policy: str
    serial: int
    nonce: int | None
    tsa_name: str | None
    accuracy: dt.timedelta | None
    signer: x509.Certificate | None
    certificates: tuple[x509.Certificate, ...]
    #: Hashes of the TSA's signature: the SignerInfo digest and the signature algorithm's.
    signature_hashes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """Result of :func:`check_token`: the info (when decodable) and problems found (frozen)."""

    info: TokenInfo | None = None
    problems: tuple[tuple[str, str], ...] = ()  # (code, message)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return self.info is not None and not self.problems


def _certs(signed: cms.SignedData) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for choice in signed["certificates"] or []:
        if choice.name == "certificate":
            try:
                with warnings.catch_warnings():  # e.g. a negative serial: not our finding
                    warnings.simplefilter("ignore")
                    out.append(x509.load_der_x509_certificate(choice.chosen.dump()))
            except (ValueError, x509.InvalidVersion):
                continue  # an undecodable extra certificate is ignored, as OpenSSL does
    return out


def _matches_sid(cert: x509.Certificate, sid: cms.SignerIdentifier) -> bool:
    asn1 = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))
    if sid.name == "issuer_and_serial_number":
        ias = sid.chosen
        return bool(
            ias["issuer"] == asn1.issuer and ias["serial_number"].native == asn1.serial_number
        )
    return bool(asn1.key_identifier == sid.chosen.native)


def _general_name(name: Any) -> str | None:
    if isinstance(name, core.Void) or name is None:
        return None
    if name.name == "directory_name":
        # RFC 4514 order (most specific first), as cryptography prints certificate subjects.
        parts = []
        for rdn in reversed(list(name.chosen.chosen)):
            for atv in rdn:
                key = atv["type"].native
                short = _RDN_SHORT.get(key, atv["type"].dotted)
                parts.append(f"{short}={atv['value'].native}")
        return ",".join(parts)
    return str(name.native)


_RDN_SHORT = {
    "common_name": "CN",
    "organization_name": "O",
    "organizational_unit_name": "OU",
    "country_name": "C",
    "locality_name": "L",
    "state_or_province_name": "ST",
    "street_address": "STREET",
    "domain_component": "DC",
    "serial_number": "serialNumber",
}


def _accuracy(acc: Any) -> dt.timedelta | None:
    if isinstance(acc, core.Void) or acc is None:
        return None
    return dt.timedelta(
        seconds=acc["seconds"].native or 0,
        milliseconds=acc["millis"].native or 0,
        microseconds=acc["micros"].native or 0,
    )


def check_token(
    token: bytes,
    data: bytes,
    *,
    extra_certs: Sequence[x509.Certificate] = (),
    prehashed: bool = False,
) -> TokenCheck:
    """Cryptographic checks of a TimeStampToken over ``data`` (no chain, no trust);
    ``prehashed``: ``data`` is the expected imprint itself.

    Checks: SignedData with eContentType id-ct-TSTInfo; imprint = hash(``data``); the signer
    certificate (token certificates or ``extra_certs``) by issuer+serial or SKI; the signed
    attributes (content type, message digest of the exact eContent bytes, ESSCertID(v2) of the
    signer certificate); the signature; the TSA EKU (critical, only timeStamping); the time
    against the TSA certificate's validity.
    """
    problems: list[tuple[str, str]] = []  # accumulated; TokenCheck is built on return
    try:
        info = cms.ContentInfo.load(strip_der_pad(token), strict=True)
        if info["content_type"].native != "signed_data":
            raise ValueError("not a CMS SignedData")
        signed: cms.SignedData = info["content"]
        eci = signed["encap_content_info"]
        if eci["content_type"].native != "tst_info":
            raise ValueError("eContentType is not id-ct-TSTInfo")
        econtent = bytes(eci["content"].contents)
        tst = tsp.TSTInfo.load(econtent)
        imprint = tst["message_imprint"]
        nonce = tst["nonce"]
        if len(signed["signer_infos"]) != 1:
            raise ValueError("a token must have exactly one SignerInfo")
        signer_info = signed["signer_infos"][0]
        certs = _certs(signed)
        parsed = TokenInfo(
            der=strip_der_pad(token),
            gen_time=tst["gen_time"].native.astimezone(dt.UTC),
            hash_algorithm=_hash_name(imprint["hash_algorithm"]),
            digest=bytes(imprint["hashed_message"].native),
            policy=tst["policy"].dotted,
            serial=int(tst["serial_number"].native),
            nonce=None if isinstance(nonce, core.Void) else int(nonce.native),
            tsa_name=_general_name(tst["tsa"]),
            accuracy=_accuracy(tst["accuracy"]),
            signer=None,
            certificates=tuple(certs),
        )
    except Exception as e:  # see below: any parse failure means "not a token"
        problems.append(("TIMESTAMP_MALFORMED", f"not an RFC 3161 token: {first_line(e)}"))
        return TokenCheck(None, tuple(problems))

    try:
        expected = data if prehashed else _digest(parsed.hash_algorithm, data)
    except TimestampError as e:
        problems.append(("TIMESTAMP_MALFORMED", str(e)))
        expected = b""
    if expected and expected != parsed.digest:
        problems.append(
            (
                "TIMESTAMP_IMPRINT_MISMATCH",
                f"the {parsed.hash_algorithm} imprint is not the hash of this signature's value",
            )
        )

    checked = parsed
    try:
        sid = signer_info["sid"]
        signer = next((c for c in (*certs, *extra_certs) if _matches_sid(c, sid)), None)
        if signer is None:
            problems.append(
                (
                    "TIMESTAMP_TSA_CERT_MISSING",
                    "the TSA certificate is not in the token (certReq was false?) "
                    "and was not supplied",
                )
            )
            return TokenCheck(checked, tuple(problems))
        checked = dataclasses.replace(
            parsed, signer=signer, signature_hashes=_signature_hashes(signer_info)
        )
        problems.extend(_check_signer_info(signer_info, econtent, signer))
        problems.extend(_check_tsa_cert(signer, parsed.gen_time))
    except Exception as e:
        # asn1crypto and cryptography parse lazily, and a corrupt certificate or attribute
        # surfaces as any of a dozen exception types: all mean "malformed", none may escape.
        problems.append(("TIMESTAMP_MALFORMED", f"undecodable token part: {first_line(e)}"))
    return TokenCheck(checked, tuple(problems))


def _check_signer_info(
    signer_info: cms.SignerInfo, econtent: bytes, cert: x509.Certificate
) -> list[tuple[str, str]]:
    bad = "TIMESTAMP_SIGNATURE_INVALID"
    attrs = signer_info["signed_attrs"]
    if isinstance(attrs, core.Void) or not len(attrs):
        return [(bad, "the token has no signed attributes")]
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    values: dict[str, Any] = {}
    for attr in attrs:
        values[str(attr["type"].native)] = attr["values"][0] if len(attr["values"]) else None
    problems: list[tuple[str, str]] = []
    ctype = values.get("content_type")
    if ctype is None or ctype.native != "tst_info":
        problems.append((bad, "the content-type attribute is not id-ct-TSTInfo"))
    md = values.get("message_digest")
    try:
        wanted = _digest(str(digest_name), econtent)
    except TimestampError as e:
        return [(bad, str(e))]
    if md is None or bytes(md.native) != wanted:
        problems.append((bad, "the message-digest attribute does not match the TSTInfo"))
    problems.extend(_check_ess(values, cert))
    signed_bytes = attrs.untag().dump()  # the signature covers the SET OF (tag 0x31), not [0]
    try:
        _verify_cms_signature(cert, signer_info, str(digest_name), signed_bytes)
    except (InvalidSignature, ValueError, UnsupportedAlgorithm, TimestampError) as e:
        reason = str(e) or "the signature does not verify with the TSA certificate's key"
        problems.append((bad, reason))
    return problems


def _check_ess(values: dict[str, Any], cert: x509.Certificate) -> list[tuple[str, str]]:
    der = cert.public_bytes(Encoding.DER)
    v2 = values.get("signing_certificate_v2")
    v1 = values.get("signing_certificate")
    bad = "TIMESTAMP_SIGNATURE_INVALID"
    if v2 is not None:
        first = v2["certs"][0]
        name = first["hash_algorithm"]["algorithm"].native
        if bytes(first["cert_hash"].native) != _digest(str(name), der):
            return [(bad, "the ESSCertIDv2 hash does not match the TSA certificate")]
        return []
    if v1 is not None:
        if bytes(v1["certs"][0]["cert_hash"].native) != hashlib.sha1(der).digest():  # noqa: S324
            return [(bad, "the ESSCertID hash does not match the TSA certificate")]
        return []
    return [(bad, "no signing-certificate(-v2) attribute binds the TSA certificate")]


def _signature_hashes(signer_info: cms.SignerInfo) -> tuple[str, ...]:
    """The SignerInfo digest algorithm and the signature algorithm's hash (when it names one)."""
    names = [str(signer_info["digest_algorithm"]["algorithm"].native)]
    try:
        names.append(str(signer_info["signature_algorithm"].hash_algo))
    except ValueError:
        pass  # plain rsaEncryption / id-ecPublicKey: the digest algorithm decides
    return tuple(dict.fromkeys(names))


def weak_findings(
    info: TokenInfo, *, strict: bool, allow_weak: Sequence[str]
) -> list[tuple[str, str, str]]:
    """WEAK_ALGORITHM for an MD5/SHA-1 imprint or TSA signature hash and a short TSA key: the
    policy of signatures (a warning; under ``strict`` an error unless ``allow_weak`` names it)."""
    from pki.policy import WEAK_HASHES, AlgorithmRule, weak_refused

    rule = AlgorithmRule.from_names(allow_weak)
    weak: list[tuple[str, str, bool]] = []
    if info.hash_algorithm in WEAK_HASHES:
        name = info.hash_algorithm
        weak.append((f"the token's imprint uses {name}", name, name in rule.allowed_hashes))
    for name in info.signature_hashes:
        if name in WEAK_HASHES:
            weak.append((f"the TSA signs with {name}", name, name in rule.allowed_hashes))
    short = rule.short_key(info.signer.public_key()) if info.signer is not None else None
    if short is not None:
        bits, name, allowed = short
        weak.append((f"the TSA key is only {bits} bits", name, allowed))
    out = []
    for message, name, allowed in weak:
        if strict and not allowed:
            out.append(("WEAK_ALGORITHM", weak_refused(message, name), "error"))
        else:
            out.append(("WEAK_ALGORITHM", f"{message}, a weak algorithm", "warning"))
    return out


def _verify_cms_signature(
    cert: x509.Certificate, signer_info: cms.SignerInfo, digest_name: str, signed: bytes
) -> None:
    sig = bytes(signer_info["signature"].native)
    sig_alg = signer_info["signature_algorithm"]
    algo = sig_alg.signature_algo
    hash_name = digest_name
    try:
        hash_name = sig_alg.hash_algo
    except ValueError:
        pass  # plain rsaEncryption / id-ecPublicKey: the digest algorithm decides
    hash_cls = _CRYPTO_HASHES.get(hash_name)
    if hash_cls is None:
        raise TimestampError(f"unsupported token signature hash {hash_name}")
    key = cert.public_key()
    if algo == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
        params = sig_alg["parameters"]
        mgf_hash = _CRYPTO_HASHES[params["mask_gen_algorithm"]["parameters"]["algorithm"].native]
        pss = padding.PSS(mgf=padding.MGF1(mgf_hash()), salt_length=params["salt_length"].native)
        key.verify(sig, signed, pss, hash_cls())
    elif algo == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
        key.verify(sig, signed, padding.PKCS1v15(), hash_cls())
    elif algo == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(sig, signed, ec.ECDSA(hash_cls()))
    elif algo == "dsa" and isinstance(key, dsa.DSAPublicKey):
        key.verify(sig, signed, hash_cls())
    else:
        raise TimestampError(f"unsupported token signature algorithm {algo}")


def _check_tsa_cert(cert: x509.Certificate, gen_time: dt.datetime) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    # RFC 3161 2.3: exactly one EKU, id-kp-timeStamping, and the extension is critical.
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        purposes = {oid.dotted_string for oid in ext.value}
        if not ext.critical or purposes != {TIMESTAMPING_OID}:
            problems.append(
                (
                    "TIMESTAMP_TSA_KEY_USAGE",
                    "the TSA certificate's EKU must be critical and only timeStamping",
                )
            )
    except x509.ExtensionNotFound:
        problems.append(
            (
                "TIMESTAMP_TSA_KEY_USAGE",
                "the TSA certificate has no extended key usage timeStamping",
            )
        )
    if not cert.not_valid_before_utc <= gen_time <= cert.not_valid_after_utc:
        problems.append(
            (
                "TIMESTAMP_TSA_VALIDITY",
                f"time stamp {gen_time.isoformat()} is outside the TSA certificate validity "
                f"({cert.not_valid_before_utc.isoformat()} to "
                f"{cert.not_valid_after_utc.isoformat()})",
            )
        )
    return problems


def check_reply(
    token: bytes,
    data: bytes,
    *,
    query: TimestampQuery | None = None,
    extra_certs: Sequence[x509.Certificate] = (),
    allow_missing_cert: bool = False,
    prehashed: bool = False,
) -> TokenInfo:
    """Everything a reply must pass before it is stored; raises :class:`TimestampError`.

    The token is checked (:func:`check_token`) against the Signature bytes ``data``, and, when
    the query is known, against it: same imprint algorithm and digest, the nonce echoed, the
    requested policy honoured, the certificate included when certReq was set.
    ``allow_missing_cert`` accepts a token whose TSA certificate is neither inside (certReq
    false) nor in ``extra_certs``: its signature then remains unchecked (``info.signer`` None).
    """
    result = check_token(token, data, extra_certs=extra_certs, prehashed=prehashed)
    problems = result.problems
    if allow_missing_cert:
        problems = tuple(p for p in problems if p[0] != "TIMESTAMP_TSA_CERT_MISSING")
    if result.info is None or problems:
        raise TimestampError("bad timestamp reply: " + problems[0][1])
    info = result.info
    if query is not None:
        if (query.hash_algorithm, query.digest) != (info.hash_algorithm, info.digest):
            raise TimestampError("bad timestamp reply: its imprint differs from the query's")
        if query.nonce is not None and info.nonce != query.nonce:
            raise TimestampError("bad timestamp reply: the nonce does not match the query's")
        if query.policy is not None and info.policy != query.policy:
            raise TimestampError(
                f"bad timestamp reply: policy {info.policy} instead of the requested {query.policy}"
            )
        if query.cert_req and not info.certificates:
            raise TimestampError("bad timestamp reply: certReq was set but it has no certificate")
    return info


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
