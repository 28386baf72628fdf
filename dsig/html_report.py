"""``dsig verify --report FILE.html``: a self-contained audit report a person can read.

One HTML file, inline CSS, no scripts, no external resources. Every value from the files
(paths, signer names, messages) is escaped, control characters as visible ``\n``-style escapes.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from dsig.batch import severity
from dsig.printable import printable

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .5em}
.meta{color:#666;margin-bottom:1.2em}
table{border-collapse:collapse;margin:.4em 0}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.VALID{color:#11703a;font-weight:600}.INVALID{color:#b00020;font-weight:700}
.ERROR{color:#8a4b00;font-weight:700}.INDETERMINATE{color:#8a6d00;font-weight:600}
.UNSIGNED{color:#555;font-weight:600}
.path{font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
ul{margin:.2em 0 .2em 1.2em;padding:0}
.verdict{font-size:1.2em;padding:.5em .8em;border-radius:4px;display:inline-block}
.ok{background:#e6f4ea}.bad{background:#fde7e9}.warn{background:#fff4d6}
"""

_COLS = ("valid", "invalid", "indeterminate", "unsigned", "error", "skipped")
_HEADS = ("Valid", "Invalid", "Indeterminate", "Unsigned", "Errors", "Skipped")


def _e(value: object) -> str:
    return html.escape(printable(value), quote=True)


def _ind(value: object) -> str:
    text = _e(value)
    return f'<span class="{text}">{text}</span>'


def render(
    summary: dict[str, Any],
    records: Sequence[dict[str, Any]],
    skipped: Sequence[str],
    *,
    title: str = "DICOM digital signature audit",
    generated: str = "",
    command: str = "",
    exit_code: int = 0,
    policy: str = "",
) -> str:
    """The whole HTML document."""
    verdict, css = {
        0: ("All files verified", "ok"),
        1: ("Invalid signatures found", "bad"),
        3: ("Some signatures could not be fully validated", "warn"),
        4: ("Some files could not be read", "bad"),
    }.get(exit_code, ("See below", "warn"))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<div class="meta">Generated {_e(generated)} by dsig'
        + (f' &middot; <span class="path">{_e(command)}</span>' if command else "")
        + "</div>",
        f'<div class="meta">{_e(policy)}</div>' if policy else "",
        f'<div class="verdict {css}">{_e(verdict)} (exit code {_e(exit_code)})</div>',
        "<h2>Summary</h2>",
        "<table><tr>" + "".join(f"<th>{h}</th>" for h in _HEADS) + "<th>Files</th>"
        "<th>Signatures</th></tr><tr>"
        + "".join(f'<td class="n">{_e(summary.get(c, 0))}</td>' for c in _COLS)
        + f'<td class="n">{_e(summary.get("files", 0))}</td>'
        + f'<td class="n">{_e(summary.get("signatures", 0))}</td></tr></table>',
        "<h2>By signer</h2>",
        "<p>Files per signer, by the worst indication of that signer's signatures in the file.</p>",
        "<table><tr><th>Signer</th>" + "".join(f"<th>{h}</th>" for h in _HEADS[:5]) + "</tr>",
    ]
    for signer, counts in summary.get("by_signer", {}).items():
        out.append(
            f"<tr><td>{_e(signer)}</td>"
            + "".join(f'<td class="n">{_e(counts.get(c, 0))}</td>' for c in _COLS[:5])
            + "</tr>"
        )
    out.append("</table>")
    ordered = sorted(records, key=lambda r: (severity(str(r.get("indication"))), r.get("path")))
    failures = [r for r in ordered if r.get("indication") != "VALID"]
    passed = [r for r in ordered if r.get("indication") == "VALID"]
    out.append(f"<h2>Files needing attention ({len(failures)})</h2>")
    out.append(_files_table(failures) if failures else "<p>None.</p>")
    out.append(f"<h2>Valid files ({len(passed)})</h2>")
    if passed:
        out.append(f"<details><summary>show {len(passed)} file(s)</summary>")
        out.append(_files_table(passed))
        out.append("</details>")
    else:
        out.append("<p>None.</p>")
    out.append(f"<h2>Skipped: not DICOM ({len(skipped)})</h2>")
    if skipped:
        out.append("<details><summary>show</summary><ul>")
        out.extend(f'<li class="path">{_e(p)}</li>' for p in skipped)
        out.append("</ul></details>")
    else:
        out.append("<p>None.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _files_table(records: Sequence[dict[str, Any]]) -> str:
    rows = [
        "<table><tr><th>Result</th><th>File</th><th>Signatures (signer, MAC, time, "
        "integrity / trust)</th><th>Findings</th></tr>"
    ]
    for rec in records:
        sigs = rec.get("signatures") or []
        sig_html = "".join(
            "<li>"
            + _ind(s.get("indication"))
            + f" {_e(s.get('signer'))}; {_e(s.get('mac'))}, {_e(s.get('datetime'))}"
            + (f", in {_e(s.get('location'))}" if s.get("location") else "")
            + f"; integrity {_e(s.get('integrity'))}, trust {_e(s.get('trust'))}"
            + (f"; revocation: {_e(s.get('revocation'))}" if s.get("revocation") else "")
            + "</li>"
            for s in sigs
        )
        findings = list(rec.get("findings") or [])
        for n, s in enumerate(sigs, 1):
            findings += [f"#{n} {f}" for f in s.get("findings") or []]
        if rec.get("error"):
            findings.insert(0, f"error: {rec['error']}")
        finding_html = "".join(f"<li>{_e(f)}</li>" for f in findings)
        rows.append(
            f"<tr><td>{_ind(rec.get('indication'))}</td>"
            f'<td class="path">{_e(rec.get("path"))}</td>'
            f"<td>{'<ul>' + sig_html + '</ul>' if sigs else '&mdash;'}</td>"
            f"<td>{'<ul>' + finding_html + '</ul>' if findings else '&mdash;'}</td>"
            "</tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)
