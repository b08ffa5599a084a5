"""Issue 17 (loader side): page furniture in PDFs — running heads and feet, page numbers,
footnote markers and bodies, contents and index pages, sections from PDF outlines.

Pure-function tests on lists of page texts first (fast), then generated PDFs (fpdf2) through
the real loader, then the three shared manuals (skipped where ../shared is missing; each is
extracted once per module).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import FILLER
from fpdf import FPDF
from pdfgen import make_pdf

from docqa.loaders import LoadOptions, load, load_paths, pdf
from docqa.loaders.clean import clean_pdf_text
from docqa.loaders.layout import Layout, clean_layout, line_pattern
from docqa.types import Document, Region

MANUALS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "manuals"


def body(page: int, lines: int = 6) -> list[str]:
    """Distinct body lines for page ``page``: no two pages share a line."""
    return [
        f"Body sentence {k} of page {page} tells about widget number {page * 10 + k}."
        for k in range(lines)
    ]


def book(pages: int, top=None, bottom=None, first: int = 1) -> list[str]:
    """Page texts with an optional head (``top(n)``) and foot (``bottom(n)``) per page."""
    texts = []
    for index in range(pages):
        number = first + index
        lines = body(number)
        if top:
            lines.insert(0, top(number))
        if bottom:
            lines.append(bottom(number))
        texts.append("\n".join(lines))
    return texts


def removed_lines(layout: Layout) -> set[tuple[int, str]]:
    return {(r.page, r.text) for r in layout.removed if r.kind != "marker"}


def check_invariants(doc: Document) -> None:
    """Page ranges cover their own text in order; regions lie inside the text, sorted, apart."""
    end = 0
    for page in doc.pages:
        assert end <= page.start <= page.end <= len(doc.text)
        end = page.end
    previous = 0
    for region in doc.regions:
        assert previous <= region.start < region.end <= len(doc.text), region
        assert region.role in {"contents", "index", "footnotes"}
        previous = region.end
    starts = [s.start for s in doc.sections]
    assert starts == sorted(starts)
    assert all(0 <= s <= len(doc.text) for s in starts)


# --- running heads and feet ---------------------------------------------------------------


def test_running_head_with_changing_page_number_is_removed() -> None:
    texts = book(6, top=lambda n: f"Chapter 1: Creating R packages {n + 30}")
    layout = clean_layout(texts)
    assert layout.texts == tuple("\n".join(body(n)) for n in range(1, 7))
    assert layout.running_heads == ("chapter #: creating r packages #",)
    assert {r.kind for r in layout.removed} == {"running_head"}


def test_running_foot_without_a_number_is_removed() -> None:
    texts = book(5, bottom=lambda n: "ACME Widget Manual — Confidential")
    layout = clean_layout(texts)
    assert all("Confidential" not in t for t in layout.texts)
    assert layout.running_heads == ("acme widget manual — confidential",)


def test_alternating_left_and_right_heads_are_removed() -> None:
    """Books print "24 gnuplot 5.4" on even pages and "gnuplot 5.4 25" on odd ones."""
    texts = book(12, top=lambda n: f"{n} gnuplot 5.4" if n % 2 == 0 else f"gnuplot 5.4 {n}")
    layout = clean_layout(texts)
    assert all("gnuplot 5.4" not in t for t in layout.texts)
    assert set(layout.running_heads) == {"# gnuplot #.#", "gnuplot #.# #"}


def test_a_one_page_chapter_head_is_recognised_by_its_page_number() -> None:
    """A head seen once (a one-page chapter) goes when the document's heads carry the page
    number at the same place."""
    texts = book(5, top=lambda n: f"Chapter 1: Alpha topics {n}")
    texts.append("Chapter 2: Beta 6\n" + "\n".join(body(6)))
    layout = clean_layout(texts)
    assert (5, "Chapter 2: Beta 6") in removed_lines(layout)
    assert layout.texts[5] == "\n".join(body(6))


def test_a_head_on_two_pages_only_is_kept() -> None:
    """Evidence from several pages: a line at the top of two pages is not furniture."""
    texts = book(8)
    texts[2] = "Widget care\n" + texts[2]
    texts[5] = "Widget care\n" + texts[5]
    assert clean_layout(texts).texts == tuple(texts)


def test_a_recurring_line_below_body_text_is_not_taken() -> None:
    """Only lines stacked at the very edge go: the first body line stops the search."""
    texts = book(5, top=lambda n: "ACME Widget Manual")
    lines = texts[2].split("\n")
    texts[2] = "\n".join([lines[1], lines[0], *lines[2:]])  # the head's words under a body line
    layout = clean_layout(texts)
    assert "ACME Widget Manual" in layout.texts[2]
    assert "ACME Widget Manual" not in layout.texts[1]


def test_table_rows_that_differ_only_in_their_numbers_are_kept() -> None:
    """A table continued over pages opens each with a row of the same shape; its numbers
    neither stay the same nor advance with the pages, as a head's do."""
    counts = [17, 4, 230, 61, 9]
    texts = [
        f"Stock: {c} widgets at {c % 7} dollars\n" + "\n".join(body(n))
        for n, c in enumerate(counts)
    ]
    assert clean_layout(texts).texts == tuple(texts)


