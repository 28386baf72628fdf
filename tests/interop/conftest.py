"""Fixtures for the dcmsign <-> dsig interop suite.

The whole directory is skipped when DCMTK's dcmsign is missing, unless ``DSIG_REQUIRE_DCMTK=1``
(then every test errors). dsig is always driven through its CLI as a subprocess
(``python -m dsig ...``), dcmsign through :mod:`tests.helpers.dcmtk`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.helpers import dcmtk, dicom_factory
from tests.helpers.pki_factory import Issued, build_pki

REPO_ROOT = Path(__file__).resolve().parents[2]
DSIG_TIMEOUT = 180

_HERE = Path(__file__).resolve().parent

#: concurrent subprocesses in the fixtures' build phases (dsig / dcmsign runs are independent)
JOBS = max(1, int(os.environ.get("DSIG_INTEROP_JOBS") or min(2, os.cpu_count() or 1)))


def pmap(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``[fn(x) for x in items]`` on :data:`JOBS` threads (order kept)."""
    items = list(items)
    if JOBS <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(JOBS) as ex:
        return list(ex.map(fn, items))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.interop)


@pytest.fixture(scope="session", autouse=True)
def _require_dcmtk() -> None:
    if dcmtk.dcmsign_available():
        return
    if os.environ.get("DSIG_REQUIRE_DCMTK") == "1":
        pytest.fail("DCMTK dcmsign/dcmconv/dcmdump not found but DSIG_REQUIRE_DCMTK=1")
    pytest.skip("DCMTK dcmsign not installed (set DSIG_REQUIRE_DCMTK=1 to make this an error)")


# ---------------------------------------------------------------------------------------------
# PKI
# ---------------------------------------------------------------------------------------------


@dataclass
class Signer:
    name: str
    key: Path
    cert: Path
    issued: Issued


@dataclass
class PkiFiles:
    root: Path
    intermediate: Path
    rsa: Signer
    ec: Signer
    directory: Path
    _pki: Any

    def extra(self, name: str, key_kind: str) -> Signer:
        """Issue (once) and write another leaf, e.g. ``extra("p521", "ec-p521")``."""
        issued = self._pki.leaf(name, key_kind=key_kind)
        key, cert = issued.write(self.directory, name)
        return Signer(name, key, cert, issued)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    """Root -> intermediate -> {RSA-2048, EC P-256} leaves; dcmsign trust set to it."""
    d = tmp_path_factory.mktemp("pki")
    p = build_pki()
    root = d / "root.cert.pem"
    inter = d / "intermediate.cert.pem"
    root.write_bytes(p.root.cert.public_bytes(serialization.Encoding.PEM))
    inter.write_bytes(p.intermediate.cert.public_bytes(serialization.Encoding.PEM))
    rsa_issued = p.leaf("rsa", key_kind="rsa2048")
    ec_issued = p.leaf("ec", key_kind="ec-p256")
    rk, rc = rsa_issued.write(d, "rsa")
    ek, ec_ = ec_issued.write(d, "ec")
    dcmtk.set_default_trust([root], [inter])
    return PkiFiles(
        root, inter, Signer("rsa", rk, rc, rsa_issued), Signer("ec", ek, ec_, ec_issued), d, p
    )


@pytest.fixture(scope="session")
def signers(pki: PkiFiles) -> dict[str, Signer]:
    return {"rsa": pki.rsa, "ec": pki.ec}


# ---------------------------------------------------------------------------------------------
# dsig CLI runner
# ---------------------------------------------------------------------------------------------


class DsigCliError(AssertionError):
    pass


def _fmt(cmd: Sequence[str], proc: subprocess.CompletedProcess[str]) -> str:
    out = proc.stdout or ""
    err = proc.stderr or ""
    if len(out) > 4000:
        out = out[:4000] + "...<truncated>"
    if len(err) > 4000:
        err = "...<truncated>" + err[-4000:]
    return f"$ {' '.join(map(str, cmd))}\n[exit {proc.returncode}]\n--stdout--\n{out}\n--stderr--\n{err}"


