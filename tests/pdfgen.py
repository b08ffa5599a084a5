"""Make small PDFs for tests with fpdf2, so no fixture is ever downloaded."""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

_UNICODE_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def has_unicode_font() -> bool:
    """True where a TrueType font for text beyond Latin-1 (``ﬁ``, ``▶``) is installed."""
    return _UNICODE_FONT.exists()


def make_pdf(
    path: str | Path,
    pages: list[str],
    *,
    unicode_font: bool = False,
    images: dict[int, bool] | None = None,
    encrypt: dict | None = None,
) -> Path:
    """Write a PDF with one page per string in ``pages``; return its path.

    Long strings wrap over many lines; ``"\\n"`` starts a new line; ``""`` makes a page with no
    text. ``images={i: True}`` draws a filled picture-like rectangle on page ``i`` (0-based) so
    an image-only page has content but no text. ``unicode_font=True`` embeds DejaVu Sans for
    characters outside Latin-1. ``encrypt`` is passed to ``FPDF.set_encryption``, e.g.
    ``{"owner_password": "o", "user_password": "u"}``.
    """
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=False)
    if unicode_font:
        pdf.add_font("DejaVu", fname=str(_UNICODE_FONT))
        pdf.set_font("DejaVu", size=11)
    else:
        pdf.set_font("Helvetica", size=11)
    for index, page_text in enumerate(pages):
        pdf.add_page()
        if images and images.get(index):
            pdf.set_fill_color(90, 120, 160)
            pdf.rect(20, 20, 170, 120, style="F")
        if page_text:
            # One page per string even for long text: shrink nothing, just keep writing on the
            # same page; fpdf clips nothing and pypdf extracts all of it.
            pdf.set_xy(15, 15)
            pdf.multi_cell(w=180, h=5, text=page_text)
    if encrypt:
        pdf.set_encryption(**encrypt)
    path = Path(path)
    pdf.output(str(path))
    return path