@pytest.mark.parametrize("lines", [8, 2], ids=["long-pages", "short-pages"])
def test_pages_that_repeat_the_same_text_keep_it(lines: int) -> None:
    """Regression: a PDF whose pages repeat one text (a form, the 100-page PDF that
    test_index_hostile builds from "Page N. word0 word1 ...") lost its first and last lines on
    every page, and so everywhere, as "running heads"."""
    block = [f"Notice line {k}: the same words on every page of this form." for k in range(lines)]
    texts = ["\n".join([f"Page {n}. Terms of use", *block]) for n in range(1, 6)]
    layout = clean_layout(texts)
    assert layout.texts == tuple(texts)


def test_a_refrain_that_recurs_wherever_the_text_flows_is_kept() -> None:
    """Regression: the tests' filler text cycles through ten words, so the same wrapped line
    opened some pages at their first line and others at their second or third; two lines of
    one page were taken for a running head."""

    def page(offset: int, words: int = 120, per_line: int = 21) -> str:
        text = [FILLER[(offset + i) % len(FILLER)] for i in range(words)]
        return "\n".join(" ".join(text[i : i + per_line]) for i in range(0, words, per_line))

    texts = [page(n) for n in range(5)]
    texts[3] = page(0, 40) + "\nThe violet kestrel in autumn.\n" + page(3, 40)
    assert clean_layout(texts).texts == tuple(texts)


def test_planted_phrase_that_starts_with_the_running_heads_words_survives() -> None:
    texts = book(6, top=lambda n: f"Chapter 1: Creating R packages {n}")
    planted = "Chapter 1: Creating R packages is easier with the skeleton function."
    lines = texts[3].split("\n")
    texts[3] = "\n".join([lines[0], planted, *lines[1:]])
    layout = clean_layout(texts)
    assert layout.texts[3].startswith(planted)


# --- page numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [lambda n: f"{n}", lambda n: f"- {n} -", lambda n: f"Page {n}", lambda n: f"Page {n} of 9"],
    ids=["bare", "dashes", "page-n", "page-n-of-m"],
)
def test_page_number_only_footers_are_removed(form) -> None:
    texts = book(5, bottom=form, first=3)
    layout = clean_layout(texts)
    assert layout.texts == tuple("\n".join(body(n)) for n in range(3, 8))
    assert {r.kind for r in layout.removed} == {"page_number"}


def test_roman_page_numbers_of_front_matter_are_removed() -> None:
    texts = ["i\nPreface text one.", "ii\nPreface text two.", "iii\nPreface text three."]
    assert clean_layout(texts).texts == (
        "Preface text one.",
        "Preface text two.",
        "Preface text three.",
    )


