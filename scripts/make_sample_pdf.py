"""Build ``aurora-manual.pdf`` from ``aurora-manual.md``: one ``##`` section per page.

Run from anywhere: ``python scripts/make_sample_pdf.py``. The output is committed; rerun this after
editing the Markdown. The creation date is fixed so that rebuilding an unchanged manual gives
the same bytes (and the same sha256).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from fpdf import FPDF

HERE = Path(__file__).resolve().parents[1] / "sample_docs"
SOURCE = HERE / "aurora-manual.md"
TARGET = HERE / "aurora-manual.pdf"
FIXED_DATE = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def sections(markdown: str) -> list[tuple[str, str]]:
    """(heading, body) pairs; the ``#`` title and its intro form the first pair."""
    parts = re.split(r"^(#{1,2} .*)$", markdown, flags=re.MULTILINE)
    pairs = []
    for i in range(1, len(parts), 2):
        heading = parts[i].lstrip("#").strip()
        # Reflow: the Markdown wraps lines at 100 columns, the PDF wraps to its own width.
        body = " ".join(parts[i + 1].split())
        pairs.append((heading, body))
    return pairs


def build(source: Path = SOURCE, target: Path = TARGET) -> Path:
    """Write the PDF: the title page holds the intro and the first section, then one per page."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title("Aurora 3 Home Weather Station: User Manual")
    pdf.set_author("Halcyon Instruments")
    pdf.set_auto_page_break(auto=True, margin=20)
    pairs = sections(source.read_text(encoding="utf-8"))
    for index, (heading, body) in enumerate(pairs):
        if index != 1:  # the first section shares the title page
            pdf.add_page()
        pdf.set_font("Helvetica", style="B", size=18 if index == 0 else 14)
        pdf.multi_cell(w=0, h=9, text=heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(w=0, h=6, text=body, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    pdf.output(str(target))
    return target


if __name__ == "__main__":
    print(build())
