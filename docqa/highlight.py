"""An answer shown on its PDF page: docqa's character offsets mapped to the page's characters.

docqa's PDF text comes from pypdf, then clean-up (ligatures, accents, words hyphenated across
lines) and page furniture removal (`docqa.loaders.clean`, `docqa.loaders.layout`), so an offset
into ``Document.text`` is not an index into anything a renderer knows. pdfium (pypdfium2)
renders pages and gives each character of a page's text its box, in its own order and with its
own generated spaces. The two are aligned by content, not by index: both sides are reduced to
the same normal form (no whitespace, no hyphens, no accents, compatibility characters split,
case folded), the answer is looked for in pdfium's text of that page, and where it occurs more
than once the occurrence nearest the answer's relative place on the page wins. Text that the
clean-up changed beyond that normal form falls back to aligning the whole page
(`difflib.SequenceMatcher`); characters it cannot place are not highlighted rather than guessed.

Needs the ``serve`` extra (pypdfium2): ``pip install 'docqa[serve]'``.

>>> from docqa.highlight import normal_form
>>> normal_form("ﬁle  Br¨oker func-\\ntion")[0]
'filebrokerfunction'
"""

from __future__ import annotations

import difflib
import io
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from docqa.errors import InputError
from docqa.types import Document

#: Characters left out of the normal form: pypdf and pdfium disagree on hyphens at line ends,
#: and the clean-up joins words split there.
_DROPPED = {"-", "\u00ad", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\ufffe", "\uffff"}
#: Share of the answer's normal form the page alignment must place before anything is shown.
MIN_ALIGNED = 0.6
#: Shortest run of characters in common that counts as aligned in that fallback.
MIN_BLOCK = 4
#: Highlight colour (RGB) and opacity on rendered pages and in PDF annotations.
HIGHLIGHT_RGB = (255, 214, 0)
HIGHLIGHT_ALPHA = 0.4


def normal_form(text: str) -> tuple[str, list[int]]:
    """``text`` reduced to what both extractors agree on, and for each character of the result
    the index in ``text`` it came from."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKD", ch):
            if c.isspace() or c in _DROPPED or unicodedata.category(c) in ("Mn", "Cc", "Cf"):
                continue
            for f in c.casefold():
                out.append(f)
                where.append(i)
    return "".join(out), where


@dataclass(frozen=True)
class PageText:
    """pdfium's characters of one page: their text, and each one's box in PDF units
    (left, bottom, right, top); ``width`` and ``height`` of the page, ``origin`` of its crop
    box (left, bottom)."""

    chars: str
    boxes: tuple[tuple[float, float, float, float], ...]
    width: float
    height: float
    origin: tuple[float, float] = (0.0, 0.0)


def _pdfium():
    try:
        import pypdfium2
    except ImportError as exc:  # the serve extra is optional
        raise InputError(
            "Showing answers on PDF pages needs pypdfium2: pip install 'docqa[serve]'."
        ) from exc
    return pypdfium2


def open_pdf(path: str | os.PathLike):
    """The PDF at ``path`` opened with pdfium (an `InputError` when it cannot be)."""
    pdfium = _pdfium()
    try:
        return pdfium.PdfDocument(str(path))
    except (pdfium.PdfiumError, OSError) as exc:
        raise InputError(f"The PDF {os.fspath(path)} cannot be opened: {exc}.") from exc


def page_text(pdf, number: int) -> PageText:
    """The characters of page ``number`` (1-based) of an open pdfium document, with boxes."""
    pdfium = _pdfium()
    raw = pdfium.raw

    if not 1 <= number <= len(pdf):
        raise InputError(f"The PDF has {len(pdf)} pages; there is no page {number}.")
    page = pdf[number - 1]
    textpage = page.get_textpage()
    chars, boxes = [], []
    for i in range(textpage.count_chars()):
        code = raw.FPDFText_GetUnicode(textpage, i)
        chars.append(chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else " ")
        try:
            boxes.append(tuple(textpage.get_charbox(i)))
        except pdfium.PdfiumError:  # a character pdfium generated has no box
            boxes.append((0.0, 0.0, 0.0, 0.0))
    # The bounding box pdfium shows (crop box, inherited page boxes included).
    left, bottom, right, top = page.get_bbox()
    return PageText("".join(chars), tuple(boxes), right - left, top - bottom, (left, bottom))


def page_span(doc: Document, number: int, start: int, end: int) -> tuple[int, int] | None:
    """``[start, end)`` clipped to page ``number`` of ``doc`` (None when they do not meet)."""
    page = next((p for p in doc.pages if p.number == number), None)
    if page is None:
        return None
    lo, hi = max(start, page.start), min(end, page.end)
    return (lo, hi) if lo < hi else None


def locate(doc: Document, number: int, start: int, end: int, page: PageText) -> list[int]:
    """Indices of ``page``'s characters that show ``doc.text[start:end]`` (the part of it on
    page ``number``); empty when the text cannot be placed on the page.

    The answer's normal form is looked for in the page's; of several occurrences the one
    nearest the answer's relative place on its page is taken. Otherwise the page's whole
    normal form is aligned with pdfium's, and the answer's characters that align are taken
    (only when at least `MIN_ALIGNED` of them do).
    """
    clipped = page_span(doc, number, start, end)
    if clipped is None:
        return []
    start, end = clipped
    bounds = next(p for p in doc.pages if p.number == number)
    ours, our_where = normal_form(doc.text[bounds.start : bounds.end])
    theirs, their_where = normal_form(page.chars)
    if not ours or not theirs:
        return []
    # The answer as a range of our normal form.
    first = next((k for k, i in enumerate(our_where) if i >= start - bounds.start), len(ours))
    last = next((k for k, i in enumerate(our_where) if i >= end - bounds.start), len(ours))
    if first >= last:
        return []
    wanted = ours[first:last]
    expected = first / len(ours) * len(theirs)
    hits, at = [], theirs.find(wanted)
    while at >= 0:
        hits.append(at)
        at = theirs.find(wanted, at + 1)
    if hits:
        at = min(hits, key=lambda h: abs(h - expected))
        return list(range(their_where[at], their_where[at + len(wanted) - 1] + 1))
    matcher = difflib.SequenceMatcher(None, ours, theirs, autojunk=False)
    placed = []
    for a, b, size in matcher.get_matching_blocks():
        if size < min(MIN_BLOCK, len(wanted)):
            continue  # a letter or two in common is chance, not alignment
        placed.extend(b + k - a for k in range(max(a, first), min(a + size, last)))
    if len(placed) < MIN_ALIGNED * len(wanted):
        return []
    if max(placed) - min(placed) + 1 > 2 * len(wanted) + MIN_BLOCK:
        return []  # the pieces that align are scattered over the page
    return list(range(their_where[min(placed)], their_where[max(placed)] + 1))


def line_boxes(page: PageText, indices: Sequence[int]) -> list[tuple[float, float, float, float]]:
    """The boxes of ``page``'s characters ``indices`` merged into one rectangle per line of
    text, in PDF units (left, bottom, right, top); characters without a box are left out."""
    rects: list[list[float]] = []
    for i in indices:
        left, bottom, right, top = page.boxes[i]
        if right <= left or top <= bottom or page.chars[i].isspace():
            continue
        last = rects[-1] if rects else None
        middle = (bottom + top) / 2
        if last is not None and last[1] <= middle <= last[3] and left >= last[0] - 1:
            last[0], last[1] = min(last[0], left), min(last[1], bottom)
            last[2], last[3] = max(last[2], right), max(last[3], top)
        else:
            rects.append([left, bottom, right, top])
    return [(a, b, c, d) for a, b, c, d in rects]


def answer_boxes(
    path: str | os.PathLike, doc: Document, number: int, start: int, end: int
) -> list[tuple[float, float, float, float]]:
    """The line rectangles (PDF units) that show ``doc.text[start:end]`` on page ``number``
    of the PDF at ``path``: `locate`, then `line_boxes`."""
    pdf = open_pdf(path)
    try:
        page = page_text(pdf, number)
        return line_boxes(page, locate(doc, number, start, end, page))
    finally:
        pdf.close()


def render_page(
    path: str | os.PathLike,
    number: int,
    boxes: Sequence[tuple[float, float, float, float]] = (),
    width: int = 1200,
) -> bytes:
    """Page ``number`` of the PDF at ``path`` as PNG bytes, about ``width`` pixels wide, with
    ``boxes`` (PDF units) painted in a translucent highlight."""
    from PIL import Image, ImageDraw

    pdf = open_pdf(path)
    try:
        if not 1 <= number <= len(pdf):
            raise InputError(f"The PDF has {len(pdf)} pages; there is no page {number}.")
        page = pdf[number - 1]
        left, _, right, top = page.get_bbox()
        scale = max(0.1, min(width / max(right - left, 1.0), 4.0))
        image = page.render(scale=scale).to_pil().convert("RGB")
    finally:
        pdf.close()
    if boxes:
        layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        fill = (*HIGHLIGHT_RGB, round(255 * HIGHLIGHT_ALPHA))
        for x0, y0, x1, y1 in boxes:
            draw.rectangle(
                [(x0 - left) * scale, (top - y1) * scale, (x1 - left) * scale, (top - y0) * scale],
                fill=fill,
            )
        image = Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def highlight_pdf(answer, out: str | os.PathLike) -> Path:
    """Write a copy of the PDF ``answer`` came from to ``out``, with the answer marked by a
    real highlight annotation (one quadrilateral per line) on each page it spans.

    >>> highlight_pdf(DocQA().ask("How long is the warranty?", "manual.pdf")[0], "out.pdf")
    ... # doctest: +SKIP
    PosixPath('out.pdf')
    """
    from pypdf import PdfReader, PdfWriter
    from pypdf.annotations import Highlight
    from pypdf.generic import ArrayObject, FloatObject

    source = Path(answer.source)
    if source.suffix.lower() != ".pdf" or not source.is_file():
        raise InputError(
            f"The best answer comes from {answer.source}, which is not a PDF file here; "
            "--highlight writes PDFs only."
        )
    doc = answer.document
    numbers = sorted({p.number for p in doc.pages if p.start < answer.end and answer.start < p.end})
    writer = PdfWriter(clone_from=PdfReader(source))
    pdf = open_pdf(source)
    marked = 0
    try:
        for number in numbers:
            page = page_text(pdf, number)
            boxes = line_boxes(page, locate(doc, number, answer.start, answer.end, page))
            if not boxes:
                continue
            quads = []
            for x0, y0, x1, y1 in boxes:  # PDF order: top-left, top-right, bottom-left, ...
                quads += [x0, y1, x1, y1, x0, y0, x1, y0]
            rect = (
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            )
            annotation = Highlight(
                rect=rect,
                quad_points=ArrayObject(FloatObject(q) for q in quads),
                highlight_color="".join(f"{c:02x}" for c in HIGHLIGHT_RGB),
            )
            writer.add_annotation(page_number=number - 1, annotation=annotation)
            marked += 1
    finally:
        pdf.close()
    if not marked:
        raise InputError(f"The answer could not be placed on the pages of {answer.source}.")
    target = Path(out)
    with open(target, "wb") as f:
        writer.write(f)
    return target
