#!/usr/bin/env python3
"""Long fuzz run of the verifier on mutated signed files (run by hand, not in CI).

    .venv/bin/python scripts/fuzz.py                       # atheris if installed, else hypothesis
    .venv/bin/python scripts/fuzz.py --engine hypothesis --examples 20000
    .venv/bin/python scripts/fuzz.py --engine atheris --seconds 600

Seeds: a signed CT, JPEG image, ECG waveform and an SR with a nested item signature (the
tamper-matrix objects of tests/integration/test_hardening.py), signed with a throw-away PKI,
plus the CT with an RFC 3161 timestamp token in its signature item.

Oracles, checked on every input (verified with trust, revocation off, so that certificates
a file offers reach path building):
  * crash: reading and verifying must give a report or a DsigError (``verify_file`` without
    its last-resort "internal error" net); any other exception is a crash;
  * false valid: when the input differs from a seed only inside bytes covered by signature N
    (same length, every changed byte within a covered value), signature N must not be VALID;
  * slow: one input must not take more than ``SLOW_SECONDS`` (saved as ``slow-<sha1>.dcm``).

Crashes are written to ``tests/data/regression/`` (``crash-<sha1>.dcm`` plus a ``.txt`` with
the traceback) and ``tests/property/test_regressions.py`` replays every file there. The summary
(inputs tried, crashes, false valids) goes to stdout and ``--summary`` (JSON).

atheris (``pip install atheris``) mutates the seed files with coverage guidance over dsig and
pydicom; without it, hypothesis drives the structured mutations of
``tests/property/mutations.py`` (bit flips, byte sets, truncation, length-field corruption,
swapped and duplicated items, splices; and, for issue 13, the meta header naming another
transfer syntax than the data set's ("encoding"), explicit-VR UN elements inserted anywhere
("un"), the signer certificate repeated ("certbag"), and a timestamp token carrying a ring
of look-alike CA certificates ("tokenbag")), stacked up to 4 deep.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import random
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: One input verified slower than this is a finding (issue 13: bounded work per file).
SLOW_SECONDS = 5.0
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")


@dataclass
class Stats:
    """What the run found."""

    engine: str = ""
    inputs: int = 0
    errors: int = 0  # inputs reported as an operational error (fine)
    crashes: dict[str, str] = field(default_factory=dict)  # signature -> saved file
    false_valid: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def summary(self) -> dict[str, object]:
        return {
            "engine": self.engine,
            "inputs": self.inputs,
            "operational_errors": self.errors,
            "crashes": len(self.crashes),
            "crash_files": sorted(self.crashes.values()),
            "false_valid": len(self.false_valid),
            "slow": len(self.slow),
            "slow_files": self.slow,
            "seconds": round(time.time() - self.started, 1),
        }


class Harness:
    """Seeds, their covered ranges, and the two oracles."""

    def __init__(self, workdir: Path, regression_dir: Path) -> None:
        import pki as trust
        from dsig.operations.verifier import VerifyOptions
        from tests.helpers.pki_factory import build_pki
        from tests.property import mutations

        self.workdir = workdir
        self.regression_dir = regression_dir
        pki = build_pki()
        key_path, cert_path = pki.leaf("rsa").write(workdir, "rsa")
        key = mutations.open_key(key_path, cert_path)
        self.seeds: dict[str, bytes] = {}
        self.covered: dict[str, list[tuple[int, int, int]]] = {}
        for name in mutations.SEEDS:
            path = mutations.make_signed(name, workdir, key)
            self.seeds[name] = path.read_bytes()
            spans = sorted((c.start, c.end, c.sig) for c in mutations.covered_ranges(path))
            self.covered[name] = spans
        key.close()
        tsa_root = self._add_timestamped_seed(workdir, mutations)
        self.by_length = {len(data): name for name, data in self.seeds.items()}
        policy = trust.TrustPolicy(
            trust_roots=(pki.root.cert,), intermediates=(pki.intermediate.cert,),
            tsa_roots=(tsa_root,), revocation=trust.RevocationMode.OFF,
        )  # fmt: skip
        self.options = VerifyOptions(
            trust=trust.PolicyEvaluator(policy),
            tsa_trust=trust.PolicyEvaluator(policy.for_timestamp_authority()),
        )
        self.stats = Stats()
        self.target = workdir / "input.dcm"

    def _add_timestamped_seed(self, workdir: Path, mutations: object) -> Any:
        """The CT seed with an RFC 3161 token in its signature (reaches the timestamp parser);
        returns the TSA's root certificate."""
        import hashlib as _hashlib

        from dsig.encoding.reader import read_dicom
        from dsig.encoding.writer import Encoding, save
        from dsig.signature.model import find_signatures
        from dsig.timestamp import insert_token, timestamped_bytes
        from tests.helpers.tsa import TimestampPki, make_token

        tsa = TimestampPki(workdir / "tsa")
        path = workdir / "ct.signed.dcm"
        ds = read_dicom(path, defer=False)
        item = find_signatures(ds)[0].item
        digest = _hashlib.sha256(timestamped_bytes(item)).digest()
        insert_token(item, make_token(tsa.tsa, hash_algorithm="sha256", digest=digest,
                                      certs=[tsa.tsa.cert, tsa.intermediate.cert]))  # fmt: skip
        out = workdir / "ct_timestamped.signed.dcm"
        save(ds, out, Encoding(str(ds.file_meta.TransferSyntaxUID)))
        self.seeds["ct_timestamped"] = out.read_bytes()
        spans = sorted((c.start, c.end, c.sig) for c in mutations.covered_ranges(out))  # type: ignore[attr-defined]
        self.covered["ct_timestamped"] = spans
        return tsa.root.cert

    def _covering_signatures(self, seed: str, data: bytes) -> set[int] | None:
        """Signatures whose covered bytes were changed, if *only* covered bytes were changed."""
        original = self.seeds[seed]
        spans = self.covered[seed]
        starts = [s for s, _e, _n in spans]
        touched: set[int] = set()
        for pos, (a, b) in enumerate(zip(original, data, strict=True)):
            if a == b:
                continue
            i = bisect.bisect_right(starts, pos) - 1
            hits = {n for s, e, n in spans[max(0, i - 64) : i + 1] if s <= pos < e}
            if not hits:
                return None
            touched |= hits
        return touched or None

    def check(self, data: bytes) -> None:
        """Run one input through both oracles."""
        from dsig.encoding.reader import read_dicom
        from dsig.errors import DsigError
        from dsig.operations.verifier import verify_dataset
        from dsig.results import FileResult, Indication

        self.stats.inputs += 1
        self.target.write_bytes(data)
        started = time.monotonic()
        # verify_file without its last-resort net (which turns a bug into an "internal error"
        # result), so that a crash keeps its traceback
        try:
            try:
                ds = read_dicom(self.target, self.options.limits)
                result = verify_dataset(ds, self.options, path=str(self.target))
            except DsigError as e:
                result = FileResult(str(self.target), error=str(e))
        except BaseException as e:  # the crash oracle: nothing else may escape
            if isinstance(e, KeyboardInterrupt):
                raise
            self._crash(data, e)
            return
        if time.monotonic() - started > SLOW_SECONDS:
            out = self.regression_dir / f"slow-{hashlib.sha1(data).hexdigest()[:16]}.dcm"
            self.regression_dir.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            self.stats.slow.append(_shown(out))
            print(f"fuzz: SLOW {time.monotonic() - started:.1f} s -> {out}", file=sys.stderr)
        if result.error is not None:
            self.stats.errors += 1
            return
        seed = self.by_length.get(len(data))
        if seed is None or data == self.seeds[seed]:
            return
        touched = self._covering_signatures(seed, data)
        for n in sorted(touched or ()):
            if n < len(result.signatures) and result.signatures[n].integrity is Indication.VALID:
                digest = hashlib.sha1(data).hexdigest()[:16]
                out = self.regression_dir / f"falsevalid-{digest}.dcm"
                out.write_bytes(data)
                self.stats.false_valid.append(_shown(out))

    def _crash(self, data: bytes, error: BaseException) -> None:
        frames = traceback.extract_tb(error.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        signature = f"{type(error).__name__} at {where}"
        if signature in self.stats.crashes:
            return
        digest = hashlib.sha1(data).hexdigest()[:16]
        out = self.regression_dir / f"crash-{digest}.dcm"
        self.regression_dir.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        text = "".join(traceback.format_exception(error))
        out.with_suffix(".txt").write_text(f"{signature}\n\n{text}")
        self.stats.crashes[signature] = _shown(out)
        print(f"fuzz: CRASH {signature} -> {out}", file=sys.stderr, flush=True)


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (``--regressions`` may be elsewhere)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_hypothesis(harness: Harness, examples: int, seed: int) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.property import mutations

    names = sorted(harness.seeds)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.sampled_from(names),
        st.integers(min_value=0, max_value=2**32 - 1),
        st.integers(min_value=1, max_value=4),
    )
    def one(name: str, rng_seed: int, depth: int) -> None:
        rng = random.Random(rng_seed)
        data = harness.seeds[name]
        for _ in range(depth):
            if not data:
                break
            _what, data = mutations.random_mutation(data, rng)
        harness.check(data)

    random.seed(seed)
    one()


