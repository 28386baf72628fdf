"""The run's tally stays bounded: counts, not lists; what --json, --report and --csv list at the
end is spooled to disk and streamed back (the JSON document and the HTML too)."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from pathlib import Path
from typing import Any

from dsig.cli.batch import json_lines
from dsig.operations.batch import Outcome, Tally
from dsig.reports import csv_report
from dsig.reports.html_report import render, render_lines


def _result(i: int) -> dict[str, Any]:
    indication = "INVALID" if i % 1000 == 7 else "VALID"
    sig = {"uid": f"1.2.3.{i}", "signer": "CN=Signer", "indication": indication,
           "findings": [{"code": "MAC_MISMATCH", "message": "digest differs"}]
           if indication == "INVALID" else []}  # fmt: skip
    return {"path": f"s3://b/p/{i:08d}.dcm", "indication": indication, "signatures": [sig],
            "sha256": f"{i:064x}", "findings": []}  # fmt: skip


def _outcome(i: int) -> Outcome:
    if i % 10 == 3:
        return Outcome(f"s3://b/p/{i:08d}.txt", skipped="not a DICOM file")
    return Outcome(f"s3://b/p/{i:08d}.dcm", result=_result(i))


def test_json_lines_is_json_dumps_indent_2() -> None:
    fields: list[tuple[str, Any]] = [
        ("files", [{"a": [1, {"b": None}], "c": "é"}, {}, []]),
        ("empty", []),
        ("summary", {"valid": 1, "by_signer": {"x": {"valid": 1}}}),
        ("n", 3),
    ]
    expected = json.dumps(dict(fields), indent=2)
    streamed = [(k, iter(v)) if isinstance(v, list) else (k, v) for k, v in fields]
    assert "\n".join(json_lines(streamed)) == expected
    assert "\n".join(json_lines(fields)) == expected  # lists given whole: the same text


def test_tally_memory_is_flat_and_the_spool_streams_back(tmp_path: Path) -> None:
    n = 50_000
    tally = Tally(keep_records=True, keep_skipped=True)
    tracemalloc.start()
    for i in range(n):
        tally.add(_outcome(i))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # 45k records in lists cost well over 30 MB; spooled, the tally keeps counts and a batch.
    assert peak < 4_000_000, peak
    summary = tally.summary()
    assert (summary["files"], summary["skipped"], summary["invalid"]) == (45_000, 5_000, 50)
    assert summary["by_signer"]["CN=Signer"] == {"invalid": 50, "valid": 44_950}
    assert tally.spool is not None
    assert tally.spool.count("records") == 45_000 and tally.spool.count("skipped") == 5_000
    first = next(tally.spool.records_in_report_order())
    assert first["indication"] == "INVALID" and first["path"] == "s3://b/p/00000007.dcm"
    assert next(tally.skipped_paths()) == "s3://b/p/00000003.txt"

    # The HTML and the CSV are written from the spool a line at a time, in bounded memory.
    tracemalloc.start()
    size = lines = 0
    for line in render_lines(summary, SpoolView(tally), SpoolView(tally, skipped=True),
                             ordered=True):  # fmt: skip
        size += len(line)
        lines += 1
    _, peak = tracemalloc.get_traced_memory()
    out = tmp_path / "audit.csv"
    csv_report.write(out, tally.records(), tally.skipped_paths())
    _, csv_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert size > 20_000_000 and lines > 45_000  # one row per file, every file listed
    assert peak < 4_000_000, peak
    assert csv_peak < 4_000_000, csv_peak
    with open(out, newline="", encoding="utf-8") as fp:
        rows = list(csv.reader(fp))
    assert len(rows) == 1 + n and rows[-1][:2] == ["s3://b/p/00049993.txt", "SKIPPED"]
    tally.close()


class SpoolView:
    """A re-iterable view of a tally's spool (each pass reads it again from disk)."""

    def __init__(self, tally: Tally, *, skipped: bool = False) -> None:
        self._tally, self._skipped = tally, skipped

    def __iter__(self) -> Any:
        spool = self._tally.spool
        assert spool is not None
        return spool.skipped() if self._skipped else spool.records_in_report_order()


def test_render_of_lists_sorts_and_matches_the_streamed_document() -> None:
    records = [_result(i) for i in (8, 7, 9)]
    tally = Tally(keep_records=True)
    for r in records:
        tally.add(Outcome(str(r["path"]), result=r))
    summary = tally.summary()
    from dsig.operations.audit_record import audit_record

    whole = render(summary, [audit_record(r) for r in records], ["x.txt"], started="s")
    streamed = "\n".join(
        render_lines(summary, SpoolView(tally), ["x.txt"], ordered=True, started="s")
    )
    assert whole == streamed + "\n"
    assert whole.index("00000007.dcm") < whole.index("00000008.dcm")  # INVALID first
    assert "Skipped: not DICOM (1)" in whole and "Files (3: 1 needing attention, 2 valid)" in whole
    tally.close()
    assert io.StringIO(whole).read(15) == "<!DOCTYPE html>"
