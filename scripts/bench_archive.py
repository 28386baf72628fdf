#!/usr/bin/env python3
"""Archive audit throughput (issue 18): files/s of ``dsig verify`` on Dask, 1 and 2 workers.

Builds N small signed images (trust on: root + intermediate), then measures in one process the
steady-state rate (cluster already started, as on a long audit) of:
  - local forked workers (``--jobs 2``), the reference;
  - a local Dask cluster of 1 and of 2 single-threaded worker processes, files on local disk;
  - the same 2-worker cluster reading the files from S3 (moto's server, in this process: it
    takes CPU from the same cores, so this row is a lower bound).
Each row also gives files/s per worker core. Not run by CI (tests/integration/test_archive.py
covers behaviour).

    .venv/bin/python scripts/bench_archive.py            # 600 files
    .venv/bin/python scripts/bench_archive.py --files 100
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from typer.testing import CliRunner

from dsig.archive.cluster import connect, run_on_dask
from dsig.archive.pool import forked_stream
from dsig.archive.sources import iter_candidates
from dsig.cli import app
from dsig.cli._trust_options import build_verify_options
from dsig.operations.batch import Candidate, Outcome, frozen_now
from dsig.operations.verifier import VerifyOptions
from tests.helpers.bigfile import write_small_image
from tests.helpers.pki_factory import build_pki


def build(work: Path, n: int) -> tuple[Path, VerifyOptions]:
    pki = build_pki()
    root, inter = pki.write_anchors(work)
    key, cert = pki.leaf("rsa").write(work, "signer")
    src, signed = work / "src", work / "signed"
    src.mkdir()
    for i in range(n):
        write_small_image(src / f"img{i:06}.dcm", seed=i)
    sign = ["sign", str(src), "--out-dir", str(signed), "--recursive", "--key", str(key),
            "--cert", str(cert), "--no-password"]  # fmt: skip
    r = CliRunner().invoke(app, sign)
    assert r.exit_code == 0, r.output
    options = build_verify_options(
        require=None, format_old=False, integrity_only=False, trust_store=[root],
        untrusted=[inter], crl=None, ocsp=None, revocation=None, online=False, at=None,
        allow_weak=None,
    )  # fmt: skip
    return signed, options


def timed(outcomes: Iterator[Outcome], n: int) -> float:
    start = time.perf_counter()
    seen = Counter(str((o.result or {}).get("error") or (o.result or {}).get("indication"))
                   for o in outcomes)  # fmt: skip
    seconds = time.perf_counter() - start
    assert seen == {"VALID": n}, seen  # every file counted, every one valid
    return n / seconds


def row(name: str, cores: int, rate: float) -> str:
    return f"| {name} | {cores} | {rate:,.0f} | {rate / cores:,.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=600)
    args = parser.parse_args()
    n = args.files
    with tempfile.TemporaryDirectory(prefix="dsig-bench-archive-") as tmp, s3_archive() as put:
        signed, options = build(Path(tmp), n)
        options = frozen_now(options)
        remote = put(signed)
        rows = ["| run | worker cores | files/s | files/s per core |", "|---|---|---|---|"]
        local = list(iter_candidates([str(signed)], recursive=True))
        rate = timed(forked_stream(local, options, jobs=2), n)
        rows.append(row("local --jobs 2 (forked)", 2, rate))
        for workers in (1, 2):
            with connect(None, f"local:{workers}") as client:
                list(run_on_dask(client, local[:20], options))  # warm: imports, trust cache
                rate = timed(run_on_dask(client, local, options), n)
                rows.append(row(f"Dask local:{workers}, local disk", workers, rate))
                rate = timed(run_on_dask(client, remote, options), n)
                rows.append(row(f"Dask local:{workers}, S3 (moto in-process)", workers, rate))
        size = os.path.getsize(local[0].path) // 1024
        print(f"{n} signed small images ({size} KiB), trust on, {os.cpu_count()} cores")
        print("\n".join(rows))


@contextlib.contextmanager
def s3_archive() -> Iterator[Callable[[Path], list[Candidate]]]:
    """moto's S3 server on 127.0.0.1, the AWS environment pointing at it (inherited by the
    Dask workers started afterwards), and a function that uploads a directory."""
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1"
    )

    def put(directory: Path) -> list[Candidate]:
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("bench")
        fs.put(str(directory) + "/", "bench/a/", recursive=True)
        return list(iter_candidates(["s3://bench/a"], recursive=True))

    try:
        yield put
    finally:
        server.stop()


if __name__ == "__main__":
    main()