class Dsig:
    """Runs ``python -m dsig`` in a subprocess."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        )
        env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        env["NO_COLOR"] = "1"
        env["COLUMNS"] = "200"
        self.env = env

    def run(self, *args: object) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "dsig", *map(str, args)]
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=self.env,
            timeout=DSIG_TIMEOUT,
            check=False,
        )

    # -- sign ---------------------------------------------------------------------------------

    @staticmethod
    def sign_args(
        inp: Path | str,
        out: Path | str | None,
        signer: Signer,
        *,
        mac: str | None = "sha256",
        profile: str | None = None,
        tags: Iterable[str] = (),
        tag_file: Path | None = None,
        item: str | None = None,
        purpose: int | None = None,
        write_xfer: str | None = None,
        lengths: str | None = None,
        fmt: str | None = None,
        dump: Path | None = None,
        in_place: bool = False,
        extra: Iterable[str] = (),
    ) -> list[str]:
        args: list[str] = ["sign", str(inp)]
        if in_place:
            args.append("--in-place")
        else:
            assert out is not None
            args.append(str(out))
        args += ["--key", str(signer.key), "--cert", str(signer.cert), "--no-password"]
        if mac:
            args += ["--mac", mac]
            if mac in ("md5", "sha1"):
                args += ["--allow-weak", mac]
        if profile:
            args += ["--profile", profile]
        for t in tags:
            args += ["--tag", t]
        if tag_file is not None:
            args += ["--tag-file", str(tag_file)]
        if item is not None:
            args += ["--item", item]
        if purpose is not None:
            args += ["--purpose", str(purpose)]
        if write_xfer:
            args += ["--write-xfer", write_xfer]
        if lengths:
            args += ["--lengths", lengths]
        if fmt:
            args += ["--format", fmt]
        if dump is not None:
            args += ["--dump", str(dump)]
        args += list(extra)
        return args

    def sign(self, inp: Path | str, out: Path | str | None, signer: Signer, **kw: Any) -> Path:
        """Sign; raises :class:`DsigCliError` (with the command and output) on non-zero exit."""
        args = self.sign_args(inp, out, signer, **kw)
        proc = self.run(*args)
        if proc.returncode != 0:
            raise DsigCliError("dsig sign failed\n" + _fmt(args, proc))
        target = Path(inp if kw.get("in_place") else out)  # type: ignore[arg-type]
        if not target.exists():
            raise DsigCliError("dsig sign exited 0 but wrote no output\n" + _fmt(args, proc))
        return target

    def sign_proc(
        self, inp: Path | str, out: Path | str | None, signer: Signer, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        return self.run(*self.sign_args(inp, out, signer, **kw))

    # -- verify -------------------------------------------------------------------------------

    def verify(
        self,
        paths: Sequence[Path | str],
        *extra: str,
        integrity_only: bool = True,
        format_old: bool = False,
    ) -> VerifyResult:
        args: list[str] = ["verify", *map(str, paths), "--json"]
        if integrity_only:
            args.append("--integrity-only")
        if format_old:
            args.append("--format-old")
        args += list(extra)
        proc = self.run(*args)
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError:
            data = None
        return VerifyResult(args, proc, data)

    def verify_one(self, path: Path | str, *extra: str, **kw: Any) -> FileResult:
        res = self.verify([path], *extra, **kw)
        return res.file(path)

    def verify_many(
        self, paths: Sequence[Path | str], *extra: str, **kw: Any
    ) -> dict[str, FileResult]:
        """Batched calls (:data:`JOBS` chunks in parallel); where a batch gives no usable JSON,
        fall back to one call per file."""
        out: dict[str, FileResult] = {}
        if not paths:
            return out
        chunks = [list(paths[i::JOBS]) for i in range(min(JOBS, len(paths)))]
        results = pmap(lambda c: self.verify(c, *extra, **kw), chunks)
        for res, chunk in zip(results, chunks, strict=True):
            if res.data is not None:
                try:
                    for p in chunk:
                        out[str(p)] = res.file(p)
                    continue
                except DsigCliError:
                    pass
            for p in chunk:
                try:
                    out[str(p)] = self.verify_one(p, *extra, **kw)
                except DsigCliError as exc:
                    out[str(p)] = FileResult.failed(str(p), str(exc))
        return out

    # -- inspect ------------------------------------------------------------------------------

    def dump_mac(self, path: Path | str, uid: str, out: Path) -> bytes:
        # --force: callers reuse one scratch file for several dumps
        args = ["inspect", str(path), "--dump-mac", uid, str(out), "--force"]
        proc = self.run(*args)
        if proc.returncode != 0 or not out.exists():
            raise DsigCliError("dsig inspect --dump-mac failed\n" + _fmt(args, proc))
        return out.read_bytes()

    def inspect_json(self, path: Path | str) -> dict[str, Any]:
        args = ["inspect", str(path), "--json"]
        proc = self.run(*args)
        if proc.returncode != 0:
            raise DsigCliError("dsig inspect --json failed\n" + _fmt(args, proc))
        try:
            return json.loads(proc.stdout)  # type: ignore[no-any-return]
        except json.JSONDecodeError as exc:
            raise DsigCliError(
                f"dsig inspect --json: bad JSON ({exc})\n" + _fmt(args, proc)
            ) from exc


@dataclass
class VerifyResult:
    args: list[str]
    proc: subprocess.CompletedProcess[str]
    data: dict[str, Any] | None

    @property
    def returncode(self) -> int:
        return self.proc.returncode

    def describe(self) -> str:
        return _fmt(self.args, self.proc)

    def file(self, path: Path | str) -> FileResult:
        if self.data is None:
            raise DsigCliError("dsig verify --json produced no JSON\n" + self.describe())
        files = self.data.get("files") or []
        want = str(path)
        cands = [f for f in files if f.get("path") == want]
        if not cands:
            cands = [
                f
                for f in files
                if f.get("path") and Path(f["path"]).resolve() == Path(want).resolve()
            ]
        if not cands and len(files) == 1:
            cands = files
        if not cands:
            raise DsigCliError(f"no entry for {want} in dsig verify JSON\n" + self.describe())
        return FileResult(want, cands[0], self)


@dataclass
class FileResult:
    path: str
    data: dict[str, Any]
    run: VerifyResult | None

    @classmethod
    def failed(cls, path: str, message: str) -> FileResult:
        return cls(path, {"path": path, "indication": "<no result>", "error": message}, None)

    @property
    def indication(self) -> str:
        return str(self.data.get("indication"))

    @property
    def signatures(self) -> list[dict[str, Any]]:
        return list(self.data.get("signatures") or [])

    def sig(self, uid: str) -> dict[str, Any]:
        for s in self.signatures:
            if s.get("uid") == uid:
                return s
        raise AssertionError(f"signature {uid} not reported by dsig\n{self.describe()}")

    def describe(self) -> str:
        body = json.dumps(self.data, indent=1)
        if len(body) > 6000:
            body = body[:6000] + "...<truncated>"
        cmd = self.run.describe() if self.run is not None else ""
        if len(cmd) > 3000:
            cmd = cmd[:3000] + "...<truncated>"
        return f"file result for {self.path}:\n{body}\n{cmd}"

    def assert_valid(self, n_signatures: int | None = None) -> None:
        """File VALID and every signature's integrity VALID (integrity-only mode)."""
        assert self.indication == "VALID", f"expected VALID\n{self.describe()}"
        sigs = self.signatures
        assert sigs, f"no signatures reported\n{self.describe()}"
        if n_signatures is not None:
            assert len(sigs) == n_signatures, (
                f"expected {n_signatures} signatures\n{self.describe()}"
            )
        for s in sigs:
            assert s.get("integrity") == "VALID", (
                f"signature {s.get('uid')} integrity\n{self.describe()}"
            )
            assert s.get("indication") == "VALID", f"signature {s.get('uid')}\n{self.describe()}"

    def assert_invalid(self, code: str | None = None) -> None:
        assert self.indication == "INVALID", f"expected INVALID\n{self.describe()}"
        bad = [s for s in self.signatures if s.get("integrity") == "INVALID"]
        assert bad, f"no signature with integrity INVALID\n{self.describe()}"
        if code is not None:
            codes = {f.get("code") for s in bad for f in (s.get("findings") or [])}
            assert code in codes, f"expected finding {code}, got {codes}\n{self.describe()}"

    def codes(self) -> set[str]:
        return {str(f.get("code")) for s in self.signatures for f in (s.get("findings") or [])}


