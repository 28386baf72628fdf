"""A self-contained HTML page (no scripts, no network) with the explanation and the file's
element tree, covered / not covered marked."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape as _html_escape

from dsig.explain.model import ElementNode, Explanation
from dsig.explain.render import outline
from dsig.safe_text import printable


def escape(text: str) -> str:
    """HTML-escaped, control characters shown as escapes first: values, names and paths come
    from the file, and a newline in a page with ``pre-wrap`` lines would forge a line (a bidi
    override would reorder one)."""
    return _html_escape(printable(text))


_CSS = """
body{font-family:sans-serif;margin:2em;max-width:75em}
ul{list-style:none;padding-left:1.2em;margin:0}
li{margin:.1em 0;font-family:monospace;white-space:pre-wrap}
.VALID,.passed{color:#0a6b20}.INVALID,.failed{color:#b00020}
.INDETERMINATE,.warning,.not-run{color:#a05a00}
.covered{background:#e3f5e6}.uncovered{background:#fde7e9}.framing{color:#666}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.15em .4em;
font-family:monospace;font-size:90%;text-align:left;vertical-align:top}
td:last-child{white-space:nowrap}
"""


def _tree_rows(nodes: Iterable[ElementNode], depth: int = 0) -> Iterable[str]:
    for node in nodes:
        if node.covered is None:
            css, mark = "framing", "signature framing"
        elif node.covered:
            css, mark = "covered", "covered"
        else:
            css, mark = "uncovered", "NOT covered"
        pad = "&nbsp;" * 4 * depth
        yield (
            f'<tr class="{css}"><td>{pad}{escape(node.tag)}</td><td>{escape(node.name)}</td>'
            f"<td>{escape(node.vr)}</td><td>{escape(node.summary)}</td><td>{mark}</td></tr>"
        )
        yield from _tree_rows(node.children, depth + 1)


def render_html(ex: Explanation) -> str:
    """The page as a string."""
    body: list[str] = []
    depth = -1
    for line in outline(ex):
        while depth < line.depth:
            body.append("<ul>")
            depth += 1
        while depth > line.depth:
            body.append("</ul>")
            depth -= 1
        css = line.status.replace(" ", "-")
        body.append(f'<li class="{escape(css)}">{escape(line.text)}</li>')
    body.extend(["</ul>"] * (depth + 1))
    rows = "\n".join(_tree_rows(ex.tree))
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>dsig explain {escape(ex.path)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>dsig explain: {escape(ex.verdict)}</h1>\n"
        + "\n".join(body)
        + "\n<h2>Element tree</h2>\n<p>Green: covered by a main-level signature; red: present "
        "but not covered; grey: the signatures' own framing.</p>\n"
        "<table><tr><th>tag</th><th>name</th><th>VR</th><th>value</th><th>coverage</th></tr>\n"
        f"{rows}\n</table>\n</body></html>\n"
    )