def test_numbers_that_do_not_follow_the_pages_are_kept() -> None:
    """A number alone at a page's edge is a page number only if it advances with the pages."""
    texts = book(5, bottom=lambda n: "42")
    texts[1] += "\n7"
    layout = clean_layout(texts)
    assert layout.removed == ()
    assert layout.texts == tuple(texts)


def test_chapter_heading_after_the_page_number_is_kept() -> None:
    """A chapter's first page: "1" (the page number) then "1 Introduction" (the heading, whose
    number equals the page's): one number per page edge, the outermost."""
    texts = book(4, top=lambda n: f"{n} Widget Manual", first=2)
    texts.insert(0, "1\n1 Introduction\nThis manual explains widgets.")
    layout = clean_layout(texts)
    assert layout.texts[0] == "1 Introduction\nThis manual explains widgets."
    assert all("Widget Manual" not in t for t in layout.texts)


# --- footnotes ----------------------------------------------------------------------------

FOOTNOTE_PAGE = "\n".join(
    [
        "The parser was implemented.1 It uses2 a table.",
        "Nothing else on this page has a footnote.",
        "1 In version 3 of the parser.",
        "2 A hash table, to be exact; see the",
        "appendix for the layout.",
    ]
)


def test_footnote_markers_are_removed_and_bodies_become_their_own_paragraph() -> None:
    layout = clean_layout([FOOTNOTE_PAGE])
    text = layout.texts[0]
    assert text == (
        "The parser was implemented. It uses a table.\n"
        "Nothing else on this page has a footnote.\n\n"
        "1 In version 3 of the parser.\n"
        "2 A hash table, to be exact; see the\n"
        "appendix for the layout."
    )
    (span,) = layout.roles
    assert span.role == "footnotes"
    assert text[span.start : span.end].startswith("1 In version 3")
    assert span.end == len(text)
    assert [r.text for r in layout.removed] == ["1", "2"]
    assert layout.footnotes_moved == 2


def test_footnotes_after_a_page_number_foot() -> None:
    texts = book(3, bottom=lambda n: f"{n}")
    texts[1] = texts[1].replace("widget number 20.", "widget number 20 and more.1", 1)
    lines = texts[1].split("\n")
    texts[1] = "\n".join([*lines[:-1], "1 A note on page two.", lines[-1]])
    layout = clean_layout(texts)
    text = layout.texts[1]
    assert "widget number 20 and more.\n" in text
    assert text.endswith("widget number 25.\n\n1 A note on page two.")
    assert [r.role for r in layout.roles] == ["footnotes"]


def test_numbered_lines_without_a_marker_in_the_body_stay_put() -> None:
    """A list at the bottom of a page is not footnotes unless the body carries the marker."""
    page = "Steps to follow:\n1 Open the lid.\n2 Remove the widget."
    layout = clean_layout([page])
    assert layout.texts == (page,) and layout.roles == () and layout.removed == ()


def test_digits_in_code_are_not_taken_for_a_marker() -> None:
    """Regression: a name like log2, used elsewhere in the document, must not lose its digit
    to a footnote 2 whose marker pypdf set apart ("the base 2.")."""
    page = "Compute log2 of x2 with the base 2.\nThe result is stored.\n2 Base two."
    layout = clean_layout([page, "Then log2 is called again."])
    assert "log2 of x2" in layout.texts[0]
    assert not [r for r in layout.removed if r.kind == "marker"]


def test_marker_after_punctuation_wins_over_names_with_digits() -> None:
    page = "Set level2 to the value described.2 Then go on.\nMore text here.\n2 Described below."
    layout = clean_layout([page])
    assert layout.texts[0].startswith("Set level2 to the value described. Then go on.")


# --- contents and index -------------------------------------------------------------------

CONTENTS = "\n".join(
    ["Table of Contents"]
    + [f"{k} Chapter about topic {k} . . . . . . . . . . . . . . {k * 4}" for k in range(1, 9)]
)
INDEX = "\n".join(
    ["Index", "A"]
    + [
        f"{w}, {k * 3}, {k * 7}"
        for k, w in enumerate(["alpha", "apple", "bolt", "cable", "drum", "gear", "hinge"], 1)
    ]
)


