"""Draw the figures of docs/how-it-works.md from a real file: pydicom's JPEG-lossy.dcm,
signed here with a throw-away key, then taken apart by dsig.explain (the same code as
``dsig explain``). Only what does not depend on the random key, UID or time is drawn, so
the SVGs are byte-for-byte reproducible; tests/unit/test_figures.py checks they are current.

    .venv/bin/python scripts/make_figures.py [--out docs/figures]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dsig
from dsig.explain import ExplainOptions, Explanation, explain_file
from tests.helpers.pki_factory import build_pki
from tokens import open_key_provider

SOURCE = "JPEG-lossy.dcm"
FIXED_TIME = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
_FONT = "font-family='DejaVu Sans, Arial, sans-serif'"
_COLOURS = {"signed": "#e3f5e6", "unsigned": "#eeeeee", "sig": "#e3ecfb", "bad": "#fde7e9"}


@dataclass
class Svg:
    """A minimal SVG writer: boxes, text, arrows; nothing else is needed."""

    width: int
    height: int
    parts: list[str] = field(default_factory=list)

    def box(self, x: int, y: int, w: int, h: int, fill: str, *lines: str, size: int = 12) -> None:
        """A rounded box with centred lines of text."""
        self.parts.append(
            f"<rect x='{x}' y='{y}' width='{w}' height='{h}' rx='6' fill='{fill}' stroke='#555'/>"
        )
        top = y + h / 2 - (len(lines) - 1) * (size + 3) / 2 + size / 3
        for n, line in enumerate(lines):
            weight = " font-weight='bold'" if n == 0 and len(lines) > 1 else ""
            self.text(x + w // 2, int(top + n * (size + 3)), line, size=size, extra=weight)

    def text(
        self, x: int, y: int, text: str, *, size: int = 12, anchor: str = "middle", extra: str = ""
    ) -> None:
        """One line of text."""
        self.parts.append(
            f"<text x='{x}' y='{y}' {_FONT} font-size='{size}' text-anchor='{anchor}'{extra}>"
            f"{escape(text)}</text>"
        )

    def arrow(self, x1: int, y1: int, x2: int, y2: int, label: str = "") -> None:
        """A line with an arrow head at (x2, y2)."""
        self.parts.append(
            f"<line x1='{x1}' y1='{y1}' x2='{x2}' y2='{y2}' stroke='#333' marker-end='url(#head)'/>"
        )
        if label:
            self.text((x1 + x2) // 2 + 6, (y1 + y2) // 2 - 4, label, size=11, anchor="start")

    def render(self) -> str:
        """The document."""
        head = (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{self.width}' "
            f"height='{self.height}' viewBox='0 0 {self.width} {self.height}'>\n"
            "<defs><marker id='head' markerWidth='8' markerHeight='8' refX='7' refY='4' "
            "orient='auto'><path d='M0,0 L8,4 L0,8 z' fill='#333'/></marker></defs>\n"
            f"<rect width='{self.width}' height='{self.height}' fill='white'/>\n"
        )
        return head + "\n".join(self.parts) + "\n</svg>\n"


def signed_sample(directory: Path) -> Path:
    """The sample, signed (all elements) with a throw-away PKI at a fixed time."""
    from pydicom.data import get_testdata_file

    pki = build_pki()
    key, cert = pki.leaf("figure signer").write(directory, "signer")
    source = get_testdata_file(SOURCE, download=False)
    assert source is not None
    ds = dsig.read_dicom(Path(str(source)))
    provider = open_key_provider(str(key), cert=cert)
    try:
        dsig.add_signature(ds, provider, dsig.SignOptions(at=FIXED_TIME, purpose=1))
    finally:
        provider.close()
    out = directory / "signed.dcm"
    dsig.save(ds, out, dsig.target_encoding(ds, "same", None))
    return out


def layout_figure(ex: Explanation) -> str:
    """The signed file, top to bottom, groups of elements as boxes."""
    groups: dict[str, int] = {}
    for node in ex.tree:
        if node.covered is None:
            continue
        group = node.tag[1:5]
        groups[group] = groups.get(group, 0) + 1
    ordinary = {g: n for g, n in groups.items() if g not in ("7FE0",)}
    svg = Svg(720, 120 + 46 * (len(ordinary) + 4))
    svg.text(360, 24, f"A signed file: {SOURCE} ({ex.transfer_syntax})", size=14)
    y = 44
    svg.box(
        40,
        y,
        640,
        36,
        _COLOURS["unsigned"],
        "File Meta Information (group 0002)",
        "not part of any signature: it describes the file, not the object",
    )
    y += 46
    for group, count in ordinary.items():
        svg.box(
            40,
            y,
            640,
            36,
            _COLOURS["signed"],
            f"group {group}: {count} element(s)",
            "covered (listed in Data Elements Signed)",
        )
        y += 46
    mac_box = (
        "MAC Parameters Sequence (4FFE,0001), one item per MAC ID",
        "MAC ID Number, MAC Calculation Transfer Syntax, MAC Algorithm, Data Elements Signed",
    )
    svg.box(40, y, 640, 40, _COLOURS["sig"], *mac_box)
    y += 50
    pixel = next(e for e in ex.signatures[0].covered if e.name == "PixelData")
    svg.box(
        40,
        y,
        640,
        40,
        _COLOURS["signed"],
        "Pixel Data (7FE0,0010), encapsulated JPEG",
        pixel.how.split(";")[0],
    )
    y += 50
    svg.box(
        40,
        y,
        640,
        56,
        _COLOURS["sig"],
        "Digital Signatures Sequence (FFFA,FFFA)",
        "per signature: MAC ID Number, Digital Signature UID and DateTime, Certificate",
        "Type, Certificate of Signer, Signature, [Certified Timestamp], Purpose",
    )
    return svg.render()


def stream_figure(ex: Explanation) -> str:
    """The MAC stream of the signature: the bytes that are hashed, in order."""
    sig = ex.signatures[0]
    data = [e for e in sig.covered if e.source == "data set"]
    item = [e for e in sig.covered if e.source != "data set"]
    shown = data[:5]
    rest = data[5:-1]
    svg = Svg(760, 150 + 40 * (len(shown) + 4 + len(item)))
    svg.text(
        380,
        24,
        "The MAC stream: what is hashed, in this order (explicit VR little endian)",
        size=14,
    )
    y = 44
    for e in shown:
        svg.box(
            40,
            y,
            680,
            32,
            _COLOURS["signed"],
            f"{e.tag} {e.vr} {e.name}: header + value, {e.stream_bytes} bytes",
            size=11,
        )
        y += 40
    svg.box(
        40,
        y,
        680,
        32,
        _COLOURS["signed"],
        f"... {len(rest)} more elements ({sum(e.stream_bytes for e in rest)} bytes), "
        "sequences without lengths, closed by a delimiter",
        size=11,
    )
    y += 40
    pixel = data[-1]
    svg.box(
        40,
        y,
        680,
        44,
        _COLOURS["signed"],
        f"{pixel.tag} {pixel.vr} {pixel.name}: {pixel.stream_bytes} bytes",
        pixel.how.split(";")[0],
        size=11,
    )
    y += 52
    for e in item:
        svg.box(
            40,
            y,
            680,
            32,
            _COLOURS["sig"],
            f"{e.tag} {e.vr} {e.name} (from the signature item)",
            size=11,
        )
        y += 40
    svg.text(
        380,
        y + 16,
        f"{sig.mac_algorithm} over these bytes = the digest the Signature "
        "signs; Certificate of Signer, Signature and Certified Timestamp stay out",
        size=11,
    )
    return svg.render()


def phases_figure() -> str:
    """The two verification phases as a flow."""
    svg = Svg(760, 470)
    svg.text(380, 24, "Verification: two phases", size=14)
    svg.box(
        230,
        40,
        300,
        40,
        _COLOURS["unsigned"],
        "for each signature item",
        "find its MAC Parameters item (same MAC ID)",
    )
    svg.arrow(380, 80, 380, 104)
    svg.box(
        130,
        104,
        500,
        56,
        _COLOURS["signed"],
        "Phase 1: integrity",
        "rebuild the MAC stream from the elements listed, hash it, and check",
        "the Signature with the public key of the Certificate of Signer",
    )
    svg.arrow(630, 132, 690, 132)
    svg.box(690, 112, 60, 40, _COLOURS["bad"], "INVALID", size=11)
    svg.text(640, 124, "no match", size=10, anchor="start")
    svg.arrow(380, 160, 380, 190, "match: the bytes are as signed")
    svg.box(
        130,
        190,
        500,
        40,
        _COLOURS["sig"],
        "choose the moment",
        "certified time of a valid timestamp, else now",
    )
    svg.arrow(380, 230, 380, 254)
    svg.box(
        130,
        254,
        500,
        90,
        _COLOURS["sig"],
        "Phase 2: trust in the signer certificate",
        "path to a trust anchor; each certificate valid at the moment;",
        "key usage allows signing; not revoked (CRL / OCSP) at the moment",
        "(no trust store: not checked, INDETERMINATE)",
    )
    svg.arrow(630, 300, 690, 300)
    svg.box(690, 270, 66, 60, _COLOURS["bad"], "INVALID /", "INDETER-", "MINATE", size=10)
    svg.arrow(380, 344, 380, 380, "every step passed")
    svg.box(
        230,
        380,
        300,
        40,
        _COLOURS["signed"],
        "VALID",
        "who signed is known, and the bytes are theirs",
    )
    svg.text(
        380, 450, "dsig explain shows each of these steps and names the one that decided", size=11
    )
    return svg.render()


def make(out: Path) -> list[Path]:
    """Write every figure into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ex = explain_file(signed_sample(Path(tmp)), ExplainOptions())
    figures = {
        "signed-file-layout.svg": layout_figure(ex),
        "mac-stream.svg": stream_figure(ex),
        "two-phases.svg": phases_figure(),
    }
    paths = []
    for name, text in figures.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs/figures")
    for path in make(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
