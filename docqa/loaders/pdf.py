"""PDF (``.pdf``) through pypdf: page texts joined by a blank line, each page's range recorded."""

from __future__ import annotations

import io

from docqa.errors import LoaderError
from docqa.loaders._base import LoadOptions, build_document
from docqa.loaders.clean import clean_pdf_text
from docqa.types import Document, Page

SUFFIXES = (".pdf",)

#: Between pages; the blank line keeps the last word of one page apart from the next page's first.
PAGE_SEPARATOR = "\n\n"


def join_pages(page_texts: list[str]) -> tuple[str, tuple[Page, ...]]:
    """Join page texts; each ``Page`` covers exactly its own text (1-based numbers).

    >>> join_pages(["one", "two"])
    ('one\\n\\ntwo', (Page(number=1, start=0, end=3), Page(number=2, start=5, end=8)))
    """
    pages: list[Page] = []
    parts: list[str] = []
    offset = 0
    for number, page_text in enumerate(page_texts, start=1):
        if number > 1:
            parts.append(PAGE_SEPARATOR)
            offset += len(PAGE_SEPARATOR)
        pages.append(Page(number, offset, offset + len(page_text)))
        parts.append(page_text)
        offset += len(page_text)
    return "".join(parts), tuple(pages)


def load(data: bytes, source: str, options: LoadOptions) -> Document:
    """Load a PDF: cleaned text of every page, with page ranges into the joined text."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        texts = [clean_pdf_text(page.extract_text() or "").strip() for page in reader.pages]
    except Exception as exc:  # pypdf raises far more than PyPdfError on broken files
        raise LoaderError(f"The PDF cannot be read ({type(exc).__name__}: {exc}).") from None
    text, pages = join_pages(texts)
    empty_pages = [n for n, t in enumerate(texts, start=1) if not t]
    return build_document(
        text, source, data, fmt="pdf", pages=pages, page_count=len(pages), empty_pages=empty_pages
    )