def test_contents_page_gets_a_role_and_keeps_its_text() -> None:
    texts = [CONTENTS, *book(3)]
    layout = clean_layout(texts)
    assert layout.texts[0] == CONTENTS
    (span,) = layout.roles
    assert (span.page, span.start, span.end, span.role) == (0, 0, len(CONTENTS), "contents")


def test_contents_without_a_heading_and_leaders_continue_a_contents_page() -> None:
    topics = ["axles", "bolts", "cogs", "drums", "gears", "hinges", "nuts"]
    second = "\n".join(f"Section on {t} {k * 4 + 40}" for k, t in enumerate(topics))
    layout = clean_layout([CONTENTS, second, *book(2)])
    assert [(r.page, r.role) for r in layout.roles] == [(0, "contents"), (1, "contents")]


def test_index_page_gets_the_index_role() -> None:
    texts = [*book(3), INDEX]
    layout = clean_layout(texts)
    assert [(r.page, r.role) for r in layout.roles] == [(3, "index")]
    assert layout.texts[3] == INDEX


def test_index_with_dot_leaders_is_told_from_contents_by_its_order() -> None:
    terms = ["abline", "ace", "add1", "anova", "aov", "aperm", "array"]
    page = "\n".join(
        f"{t} . . . . . . . . . . . . {n}"
        for t, n in zip(terms, [71, 67, 60, 58, 59, 24, 22], strict=True)
    )
    layout = clean_layout([page, *book(2)])  # first in the file: order, not place, decides
    assert [(r.page, r.role) for r in layout.roles] == [(0, "index")]


def test_a_table_of_numbers_is_not_a_contents_page() -> None:
    table = "\n".join(["Results:"] + [f"No. tested: {k} 50 50 50 {k}" for k in range(8)])
    code = "\n".join(f"set xtics {k}" for k in range(8))
    layout = clean_layout([*book(2), table, code])
    assert layout.roles == ()


# --- no-op and cost -----------------------------------------------------------------------


def test_plain_paragraphs_come_back_unchanged() -> None:
    texts = book(6)
    layout = clean_layout(texts)
    assert layout.texts == tuple(texts)
    assert layout.removed == () and layout.roles == ()
    assert layout.summary()["removed_lines"] == 0


def test_line_pattern_normalises_digits_case_and_spaces() -> None:
    assert line_pattern("Chapter 1:  Foo 33") == line_pattern("chapter 1: Foo 35")


# --- generated PDFs through the loader ----------------------------------------------------


PLANTED = "Chapter 7: R Miscellanea covers the questions that fit in no other chapter."


def furnished_pdf(path: Path) -> Path:
    """A small manual: roman-numbered contents, running heads with page numbers, page-number
    feet, footnotes, an index, and a planted sentence that starts with the head's words."""
    contents = ["Contents"] + [
        f"{k} Widget chapter {k} . . . . . . . . . . . . . . . . {k + 1}" for k in range(1, 7)
    ]
    pages = ["\n".join(contents)]
    for n in range(1, 7):
        lines = [f"Chapter 7: R Miscellanea {n + 28}", *body(n)]  # R-FAQ's head, its numbers
        if n == 3:
            lines.insert(1, PLANTED)
        if n == 4:
            lines[2] = "The gear train was implemented.7 It turns twice."
            lines.append("7 Since the second edition.")
        lines.append(f"- {n} -")
        pages.append("\n".join(lines))
    index = ["Index"] + [
        f"{t}, {k}, {k + 2}" for k, t in enumerate(["axle", "bolt", "cog", "gear", "nut", "pin"], 1)
    ]
    pages.append("\n".join(index))
    return make_pdf(path, pages)


