"""Throughput of dsig's Orthanc plugin: signed small objects sent with DCMTK storescu (one
association) into a real Orthanc running the plugin with a trust store, every one verified.

    .venv/bin/python scripts/bench_orthanc.py [--count 300]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import net
from tests.helpers.orthanc import PLUGINS, running_orthanc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--dir", help="where Orthanc stores (e.g. /dev/shm: no disk sync)")
    parser.add_argument(
        "--rest",
        type=int,
        default=0,
        metavar="N",
        help="upload over the REST API with N parallel clients, not C-STORE",
    )
    parser.add_argument("--no-audit", action="store_true", help="no audit log")
    parser.add_argument(
        "--associations",
        type=int,
        default=1,
        metavar="N",
        help="C-STORE with N parallel storescu associations",
    )
    parser.add_argument("--no-plugin", action="store_true", help="Orthanc alone (baseline)")
    args = parser.parse_args()
    exe = net.dcmtk_storescu()
    if exe is None:
        print("DCMTK storescu is needed", file=sys.stderr)
        return 4
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        pki = net.make_pki(root / "pki")
        (root / "plain").mkdir()
        for i in range(args.count):
            net.small_object(root / "plain" / f"o{i}.dcm", index=i)
        signed = sorted(net.sign(root / "plain", root / "signed", pki.key, pki.cert).glob("*.dcm"))
        plugin = net.run_dsig("orthanc", "plugin-path").stdout.strip()
        settings = {
            "Plugins": [str(PLUGINS / "libOrthancPython.so")],
            "PythonScript": plugin,
            "UserMetadata": {"DsigVerdict": 4242},
            "Dsig": {
                "Command": str(Path(sys.executable).with_name("dsig")),
                "Arguments": ["--trust-store", str(pki.trust), "--require", "signature"],
                **({} if args.no_audit else {"AuditLog": str(root / "audit.jsonl")}),
            },
        }
        if args.no_plugin:
            settings = {"Plugins": []}
        with running_orthanc(root / "orthanc", settings) as orthanc:
            started = time.perf_counter()
            if args.rest:
                with ThreadPoolExecutor(args.rest) as pool:
                    codes = list(
                        pool.map(
                            lambda p: orthanc.post(
                                "/instances", p.read_bytes(), "application/dicom"
                            )[0],
                            signed,
                        )
                    )
                sent = subprocess.CompletedProcess([], 0 if set(codes) == {200} else 1, "", "")
            else:  # one storescu (one association) per slice of the files
                n = args.associations
                with ThreadPoolExecutor(n) as pool:
                    runs = list(
                        pool.map(
                            lambda i: net.storescu(
                                exe, orthanc.dicom_port, signed[i::n], called_ae="ORTHANC"
                            ),
                            range(n),
                        )
                    )
                sent = next((r for r in runs if r.returncode), runs[0])
            seconds = time.perf_counter() - started
            stored = len(orthanc.get("/instances"))
            status = {"counts": None} if args.no_plugin else orthanc.get("/dsig/status")
        if sent.returncode != 0 or stored != len(signed):
            print(f"failed: {stored}/{len(signed)} stored\n{sent.stderr}", file=sys.stderr)
            return 1
        rate = len(signed) / seconds
        print(f"{len(signed)} signed objects stored in {seconds:.2f} s: {rate:.1f} objects/s; "
              f"plugin counts {status['counts']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
