"""PDFs for the tests, made with pypdf: link annotations, encrypted, corrupt, oversized."""

from __future__ import annotations

import io

from pypdf import PdfWriter
from pypdf.annotations import Link
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, TextStringObject


def _text_page(writer: PdfWriter, lines: list[tuple[float, float, str]]) -> None:
    """A letter-size page drawing each (x, y, text) in Helvetica 12."""
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
            NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    ops = []
    for x, y, text in lines:
        safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"BT /F1 12 Tf {x} {y} Td ({safe}) Tj ET")
    stream = DecodedStreamObject()
    stream.set_data("\n".join(ops).encode("cp1252"))
    page[NameObject("/Contents")] = writer._add_object(stream)


def pdf_with_links(
    pages: list[list[tuple[str, str]]],
    password: str | None = None,
    base: str | None = None,
    padding: int = 0,
) -> bytes:
    """A PDF whose page i shows each (text, uri) of ``pages[i]`` as a line with a URI
    link annotation over it. ``password``: encrypted with that user password;
    ``base``: the catalog's ``/URI /Base``; ``padding``: a comment of that many bytes."""
    writer = PdfWriter()
    for number, links in enumerate(pages):
        lines = [(72.0, 700.0 - 30 * i, text) for i, (text, _) in enumerate(links)]
        _text_page(writer, lines or [(72.0, 700.0, "No links here")])
        for i, (_, uri) in enumerate(links):
            y = 700.0 - 30 * i
            writer.add_annotation(number, Link(rect=(70, y - 4, 300, y + 14), url=uri))
    if base is not None:
        writer._root_object[NameObject("/URI")] = DictionaryObject(
            {NameObject("/Base"): TextStringObject(base)}
        )
    if password is not None:
        writer.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    data = out.getvalue()
    if padding:
        # A comment before %%EOF's line: a valid PDF, just big.
        data = data + b"\n%" + b"x" * padding + b"\n"
    return data


def corrupt_pdf() -> bytes:
    """Begins like a PDF, then garbage: no objects, no cross-reference table."""
    return b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n1 0 obj << /Type /Catalog /Pages 9 0 R"