@pytest.fixture(scope="module")
def furnished(tmp_path_factory: pytest.TempPathFactory) -> Document:
    return load(furnished_pdf(tmp_path_factory.mktemp("furnished") / "manual.pdf"))


def test_loader_removes_furniture_and_keeps_offsets_exact(furnished: Document) -> None:
    doc = furnished
    check_invariants(doc)
    assert len(doc.pages) == 8
    assert "R Miscellanea 30" not in doc.text
    assert not re.search(r"^- \d -$", doc.text, re.MULTILINE)
    page2 = doc.text[doc.pages[1].start : doc.pages[1].end]
    assert page2 == "\n".join(body(1))
    layout = doc.meta["layout"]
    assert layout["running_heads"] == ["chapter #: r miscellanea #"]
    assert layout["removed_lines"] == 6 + 6  # heads and feet
    assert layout["footnotes_moved"] == 1 and layout["markers_detached"] == 1
    assert layout["contents_pages"] == [1] and layout["index_pages"] == [8]
    json.dumps(doc.meta)  # stored as JSON by the index


def test_loader_keeps_the_planted_sentence_next_to_a_running_head(furnished: Document) -> None:
    planted = PLANTED
    at = furnished.text.index(planted)
    assert furnished.page_at(at) == 4
    assert furnished.text[furnished.pages[3].start :].startswith(planted)


def test_loader_regions_and_role_at(furnished: Document) -> None:
    doc = furnished
    roles = [(r.role, doc.page_at(r.start)) for r in doc.regions]
    assert roles == [("contents", 1), ("footnotes", 5), ("index", 8)]
    assert doc.role_at(doc.text.index("Widget chapter 3")) == "contents"
    assert doc.role_at(doc.text.index("cog, 3")) == "index"
    assert doc.role_at(doc.text.index("Since the second edition")) == "footnotes"
    assert doc.role_at(doc.text.index("It turns twice")) is None
    assert "implemented. It turns twice." in doc.text


def test_pdf_without_furniture_loads_exactly_as_before(tmp_path: Path) -> None:
    """Cleanup is a no-op on plain paragraphs: text and pages as the plain join gives them."""
    paragraphs = [
        "The warranty lasts two years from the date of purchase.",
        "Batteries last about fourteen months in normal use.\nReplace them both at once.",
        "Store the device in a dry place.",
    ]
    path = make_pdf(tmp_path / "plain.pdf", paragraphs)
    doc = load(path)
    extraction = pdf.extract_pages(path.read_bytes(), LoadOptions())
    before = [clean_pdf_text(extraction.texts[n]).strip() for n in (1, 2, 3)]
    text, pages = pdf.join_pages(before)
    assert (doc.text, doc.pages) == (text, pages)
    assert doc.regions == () and doc.sections == ()
    assert doc.meta["layout"]["removed_lines"] == 0


# --- outlines -----------------------------------------------------------------------------


def outlined_pdf(path: Path) -> Path:
    """Three pages with bookmarks: a chapter, a section in its middle, a second chapter."""
    out = FPDF(format="A4")
    out.set_font("Helvetica", size=11)

    def write(text: str) -> None:
        out.multi_cell(w=180, h=5, text=text, new_x="LMARGIN", new_y="NEXT")

    out.add_page()
    out.start_section("1 Getting started")
    write("1 Getting started\nUnpack the widget.")
    out.start_section("Charging", level=1)
    write("1.1 Charging\nCharge it for two hours.")
    out.add_page()
    write("More about charging on a second page.")
    out.add_page()
    out.start_section("2 Cleaning")
    write("2 Cleaning\nWipe with a dry cloth.")
    out.output(str(path))
    return path


def test_sections_come_from_the_pdf_outline(tmp_path: Path) -> None:
    doc = load(outlined_pdf(tmp_path / "outlined.pdf"))
    check_invariants(doc)
    assert [s.title for s in doc.sections] == ["1 Getting started", "Charging", "2 Cleaning"]
    assert doc.section_at(doc.text.index("Unpack")) == "1 Getting started"
    charging = doc.sections[1].start
    assert doc.text[charging:].startswith("1.1 Charging")
    assert doc.section_at(doc.text.index("second page")) == "Charging"
    assert doc.section_at(doc.text.index("dry cloth")) == "2 Cleaning"


