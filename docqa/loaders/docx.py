"""Word documents (``.docx``) through python-docx: paragraphs and tables in reading order.

python-docx is an optional extra (``pip install 'docqa[docx]'``); without it ``.docx`` files
are reported as skipped with that hint rather than failing. Tables matter: specifications and
FAQs in Word files often keep their facts only in table cells, which ``paragraphs`` alone would
miss. Headings (``Title``, ``Heading 1``…) become sections. DOCX has no fixed pages, so the
document is one page.
"""

from __future__ import annotations

import io
from typing import Any

from docqa.errors import LoaderError
from docqa.loaders._base import FileSkipped, LoadOptions, build_document
from docqa.loaders.clean import clean_text
from docqa.types import Document, Section

SUFFIXES = (".docx",)

INSTALL_HINT = "Reading .docx files needs python-docx: pip install 'docqa[docx]'."


def _table_lines(table: Any) -> list[str]:
    """One line per row, cells separated by tabs; merged cells once, nested tables inline."""
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            # A merged cell appears once per grid column it spans; keep the first.
            if previous is not None and cell._tc is previous:
                continue
            previous = cell._tc
            cells.append(" ".join(_block_lines(cell)))
        line = "\t".join(c for c in cells if c)
        if line:
            lines.append(line)
    return lines


def _block_lines(container: Any) -> list[str]:
    """Text lines of a document body or table cell, in reading order."""
    lines: list[str] = []
    for block in container.iter_inner_content():
        if hasattr(block, "rows"):
            lines.extend(_table_lines(block))
        elif block.text.strip():
            lines.append(block.text.strip())
    return lines


def _heading_title(paragraph: Any) -> str | None:
    name = (paragraph.style.name if paragraph.style is not None else "") or ""
    if name == "Title" or name.startswith("Heading"):
        return paragraph.text.strip() or None
    return None


def load(data: bytes, source: str, options: LoadOptions) -> Document:
    """Load a DOCX file: its paragraphs and table rows, one per line, headings as sections."""
    try:
        import docx
    except ImportError:
        raise FileSkipped(INSTALL_HINT) from None
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # BadZipFile, KeyError, PackageNotFoundError, lxml errors…
        kind = type(exc).__name__
        raise LoaderError(f"The DOCX file is damaged or not a DOCX ({kind}).") from None

    parts: list[str] = []
    sections: list[Section] = []
    offset = 0
    for block in document.iter_inner_content():
        if hasattr(block, "rows"):
            lines = _table_lines(block)
        else:
            text = clean_text(block.text).strip()
            lines = [text] if text else []
            title = _heading_title(block) if text else None
            if title:
                sections.append(Section(title=clean_text(title).strip(), start=offset))
        for line in lines:
            line = clean_text(line)
            parts.append(line)
            offset += len(line) + 1  # the "\n" that joins it to the next line
    return build_document("\n".join(parts), source, data, fmt="docx", sections=sections)
