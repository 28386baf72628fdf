#!/usr/bin/env python3
"""dsig against DCMTK's dcmsign on the same machine, in one run (issue 6).

Builds its own workloads in a temporary directory, runs both tools side by side and prints a
Markdown table: median wall time, the ratio dsig/dcmsign, ``openssl dgst -sha256`` on the same
file as the hashing floor, and peak resident memory of each process (``wait4`` rusage; for
dsig's worker processes the largest one).

    .venv/bin/python scripts/bench.py                 # the full run (a few minutes)
    .venv/bin/python scripts/bench.py --quick         # small sizes, to try the script
    .venv/bin/python scripts/bench.py --only 1,5      # some workloads

dsig's own modules are byte-compiled first (``compileall``, as ``pip install`` does): with
``PYTHONDONTWRITEBYTECODE`` set, as in some development shells, every ``python -m dsig`` would
otherwise compile about 50 of them from source (about a quarter of a cold start).
``--no-compile`` measures that case.

Workloads:
 1. verify a 512 MiB uncompressed multi-frame image (SHA-256), trust on for both tools;
 2. sign it (writing the output);
 3. verify 2,000 small signed images: a dcmsign loop vs ``dsig verify DIR --recursive``,
    trust on (dcmsign ``+cf`` root ``+uf`` intermediate; dsig ``--trust-store``/``--untrusted``);
 4. sign 2,000 small images: a dcmsign loop vs ``dsig sign DIR --out-dir OUT --recursive``;
 5. one small file, cold start of ``dsig verify`` (and of dcmsign for reference);
 6. study manifest (issue 16): ``dsig manifest create`` and ``dsig manifest verify`` of a
    1,000-instance study (10 series), against verifying the same 1,000 instances signed one
    by one (``dsig verify DIR --recursive``, and a dcmsign loop). Not run by CI.
 7. evidence records (issue 17): ``dsig evidence create`` for a 10,000-file study (one TSA
    request, a TSA on 127.0.0.1; ``--evidence-files N`` for another size, 200 with
    ``--quick``), checking every record through the Python API (``verify_file_evidence``,
    trust on) and ``dsig evidence renew``; time, files/s, TSA requests (create and renew:
    one each), record size (median, and all records), peak RSS.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from tests.helpers.bigfile import write_big_file, write_small_image
from tests.helpers.pki_factory import build_pki

DSIG = [sys.executable, "-m", "dsig"]
MiB = 1 << 20


@dataclass
class Run:
    """One process (or a loop of processes): wall seconds and peak RSS in MiB."""

    seconds: float
    peak_mib: float
    cpu: float = 0.0  # user + system seconds


def run(cmd: Sequence[str], *, ok: Callable[[int], bool] = lambda rc: rc == 0) -> Run:
    """Run ``cmd`` with output discarded: wall time, and peak RSS from ``/usr/bin/time``
    (a small process that forks the command: rusage of a child forked straight from this
    Python process would count the pages it shared with us before exec)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M %U %S", "-o", rss.name, *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        seconds = time.perf_counter() - start
        kib, user, system = rss.read().strip().splitlines()[-1].split()
    if not ok(proc.returncode):
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]!r}")
    return Run(seconds, int(kib) / 1024, float(user) + float(system))


def loop(cmds: Sequence[Sequence[str]], *, ok: Callable[[int], bool] = lambda rc: rc == 0) -> Run:
    """One process per command, one after the other (a shell loop)."""
    start = time.perf_counter()
    peak = cpu = 0.0
    for cmd in cmds:
        one = run(cmd, ok=ok)
        peak, cpu = max(peak, one.peak_mib), cpu + one.cpu
    return Run(time.perf_counter() - start, peak, cpu)


def median(runs: Sequence[Run]) -> Run:
    """Median time and CPU, largest peak."""
    return Run(
        statistics.median(r.seconds for r in runs),
        max(r.peak_mib for r in runs),
        statistics.median(r.cpu for r in runs),
    )


def repeat(n: int, make: Callable[[], Run], before: Callable[[], object] | None = None) -> Run:
    """``n`` runs (after one warm-up that fills the page cache), median."""
    if before:
        before()
    make()  # warm-up: page cache, .pyc files
    runs = []
    for _ in range(n):
        if before:
            before()
        runs.append(make())
    return median(runs)


