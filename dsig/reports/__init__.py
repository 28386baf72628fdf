"""How results are shown to people who audit them: the self-contained HTML audit report and the
CSV table, both built from the compact audit records of :mod:`dsig.operations.audit_record`."""

from dsig.reports.csv_report import render as render_csv
from dsig.reports.csv_report import write as write_csv
from dsig.reports.html_report import redact_argv, verifier_settings
from dsig.reports.html_report import render as render_html_report
from dsig.reports.html_report import render_lines as render_html_lines

__all__ = [
    "redact_argv",
    "render_csv",
    "render_html_lines",
    "render_html_report",
    "verifier_settings",
    "write_csv",
]
