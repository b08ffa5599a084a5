"""Loaders: each format, page ranges, folder walking, statuses for bad and missing files."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from pdfgen import make_pdf

from docqa.errors import InputError, LoaderError
from docqa.loaders import FileSkipped, LoadResult, load, load_paths, supported_suffixes
from docqa.types import Document

SAMPLE_DOCS = Path(__file__).resolve().parents[1] / "sample_docs"


def words(text: str) -> str:
    """Whitespace-insensitive form: PDF extraction re-wraps lines."""
    return " ".join(text.split())


# --- plain text ---------------------------------------------------------------------------


def test_txt_text_source_hash_and_single_page(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    data = b"The battery lasts about 14 months.\nSecond line.\n"
    path.write_bytes(data)
    doc = load(path)
    assert isinstance(doc, Document)
    assert doc.text == "The battery lasts about 14 months.\nSecond line.\n"
    assert doc.source == str(path)
    assert doc.sha256 == hashlib.sha256(data).hexdigest()
    assert doc.meta["format"] == "text"
    assert [(p.number, p.start, p.end) for p in doc.pages] == [(1, 0, len(doc.text))]
    assert doc.page_at(10) == 1


# --- markdown -----------------------------------------------------------------------------

MARKDOWN = """Preamble before any heading.

# Aurora manual

Intro paragraph.

## Setup ##

Plug it in.

```
# a comment in a code block, not a heading
```

## Battery
### Charging