@dataclass
class Row:
    """A line of the table."""

    workload: str
    dcmsign: Run
    dsig: Run
    floor: Run | None = None
    unit: str = "s"
    count: int = 0  # files, for files/s
    target: str = ""
    met: str = ""


def machine() -> str:
    """nproc, CPU model, RAM, OS, tool versions, load."""
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    dcmtk = subprocess.run(["dcmsign", "--version"], capture_output=True, text=True)
    text = dcmtk.stdout + dcmtk.stderr
    dcmtk_line = next((x.strip("$ ") for x in text.splitlines() if "dcmsign v" in x), "?")
    ssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"- CPU: {model}, {os.cpu_count()} cores (`nproc` {len(os.sched_getaffinity(0))})\n"
        f"- RAM: {mem}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}\n"
        f"- {dcmtk_line}; {ssl}\n"
        f"- load average at start: {load}"
    )


def fmt_time(r: Run, row: Row) -> str:
    if row.count:
        return f"{r.seconds:.2f} s ({row.count / r.seconds:,.0f} files/s)"
    return f"{r.seconds * 1000:.0f} ms" if r.seconds < 1 else f"{r.seconds:.2f} s"


def table(rows: Sequence[Row]) -> str:
    out = [
        "| workload | dcmsign | dsig | dsig/dcmsign | floor: openssl dgst (5: python -c pass) "
        "| dsig/floor "
        "| peak RSS dcmsign | peak RSS dsig | CPU dcmsign / dsig | target | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r.dsig.seconds / r.dcmsign.seconds
        if r.count:
            speed = f"{1 / ratio:.1f}x files/s"
        else:
            speed = f"{ratio:.2f}"
        floor = fmt_time(r.floor, r) if r.floor else "-"
        vs_floor = f"{r.dsig.seconds / r.floor.seconds:.2f}" if r.floor else "-"
        out.append(
            f"| {r.workload} | {fmt_time(r.dcmsign, r)} | {fmt_time(r.dsig, r)} | {speed} "
            f"| {floor} | {vs_floor} | {r.dcmsign.peak_mib:.0f} MiB | {r.dsig.peak_mib:.0f} MiB "
            f"| {r.dcmsign.cpu:.2f} / {r.dsig.cpu:.2f} s | {r.target} | {r.met} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="64 MiB and 200 files")
    ap.add_argument("--repeat", type=int, default=3, help="runs per big-file measurement")
    ap.add_argument("--only", default="1,2,3,4,5,6,7", help="workloads to run, e.g. 1,5")
    ap.add_argument("--workdir", type=Path, help="where to build workloads (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the workdir")
    ap.add_argument("--evidence-files", type=int, help="study size of workload 7 (10,000)")
    ap.add_argument("--no-compile", action="store_true", help="do not byte-compile dsig first")
    args = ap.parse_args()
    if not args.no_compile:
        import compileall

        for package in ("dsig", "pki", "tokens"):
            compileall.compile_dir(REPO / package, quiet=1)
    only = {int(x) for x in args.only.split(",")}
    for tool in ("dcmsign", "openssl") if only - {7} else ():  # 7 runs dsig only
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed")
    big_mib = 64 if args.quick else 512
    n_small = 200 if args.quick else 2000
    work = Path(tempfile.mkdtemp(prefix="dsig-bench-", dir=args.workdir))
    print(f"workdir {work}", file=sys.stderr)
    try:
        rows = bench(work, only, big_mib, n_small, args.repeat)
        manifest_rows = bench_manifest(work, 200 if args.quick else 1000) if 6 in only else []
        n_evidence = args.evidence_files or (200 if args.quick else 10_000)
        evidence_rows = bench_evidence(work, n_evidence) if 7 in only else []
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("### Machine\n")
    print(machine())
    if rows:
        print("\n### Results (medians)\n")
        print(table(rows))
    if manifest_rows:
        print("\n### Study manifest (workload 6)\n")
        print(manifest_table(manifest_rows))
    if evidence_rows:
        print("\n### Evidence records (workload 7)\n")
        print(manifest_table(evidence_rows))
    print(f"\nCommand: `.venv/bin/python scripts/bench.py {' '.join(sys.argv[1:])}`")


def bench(work: Path, only: set[int], big_mib: int, n_small: int, repeat_n: int) -> list[Row]:
    # --- PKI: root -> intermediate -> RSA-2048 signer ---------------------------------------
    pki = build_pki()
    root, inter = pki.write_anchors(work)
    key, cert = pki.leaf("rsa").write(work, "signer")
    dsig_key = ["--key", str(key), "--cert", str(cert), "--no-password"]
    dcm_sign = ["dcmsign", "-pw", "+s", str(key), str(cert), "+m2"]
    dsig_trust = ["--trust-store", str(root), "--untrusted", str(inter)]
    dcm_trust = ["+cf", str(root), "+uf", str(inter)]
    rows: list[Row] = []

    # --- 1, 2: one big multi-frame image ----------------------------------------------------
    if only & {1, 2}:
        frames = big_mib * MiB // (512 * 512 * 2)
        big = write_big_file(work / "big.dcm", frames=frames)
        print(f"built {big.stat().st_size / MiB:.0f} MiB image", file=sys.stderr)
        signed = work / "big-signed.dcm"
        run([*dcm_sign, str(big), str(signed)])
        floor = repeat(repeat_n, lambda: run(["openssl", "dgst", "-sha256", str(signed)]))
        if 1 in only:
            print("1: verify big", file=sys.stderr)
            d = repeat(repeat_n, lambda: run(["dcmsign", "--verify", str(signed), *dcm_trust]))
            s = repeat(repeat_n, lambda: run([*DSIG, "verify", str(signed), *dsig_trust]))
            met = _met(
                s.seconds <= 0.75 * d.seconds, s.seconds <= 1.25 * floor.seconds, s.peak_mib <= 64
            )
            target = "<= 0.75x dcmsign, <= 1.25x openssl, RSS <= 64 MiB"
            rows.append(Row(f"1. verify {big_mib} MiB, trust on", d, s, floor, target=target,
                            met=met))  # fmt: skip
            # What bounds it: the same verification as a library call in a warm process (no
            # interpreter start, no imports) - the MAC stream from the file, SHA-256, RSA.
            s = repeat(repeat_n, lambda: in_process(signed))
            rows.append(Row(f"1b. verify {big_mib} MiB in-process (imports warm, no CLI)", d, s,
                            floor, target="(diagnostic)"))  # fmt: skip
        if 2 in only:
            print("2: sign big", file=sys.stderr)
            out_d, out_s = work / "big-dcmsign.dcm", work / "big-dsig.dcm"

            def clean() -> None:
                out_d.unlink(missing_ok=True)
                out_s.unlink(missing_ok=True)

            d = repeat(repeat_n, lambda: run([*dcm_sign, str(big), str(out_d)]), clean)
            s = repeat(repeat_n, lambda: run([*DSIG, "sign", str(big), str(out_s), *dsig_key]),
                       clean)  # fmt: skip
            rows.append(Row(f"2. sign {big_mib} MiB (write output)", d, s, floor,
                            target="<= 0.8x dcmsign, RSS <= 64 MiB",
                            met=_met(s.seconds <= 0.8 * d.seconds, s.peak_mib <= 64)))  # fmt: skip
            # dsig fsyncs its output before renaming it into place; dcmsign does not. The same
            # durability for dcmsign: `sync FILE` (fsync) after it.
            durable = f'dcmsign "$@" && sync {out_d}'
            d = repeat(repeat_n, lambda: run(["sh", "-c", durable, "sh", *dcm_sign[1:], str(big),
                                              str(out_d)]), clean)  # fmt: skip
            rows.append(Row(f"2b. sign {big_mib} MiB, both durable (dcmsign + sync FILE)", d, s,
                            floor, target="<= 0.8x dcmsign",
                            met=_met(s.seconds <= 0.8 * d.seconds)))  # fmt: skip
            clean()
        big.unlink()

    # --- 3, 4: many small images ------------------------------------------------------------
    if only & {3, 4, 5}:
        small = work / "small"
        small.mkdir()
        for i in range(n_small):
            write_small_image(small / f"img{i:05d}.dcm", seed=i)
        files = sorted(small.iterdir())
        signed_dir = work / "small-dsig"
        dcm_dir = work / "small-dcmsign"
        dcm_dir.mkdir()
        print(f"4: sign {n_small} small", file=sys.stderr)
        d = loop([[*dcm_sign, str(f), str(dcm_dir / f.name)] for f in files])
        s = run([*DSIG, "sign", str(small), "--out-dir", str(signed_dir), "--recursive",
                 *dsig_key])  # fmt: skip
        if 4 in only:
            met = _met(s.seconds < d.seconds)
            rows.append(Row(f"4. sign {n_small:,} small images", d, s, count=n_small,
                            target="faster than dcmsign", met=met))  # fmt: skip
        if 3 in only:
            print(f"3: verify {n_small} small", file=sys.stderr)
            signed_files = sorted(signed_dir.iterdir())
            d = loop([["dcmsign", "--verify", str(f), *dcm_trust] for f in signed_files])
            s = run([*DSIG, "verify", str(signed_dir), "--recursive", *dsig_trust])
            rows.append(Row(f"3. verify {n_small:,} small images, trust on", d, s,
                            count=n_small, target=">= 20x dcmsign files/s",
                            met=_met(d.seconds >= 20 * s.seconds)))  # fmt: skip
        if 5 in only:
            print("5: cold start", file=sys.stderr)
            one = str(sorted(signed_dir.iterdir())[0])
            n = max(5, repeat_n * 3)
            # The goal is relative to the start of a bare interpreter of the same venv.
            bare = repeat(n, lambda: run([sys.executable, "-c", "pass"]))
            d = repeat(n, lambda: run(["dcmsign", "--verify", one, *dcm_trust]))
            s = repeat(n, lambda: run([*DSIG, "verify", one, *dsig_trust]))
            rows.append(Row("5. cold start: verify 1 small file, trust on", d, s, bare,
                            target="(diagnostic)"))  # fmt: skip
            s = repeat(n, lambda: run([*DSIG, "verify", one, "--integrity-only"]))
            d = repeat(n, lambda: run(["dcmsign", "--verify", one],
                                      ok=lambda rc: rc in (0, 101)))  # fmt: skip
            rows.append(Row("5. cold start: verify 1 small file, integrity only", d, s, bare,
                            target="<= 8x python -c pass",
                            met=_met(s.seconds <= 8 * bare.seconds)))  # fmt: skip
    return rows


def bench_manifest(work: Path, n: int) -> list[tuple[str, Run, int]]:
    """Workload 6: (label, run, files) for manifest create/verify and per-file signatures."""
    import pydicom
    from pydicom.uid import generate_uid

    pki = build_pki()
    root, inter = pki.write_anchors(work, "m-")
    key, cert = pki.leaf("rsa").write(work, "m-signer")
    dsig_key = ["--key", str(key), "--cert", str(cert), "--no-password"]
    trust = ["--trust-store", str(root), "--untrusted", str(inter)]
    study = work / "study"
    study_uid = generate_uid()
    series = [generate_uid() for _ in range(10)]
    for i in range(n):
        (study / f"s{i % 10}").mkdir(parents=True, exist_ok=True)
        path = write_small_image(study / f"s{i % 10}" / f"img{i:05d}.dcm", seed=i)
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series[i % 10]
        ds.save_as(path)
    print(f"6: manifest of {n} instances", file=sys.stderr)
    manifest = work / "manifest.dcm"
    create = run([*DSIG, "manifest", "create", str(study), "-o", str(manifest), *dsig_key])
    check = run([*DSIG, "manifest", "verify", str(manifest), str(study), *trust])
    signed = work / "study-signed"
    run([*DSIG, "sign", str(study), "--out-dir", str(signed), "--recursive", *dsig_key])
    each = run([*DSIG, "verify", str(signed), "--recursive", *trust])
    files = sorted(signed.rglob("*.dcm"))
    dcm_trust = ["+cf", str(root), "+uf", str(inter)]
    dcm = loop([["dcmsign", "--verify", str(f), *dcm_trust] for f in files])
    return [
        (f"dsig manifest create ({n:,} instances, one signature)", create, n),
        (f"dsig manifest verify ({n:,} instances, trust on)", check, n),
        (f"dsig verify --recursive ({n:,} files signed one by one, trust on)", each, n),
        (f"dcmsign --verify loop ({n:,} files signed one by one, trust on)", dcm, n),
    ]


def manifest_table(rows: Sequence[tuple[str, Run, int]]) -> str:
    out = ["| workload | wall | files/s | CPU | peak RSS |", "|---|---|---|---|---|"]
    for label, r, n in rows:
        out.append(f"| {label} | {r.seconds:.2f} s | {n / r.seconds:,.0f} | {r.cpu:.2f} s "
                   f"| {r.peak_mib:.0f} MiB |")  # fmt: skip
    return "\n".join(out)


def bench_evidence(work: Path, n: int) -> list[tuple[str, Run, int]]:
    """Workload 7: (label, run, files) for evidence create / verify (in process) / renew."""
    from dsig.evidence import EvidenceStatus, verify_file_evidence
    from pki.policy import TrustPolicy
    from tests.helpers.tsa import TimestampPki

    tp = TimestampPki(work / "ev-pki")
    study = work / "ev-study"
    study.mkdir()
    files = [write_small_image(study / f"img{i:05d}.dcm", seed=i) for i in range(n)]
    out = work / "ev-records"
    print(f"7: evidence for {n} files", file=sys.stderr)
    with tp.server() as tsa:
        base = ["--tsa", tsa.url, "--tsa-trust-store", str(tp.root_pem)]
        create = run([*DSIG, "evidence", "create", str(study), "--out-dir", str(out), *base])
        requests = tsa.hits
        records = sorted(out.glob("*.ers"))
        trust = TrustPolicy(trust_roots=(tp.root.cert,))
        start, cpu = time.perf_counter(), time.process_time()
        proven = sum(
            verify_file_evidence(f, out, tsa_trust=trust).status is EvidenceStatus.PROVEN
            for f in files
        )
        import resource  # this process's peak (it also built the study)

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        check = Run(time.perf_counter() - start, peak, time.process_time() - cpu)
        size = statistics.median(r.stat().st_size for r in records)
        total = sum(r.stat().st_size for r in records)
        renew = run([*DSIG, "evidence", "renew", str(out), "--min-age", "0", *base])
        renewals = tsa.hits - requests
        renewed = statistics.median(r.stat().st_size for r in records)
    assert proven == n == len(records), (proven, n, len(records))
    return [
        (f"dsig evidence create ({n:,} files; {requests} TSA request(s); record "
         f"{size:,.0f} bytes median, {total / MiB:,.1f} MiB in all)", create, n),
        ("verify_file_evidence of every record (in process, trust on)", check, n),
        (f"dsig evidence renew ({n:,} records, each checked first; {renewals} TSA "
         f"request(s); record {renewed:,.0f} bytes median after)", renew, n),
    ]  # fmt: skip


_IN_PROCESS = """
import sys, time
from pathlib import Path
import pki
from dsig.operations.verifier import VerifyOptions, verify_file
trust = pki.build_evaluator(trust_stores=[Path(sys.argv[1]).parent / "root.pem"],
                            untrusted=[Path(sys.argv[1]).parent / "intermediate.pem"])
options = VerifyOptions(trust=trust)
verify_file(Path(sys.argv[1]), options)  # imports and trust evaluated once, cached
start = time.perf_counter()
result = verify_file(Path(sys.argv[1]), options)
seconds = time.perf_counter() - start
assert result.indication.value == "VALID", result.to_json()
open(sys.argv[1] + ".seconds", "w").write(str(seconds))
"""


def in_process(signed: Path) -> Run:
    """The second verification of ``signed`` in one process: seconds of that call only."""
    one = run([sys.executable, "-c", _IN_PROCESS, str(signed)])
    seconds = float(Path(str(signed) + ".seconds").read_text())
    return Run(seconds, one.peak_mib, one.cpu)


def _met(*checks: bool) -> str:
    return "yes" if all(checks) else "no"


if __name__ == "__main__":
    main()
