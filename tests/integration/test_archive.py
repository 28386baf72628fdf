"""Archive audits: an S3 archive (moto's server on 127.0.0.1), local processes vs a Dask cluster,
``--jsonl FILE --resume`` after a SIGKILL, and a Dask worker killed mid-run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import CorePki
from tests.helpers.bigfile import write_small_image
from tests.helpers.net import REPO, dsig_cmd
from tests.integration.test_batch import dsig, trust
from tests.integration.test_evidence import study, tsa, tsa_pki  # noqa: F401 - fixtures

pytest.importorskip("s3fs")
pytest.importorskip("distributed")
pytest.importorskip("moto")

if TYPE_CHECKING:
    from tests.helpers.s3 import CountingMotoServer

BUCKET = "archive"
PREFIX = f"s3://{BUCKET}/hospital"


@pytest.fixture(scope="module")
def archive(core_pki: CorePki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 signed files (2 tampered), 2 unsigned, 1 not DICOM, in two levels."""
    src = tmp_path_factory.mktemp("archive-src")
    for n in range(3):
        (src / f"study{n}").mkdir()
    for i in range(24):
        write_small_image(src / f"study{i % 3}" / f"img{i:02}.dcm", seed=i)
    out = tmp_path_factory.mktemp("archive")
    r = dsig("sign", src, "--out-dir", out, "--recursive", "--key", core_pki.rsa_key,
             "--cert", core_pki.rsa_cert, "--no-password")  # fmt: skip
    assert r.exit_code == 0, r.output
    for name in ("study0/img03.dcm", "study2/img20.dcm"):
        data = bytearray((out / name).read_bytes())
        data[-10] ^= 0xFF  # inside Pixel Data
        (out / name).write_bytes(bytes(data))
    write_small_image(out / "study1" / "unsigned1.dcm", seed=98)
    write_small_image(out / "unsigned2.dcm", seed=99)
    (out / "study1" / "notes.txt").write_text("not DICOM")
    return out


@pytest.fixture(scope="module")
def s3_server() -> Iterator[CountingMotoServer]:
    """moto's S3 server on an ephemeral port of 127.0.0.1, counting what it serves."""
    from tests.helpers.s3 import CountingMotoServer

    server = CountingMotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3(archive: Path, s3_server: CountingMotoServer) -> Iterator[dict[str, str]]:
    """The S3 server holding ``archive`` under PREFIX; the AWS environment (endpoint, dummy
    credentials) set for this process and its children."""
    import s3fs

    server = s3_server
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir(BUCKET)
        for path in sorted(archive.rglob("*")):
            if path.is_file():
                fs.put_file(str(path), f"{BUCKET}/hospital/{path.relative_to(archive)}")
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def verdicts(records: list[dict[str, Any]], root: str) -> dict[str, str]:
    """Relative name -> verdict (SKIPPED included)."""
    return {str(r["path"])[len(root) :].lstrip("/"): str(r["indication"]) for r in records}


