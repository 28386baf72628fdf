"""STOW-RS bodies: parts come back byte for byte; the PS3.18 response's shape."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dsig.net.stow import PartOutcome, dicom_parts, multipart_body, response_json
from dsig.orthanc.service import orthanc_instance_id

TRICKY = [b"a\r\nb", b"\r\n", b"x\r", b"\n\n\r\r\n", b"", b"--dsig-\r\n--", b"end\r\n\r\n"]


def test_tricky_parts_survive_the_mime_parser() -> None:
    body, content_type = multipart_body(TRICKY)
    assert dicom_parts(content_type, body) == TRICKY


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=2000), min_size=1, max_size=4))
def test_any_bytes_survive_the_mime_parser(parts: list[bytes]) -> None:
    body, content_type = multipart_body(parts)
    assert dicom_parts(content_type, body) == parts


def test_other_bodies_are_not_stow() -> None:
    body, content_type = multipart_body([b"x"])
    assert dicom_parts("application/dicom", b"x") is None
    assert dicom_parts(content_type.replace("application/dicom", "application/json"), body) is None
    wrong_part = body.replace(b"Content-Type: application/dicom", b"Content-Type: text/plain")
    assert dicom_parts(content_type, wrong_part) is None


def test_response_lists_referenced_and_failed_with_reason() -> None:
    answer = response_json(
        [PartOutcome("1.2.3", "1.2.3.4", 0), PartOutcome("1.2.3", "1.2.3.5", 0xC210)]
    )
    referenced = answer["00081199"]["Value"]
    assert referenced == [
        {
            "00081150": {"vr": "UI", "Value": ["1.2.3"]},
            "00081155": {"vr": "UI", "Value": ["1.2.3.4"]},
        }
    ]
    failed = answer["00081198"]["Value"][0]
    assert failed["00081197"] == {"vr": "US", "Value": [0xC210]}
    assert "00081198" not in response_json([PartOutcome("1.2.3", "1.2.3.4", 0)])


def test_orthanc_instance_id_format() -> None:
    ident = orthanc_instance_id("p", "1.2", "1.2.3", "1.2.3.4")
    assert [len(group) for group in ident.split("-")] == [8, 8, 8, 8, 8]
    assert ident != orthanc_instance_id("p", "1.2", "1.2.3", "1.2.3.5")