def run_atheris(harness: Harness, seconds: int, summary: Path | None) -> None:
    import atheris

    corpus = harness.workdir / "corpus"
    corpus.mkdir()
    for name, data in harness.seeds.items():
        (corpus / f"{name}.dcm").write_bytes(data)

    def one(data: bytes) -> None:
        harness.check(data)
        if harness.stats.inputs % 100 == 0:  # libFuzzer may end the process without atexit
            line = json.dumps(harness.stats.summary())
            print(f"fuzz: {line}", file=sys.stderr, flush=True)
            if summary is not None:
                summary.write_text(line + "\n")

    atheris.Setup(
        [sys.argv[0], str(corpus), f"-max_total_time={seconds}", "-max_len=400000",
         "-print_final_stats=1", "-rss_limit_mb=4096"],
        one,
    )  # fmt: skip
    atheris.Fuzz()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("auto", "atheris", "hypothesis"), default="auto")
    parser.add_argument("--examples", type=int, default=20000, help="hypothesis examples")
    parser.add_argument("--seconds", type=int, default=600, help="atheris time budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regressions", type=Path, default=ROOT / "tests/data/regression")
    parser.add_argument("--summary", type=Path, default=None, help="write the summary JSON here")
    args = parser.parse_args()

    engine = args.engine
    if engine == "auto":
        try:
            import atheris

            engine = "atheris"
        except ImportError:
            engine = "hypothesis"

    with tempfile.TemporaryDirectory(prefix="dsig-fuzz-") as tmp:
        if engine == "atheris":
            import atheris

            with atheris.instrument_imports(include=["dsig", "pydicom", "tokens", "pki"]):
                import dsig.operations.verifier  # noqa: F401
        harness = Harness(Path(tmp), args.regressions)
        harness.stats.engine = engine

        def report() -> None:
            summary = harness.stats.summary()
            print(f"fuzz: summary {json.dumps(summary)}", flush=True)
            if args.summary is not None:
                args.summary.write_text(json.dumps(summary, indent=2) + "\n")

        import atexit

        atexit.register(report)  # libFuzzer ends the process itself
        try:
            if engine == "atheris":
                run_atheris(harness, args.seconds, args.summary)
            else:
                run_hypothesis(harness, args.examples, args.seed)
        except KeyboardInterrupt:
            pass
    stats = harness.stats
    return 1 if stats.crashes or stats.false_valid or stats.slow else 0


if __name__ == "__main__":
    sys.exit(main())