def test_outline_sections_fall_back_to_the_page_start() -> None:
    pages = (pdf.Page(1, 0, 5), pdf.Page(2, 7, 20))
    sections = pdf.outline_sections(
        [("Nowhere in the text", 1, 0)], ["Hello", "Body of page 2"], pages
    )
    assert [(s.title, s.start) for s in sections] == [("Nowhere in the text", 7)]


def test_outline_items_from_the_worker_are_checked() -> None:
    items = [["Good", 0, 0], ["Past the end", 9, 0], [3, 0, 0], ["Bad depth", 0, "x"], "junk"]
    assert pdf._outline_items(items, 2) == [("Good", 0, 0)]
    assert pdf._outline_items({"not": "a list"}, 2) == []


HANGING_OUTLINE = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("_pdf_worker", {worker!r})
worker = importlib.util.module_from_spec(spec)
spec.loader.exec_module(worker)

def extract_outline(reader):
    time.sleep(600)

worker.extract_outline = extract_outline
sys.exit(worker.main(sys.argv))
"""


def test_an_outline_that_hangs_costs_no_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "hanging_outline.py"
    script.write_text(HANGING_OUTLINE.format(worker=pdf.WORKER_SCRIPT))
    monkeypatch.setattr(pdf, "WORKER_SCRIPT", str(script))
    try:
        options = LoadOptions(pdf_timeout_s=20, pdf_page_timeout_s=1.5, pdf_memory_mb=512)
        result = load_paths([outlined_pdf(tmp_path / "outlined.pdf")], options=options)
        doc = result.documents[0]
    finally:
        pdf.shutdown()
    assert doc.meta["failed_pages"] == {}
    assert len(doc.pages) == 3 and "dry cloth" in doc.text
    assert doc.sections == ()


def test_region_and_role_at_on_documents_from_text() -> None:
    doc = Document.from_text("Contents 1. Body text.")
    assert doc.regions == () and doc.role_at(3) is None
    with_regions = Document("Contents 1. Body.", "x", regions=(Region(0, 11, "contents"),))
    assert with_regions.role_at(0) == "contents" and with_regions.role_at(11) is None
    assert with_regions == Document("Contents 1. Body.", "x", regions=(Region(0, 11, "contents"),))


# --- the shared manuals -------------------------------------------------------------------

# What each manual's furniture looks like, written from reading its pages: a removed line must
# have one of these shapes, so a body line taken for furniture fails the test.
HEAD_SHAPES = {
    "R-FAQ": r"^(chapter|appendix) [#a-z]+: .+ #$",
    "R-intro": r"^(chapter|appendix) [#a-z]+: .+ #$",
    "gnuplot": r"^(# gnuplot #\.#( contents| index)?|(contents |index )?gnuplot #\.# #)$",
}
PAGE_NUMBER = re.compile(r"^(#|[ivxlc]+)$")
ARABIC_PAGE_NUMBER = re.compile(r"^[-–]? ?#$")


@pytest.fixture(scope="module", params=["R-FAQ", "R-intro", "gnuplot"])
def manual(request: pytest.FixtureRequest):
    path = MANUALS / f"{request.param}.pdf"
    if not path.exists():
        pytest.skip("the shared manuals are not here")
    data = path.read_bytes()
    extraction = pdf.extract_pages(data, LoadOptions())
    texts = [
        clean_pdf_text(extraction.texts.get(n, "")).strip()
        for n in range(1, extraction.page_count + 1)
    ]
    doc = pdf.document_from_extraction(extraction, data, str(path))
    return request.param, texts, clean_layout(texts), doc


def test_manual_body_text_survives(manual) -> None:
    """The page text minus what was recorded as removed equals the cleaned text (modulo
    whitespace: footnotes become a paragraph), so nothing unrecorded is lost or changed."""
    name, texts, layout, _ = manual
    for page, (before, after) in enumerate(zip(texts, layout.texts, strict=True)):
        lines = before.split("\n")
        gone = {r.line for r in layout.removed if r.page == page and r.kind != "marker"}
        for r in sorted(
            (r for r in layout.removed if r.page == page and r.kind == "marker"),
            key=lambda r: -r.column,
        ):
            line = lines[r.line]
            assert line[r.column : r.column + len(r.text)] == r.text
            lines[r.line] = line[: r.column] + line[r.column + len(r.text) :]
        kept = " ".join(line for i, line in enumerate(lines) if i not in gone)
        assert " ".join(kept.split()) == " ".join(after.split()), (name, page + 1)


def test_manual_removed_lines_are_furniture(manual) -> None:
    name, texts, layout, doc = manual
    recorded = set(doc.meta["layout"]["running_heads"])
    heads = re.compile(HEAD_SHAPES[name])
    for r in layout.removed:
        if r.kind == "marker":
            # A marker goes only where its page's footnotes start with its number.
            notes = [s for s in layout.roles if s.page == r.page and s.role == "footnotes"]
            assert len(notes) == 1, r
            footnotes = layout.texts[r.page][notes[0].start : notes[0].end]
            assert re.search(rf"^{r.text} \S", footnotes, re.MULTILINE), r
            continue
        pattern = line_pattern(r.text)
        if r.kind == "page_number":
            assert PAGE_NUMBER.match(pattern), r
        else:
            assert pattern in recorded and heads.match(pattern), r
        # Furniture sits at the page's edge: among its first or last three lines.
        filled = [i for i, line in enumerate(texts[r.page].split("\n")) if line.strip()]
        assert r.line in filled[:3] + filled[-3:], r


def test_manual_has_no_running_head_left_in_its_text(manual) -> None:
    name, _, _, doc = manual
    check_invariants(doc)
    for page in doc.pages:
        lines = doc.text[page.start : page.end].split("\n")
        for line in lines[:2] + lines[-2:]:
            assert not re.match(HEAD_SHAPES[name], line_pattern(line)), (page.number, line)
            # Roman numbers are left out: "x" alone is an axis label on a page of R-intro.
            assert not ARABIC_PAGE_NUMBER.match(line_pattern(line)), (page.number, line)


# Pages read off the manuals by hand: contents and index pages, and how many pages have heads.
EXPECTED = {
    "R-FAQ": {"contents": [2, 3, 4], "index": [], "heads": 38, "footnotes": 0},
    "R-intro": {
        "contents": [3, 4, 5, 6],
        "index": [108, 109, 110, 111, 112],
        "heads": 86,
        "footnotes": 15,
    },
    "gnuplot": {
        "contents": list(range(2, 21)),
        "index": list(range(304, 312)),
        "heads": 309,
        "footnotes": 0,
    },
}


def test_manual_furniture_counts(manual) -> None:
    name, _, layout, doc = manual
    meta, expected = doc.meta["layout"], EXPECTED[name]
    assert meta["contents_pages"] == expected["contents"]
    assert meta["index_pages"] == expected["index"]
    assert sum(1 for r in layout.removed if r.kind == "running_head") == expected["heads"]
    assert meta["footnotes_moved"] >= expected["footnotes"]
    assert len(json.dumps(meta)) < 4000  # a summary, not every removed line


def test_manual_sections_come_from_its_outline(manual) -> None:
    name, _, _, doc = manual
    assert len(doc.sections) >= 100
    probe = {
        "R-FAQ": ("Copies of the GNU General Public License versions", "Legalese"),
        "R-intro": (
            "The function attributes(object) returns a list",
            "Getting and setting attributes",
        ),
        "gnuplot": ("The column(x) function may be used only", "Column"),
    }[name]
    assert doc.section_at(doc.text.index(probe[0])) == probe[1]
