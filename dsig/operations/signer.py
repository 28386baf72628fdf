"""Create a DICOM digital signature at the main level or inside a sequence item."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from dsig.encoding.normalize import normalise_for_signing
from dsig.encoding.tags import ROOT, ItemPath, format_location, tag_str
from dsig.encoding.values import sequence_items
from dsig.encoding.walk import Walks
from dsig.errors import LocationError, SigningError, TagError
from dsig.signature.mac_stream import Sink, StreamOptions, write_mac_stream
from dsig.signature.model import (
    DATA_ELEMENTS_SIGNED,
    DIGITAL_SIGNATURES_SEQUENCE,
    MAC_ALGORITHM,
    MAC_ID_NUMBER,
    MAC_PARAMETERS_SEQUENCE,
    MAC_TRANSFER_SYNTAX,
    format_dicom_datetime,
    used_mac_ids,
)
from dsig.signature.profiles import Profile, check_creation, tags_to_sign
from dsig.signature.purposes import purpose_item
from pki.errors import TrustConfigError
from pki.policy import AlgorithmRule
from tokens.api import KeyProvider, SignatureScheme
from tokens.digest import Digest, HashAlgorithm


@dataclass(frozen=True)
class SignOptions:
    """What to sign and how. ``tags=None`` signs every signable element of the level."""

    mac: HashAlgorithm = HashAlgorithm.SHA256
    profile: Profile = Profile.NONE
    tags: Sequence[int] | None = None
    purpose: int | None = None
    old_format: bool = False
    #: Digital Signature DateTime; None = now, in local time with its UTC offset.
    at: dt.datetime | None = None
    #: Digital Signature UID; None = a new one. Given only to reproduce a signature byte for
    #: byte (a UID must be unique to one signature).
    uid: str | None = None
    #: MAC Calculation Transfer Syntax UID; None = derived from the file's transfer syntax.
    mac_transfer_syntax: str | None = None
    #: Extra sinks that receive the MAC stream (``--dump``).
    dump_sinks: Sequence[Sink] = field(default_factory=tuple)
    #: Weak algorithms accepted for this signature, in pki's vocabulary (``md5``, ``sha1``,
    #: ``rsa1024``, ``dsa1024``...); without them MD5/SHA-1 MACs and RSA/DSA keys under 2048
    #: bits are refused.
    allow_weak: Sequence[str] = ()
    #: Normalise the signed string values as DCMTK reads them (trailing padding, see
    #: :mod:`dsig.encoding.normalize`) so that dcmsign verifies the signature; False hashes them as
    #: stored.
    normalize_strings: bool = True


@dataclass(frozen=True)
class SignedInfo:
    """What was added: enough for the CLI to report and for timestamping later."""

    uid: str
    mac_id: int
    location: str
    signed_tags: tuple[int, ...]
    stream_length: int
    signature: bytes
    #: Signed string values that signing normalised (``(gggg,eeee)``, items as ``[n]``).
    normalized: tuple[str, ...] = ()


def mac_transfer_syntax_for(file_transfer_syntax: str) -> str:
    """DCMTK's rule: the file's syntax, but implicit VR and big endian become explicit LE."""
    if file_transfer_syntax in (ImplicitVRLittleEndian, ExplicitVRBigEndian, ""):
        return str(ExplicitVRLittleEndian)
    return file_transfer_syntax


def resolve_location(ds: Dataset, path: ItemPath) -> tuple[Dataset, tuple[Dataset, ...]]:
    """The item a location points to, and its ancestors (nearest first)."""
    level: Dataset = ds
    ancestors: tuple[Dataset, ...] = ()
    for depth, step in enumerate(path):
        where = format_location(path[: depth + 1])
        if step.tag not in level:
            raise LocationError(f"{where}: no sequence {tag_str(step.tag)} at this level")
        try:
            items = sequence_items(level, step.tag)
        except Exception:
            raise LocationError(f"{where}: {tag_str(step.tag)} is not a sequence") from None
        if level[step.tag].VR != "SQ":
            raise LocationError(f"{where}: {tag_str(step.tag)} is not a sequence")
        if step.index >= len(items):
            raise LocationError(f"{where}: the sequence has only {len(items)} item(s)")
        ancestors = (level, *ancestors)
        level = items[step.index]
    return level, ancestors


def _choose_tags(
    level: Dataset, ancestors: tuple[Dataset, ...], options: SignOptions, top_level: bool
) -> list[int]:
    chosen: set[int] = set()
    signable = Walks().of(level, ancestors).signable  # one walk of the level, not one per tag
    if options.tags is None:
        chosen = {int(t) for t in level.keys() if signable(int(t))}
    else:
        for tag in options.tags:
            if tag not in level:
                raise TagError(f"tag {tag_str(tag)} is not present at the level being signed")
            if not signable(tag):
                raise TagError(f"tag {tag_str(tag)} cannot be signed (excluded or VR UN)")
            chosen.add(tag)
    profile_tags = {int(t) for t in tags_to_sign(options.profile, level, top_level=top_level)}
    for tag in sorted(profile_tags):
        if tag in level and not signable(tag):
            raise TagError(
                f"the {options.profile.value} profile requires {tag_str(tag)}, "
                "which cannot be signed (VR UN or excluded)"
            )
    chosen |= {t for t in profile_tags if t in level}
    if not chosen:
        raise SigningError("nothing to sign: the level holds no signable element")
    return sorted(chosen)


def tags_to_be_signed(
    ds: Dataset, options: SignOptions = SignOptions(), *, location: ItemPath = ROOT
) -> list[int]:
    """The tags :func:`add_signature` would sign at ``location`` with ``options`` (to show the
    user before signing). Raises TagError, LocationError, SigningError as it would."""
    level, ancestors = resolve_location(ds, location)
    return _choose_tags(level, ancestors, options, not location)


def add_signature(
    ds: Dataset,
    key: KeyProvider,
    options: SignOptions = SignOptions(),
    *,
    location: ItemPath = ROOT,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now().astimezone(),
) -> SignedInfo:
    """Sign ``ds`` (mutated in place) at ``location`` with ``key``.

    The MAC ID is unused anywhere in the instance (PS3.3 wants it unique per SOP Instance;
    DCMTK allocates per level). Raises SigningError, ProfileError, TagError, LocationError.
    """
    pending = prepare_signature(ds, key, options, location=location, clock=clock)
    return pending.finish(key, pending.mac_digest())


def prepare_signature(
    ds: Dataset,
    key: KeyProvider,
    options: SignOptions = SignOptions(),
    *,
    location: ItemPath = ROOT,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now().astimezone(),
    placeholder: bytes | None = None,
) -> PendingSignature:
    """:func:`add_signature` in steps: checks, chooses the tags and builds the signature
    item; :meth:`PendingSignature.mac_digest` hashes, :meth:`PendingSignature.finish` signs.

    ``placeholder``: the items go into ``ds`` now, with these bytes as the Signature, so
    that the file can be written while its MAC is hashed (``finish`` puts the real value in;
    the caller patches the file). Without one, ``finish`` adds the items.
    """
    check_algorithm_policy(options.mac, key.certificate, options.allow_weak)
    level, ancestors = resolve_location(ds, location)
    top_level = not location
    file_ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    mac_ts = options.mac_transfer_syntax or mac_transfer_syntax_for(file_ts)
    purpose = check_creation(
        options.profile,
        level,
        top_level=top_level,
        scheme=key.scheme,
        mac=options.mac,
        purpose=options.purpose,
        transfer_syntax=mac_ts,
    )
    tags = _choose_tags(level, ancestors, options, top_level)
    normalized = normalise_for_signing(level, tags, ancestors) if options.normalize_strings else []
    used = used_mac_ids(ds)
    mac_id = next(i for i in range(0x10000) if i not in used)

    item = Dataset()
    item.add_new(MAC_ID_NUMBER, "US", mac_id)
    uid = options.uid or generate_uid()
    item.add_new(0x04000100, "UI", uid)
    item.add_new(0x04000105, "DT", format_dicom_datetime(options.at or clock()))
    item.add_new(0x04000110, "CS", "X509_1993_SIG")
    if purpose is not None:
        item.add_new(0x04000401, "SQ", DicomSequence([purpose_item(purpose)]))
    item.add_new(0x04000115, "OB", key.certificate.public_bytes(Encoding.DER))

    params = Dataset()
    params.add_new(MAC_ID_NUMBER, "US", mac_id)
    params.add_new(MAC_TRANSFER_SYNTAX, "UI", mac_ts)
    params.add_new(MAC_ALGORITHM, "CS", options.mac.value)
    params.add_new(DATA_ELEMENTS_SIGNED, "AT", tags)
    pending = PendingSignature(
        level, ancestors, tags, item, params, uid, mac_id, format_location(location),
        tuple(normalized), options,
    )  # fmt: skip
    if placeholder is not None:
        # The MAC stream leaves the Signature out and reads only the chosen tags and the
        # item's own elements, so the items may be in the level while it is hashed.
        pending.add_items(placeholder)
    return pending


@dataclass
class PendingSignature:
    """A signature being made: its item is built, its MAC not yet hashed or not yet signed."""

    level: Dataset
    ancestors: tuple[Dataset, ...]
    tags: list[int]
    item: Dataset
    params: Dataset
    uid: str
    mac_id: int
    location: str
    normalized: tuple[str, ...]
    options: SignOptions
    stream_length: int = 0
    added: bool = False

    def mac_digest(self) -> Digest:
        """Hash the MAC stream (and feed the dump sinks)."""
        hasher = self.options.mac.new()
        lengths: list[int] = []
        write_mac_stream(
            self.level,
            self.tags,
            self.item,
            [hasher.update, *self.options.dump_sinks, lambda b: lengths.append(len(b))],
            ancestors=self.ancestors,
            options=StreamOptions(old_format=self.options.old_format),
        )
        self.stream_length = sum(lengths)
        return Digest(self.options.mac, hasher.digest())

    def finish(self, key: KeyProvider, digest: Digest) -> SignedInfo:
        """Sign ``digest`` with ``key`` and put the Signature into the item (adding the items
        to the level unless a placeholder did)."""
        signature = key.sign_digest(digest)
        if self.added:
            self.item[0x04000120].value = signature
        else:
            self.add_items(signature)
        return SignedInfo(
            self.uid, self.mac_id, self.location, tuple(self.tags), self.stream_length,
            signature, self.normalized,
        )  # fmt: skip

    def add_items(self, signature: bytes) -> None:
        """The item with ``signature`` and its MAC Parameters item, into the level."""
        self.item.add_new(0x04000120, "OB", signature)
        _append_item(self.level, MAC_PARAMETERS_SEQUENCE, self.params)
        _append_item(self.level, DIGITAL_SIGNATURES_SEQUENCE, self.item)
        self.added = True


def signature_length(key: KeyProvider) -> int | None:
    """The length every Signature value of ``key`` has, when its scheme fixes one (RSA: the
    modulus length), from the certificate; None when it varies (ECDSA's DER encoding)."""
    if key.scheme is not SignatureScheme.RSA_PKCS1V15:
        return None
    public = key.certificate.public_key()
    return (public.key_size + 7) // 8 if isinstance(public, rsa.RSAPublicKey) else None


def check_algorithm_policy(
    mac: HashAlgorithm, certificate: x509.Certificate, allow_weak: Sequence[str] = ()
) -> None:
    """Refuse a weak MAC or a small RSA/DSA signer key unless ``allow_weak`` names it.

    The names are pki's :class:`AlgorithmRule` vocabulary, shared with verification.
    Raises SigningError (one line; its ``option``/``value`` name the allowance that accepts it).
    """
    try:
        rule = AlgorithmRule.from_names(allow_weak)
    except TrustConfigError as e:
        raise SigningError(f"allow_weak: {e}") from None
    name = mac.hashlib_name
    if mac.weak and name not in rule.allowed_hashes:
        raise SigningError(
            f"{mac.value} is a weak MAC algorithm, refused for new signatures "
            "(allowing it as weak signs with it anyway)",
            option="allow_weak",
            value=name,
        )
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey):
        kind = "rsa" if isinstance(key, rsa.RSAPublicKey) else "dsa"
        floor = rule.min_rsa_bits if kind == "rsa" else rule.min_dsa_bits
        if key.key_size < floor:
            raise SigningError(
                f"the signer's {kind.upper()} key has {key.key_size} bits, under {floor}: "
                "refused for new signatures (allowing it as weak signs anyway)",
                option="allow_weak",
                value=f"{kind}{key.key_size}",
            )


def _append_item(level: Dataset, tag: int, item: Dataset) -> None:
    if tag in level:
        level[tag].value.append(item)
    else:
        level.add_new(tag, "SQ", DicomSequence([item]))