@pytest.fixture(scope="session")
def dsig() -> Dsig:
    return Dsig()


def tag_str(tag: int) -> str:
    """``0x00100010`` -> ``"(0010,0010)"`` as in dsig's JSON."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


# ---------------------------------------------------------------------------------------------
# Source objects: pydicom samples + factory-built objects
# ---------------------------------------------------------------------------------------------

#: factory-built sources (key -> builder(out_path))
FACTORY_SOURCES: dict[str, Callable[[Path], Path]] = {
    "mf_jpeg_bot": lambda out: dicom_factory.multiframe_multifragment_jpeg(out, frames=3, bot=True),
    "mf_jpeg_nobot": lambda out: dicom_factory.multiframe_multifragment_jpeg(
        out, frames=4, bot=False, fragments_per_frame=(3, 2)
    ),
    "sr_nested": dicom_factory.sr_with_nested_item,
    "gl_sr": lambda out: dicom_factory.with_group_lengths_and_padding("reportsi.dcm", out),
    "gl_ct": lambda out: dicom_factory.with_group_lengths_and_padding("CT_small.dcm", out),
    "empty_ct": dicom_factory.with_empty_values,
    "sr_verified_1obs": dicom_factory.verified_sr_single_observer,
    # implicit VR LE variants made by DCMTK: private elements known to DCMTK's (and pydicom's)
    # private dictionary; group length elements inside sequence items
    "ct_implicit": lambda out: (
        dcmtk.dcmconv(dicom_factory.sample("CT_small.dcm"), out, "+ti"),
        out,
    )[1],
    "gl_rtplan_implicit": lambda out: (
        dcmtk.dcmconv(dicom_factory.sample("rtplan.dcm"), out, "+ti", "+g"),
        out,
    )[1],
}


class Sources:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._cache: dict[str, Path] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str) -> Path:
        """Path of a source object: a pydicom test file name or a :data:`FACTORY_SOURCES` key."""
        with self._lock:
            return self._get(key)

    def _get(self, key: str) -> Path:
        if key not in self._cache:
            if key in FACTORY_SOURCES:
                self._cache[key] = FACTORY_SOURCES[key](self.directory / f"{key}.dcm")
            else:
                self._cache[key] = dicom_factory.sample(key)
        return self._cache[key]


@pytest.fixture(scope="session")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    return Sources(tmp_path_factory.mktemp("sources"))
