"""``dsig verify --report FILE.html``: a self-contained audit report a compliance officer signs.

One HTML file, inline CSS and script, no external resource (a Content-Security-Policy allows
only the report's own style and script, by hash). It states the trust policy in effect, dsig's
version, the command line (secrets redacted) and the run's start and end; per file the object's
identifiers and SHA-256, per signature its UID, signer, purpose, time, timestamp and chain;
findings grouped by cause. Sorting and filtering run in the page; the print stylesheet prints
every file whatever the filter. Every value from the files (paths, signer names, messages) is
escaped, control characters as visible ``\\n``-style escapes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dsig.operations.batch import severity
from dsig.safe_text import printable

if TYPE_CHECKING:
    from dsig.operations.verifier import VerifyOptions

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .5em}
.meta{color:#555;margin-bottom:.4em}
table{border-collapse:collapse;margin:.4em 0}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
th.sort{cursor:pointer}th.sort:after{content:" \\2195";color:#999}
.VALID{color:#11703a;font-weight:600}.INVALID{color:#b00020;font-weight:700}
.ERROR{color:#8a4b00;font-weight:700}.INDETERMINATE{color:#8a6d00;font-weight:600}
.UNSIGNED,.SKIPPED{color:#555;font-weight:600}
.path,.id{font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
.id{font-size:.85em}td.path{min-width:12em}
ul{margin:.2em 0 .2em 1.2em;padding:0}
.verdict{font-size:1.2em;padding:.5em .8em;border-radius:4px;display:inline-block}
.ok{background:#e6f4ea}.bad{background:#fde7e9}.warn{background:#fff4d6}
.controls{margin:.6em 0;display:flex;gap:.8em;flex-wrap:wrap;align-items:center}
.controls input{min-width:22em}
tr.hidden{display:none}
.sig{margin-bottom:.4em}.sig b{font-weight:600}
@media print{
 @page{size:A4 landscape;margin:12mm}
 body{margin:0;font-size:8pt}
 .controls,th.sort:after{display:none}
 tr.hidden{display:table-row}
 thead{display:table-header-group}
 tr{break-inside:avoid}
 a{color:inherit;text-decoration:none}
}
"""

# Filtering (text, indication; ``#filter=TEXT`` in the address presets it, so a link can
# show one cause) and sorting by a column's data-sort values.
_SCRIPT = """
(function(){
var table=document.getElementById('files');if(!table)return;
var body=table.tBodies[0],text=document.getElementById('filter'),
ind=document.getElementById('indication'),count=document.getElementById('shown');
function apply(){var q=text.value.toLowerCase(),k=ind.value,n=0;
 Array.prototype.forEach.call(body.rows,function(r){
  var ok=(!k||r.getAttribute('data-indication')===k)
   &&(!q||r.textContent.toLowerCase().indexOf(q)>=0);
  r.classList.toggle('hidden',!ok);if(ok)n++;});
 count.textContent=n+' of '+body.rows.length+' file(s) shown';}
text.addEventListener('input',apply);ind.addEventListener('change',apply);
Array.prototype.forEach.call(document.querySelectorAll('a.code'),function(a){
 a.addEventListener('click',function(e){e.preventDefault();text.value=a.textContent;ind.value='';
  apply();table.scrollIntoView();});});
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,col){
 if(!th.classList.contains('sort'))return;
 th.addEventListener('click',function(){var asc=th.getAttribute('data-dir')!=='asc';
  th.setAttribute('data-dir',asc?'asc':'desc');
  var rows=Array.prototype.slice.call(body.rows);
  rows.sort(function(a,b){var x=a.cells[col].getAttribute('data-sort')||a.cells[col].textContent,
   y=b.cells[col].getAttribute('data-sort')||b.cells[col].textContent;
   return (x<y?-1:x>y?1:0)*(asc?1:-1);});
  rows.forEach(function(r){body.appendChild(r);});});});
if(location.hash.indexOf('#filter=')===0)text.value=decodeURIComponent(location.hash.slice(8));
apply();})();
"""

