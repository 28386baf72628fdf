"""``dsig serve``'s human log line: the revocation status, and peer values escaped."""

from __future__ import annotations

import pytest

from dsig.cli.net import _print_record
from dsig.net.scp import AuditRecord


def test_log_line_says_revocation_and_escapes_peer_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    record = AuditRecord(
        time="2026-01-01T00:00:00.000+00:00", calling_ae="EVIL\nVALID", called_ae="DSIG",
        peer="127.0.0.1:4242", sop_class_uid="1.2", sop_instance_uid="1.2.3\x1b[2J",
        transfer_syntax="1.2.840.10008.1.2.1", size=10, indication="VALID", action="stored",
        status=0, signatures=({"indication": "VALID", "revocation": "CN=leaf: good (crl given)"},),
    )  # fmt: skip
    _print_record(record)
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one line: the newline in the AE title cannot forge another
    assert "EVIL\\nVALID" in out and "1.2.3\\x1b[2J" in out
    assert "revocation: CN=leaf: good (crl given)" in out
