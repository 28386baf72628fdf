"""``dsig serve --stow`` (DICOMweb STOW-RS) end to end, ``--upstream`` into a real Orthanc's
DICOMweb plugin (issue 19). Requests are built by hand and sent with urllib."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from tests.helpers import net
from tests.helpers.orthanc import (
    Objects,
    Orthanc,
    make_objects,
    multipart_related,
    orthanc_available,
    running_orthanc,
)

pytestmark = pytest.mark.skipif(not orthanc_available(), reason="Orthanc is not installed")

REFERENCED, FAILED, REASON, INSTANCE = "00081199", "00081198", "00081197", "00081155"


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> Objects:
    return make_objects(tmp_path_factory.mktemp("stow-objects"))


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    with running_orthanc(tmp_path_factory.mktemp("upstream"), {}) as orthanc:
        yield orthanc


@pytest.fixture
def node(tmp_path: Path, objects: Objects, upstream: Orthanc) -> Iterator[tuple[net.Server, str]]:
    server = net.start_server(
        tmp_path, "--trust-store", objects.trust, "--require", "signature",
        "--stow", "127.0.0.1:0", "--upstream", f"{upstream.url}/dicom-web/studies",
    )  # fmt: skip
    line = next(x for x in server.log().splitlines() if "STOW-RS on " in x)
    url = line.split("STOW-RS on ")[1].split(";")[0]
    yield server, url
    assert server.stop() == 0, server.log()


def _post(url: str, body: bytes, content_type: str) -> tuple[int, dict[str, Any], str]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), response.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), e.headers["Content-Type"]


def _uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def _uids(answer: dict[str, Any], key: str) -> dict[str, int | None]:
    items = answer.get(key, {}).get("Value", [])
    return {i[INSTANCE]["Value"][0]: i.get(REASON, {}).get("Value", [None])[0] for i in items}


def test_mixed_request_202_refusals_named_bytes_kept_and_forwarded(
    node: tuple[net.Server, str], objects: Objects, upstream: Orthanc
) -> None:
    server, url = node
    parts = [objects.signed[0], objects.tampered, objects.signed[1], objects.stranger]
    body, content_type = multipart_related([p.read_bytes() for p in parts])
    status, answer, media = _post(url, body, content_type)
    assert status == 202, answer
    assert media == "application/dicom+json"
    assert set(_uids(answer, REFERENCED)) == {_uid(objects.signed[0]), _uid(objects.signed[1])}
    failed = _uids(answer, FAILED)
    assert failed[_uid(objects.tampered)] == 0xC210
    assert failed[_uid(objects.stranger)] == 0xC211
    for original in objects.signed[:2]:  # stored here and upstream, byte for byte
        assert (server.store / f"{_uid(original)}.dcm").read_bytes() == original.read_bytes()
        found = upstream.post("/tools/lookup", _uid(original).encode(), "text/plain")[1]
        instance = next(r["ID"] for r in json.loads(found) if r["Type"] == "Instance")
        with urllib.request.urlopen(f"{upstream.url}/instances/{instance}/file") as f:
            assert f.read() == original.read_bytes()
    assert len(server.quarantined()) == 2
    lines = server.wait_audit(4)
    assert {line["calling_ae"] for line in lines} == {"STOW-RS"}
    assert sorted(line["action"] for line in lines) == ["refused", "refused", "stored", "stored"]


def test_all_stored_200_all_refused_409_and_not_stow_415(
    node: tuple[net.Server, str], objects: Objects
) -> None:
    _server, url = node
    body, content_type = multipart_related([p.read_bytes() for p in objects.signed[2:4]])
    status, answer, _ = _post(url, body, content_type)
    assert status == 200, answer
    assert FAILED not in answer and len(_uids(answer, REFERENCED)) == 2
    body, content_type = multipart_related([objects.tampered.read_bytes(), b"not DICOM"])
    status, answer, _ = _post(url, body, content_type)
    assert status == 409, answer
    assert REFERENCED not in answer
    status, _answer, _ = _post(url, objects.signed[2].read_bytes(), "application/dicom")
    assert status == 415


def test_upstream_needs_stow() -> None:
    proc = net.run_dsig("serve", "--store", "s", "--quarantine", "q", "--upstream", "http://x/")
    assert proc.returncode == 2
    assert "--upstream needs --stow" in proc.stderr
    assert "Traceback" not in proc.stderr