_COLS = ("valid", "invalid", "indeterminate", "unsigned", "error", "skipped")
_HEADS = ("Valid", "Invalid", "Indeterminate", "Unsigned", "Errors", "Skipped")
_INDICATIONS = ("INVALID", "ERROR", "INDETERMINATE", "UNSIGNED", "VALID")
#: Command-line options whose value is a secret, whatever the command (``--pin``, ``--*password*``).
_SECRET_OPTION = re.compile(r"^--?[\w-]*(password|passwd|pin|secret)[\w-]*$", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(://)[^/@\s]+@")
REDACTED = "[redacted]"


def _e(value: object) -> str:
    return html.escape(printable(value), quote=True)


def _ind(value: object) -> str:
    text = _e(value)
    return f'<span class="{text}">{text}</span>'


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def redact_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with the value of every option named like a secret (``--pin``, ``--password``,
    ``--tsa-password=...``) and any user:password in a URL replaced by ``[redacted]``."""
    out: list[str] = []
    redact_next = False
    for arg in argv:
        if redact_next:
            out.append(REDACTED)
            redact_next = False
            continue
        name, eq, _value = arg.partition("=")
        if _SECRET_OPTION.match(name):
            if eq:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(arg)
                redact_next = True
            continue
        out.append(_URL_USERINFO.sub(rf"\1{REDACTED}@", arg))
    return out


def verifier_settings(options: VerifyOptions) -> dict[str, str]:
    """The verifier's own settings a report states beside the trust policy."""
    at = options.at
    return {
        "Trust checked": "no (integrity only)" if options.integrity_only else "yes",
        "Weak algorithms (MD5/SHA-1 MAC, keys < 2048 bits)": (
            "fail the signature (strict)" if options.strict else "warning only"
        ),
        "Weak MAC / signer-key algorithms allowed (strict)": (
            ", ".join(options.allow_weak) or "none"
        ),
        "Required profiles": ", ".join(options.require) or "none",
        "Required coverage": options.require_coverage or "none",
        "Validation moment": at.isoformat() if not isinstance(at, str) else at,
        "Failed timestamps": "warning" if options.timestamp_failures_warn else "fail",
        "Old DCMTK format accepted": "yes" if options.old_format else "no",
    }


def render(
    summary: dict[str, Any],
    records: Iterable[dict[str, Any]],
    skipped: Iterable[str],
    **options: Any,
) -> str:
    """The whole HTML document (:func:`render_lines` joined)."""
    return "\n".join(render_lines(summary, records, skipped, **options)) + "\n"


def render_lines(
    summary: dict[str, Any],
    records: Iterable[dict[str, Any]],
    skipped: Iterable[str],
    *,
    ordered: bool = False,
    title: str = "DICOM digital signature audit",
    started: str = "",
    ended: str = "",
    command: str = "",
    exit_code: int = 0,
    policy: str = "",
    statement: Mapping[str, object] | None = None,
    settings: Mapping[str, str] | None = None,
    resumed: int = 0,
) -> Iterator[str]:
    """The HTML document, a line at a time. ``records`` and ``skipped`` are iterated more
    than once (an on-disk spool re-reads them: nothing is held whole); ``ordered``: records
    come already in report order (failures first, then path), else they are sorted here.
    ``statement``: dsig version and trust policy (``policy_statement``); ``policy``: its
    one-line form; ``settings``: :func:`verifier_settings`; ``resumed``: files a resumed
    journal recorded from earlier runs (verified before ``started``)."""
    if not ordered:
        records = sorted(records, key=lambda r: (severity(str(r.get("indication"))), r.get("path")))
    verdict, css = {
        0: ("All files verified", "ok"),
        1: ("Invalid signatures found", "bad"),
        3: ("Some signatures could not be fully validated", "warn"),
        4: ("Some files could not be read", "bad"),
    }.get(exit_code, ("See below", "warn"))
    stated = dict(statement or {})
    version = stated.get("dsig_version") or _version()
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        f'style-src {_csp_hash(_CSS)}; script-src {_csp_hash(_SCRIPT)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<div class="meta">dsig {_e(version)} &middot; started {_e(started)} &middot; '
        f"ended {_e(ended)}</div>",
        f'<div class="meta">Resumed audit: {_e(resumed)} of the files below were verified by '
        "an earlier run (before the start above) and read back from its journal</div>"
        if resumed
        else "",
        f'<div class="meta">Command: <span class="path">{_e(command)}</span></div>'
        if command
        else "",
        f'<div class="meta">{_e(policy)}</div>' if policy else "",
        f'<div class="verdict {css}">{_e(verdict)} (exit code {_e(exit_code)})</div>',
        "<h2>Summary</h2>",
        "<table><tr>" + "".join(f"<th>{h}</th>" for h in _HEADS) + "<th>Files</th>"
        "<th>Signatures</th></tr><tr>"
        + "".join(f'<td class="n">{_e(summary.get(c, 0))}</td>' for c in _COLS)
        + f'<td class="n">{_e(summary.get("files", 0))}</td>'
        + f'<td class="n">{_e(summary.get("signatures", 0))}</td></tr></table>',
        _policy_section(stated.get("policy"), settings or {}),
        "<h2>Findings by cause</h2>",
        _findings_section(records),
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
    yield from out
    total = failures = 0
    for r in records:
        total += 1
        failures += r.get("indication") != "VALID"
    yield f"<h2>Files ({total}: {failures} needing attention, {total - failures} valid)</h2>"
    if total:
        yield from _files_table(records)
    else:
        yield "<p>None.</p>"
    count = sum(1 for _ in skipped)
    yield f"<h2>Skipped: not DICOM ({count})</h2>"
    if count:
        yield "<ul>"
        yield from (f'<li class="path">{_e(p)}</li>' for p in skipped)
        yield "</ul>"
    else:
        yield "<p>None.</p>"
    yield f"<script>{_SCRIPT}</script></body></html>"


def _version() -> str:
    from dsig import __version__

    return __version__


def _policy_section(policy: object, settings: Mapping[str, str]) -> str:
    """The trust policy (anchors by subject and fingerprint, revocation, algorithms) and the
    verifier's settings, as tables."""
    rows: list[tuple[str, str]] = []
    anchors: list[Any] = []
    tsa_anchors: list[Any] = []
    if isinstance(policy, Mapping):
        anchors = list(policy.get("anchors") or [])
        tsa_anchors = list(policy.get("tsa_anchors") or [])
        algorithms = policy.get("algorithms") or {}
        rows += [
            ("Policy source", str(policy.get("source"))),
            ("Trust anchors", str(policy.get("trust_anchors"))),
            ("Intermediates supplied", str(policy.get("intermediates"))),
            ("CRLs / OCSP responses supplied",
             f"{policy.get('crls')} / {policy.get('ocsp_responses')}"),
            ("Revocation mode", str(policy.get("revocation"))),
            ("Online fetching", "yes" if policy.get("online") else "no"),
        ]  # fmt: skip
        if isinstance(algorithms, Mapping):
            rows += [
                ("Hashes rejected in the chain", ", ".join(algorithms.get("rejected_hashes", []))),
                ("Minimum RSA / DSA key bits",
                 f"{algorithms.get('min_rsa_bits')} / {algorithms.get('min_dsa_bits')}"),
            ]  # fmt: skip
        rows += [
            ("Weak algorithms the trust policy allows",
             ", ".join(policy.get("allow_weak") or []) or "none"),
            ("Key usage (one of)", ", ".join(policy.get("key_usage") or []) or "any"),
            ("Signing EKU (one of, when present)", ", ".join(policy.get("signing_eku") or [])
             or "any"),
            ("Required EKU", ", ".join(policy.get("required_eku") or []) or "none"),
            ("Certificate policies", ", ".join(policy.get("policies") or [])),
        ]  # fmt: skip
    else:
        rows.append(("Trust policy", printable(policy) or "not stated"))
    rows += list(settings.items())
    out = ["<h2>Policy in effect</h2>", "<table>"]
    out += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows]
    out.append("</table>")
    for heading, certs in (("Trust anchors", anchors), ("Timestamp authority anchors",
                                                        tsa_anchors)):  # fmt: skip
        if not certs:
            continue
        out.append(f"<h3>{heading} ({len(certs)})</h3>")
        out.append("<table><tr><th>Subject</th><th>SHA-256 fingerprint</th></tr>")
        out += [
            f'<tr><td>{_e(c.get("subject"))}</td><td class="id">{_e(c.get("sha256"))}</td></tr>'
            for c in certs
            if isinstance(c, Mapping)
        ]
        out.append("</table>")
    return "\n".join(out)


def _cause(finding: str) -> str:
    return finding.split(":", 1)[0].strip() or "(no code)"


def finding_groups(records: Iterable[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(cause, occurrences, files) for every finding code, and ERROR for files that could not
    be read; most frequent first."""
    seen: Counter[str] = Counter()
    files: Counter[str] = Counter()
    for rec in records:
        causes = [_cause(f) for f in rec.get("findings") or []]
        for sig in rec.get("signatures") or []:
            causes += [_cause(f) for f in sig.get("findings") or []]
        if rec.get("error"):
            causes.append("ERROR")
        seen.update(causes)
        files.update(set(causes))
    return sorted(((c, n, files[c]) for c, n in seen.items()), key=lambda g: (-g[1], g[0]))


def _findings_section(records: Iterable[dict[str, Any]]) -> str:
    groups = finding_groups(records)
    if not groups:
        return "<p>None.</p>"
    from pki.codes import meanings as code_meanings

    meanings = {**code_meanings(), "ERROR": "the file could not be read or parsed"}
    rows = [
        "<table><tr><th>Cause</th><th>Occurrences</th><th>Files</th><th>Meaning</th></tr>",
        *(
            f'<tr><td><a class="code" href="#files">{_e(code)}</a></td><td class="n">{n}</td>'
            f'<td class="n">{files}</td><td>{_e(meanings.get(code, ""))}</td></tr>'
            for code, n, files in groups
        ),
        "</table>",
    ]
    return "\n".join(rows)


def _signature_html(n: int, s: Mapping[str, Any]) -> str:
    chain = " &larr; ".join(_e(c) for c in s.get("chain") or []) or "&mdash;"
    parts = [
        f"#{n} {_ind(s.get('indication'))} <b>{_e(s.get('signer'))}</b>",
        f'UID <span class="id">{_e(s.get("uid"))}</span>'
        + (f", in {_e(s.get('location'))}" if s.get("location") else ""),
        f"purpose {_e(s.get('purpose') or '(none)')}; time {_e(s.get('datetime') or '(none)')}",
        f"timestamp {_e(s.get('timestamp') or '(none)')}",
        f"MAC {_e(s.get('mac'))}; integrity {_e(s.get('integrity'))}, trust {_e(s.get('trust'))}",
        f"chain {chain}",
    ]
    if s.get("revocation"):
        parts.append(f"revocation: {_e(s.get('revocation'))}")
    return '<div class="sig">' + "<br>".join(parts) + "</div>"


def _files_table(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    options = "".join(f'<option value="{i}">{i}</option>' for i in _INDICATIONS)
    yield from [
        '<div class="controls"><label>Filter <input id="filter" type="search" '
        'placeholder="path, UID, patient, signer, finding..."></label>'
        f'<label>Result <select id="indication"><option value="">all</option>{options}'
        '</select></label><span id="shown"></span></div>',
        '<table id="files"><thead><tr><th class="sort">Result</th><th class="sort">File</th>'
        '<th class="sort">Patient ID</th><th class="sort">Study / SOP Instance UID</th>'
        '<th class="sort">SHA-256</th><th class="sort">Signatures</th><th>Findings</th>'
        "</tr></thead><tbody>",
    ]
    for rec in records:
        sigs = rec.get("signatures") or []
        findings = list(rec.get("findings") or [])
        for n, s in enumerate(sigs, 1):
            findings += [f"#{n} {f}" for f in s.get("findings") or []]
        if rec.get("error"):
            findings.insert(0, f"error: {rec['error']}")
        indication = _e(rec.get("indication"))
        rank = severity(str(rec.get("indication")))
        finding_html = "".join(f"<li>{_e(f)}</li>" for f in findings)
        yield (
            f'<tr data-indication="{indication}">'
            f'<td data-sort="{rank}">{_ind(rec.get("indication"))}</td>'
            f'<td class="path">{_e(rec.get("path"))}</td>'
            f'<td class="id">{_e(rec.get("patient_id"))}</td>'
            f'<td class="id">{_e(rec.get("study_instance_uid"))}<br>'
            f"{_e(rec.get('sop_instance_uid'))}</td>"
            f'<td class="id">{_e(rec.get("sha256"))}</td>'
            f'<td data-sort="{len(sigs):06d}">'
            + ("".join(_signature_html(n, s) for n, s in enumerate(sigs, 1)) or "&mdash;")
            + "</td>"
            f"<td>{'<ul>' + finding_html + '</ul>' if findings else '&mdash;'}</td>"
            "</tr>"
        )
    yield "</tbody></table>"


__all__ = [
    "REDACTED",
    "finding_groups",
    "redact_argv",
    "render",
    "render_lines",
    "verifier_settings",
]
