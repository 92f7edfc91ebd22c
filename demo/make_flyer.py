"""The demo's "Flyer (pdf)": a two-page PDF with link annotations, made with pypdf.

Made when the demo servers start (``demo.routes.start_demo_servers``), since the links
carry the servers' ports: page 1 links to a page of the section (works), page 2 to the
twin towns' sign-up page on the outside server ext2, which is gone (404): the broken link
``make demo`` finds inside the PDF (demo/PLANTED.md).

``python -m demo.make_flyer OUT.pdf MAIN_URL EXT2_URL`` writes one to a file.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from pypdf import PdfWriter
from pypdf.annotations import Link
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

#: Where the flyer's links go (``{MAIN}``/``{EXT2}``: the servers' base URLs).
GOOD_LINK = ("Läs mer om EU-samarbetet", "{MAIN}/internationellt/eu-samarbete.html")
BROKEN_LINK = ("Anmäl dig till vänortsdagarna", "{EXT2}/vanortsdagar/2019/anmalan/")

_PAGES = (
    (
        [
            "Internationellt arbete i Umeå",
            "",
            "Umeå kommun samarbetar med regioner",
            "och städer i Europa och världen.",
        ],
        GOOD_LINK,
    ),
    (
        ["Vänortsdagarna 2019", "", "Välkommen till vänortsdagarna i Umeå!"],
        BROKEN_LINK,
    ),
)


def _font(writer: PdfWriter) -> DictionaryObject:
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
            NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
        }
    )
    return DictionaryObject({NameObject("/F1"): writer._add_object(font)})


def _text(x: float, y: float, size: int, text: str) -> str:
    safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"BT /F1 {size} Tf {x} {y} Td ({safe}) Tj ET"


def flyer_pdf(main_url: str, ext2_url: str) -> bytes:
    """The flyer with its links pointing at the demo servers ``main_url`` and ``ext2_url``."""
    writer = PdfWriter()
    writer.pdf_header = b"%PDF-1.4"
    fonts = _font(writer)
    for number, (lines, (label, target)) in enumerate(_PAGES):
        page = writer.add_blank_page(595, 842)  # A4
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
        ops = [_text(72, 760 - 24 * i, 18 if i == 0 else 12, line) for i, line in enumerate(lines)]
        ops.append(_text(72, 600, 12, label))
        stream = DecodedStreamObject()
        stream.set_data("\n".join(ops).encode("cp1252"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        url = target.replace("{MAIN}", main_url).replace("{EXT2}", ext2_url)
        writer.add_annotation(number, Link(rect=(70, 596, 320, 614), url=url))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 4:
        sys.exit("usage: python -m demo.make_flyer OUT.pdf MAIN_URL EXT2_URL")
    Path(sys.argv[1]).write_bytes(flyer_pdf(sys.argv[2], sys.argv[3]))
