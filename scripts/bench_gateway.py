"""Storage-node gateway figures: objects/s received over plain TCP and DICOM TLS, and how fast
the forwarding queue drains to a DCMTK storescp.

    .venv/bin/python scripts/bench_gateway.py [-n 200]

Everything on 127.0.0.1 (servers started here and stopped at the end). Not run in CI.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import net


def _send(port: int, files: list[Path], *tls: str | Path) -> float:
    started = time.perf_counter()
    proc = net.run_dsig(
        "send", "127.0.0.1", str(port), *map(str, files), "--called-ae", "DSIGTEST", "-q", *tls,
        timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"dsig send failed: {proc.stderr or proc.stdout}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=200, help="objects per run")
    args = parser.parse_args()
    storescp = net.dcmtk_tool("storescp")
    with tempfile.TemporaryDirectory(prefix="dsig-bench-gw-") as tmp:
        work = Path(tmp)
        files = [net.small_object(work / f"in/{i}.dcm", index=i) for i in range(args.n)]
        tls = net.make_tls_pki(work / "pki")
        key = work / "pw"
        key.write_text(tls.password)
        client = ("--tls-ca", tls.ca, "--tls-cert", tls.client_cert, "--tls-key", tls.client_key)
        server_tls = ("--tls-cert", tls.server_cert, "--tls-key", tls.server_key,
                      "--tls-ca", tls.ca, "--tls-key-password-file", key)  # fmt: skip
        for name, server_args, client_args in (
            ("plain TCP", (), ()),
            ("DICOM TLS", server_tls, client),
        ):
            server = net.start_server(work / name.replace(" ", "-"), "--integrity-only", "-q",
                                      *server_args)  # fmt: skip
            try:
                seconds = _send(server.port, files, *client_args)
            finally:
                server.stop()
            print(f"receive, {name}: {args.n} objects in {seconds:.2f} s "
                  f"({args.n / seconds:.0f} objects/s, dsig send start-up included)")  # fmt: skip
        if storescp is None:
            print("forwarding: skipped (no DCMTK storescp)")
            return
        pacs = net.start_pacs(storescp, work / "pacs")
        server = net.start_server(work / "fwd", "--integrity-only", "-q", "--forward", pacs.target)
        try:
            started = time.perf_counter()
            _send(server.port, files)
            while len(pacs.received()) < args.n:
                time.sleep(0.05)
            seconds = time.perf_counter() - started
        finally:
            server.stop()
            pacs.stop()
        print(f"receive + forward to storescp: {args.n} objects at the PACS {seconds:.2f} s after "
              f"the first send ({args.n / seconds:.0f} objects/s end to end)")  # fmt: skip


if __name__ == "__main__":
    main()
