"""Make small PDFs for tests with fpdf2, so no fixture is ever downloaded."""

from __future__ import annotations

import re
import zlib
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


def make_image_pdf(path: str | Path, pages: int = 1) -> Path:
    """A PDF whose pages hold only a raster image, like a scan without OCR: no text layer."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 40, 360, 120), fill="black")  # looks like a line of print, is pixels
    pdf = FPDF(format="A4")
    for _ in range(pages):
        pdf.add_page()
        pdf.image(image, x=20, y=20, w=170)
    path = Path(path)
    pdf.output(str(path))
    return path


def encrypt_pdf(
    source: str | Path,
    target: str | Path,
    user_password: str,
    owner_password: str = "owner-secret",
    algorithm: str = "AES-256",
) -> Path:
    """Encrypt ``source`` with pypdf (``"RC4-128"``, ``"AES-128"``, ``"AES-256"``)."""
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=str(source))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm=algorithm)
    target = Path(target)
    with target.open("wb") as out:
        writer.write(out)
    return target


def with_cyclic_xref(source: str | Path, target: str | Path) -> Path:
    """Append two cross-reference sections whose ``/Prev`` entries point at each other."""
    data = Path(source).read_bytes()
    root = re.search(rb"/Root\s+(\d+\s+\d+\s+R)", data)
    assert root is not None, "source PDF has no /Root in its trailer"
    template = (
        b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size 1000 /Root %s /Prev %010d >>\n"
        b"startxref\n%010d\n%%%%EOF\n"
    )
    first = len(data)
    size = len(template % (root.group(1), 0, 0))  # fixed-width numbers: same size whatever
    second = first + size
    part1 = template % (root.group(1), second, first)
    part2 = template % (root.group(1), first, second)
    target = Path(target)
    target.write_bytes(data + part1 + part2)
    return target


def with_broken_page(source: str | Path, target: str | Path, index: int) -> Path:
    """Copy ``source`` with page ``index``'s content stream under a filter nobody knows.

    pypdf raises ``NotImplementedError`` on it: outside its own error hierarchy, the kind of
    exception a loader must survive.
    """
    from pypdf import PdfWriter
    from pypdf.generic import NameObject

    writer = PdfWriter(clone_from=str(source))
    contents = writer.pages[index]["/Contents"].get_object()
    contents[NameObject("/Filter")] = NameObject("/NoSuchDecode")
    target = Path(target)
    with target.open("wb") as out:
        writer.write(out)
    return target


def with_bomb_page(
    source: str | Path, target: str | Path, index: int, megabytes: int = 1024
) -> Path:
    """Copy ``source`` with page ``index``'s content replaced by a Flate stream that inflates
    to ``megabytes`` MB of spaces (about 1 MB compressed per GB)."""
    from pypdf import PdfWriter
    from pypdf.generic import NameObject, NumberObject, StreamObject

    compressor = zlib.compressobj(9)
    block = b" " * (1 << 20)
    bomb = b"".join(compressor.compress(block) for _ in range(megabytes)) + compressor.flush()
    writer = PdfWriter(clone_from=str(source))
    stream = StreamObject()
    stream.set_data(b"")  # sets up the object; the raw (compressed) bytes go in below
    stream._data = bomb
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    stream[NameObject("/Length")] = NumberObject(len(bomb))
    writer.pages[index][NameObject("/Contents")] = writer._add_object(stream)
    target = Path(target)
    with target.open("wb") as out:
        writer.write(out)
    return target
