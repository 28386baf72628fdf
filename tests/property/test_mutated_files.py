"""The verifier on mutated signed files: a report or a DsigError, never another exception,
and never VALID when a byte inside a signature's covered values changed."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dsig.cli import app
from dsig.operations.verifier import INTERNAL_ERROR, VerifyOptions, verify_file
from dsig.results import FileResult, Indication
from tests.property import mutations
from tests.property.conftest import examples

OPTIONS = VerifyOptions(integrity_only=True)
SEED_NAMES = sorted(mutations.SEEDS)
_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def verify_file_bytes(path: Path, data: bytes) -> object:
    path.write_bytes(data)
    return verify_file(path, OPTIONS)


def _verify(path: Path, data: bytes) -> object:
    path.write_bytes(data)
    result = verify_file(path, OPTIONS)  # DsigError becomes result.error
    assert not (result.error or "").startswith(INTERNAL_ERROR), result.error
    return result


@settings(_SETTINGS, max_examples=examples(120))
@given(
    name=st.sampled_from(SEED_NAMES), rng_seed=st.integers(0, 2**32 - 1), depth=st.integers(1, 3)
)
def test_structured_mutations_never_crash(
    seeds: dict[str, bytes], scratch: Path, name: str, rng_seed: int, depth: int
) -> None:
    rng = random.Random(rng_seed)
    data = seeds[name]
    for _ in range(depth):
        if not data:
            break
        _what, data = mutations.random_mutation(data, rng)
    _verify(scratch, data)


@settings(_SETTINGS, max_examples=examples(120))
@given(name=st.sampled_from(SEED_NAMES), pick=st.integers(0, 2**32 - 1), bit=st.integers(0, 7))
def test_flip_inside_covered_value_is_never_valid(
    seeds: dict[str, bytes],
    covered: dict[str, list[mutations.Covered]],
    scratch: Path,
    name: str,
    pick: int,
    bit: int,
) -> None:
    spans = covered[name]
    c = spans[pick % len(spans)]
    pos = c.start + (pick >> 8) % (c.end - c.start)
    result = _verify(scratch, mutations.flip_bit(seeds[name], pos, bit))
    assert result.error is None, result.error  # type: ignore[attr-defined]
    assert result.signatures[c.sig].integrity is Indication.INVALID  # type: ignore[attr-defined]


@settings(_SETTINGS, max_examples=examples(60))
@given(name=st.sampled_from(SEED_NAMES), cut=st.floats(0, 1, exclude_max=True))
@example(name="sr_nested", cut=0.765625)  # the main signature cut off, the item one left
def test_truncation_is_an_error_or_not_valid(
    seeds: dict[str, bytes], scratch: Path, name: str, cut: float
) -> None:
    data = seeds[name]
    whole = verify_file_bytes(scratch, data)
    result = _verify(scratch, data[: int(len(data) * cut)])
    if result.indication is Indication.VALID:  # type: ignore[attr-defined]
        # only by cutting whole signatures off the end (stripping, which coverage policy
        # catches): what remains must be fewer signatures, each intact
        assert len(result.signatures) < len(whole.signatures)  # type: ignore[attr-defined]


@settings(_SETTINGS, max_examples=examples(80))
@given(
    name=st.sampled_from(SEED_NAMES),
    which=st.integers(0, 2**32 - 1),
    value=st.sampled_from([0, 1, 2, 3, 7, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF])
    | st.integers(0, 2**32 - 1),
)
def test_length_field_corruption(
    seeds: dict[str, bytes], scratch: Path, name: str, which: int, value: int
) -> None:
    data = seeds[name]
    headers = mutations.element_headers(data)
    _verify(scratch, mutations.corrupt_length(data, headers[which % len(headers)], value))


@settings(_SETTINGS, max_examples=examples(60))
@given(name=st.sampled_from(SEED_NAMES), a=st.integers(0, 2**32 - 1), b=st.integers(0, 2**32 - 1))
def test_swapped_and_duplicated_items(
    seeds: dict[str, bytes], scratch: Path, name: str, a: int, b: int
) -> None:
    data = seeds[name]
    spans = mutations.item_spans(data)
    first, second = spans[a % len(spans)], spans[b % len(spans)]
    _verify(scratch, mutations.swap_items(data, first, second))
    _verify(scratch, mutations.duplicate_span(data, first))


def _signature_items(data: bytes) -> list[tuple[int, int]]:
    """Spans of the items of every Digital Signatures Sequence (explicit lengths or not)."""
    out = []
    tree = mutations.parse_explicit_le(data)
    for level in mutations.levels(tree):
        node = level.get(0xFFFAFFFA)
        if node is None:
            continue
        pos = node.start
        for _item in node.items or []:
            length = struct.unpack_from("<I", data, pos + 4)[0]
            assert length != 0xFFFFFFFF, "seed items are written with explicit lengths"
            out.append((pos, pos + 8 + length))
            pos += 8 + length
    return out


def test_duplicated_and_swapped_signature_items(seeds: dict[str, bytes], tmp_path: Path) -> None:
    """A duplicated signature item is verified twice (same verdict); sequence lengths are left
    stale on purpose, so most variants are malformed: an error, never a crash."""
    for name, data in seeds.items():
        for span in _signature_items(data):
            _verify(tmp_path / f"{name}.dcm", mutations.duplicate_span(data, span))
        items = _signature_items(data)
        if len(items) >= 2:
            _verify(tmp_path / f"{name}-swap.dcm", mutations.swap_items(data, items[0], items[1]))


def test_duplicated_signature_item_via_pydicom(seeds: dict[str, bytes], tmp_path: Path) -> None:
    """Well-formed duplicate: both copies verify VALID and carry the same UID (reported twice,
    never merged into one, never hiding the other)."""
    import pydicom

    src = tmp_path / "ct.dcm"
    src.write_bytes(seeds["ct"])
    ds = pydicom.dcmread(src)
    ds.DigitalSignaturesSequence.append(ds.DigitalSignaturesSequence[0])
    out = tmp_path / "dup.dcm"
    ds.save_as(out)
    result = verify_file(out, OPTIONS)
    assert [s.integrity for s in result.signatures] == [Indication.VALID, Indication.VALID]
    assert result.signatures[0].uid == result.signatures[1].uid


runner = CliRunner()


@settings(_SETTINGS, max_examples=examples(25))
@given(name=st.sampled_from(SEED_NAMES), rng_seed=st.integers(0, 2**32 - 1))
def test_cli_on_mutated_files(
    seeds: dict[str, bytes], scratch: Path, name: str, rng_seed: int
) -> None:
    _what, data = mutations.random_mutation(seeds[name], random.Random(rng_seed))
    scratch.write_bytes(data)
    r = runner.invoke(app, ["verify", str(scratch), "--json", "--integrity-only"])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert r.exit_code in (0, 1, 3, 4) and "internal error" not in r.output
    report = json.loads(r.stdout)
    assert report["files"][0]["indication"] in (
        "VALID",
        "INVALID",
        "INDETERMINATE",
        "ERROR",
        "UNSIGNED",
    )
    r = runner.invoke(app, ["inspect", str(scratch)])
    assert r.exit_code in (0, 4) and (r.exception is None or isinstance(r.exception, SystemExit))


def test_issue13_strategies_are_never_valid(seeds: dict[str, bytes], scratch: Path) -> None:
    """The fuzzer's encoding / UN / certificate-bag mutations, each applied to a signed seed:
    never a crash, never a VALID that should not be."""
    strict = VerifyOptions(integrity_only=True, require=["signature"], require_coverage="all")
    for name in SEED_NAMES:
        data = seeds[name]
        implicit = mutations.retarget_encoding(data, b"1.2.840.10008.1.2")
        assert implicit != data
        scratch.write_bytes(implicit)  # the meta governs: not re-read as explicit VR
        assert verify_file(scratch, OPTIONS).indication is not Indication.VALID, name
        scratch.write_bytes(mutations.insert_un(data, len(data), 0x00324000, b"no fracture "))
        assert verify_file(scratch, strict).indication is not Indication.VALID, name
        # the Certificate of Signer (outside the MAC) followed by 8 copies of itself, the
        # enclosing lengths updated: read as its first DER certificate, as before
        bag = mutations.certificate_bag(data, 9)
        assert len(bag) > len(data) + 8 * 300
        before, after = verify_file_bytes(scratch, data), _verify(scratch, bag)
        assert isinstance(before, FileResult) and isinstance(after, FileResult)
        assert after.error is None and after.indication is before.indication, name
        assert [s.signer for s in after.signatures] == [s.signer for s in before.signatures]


def test_a_ring_of_look_alikes_in_a_timestamp_token_stays_cheap(
    seeds: dict[str, bytes], tmp_path: Path
) -> None:
    """The fuzzer's "tokenbag": a timestamp token (outside the MAC) given 12 look-alike CA
    certificates named as its TSA's issuer, signed in a ring. The file stays well formed,
    the signature and token intact; the TSA is still validated through its real issuer, the
    look-alikes are cut (OFFERED_CERTS_LIMITED), and it takes well under a second."""
    import hashlib
    import time

    import pki
    from dsig.encoding.reader import read_dicom
    from dsig.encoding.writer import Encoding, save
    from dsig.signature.model import find_signatures
    from dsig.timestamp import insert_token, timestamped_bytes
    from tests.helpers.tsa import TimestampPki, make_token

    tsa = TimestampPki(tmp_path / "tsa")
    plain = tmp_path / "ct.dcm"
    plain.write_bytes(seeds["ct"])
    ds = read_dicom(plain, defer=False)
    item = find_signatures(ds)[0].item
    digest = hashlib.sha256(timestamped_bytes(item)).digest()
    insert_token(item, make_token(tsa.tsa, hash_algorithm="sha256", digest=digest,
                                  certs=[tsa.tsa.cert, tsa.intermediate.cert]))  # fmt: skip
    stamped = tmp_path / "stamped.dcm"
    save(ds, stamped, Encoding(str(ds.file_meta.TransferSyntaxUID)))
    policy = pki.TrustPolicy(trust_roots=(tsa.root.cert,), revocation=pki.RevocationMode.OFF)
    options = VerifyOptions(tsa_trust=pki.PolicyEvaluator(policy.for_timestamp_authority()),
                            trust=pki.PolicyEvaluator(policy))  # fmt: skip
    bagged = tmp_path / "bagged.dcm"
    bagged.write_bytes(mutations.token_certificate_bag(stamped.read_bytes(), 12))
    assert bagged.stat().st_size > stamped.stat().st_size + 12 * 300
    for path, limited in ((stamped, False), (bagged, True)):
        started = time.monotonic()
        result = verify_file(path, options)
        elapsed = time.monotonic() - started
        assert result.error is None, result.error
        (sig,) = result.signatures
        assert sig.integrity is Indication.VALID and sig.timestamp is not None
        tsa_trust = sig.timestamp.tsa_trust
        assert tsa_trust is not None and tsa_trust.indication == "VALID", tsa_trust
        codes = [f.code for f in tsa_trust.findings]
        assert ("OFFERED_CERTS_LIMITED" in codes) is limited, codes
        assert elapsed < 1.0, elapsed