The battery lasts about 14 months.
"""


def test_markdown_keeps_text_verbatim_and_finds_headings(tmp_path: Path) -> None:
    path = tmp_path / "manual.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    doc = load(path)
    assert doc.text == MARKDOWN  # offsets point into exactly what the author wrote
    assert [s.title for s in doc.sections] == ["Aurora manual", "Setup", "Battery", "Charging"]
    for section in doc.sections:
        line = doc.text[section.start :].split("\n", 1)[0]
        assert line.startswith("#") and section.title in line
    at = doc.text.index("14 months")
    assert doc.section_at(at) == "Charging"
    assert doc.section_at(doc.text.index("Plug it in")) == "Setup"
    assert doc.section_at(doc.text.index("a comment in a code block")) == "Setup"
    assert doc.section_at(0) is None  # the preamble belongs to no section
    assert doc.meta["format"] == "markdown"


def test_markdown_suffix_alias(tmp_path: Path) -> None:
    path = tmp_path / "notes.markdown"
    path.write_text("# Title\n\nBody.\n", encoding="utf-8")
    doc = load(path)
    assert [(s.title, s.start) for s in doc.sections] == [("Title", 0)]


# --- html ---------------------------------------------------------------------------------


def test_html_visible_text_only_blocks_on_separate_lines(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Tab title</title><style>p { color: red }</style>"
        "<script>var secret = 'SCRIPT_TEXT';</script></head><body>"
        "<h1>Support</h1><p>a</p><p>b</p><div>Open <b>Monday</b> to Friday.</div>"
        "<script>alert('MORE_SCRIPT')</script></body></html>",
        encoding="utf-8",
    )
    doc = load(path)
    assert doc.text == "Support\na\nb\nOpen Monday to Friday."
    for hidden in ("SCRIPT_TEXT", "MORE_SCRIPT", "color", "Tab title"):
        assert hidden not in doc.text
    assert [(s.title, s.start) for s in doc.sections] == [("Support", 0)]
    assert doc.meta["format"] == "html"


def test_htm_suffix(tmp_path: Path) -> None:
    path = tmp_path / "old.htm"
    path.write_text("<p>Old page</p>", encoding="utf-8")
    assert load(path).text == "Old page"


# --- pdf ----------------------------------------------------------------------------------

LONG_PAGE = "\n".join(
    f"Line {i} of the long page talks about sensor number {i} and its calibration."
    for i in range(40)
)


def test_pdf_page_ranges(tmp_path: Path) -> None:
    pages = [
        "Page one is about setting up the station.",
        LONG_PAGE,
        "Page three says the battery lasts about 14 months.",
        "",  # a page without text
        "Page five covers the two-year warranty.",
    ]
    doc = load(make_pdf(tmp_path / "manual.pdf", pages))
    assert doc.meta["format"] == "pdf"
    assert [p.number for p in doc.pages] == [1, 2, 3, 4, 5]
    for page, expected in zip(doc.pages, pages, strict=True):
        assert words(doc.text[page.start : page.end]) == words(expected)
    # Ranges are ordered and do not overlap.
    for before, after in zip(doc.pages, doc.pages[1:], strict=False):
        assert before.end <= after.start
    assert doc.page_at(doc.text.index("14 months")) == 3
    assert doc.page_at(doc.text.index("sensor number 39")) == 2
    assert doc.page_at(doc.text.index("warranty")) == 5
    assert doc.meta["empty_pages"] == [4]


def test_sha256_is_of_the_file_bytes(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "one.pdf", ["Hello"])
    assert load(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# --- load() errors ------------------------------------------------------------------------


def test_load_missing_path_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="No such file or directory"):
        load(tmp_path / "nope.txt")


def test_load_unsupported_type_raises_loader_error(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(LoaderError, match=r"Unsupported file type \.png") as info:
        load(path)
    assert isinstance(info.value, FileSkipped)


def test_load_broken_pdf_raises_loader_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"this is not a pdf at all")
    with pytest.raises(LoaderError):
        load(path)


# --- load_paths: folders and statuses -----------------------------------------------------


def test_folder_walk_recursive_sorted_with_skipped(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "b.txt").write_text("bee", encoding="utf-8")
    (root / "a.md").write_text("# A\nay", encoding="utf-8")
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "sub" / "c.html").write_text("<p>see</p>", encoding="utf-8")
    (root / "sub" / "deeper" / "d.TXT").write_text("dee", encoding="utf-8")  # suffix case
    make_pdf(root / "sub" / "e.pdf", ["ee"])

    result = load_paths([root])
    assert isinstance(result, LoadResult)
    got = [(Path(s.path).relative_to(root).as_posix(), s.state) for s in result.statuses]
    assert got == [
        ("a.md", "ok"),
        ("b.txt", "ok"),
        ("photo.jpg", "skipped"),
        ("sub/c.html", "ok"),
        ("sub/e.pdf", "ok"),
        ("sub/deeper/d.TXT", "ok"),
    ]
    assert [words(d.text) for d in result.documents] == ["# A ay", "bee", "see", "ee", "dee"]
    skipped = result.by_state("skipped")[0]
    assert skipped.reason.startswith("Unsupported file type .jpg")
    # Same order on a second run: stable.
    assert load_paths([root]).statuses == result.statuses


def test_missing_path_is_a_failed_status(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("fine", encoding="utf-8")
    missing = tmp_path / "missing.txt"
    result = load_paths([missing, good])
    assert [(s.path, s.state) for s in result.statuses] == [
        (str(missing), "failed"),
        (str(good), "ok"),
    ]
    assert result.statuses[0].reason == f"No such file or directory: {missing}"
    assert [d.text for d in result.documents] == ["fine"]


def test_one_broken_file_does_not_lose_the_others(tmp_path: Path) -> None:
    make_pdf(tmp_path / "a-good.pdf", ["The warranty lasts two years."])
    (tmp_path / "b-broken.pdf").write_bytes(b"%PDF-1.7\n garbage with no objects")
    (tmp_path / "c-good.txt").write_text("The battery lasts 14 months.", encoding="utf-8")
    result = load_paths([tmp_path])
    states = {Path(s.path).name: s.state for s in result.statuses}
    assert states == {"a-good.pdf": "ok", "b-broken.pdf": "failed", "c-good.txt": "ok"}
    failed = result.by_state("failed")[0]
    assert failed.reason and "\n" not in failed.reason
    assert len(result.documents) == 2
    assert not result.all_ok


def test_explicit_unsupported_file_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n", encoding="utf-8")
    result = load_paths([path])
    assert [(s.state, s.reason.split(";")[0]) for s in result.statuses] == [
        ("skipped", "Unsupported file type .csv")
    ]
    assert result.documents == ()


def test_empty_file_is_empty_not_a_document(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    result = load_paths([path])
    assert [s.state for s in result.statuses] == ["empty"]
    assert result.documents == ()


def test_file_named_twice_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "once.txt"
    path.write_text("once", encoding="utf-8")
    result = load_paths([tmp_path, path])
    assert len(result.statuses) == 1 and len(result.documents) == 1


def test_supported_suffixes() -> None:
    assert set(supported_suffixes()) >= {".pdf", ".txt", ".md", ".markdown", ".html", ".htm"}


# --- sample_docs --------------------------------------------------------------------------


def test_sample_docs_all_load_with_their_facts() -> None:
    result = load_paths([SAMPLE_DOCS])
    by_name = {Path(d.source).name: d for d in result.documents}
    assert set(by_name) == {
        "aurora-manual.md",
        "aurora-manual.pdf",
        "faq.html",
        "release-notes.txt",
    }
    assert result.all_ok

    pdf = by_name["aurora-manual.pdf"]
    assert len(pdf.pages) >= 4
    at = pdf.text.index("The battery lasts about 14 months")
    battery_page = pdf.page_at(at)
    assert "Batteries and power" in pdf.text[pdf.pages[battery_page - 1].start : at]
    assert pdf.page_at(pdf.text.index("two years")) == len(pdf.pages)

    md = by_name["aurora-manual.md"]
    assert md.section_at(md.text.index("14 months")) == "Batteries and power"
    assert md.section_at(md.text.index("two years")) == "Warranty"

    faq = by_name["faq.html"]
    assert "Bergen" in faq.text
    assert not re.search(r"tracking|font-family|document\.title", faq.text, re.IGNORECASE)

    assert "hail detection" in by_name["release-notes.txt"].text


def test_sample_pdf_matches_its_markdown() -> None:
    """The PDF is built from the Markdown by scripts/make_sample_pdf.py: rebuild it on failure."""
    md = load(SAMPLE_DOCS / "aurora-manual.md")
    pdf = load(SAMPLE_DOCS / "aurora-manual.pdf")
    md_words = words(re.sub(r"^#+ ", "", md.text, flags=re.MULTILINE))
    assert words(pdf.text) == md_words


def test_require_documents_says_why_in_one_sentence(tmp_path: Path) -> None:
    from docqa.errors import NoDocumentsError

    missing = tmp_path / "missing"
    with pytest.raises(NoDocumentsError) as info:
        load_paths([missing]).require_documents()
    assert str(info.value) == f"No such file or directory: {missing}"

    (tmp_path / "scan.txt").write_text("  ", encoding="utf-8")
    (tmp_path / "a.csv").write_text("x", encoding="utf-8")
    with pytest.raises(NoDocumentsError) as info:
        load_paths([tmp_path]).require_documents()
    assert str(info.value) == "No readable document among 2 files (1 skipped, 1 empty)."

    good = tmp_path / "good.txt"
    good.write_text("fine", encoding="utf-8")
    assert [d.text for d in load_paths([good]).require_documents()] == ["fine"]