def journal(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert "summary" in lines[-1] and all("summary" not in x for x in lines[:-1])
    return lines[:-1], lines[-1]["summary"]


@pytest.fixture(scope="module")
def local_run(core_pki: CorePki, archive: Path) -> dict[str, str]:
    """The reference: the same archive verified from the local disk."""
    r = dsig("verify", archive, "-r", "-j", 2, "--jsonl", *trust(core_pki))
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    found = verdicts(lines[:-1], str(archive))
    assert sorted(found.values()).count("INVALID") == 2 and found["study1/notes.txt"] == "SKIPPED"
    assert list(found.values()).count("UNSIGNED") == 2 and len(found) == 27
    return found


def test_s3_prefix_in_local_processes(
    core_pki: CorePki, s3: dict[str, str], local_run: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "audit.jsonl"
    r = dsig("verify", PREFIX, "-r", "-j", 2, "--jsonl", out, *trust(core_pki))
    assert r.exit_code == 1, r.output  # two tampered files
    records, summary = journal(out)
    assert verdicts(records, PREFIX) == local_run
    assert (summary["valid"], summary["invalid"], summary["skipped"]) == (22, 2, 1)
    skipped = next(x for x in records if x["indication"] == "SKIPPED")
    assert skipped["reason"].startswith("not a DICOM file") and PREFIX in skipped["reason"]
    assert "Summary" in r.stdout  # with --jsonl FILE the terminal gets the summary table


def test_s3_prefix_needs_recursive_and_bad_bucket_is_one_line(s3: dict[str, str]) -> None:
    r = dsig("verify", PREFIX, "--integrity-only")
    assert r.exit_code == 4 and "--recursive" in r.output
    r = dsig("verify", "s3://no-such-bucket/x", "-r", "--integrity-only")
    assert r.exit_code == 4 and r.output.count("\n") == 1 and "no-such-bucket" in r.output


def test_local_dask_cluster_gives_the_same_verdicts(
    core_pki: CorePki, s3: dict[str, str], local_run: dict[str, str], tmp_path: Path
) -> None:
    out, html = tmp_path / "audit.jsonl", tmp_path / "audit.html"
    r = dsig("verify", PREFIX, "-r", "--cluster", "local:2", "--jsonl", out, "--report", html,
             *trust(core_pki))  # fmt: skip
    assert r.exit_code == 1, r.output
    records, summary = journal(out)
    assert verdicts(records, PREFIX) == local_run
    assert summary["files"] == 26 and summary["skipped"] == 1
    assert f"{PREFIX}/study0/img03.dcm" in html.read_text()
    assert "Resumed audit" not in html.read_text()


class DaskProcesses:
    """``dask scheduler`` and single-threaded ``dask worker`` processes on 127.0.0.1."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.file = directory / "scheduler.json"
        self.env = {**os.environ, **env}
        self.scheduler = self._start("dask_scheduler", "--port", "0")
        deadline = time.monotonic() + 60
        while not self.file.exists():
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.1)
        self.address = str(json.loads(self.file.read_text())["address"])
        self.workers: list[subprocess.Popen[bytes]] = []

    def _start(self, tool: str, *args: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", f"distributed.cli.{tool}", "--host", "127.0.0.1",
               "--scheduler-file", str(self.file), "--no-dashboard", *args]  # fmt: skip
        return subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip

    def add_workers(self, n: int) -> None:
        from distributed import Client

        for _ in range(n):
            self.workers.append(self._start("dask_worker", "--nthreads", "1", "--no-nanny"))
        with Client(self.address, timeout="20s") as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(len(self.workers), timeout=60)

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def dask_processes(tmp_path: Path, s3: dict[str, str]) -> Iterator[DaskProcesses]:
    procs = DaskProcesses(tmp_path, s3)
    try:
        procs.add_workers(2)
        yield procs
    finally:
        procs.stop()


def test_done_when_scheduler_run_and_resume_after_sigkill(
    core_pki: CorePki,
    dask_processes: DaskProcesses,
    local_run: dict[str, str],
    tmp_path: Path,
) -> None:
    """The issue's command on the test archive; killed once the journal has records, then
    resumed (with a torn last line) to the same verdicts and a summary of the whole audit."""
    out, html = tmp_path / "audit.jsonl", tmp_path / "audit.html"
    cmd = dsig_cmd("verify", PREFIX, "--recursive", "--scheduler", dask_processes.address,
                   "--jsonl", out, "--report", html, *map(str, trust(core_pki)))  # fmt: skip
    env = dask_processes.env
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_bytes().count(b"\n") >= 3):
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = out.read_bytes()
    assert b'"summary"' not in killed_at  # killed mid-run
    with out.open("ab") as fp:
        fp.write(b'{"path": "s3://archive/hosp')  # as if killed mid-line
    second = subprocess.run([*cmd, "--resume"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert second.returncode == 1, second.stderr
    records, summary = journal(out)
    assert out.read_bytes().startswith(killed_at)  # appended, nothing rewritten
    assert len(records) == len({r["path"] for r in records})  # nothing verified twice
    assert verdicts(records, PREFIX) == local_run
    assert (summary["files"], summary["skipped"], summary["invalid"]) == (26, 1, 2)
    assert html.read_text().count(f"{PREFIX}/") >= 26  # the report covers the whole audit
    # ... and says which part an earlier run verified (before the start it states).
    earlier = killed_at.count(b"\n")
    assert f"Resumed audit: {earlier} of the files below" in html.read_text()


def test_worker_killed_mid_run_loses_no_file(
    dask_processes: DaskProcesses, local_run: dict[str, str]
) -> None:
    from distributed import Client

    from dsig.archive.cluster import run_on_dask
    from dsig.archive.sources import iter_candidates
    from dsig.operations.batch import frozen_now
    from dsig.operations.verifier import VerifyOptions

    with Client(dask_processes.address, timeout="20s") as client:  # type: ignore[no-untyped-call]
        pids = client.run(os.getpid)
        candidates = iter_candidates([PREFIX], recursive=True)
        stream = run_on_dask(client, candidates, frozen_now(VerifyOptions()), batch=2)
        seen = [next(stream).path]
        os.kill(next(iter(pids.values())), signal.SIGKILL)  # its queued batches are lost
        seen += [o.path for o in stream]
    assert sorted(seen) == sorted(f"{PREFIX}/{name}" for name in local_run)


def test_without_the_extra_one_line_error(archive: Path, tmp_path: Path) -> None:
    """s3:// and --cluster without fsspec/distributed installed: one line, exit 4; a local
    audit (forked workers, journal, --resume, report, CSV) needs none of the extra."""
    hidden = ("fsspec", "s3fs", "distributed", "dask", "botocore", "aiobotocore")
    hide = f"import sys; sys.modules.update(dict.fromkeys({hidden!r})); "

    def verify(*args: str) -> subprocess.CompletedProcess[str]:
        code = f"{hide}from dsig.cli import main; sys.argv = ['dsig', 'verify', *{args!r}]; main()"
        return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip

    for args in (["s3://b/p", "-r"], [str(tmp_path), "-r", "--cluster", "local:1"]):
        r = verify(*args)
        assert r.returncode == 4, r.stderr
        assert r.stderr.count("\n") == 1 and "dsig[archive]" in r.stderr
    out = tmp_path / "audit.jsonl"
    local = [str(archive), "-r", "-j", "2", "--integrity-only", "--jsonl", str(out)]
    r = verify(*local, "--report", str(tmp_path / "audit.html"), "--csv", str(tmp_path / "a.csv"))
    assert r.returncode == 1, r.stderr
    r = verify(*local, "--resume")
    assert r.returncode == 1, r.stderr
    records, summary = journal(out)
    assert len(records) == 27 and (summary["files"], summary["invalid"]) == (26, 2)


def test_progress_on_a_terminal_shows_rate_eta_and_verdicts(
    core_pki: CorePki, s3: dict[str, str], archive: Path, tmp_path: Path
) -> None:
    """ETA only when the total is known (a local tree), not for a lazily listed prefix; the
    same bar for a Dask run (files/s and the counts by verdict as results come back)."""
    from tests.helpers.terminal import Terminal

    env = {**os.environ, **s3, "COLUMNS": "200"}
    runs = ((str(archive), ["-j", "1"], True), (PREFIX, ["-j", "1"], False),
            (str(archive), ["--cluster", "local:1"], True))  # fmt: skip
    for n, (source, runner, eta) in enumerate(runs):
        out = tmp_path / f"{n}.jsonl"
        term = Terminal(dsig_cmd("verify", source, "-r", *runner, "--jsonl", out,
                                 *map(str, trust(core_pki))), env=env, cwd=str(REPO))  # fmt: skip
        try:
            assert term.wait(120) == 1
        finally:
            term.close()
        assert "verifying" in term.output, (runner, term.output)
        assert re.search(r"\bINVALID 2 UNSIGNED 2 VALID 22 SKIPPED 1\b", term.output), runner
        assert re.search(r"\d files/s", term.output), runner
        assert ("ETA" in term.output) == eta, runner


def test_option_conflicts_are_usage_errors(archive: Path) -> None:
    for extra in (["--resume"], ["--jsonl", "--resume"], ["--cluster", "local:1", "-j", "2"],
                  ["--cluster", "local:1", "--scheduler", "tcp://127.0.0.1:1"],
                  ["--cluster", "remote:3"]):  # fmt: skip
        r = dsig("verify", archive, "-r", "--integrity-only", *extra)
        assert r.exit_code == 2 and r.output.count("\n") == 1, (extra, r.output)


def test_unreachable_scheduler_is_one_line(archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dsig.archive.cluster.CONNECT_TIMEOUT", "2s")
    r = dsig("verify", archive, "-r", "--integrity-only", "--scheduler", "tcp://127.0.0.1:9")
    assert r.exit_code == 4 and r.output.count("\n") == 1 and "127.0.0.1:9" in r.output


def test_human_output_on_dask_and_one_object(core_pki: CorePki, s3: dict[str, str]) -> None:
    r = dsig("verify", PREFIX, "-r", "--cluster", "local:1", *trust(core_pki))
    assert r.exit_code == 1
    assert f"INVALID       {PREFIX}/study0/img03.dcm" in r.stdout and "Summary" in r.stdout
    r = dsig("verify", f"{PREFIX}/study0/img00.dcm", *trust(core_pki))
    assert r.exit_code == 0 and r.stdout.startswith(f"VALID         {PREFIX}/study0/img00.dcm")


def test_journal_inside_the_audited_directory(archive: Path, tmp_path: Path) -> None:
    """Resuming with the journal in the tree it audits: it is not an input."""
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(archive / "study0", tree)
    out, html = tree / "audit.jsonl", tree / "audit.html"
    r = dsig("verify", tree, "-r", "--integrity-only", "--jsonl", out, "--report", html)
    assert r.exit_code == 1, r.output
    r = dsig("verify", tree, "-r", "--integrity-only", "--jsonl", out, "--resume")
    assert r.exit_code == 1, r.output
    records, summary = journal(out)
    # The journal is never an input; the first run's report, not named this time, is a file
    # of the tree like any other (skipped as not DICOM).
    assert summary["files"] == 8 and summary["skipped"] == 1 and len(records) == 9
    assert not any(r["path"] == str(out) for r in records)


def test_evidence_verify_reads_the_data_file_from_s3(
    s3: dict[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server = request.getfixturevalue("tsa")  # test_evidence's fixtures, imported above
    root = request.getfixturevalue("tsa_pki").root_pem
    data_dir: Path = request.getfixturevalue("study")
    import s3fs

    out = tmp_path / "ev"
    r = dsig("evidence", "create", data_dir, "--out-dir", out, "--tsa", server.url,
             "--tsa-trust-store", root)  # fmt: skip
    assert r.exit_code == 0, r.output
    data = sorted(data_dir.iterdir())[0]
    s3fs.S3FileSystem(skip_instance_cache=True).put_file(str(data), f"{BUCKET}/ev/{data.name}")
    url = f"s3://{BUCKET}/ev/{data.name}"
    r = dsig("evidence", "verify", url, "--evidence", out, "--tsa-trust-store", root, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["path"] == url and '"status": "PROVEN"' in r.stdout
    r = dsig("evidence", "verify", f"s3://{BUCKET}/ev/missing.dcm", "--evidence", out)
    assert r.exit_code == 4 and r.output.count("\n") == 1


def test_resume_done_index_is_on_disk(tmp_path: Path) -> None:
    """--resume replays a journal into an on-disk index: membership is exact (the torn last
    line is not done) and Python memory stays flat however many paths the journal holds."""
    import tracemalloc

    from dsig.archive.done import DoneIndex
    from dsig.archive.journal import Journal

    n = 50_000
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as fp:
        for i in range(n):
            fp.write(json.dumps({"path": f"s3://b/p/{i:08d}.dcm", "indication": "VALID"}).encode())
            fp.write(b"\n")
        fp.write(b'{"path": "s3://b/p/torn.dcm", "indic')
    tracemalloc.start()
    journal, done = Journal.resume(path, lambda r: None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    journal.close()
    assert isinstance(done, DoneIndex)
    assert len(done) == n
    assert "s3://b/p/00000000.dcm" in done and f"s3://b/p/{n - 1:08d}.dcm" in done
    assert "s3://b/p/torn.dcm" not in done
    # A set of these 50k paths alone takes over 5 MB; the index keeps one batch of them.
    assert peak < 4_000_000, peak
    done.close()


def test_large_objects_are_read_by_ranged_requests_never_whole(
    core_pki: CorePki, s3_server: CountingMotoServer, s3: dict[str, str], tmp_path: Path
) -> None:
    """A 32 MiB object is read through ranged GETs: signed, its Pixel Data is streamed once
    into the MAC (and once more for the file hash of --csv); unsigned, the Pixel Data is never
    transferred. A small listed object costs one GET (no HEAD: the listing gave its size)."""
    import hashlib

    import s3fs

    from tests.helpers.bigfile import write_big_file

    src, out = tmp_path / "src", tmp_path / "signed"
    src.mkdir()
    write_big_file(src / "big.dcm", frames=64)  # 64 x 512 x 512 x 2 bytes = 32 MiB
    r = dsig("sign", src, "--out-dir", out, "--recursive", "--key", core_pki.rsa_key,
             "--cert", core_pki.rsa_cert, "--no-password")  # fmt: skip
    assert r.exit_code == 0, r.output
    write_big_file(tmp_path / "unsigned.dcm", frames=64, seed=5)
    write_small_image(tmp_path / "small.dcm", seed=7)
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    for local, key in ((out / "big.dcm", "big/signed.dcm"), (tmp_path / "unsigned.dcm",
                       "big/unsigned.dcm"), (tmp_path / "small.dcm", "big/small.dcm")):  # fmt: skip
        fs.put_file(str(local), f"{BUCKET}/{key}")
    size = (out / "big.dcm").stat().st_size
    assert size > 32 << 20
    traffic = s3_server.traffic

    def served(key: str) -> tuple[int, int]:
        got = [s for s in traffic.of(f"/{BUCKET}/{key}") if s.method == "GET"]
        assert all(s.range for s in got) or len(got) == 1, got  # ranged, or one small GET
        return len(got), sum(s.body for s in got)

    traffic.clear()
    r = dsig("verify", f"s3://{BUCKET}/big", "-r", "-j", 1, "--jsonl", *trust(core_pki))

    found = verdicts([json.loads(x) for x in r.stdout.splitlines()[:-1]], f"s3://{BUCKET}/big")
    assert found == {"signed.dcm": "VALID", "unsigned.dcm": "UNSIGNED", "small.dcm": "UNSIGNED"}
    requests, signed_bytes = served("big/signed.dcm")
    assert size <= signed_bytes <= size + (4 << 20), (signed_bytes, size)  # one pass
    assert requests > 8  # in chunks, not one GET of the whole object
    _, unsigned_bytes = served("big/unsigned.dcm")
    assert unsigned_bytes < 4 << 20, unsigned_bytes  # the header and the tail, no Pixel Data
    assert served("big/small.dcm")[0] == 1
    assert not [s for s in traffic.of(f"/{BUCKET}/big/small.dcm") if s.method == "HEAD"]

    traffic.clear()
    table = tmp_path / "audit.csv"
    r = dsig("verify", f"s3://{BUCKET}/big/signed.dcm", "--csv", table, *trust(core_pki))
    assert r.exit_code == 0, r.output
    _, hashed_bytes = served("big/signed.dcm")
    assert hashed_bytes <= 2 * size + (4 << 20), hashed_bytes  # the hash pass, then the MAC's
    sha = hashlib.sha256((out / "big.dcm").read_bytes()).hexdigest()
    assert sha in table.read_text()


def test_manifest_and_evidence_take_urls_for_every_path(
    core_pki: CorePki, s3: dict[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """manifest create/verify and evidence create/verify/status read a study from an S3
    prefix and write their outputs there; what they print names the URLs, never the scratch
    copies; an existing output is not replaced without --force."""
    import s3fs

    from tests.helpers.study import build_study
    from tests.integration.test_manifest import trust_args

    built = build_study(tmp_path / "study")
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    for path in built.files:
        fs.put_file(str(path), f"{BUCKET}/study/{path.relative_to(built.directory)}")
    (tmp_path / "notes.txt").write_text("not DICOM")
    fs.put_file(str(tmp_path / "notes.txt"), f"{BUCKET}/study/notes.txt")
    prefix, manifest = f"s3://{BUCKET}/study", f"s3://{BUCKET}/manifests/built.dcm"
    made = ("manifest", "create", prefix, "-o", manifest, "--key", core_pki.rsa_key,
            "--cert", core_pki.rsa_cert, "--no-password", "--json")  # fmt: skip
    r = dsig(*made)
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    assert created["references"] == len(built.files)
    assert [s["path"] for s in created["skipped"]] == [f"{prefix}/notes.txt"]
    assert fs.exists(f"{BUCKET}/manifests/built.dcm")
    r = dsig(*made)
    assert r.exit_code == 2 and "--force" in r.output and r.output.count("\n") == 1
    r = dsig("manifest", "verify", manifest, prefix, *trust_args(core_pki), "--json")
    assert r.exit_code == 0, r.stdout
    assert "dsig-stage-" not in r.stdout and prefix in r.stdout
    r = dsig("manifest", "verify", manifest, prefix, *trust_args(core_pki))
    assert r.exit_code == 0 and "manifest VALID" in r.stdout and "dsig-stage-" not in r.stdout
    r = dsig("manifest", "verify", manifest, f"s3://{BUCKET}/no-such-study", "--integrity-only")
    assert r.exit_code == 4 and r.output.count("\n") == 1 and "no-such-study" in r.output

    server = request.getfixturevalue("tsa")  # test_evidence's fixtures, imported above
    root = request.getfixturevalue("tsa_pki").root_pem
    out = f"s3://{BUCKET}/evidence"
    ev = ("evidence", "create", prefix, "--out-dir", out, "--tsa", server.url,
          "--tsa-trust-store", root, "--json")  # fmt: skip
    r = dsig(*ev)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["out_dir"] == out
    records = fs.ls(f"{BUCKET}/evidence")
    # One record per file, notes.txt included (evidence proves any file's existence).
    assert len(records) == len(built.files) + 1 and all(x.endswith(".ers") for x in records)
    r = dsig(*ev)
    assert r.exit_code == 4 and "forced" in r.output and r.output.count("\n") == 1
    data = f"{prefix}/{built.files[0].relative_to(built.directory)}"
    r = dsig("evidence", "verify", data, "--evidence", out, "--tsa-trust-store", root)
    assert r.exit_code == 0 and r.stdout.startswith("PROVEN"), r.output
    r = dsig("evidence", "status", out, "--json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == len(records), r.output


def test_resume_file_is_jsonl_file_and_resume(archive: Path, tmp_path: Path) -> None:
    """``--resume FILE`` continues the journal FILE (as ``--jsonl FILE --resume``); the files
    it already records are not verified again and the summary counts the whole audit."""
    out = tmp_path / "audit.jsonl"
    first = dsig("verify", archive / "study0", "-r", "--integrity-only", "--jsonl", out)
    assert first.exit_code == 1, first.output
    records, summary = journal(out)
    kept = out.read_text().splitlines()[:3]  # as if killed after three files
    out.write_text("\n".join(kept) + "\n")
    r = dsig("verify", archive / "study0", "-r", "--integrity-only", "--resume", out)
    assert r.exit_code == 1, r.output
    again, whole = journal(out)
    assert [x["path"] for x in again[:3]] == [json.loads(x)["path"] for x in kept]
    assert verdicts(again, str(archive)) == verdicts(records, str(archive)) and whole == summary
    # The directory became the journal: nothing left to verify, a usage error.
    r = dsig("verify", "--resume", archive / "study0", "-r", "--integrity-only")
    assert r.exit_code == 2 and "Missing argument" in r.output, r.output


def test_a_prefix_is_listed_a_page_at_a_time(
    s3_server: CountingMotoServer, s3: dict[str, str]
) -> None:
    """The listing is consumed as it comes: the first candidate is yielded after one page
    (1,000 keys) of ListObjectsV2, the second page is asked for only when the first is used
    up; each candidate carries the size the listing gave."""
    import itertools

    import s3fs

    from dsig.archive.sources import iter_candidates

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.pipe({f"{BUCKET}/many/{i:05d}.dcm": b"x" * (i % 7) for i in range(1_050)})
    traffic = s3_server.traffic
    traffic.clear()

    def pages() -> int:  # ListObjectsV2 of whole pages (not isfile's probe of one key)
        return sum(1 for s in traffic.served if s.method == "GET" and s.path == f"/{BUCKET}"
                   and "list-type=2" in s.query and "max-keys=1&" not in s.query + "&")  # fmt: skip

    listing = iter_candidates([f"s3://{BUCKET}/many"], recursive=True)
    first = next(listing)
    assert first.path == f"s3://{BUCKET}/many/00000.dcm" and first.size == 0
    assert pages() == 1
    rest = list(itertools.islice(listing, 998))
    assert pages() == 1 and rest[-1].size == 998 % 7
    assert len(list(listing)) == 51 and pages() == 2


def test_evidence_renew_replaces_records_in_s3(
    s3_server: CountingMotoServer, s3: dict[str, str], request: pytest.FixtureRequest
) -> None:
    """``evidence renew`` takes URLs: the records under an S3 prefix are renewed, each renewed
    one replaced by one PUT (old or new, never part); a second run renews and uploads
    nothing; ``--rehash --data`` reads the data from S3; a store without atomic replace is
    refused before any work, in one line."""
    import s3fs

    from dsig.evidence.record import parse

    server = request.getfixturevalue("tsa")  # test_evidence's fixtures, imported above
    root = request.getfixturevalue("tsa_pki").root_pem
    data_dir: Path = request.getfixturevalue("study")
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    for f in sorted(data_dir.iterdir()):
        fs.put_file(str(f), f"{BUCKET}/renew-data/{f.name}")
    out, data = f"s3://{BUCKET}/renew-ev", f"s3://{BUCKET}/renew-data"
    base = ("--tsa", server.url, "--tsa-trust-store", root)
    r = dsig("evidence", "create", data_dir, "--out-dir", out, *base)
    assert r.exit_code == 0, r.output
    keys = sorted(fs.ls(f"{BUCKET}/renew-ev"))
    assert len(keys) == len(list(data_dir.iterdir()))

    def puts() -> list[str]:
        return sorted(s.path for s in s3_server.traffic.served if s.method == "PUT")

    def stamps() -> list[list[int]]:
        return [[len(c) for c in parse(fs.cat_file(k)).chains] for k in keys]

    s3_server.traffic.clear()
    r = dsig("evidence", "renew", out, "--min-age", "0", *base, "--json")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["renewed"]) == len(keys) and "dsig-stage-" not in r.stdout
    assert puts() == [f"/{k}" for k in keys]
    assert stamps() == [[2]] * len(keys)
    r = dsig(
        "evidence", "verify", data_dir / "CT_small.dcm", "--evidence", out, *base[2:], "--json"
    )
    assert r.exit_code == 0 and len(json.loads(r.stdout)["renewals"]) == 2, r.output
    s3_server.traffic.clear()
    r = dsig("evidence", "renew", out, *base)  # just renewed: under the default min-age
    assert r.exit_code == 0 and r.stdout.startswith("renewed 0, skipped 5"), r.output
    assert puts() == []
    r = dsig("evidence", "renew", out, *base, "--rehash", "sha512", "--data", data)
    assert r.exit_code == 0 and r.stdout.startswith("renewed 5"), r.output
    assert stamps() == [[2, 1]] * len(keys)
    r = dsig("evidence", "verify", f"{data}/CT_small.dcm", "--evidence", out, *base[2:], "--json")
    assert r.exit_code == 0, r.output
    kinds = [s["kind"] for s in json.loads(r.stdout)["renewals"]]
    assert kinds == ["initial", "timestamp-renewal", "hash-tree-renewal"]
    hits = server.hits
    r = dsig("evidence", "renew", "memory://renew-ev", *base)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "atomically" in r.output
    assert server.hits == hits


def test_an_audit_reads_the_listing_as_it_verifies(
    s3_server: CountingMotoServer, s3: dict[str, str], tmp_path: Path
) -> None:
    """``dsig verify PREFIX -r -j 2`` asks for the second ListObjectsV2 page only once most of
    the first page's objects were read: the listing is consumed by the workers' window, never
    drained into memory first (the CLI end of a 10-million-object prefix)."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.pipe({f"{BUCKET}/paged/{i:05d}.txt": b"not DICOM" for i in range(1_001)})
    traffic = s3_server.traffic
    traffic.clear()
    out = tmp_path / "audit.jsonl"
    r = dsig("verify", f"s3://{BUCKET}/paged", "-r", "-j", 2, "--integrity-only", "--jsonl", out)
    assert r.exit_code == 0, r.output
    assert journal(out)[1]["skipped"] == 1_001
    with traffic.lock:
        served = list(traffic.served)
    pages = [n for n, s in enumerate(served) if s.method == "GET" and s.path == f"/{BUCKET}"
             and "list-type=2" in s.query and "max-keys=1&" not in s.query + "&"]  # fmt: skip
    assert len(pages) == 2, pages
    objects = [n for n, s in enumerate(served) if s.method == "GET"
               and s.path.startswith(f"/{BUCKET}/paged/")]  # fmt: skip
    assert len(objects) == 1_001
    read_before_page_2 = sum(1 for n in objects if n < pages[1])
    # At most jobs x WINDOW batches of 8 paths (64) are ahead of what was read.
    assert 1_000 - 2 * 4 * 8 - 8 <= read_before_page_2 < 1_000, read_before_page_2


def test_credentials_and_endpoint_from_an_aws_profile(
    core_pki: CorePki, s3: dict[str, str], tmp_path: Path
) -> None:
    """No AWS variable but AWS_PROFILE: the endpoint, region and keys come from the profile's
    config and credentials files, as the AWS SDK reads them (nothing on the command line)."""
    config, creds = tmp_path / "config", tmp_path / "credentials"
    config.write_text(f"[profile audit]\nendpoint_url = {s3['AWS_ENDPOINT_URL']}\n"
                      "region = us-east-1\n")  # fmt: skip
    creds.write_text("[audit]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(creds),
               AWS_PROFILE="audit")  # fmt: skip
    cmd = dsig_cmd("verify", f"{PREFIX}/study0/img00.dcm", *map(str, trust(core_pki)))
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                       check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"VALID         {PREFIX}/study0/img00.dcm")
    env["AWS_PROFILE"] = "missing"
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                       check=False)  # fmt: skip
    assert r.returncode == 4 and r.stderr.count("\n") == 1 and "missing" in r.stderr, r.stderr
