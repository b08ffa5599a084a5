"""Issue 6: loaders that survive anything a folder holds, and lose nothing.

Every named case of the issue is a test here, with its expected status and message. All
fixtures are generated in the test; nothing is downloaded.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from pdfgen import (
    encrypt_pdf,
    has_unicode_font,
    make_image_pdf,
    make_pdf,
    with_bomb_page,
    with_broken_page,
    with_cyclic_xref,
)

from docqa.errors import NoDocumentsError
from docqa.loaders import REGISTRY, LoadOptions, load, load_paths, pdf
from docqa.loaders.clean import LIGATURES, SPACING_DIACRITICS, clean_pdf_text, clean_text
from docqa.types import FileStatus

SAMPLE_DOCS = Path(__file__).resolve().parents[1] / "sample_docs"
MANUALS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "manuals"

# Small budgets so the hang cases finish fast; real runs use LoadOptions' defaults.
FAST = LoadOptions(pdf_timeout_s=20, pdf_page_timeout_s=1.5, pdf_memory_mb=512)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file types and rlimits")
#: Seconds a call that must not hang may take: a guard against a hang, not a speed test (speed
#: is measured in benchmarks/). Generous, as this shared machine may be slow at any moment.
HANG_S = 300


def without_hanging(func, *args, **kwargs):
    """``func(*args, **kwargs)``, failing the test if it has not returned after `HANG_S`.

    It runs in a daemon thread, so a hung call is left behind rather than holding up the
    rest of the run."""
    done: list = []

    def call() -> None:
        try:
            done.append((True, func(*args, **kwargs)))
        except BaseException as exc:  # handed to the test's thread below
            done.append((False, exc))

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(HANG_S)
    assert done, f"{getattr(func, '__name__', func)} still running after {HANG_S} s: a hang"
    ok, value = done[0]
    if not ok:
        raise value
    return value


def one(path: Path, **kwargs) -> FileStatus:
    """Load one path and return its only status."""
    result = load_paths([path], **kwargs)
    assert len(result.statuses) == 1, result.statuses
    return result.statuses[0]


def one_sentence(reason: str) -> bool:
    return bool(reason) and "\n" not in reason and "Traceback" not in reason


@pytest.fixture(autouse=True)
def _fresh_worker():
    """Each test starts and ends without a PDF worker left over from another."""
    pdf.shutdown()
    yield
    pdf.shutdown()


@pytest.fixture
def three_pages(tmp_path: Path) -> Path:
    return make_pdf(
        tmp_path / "three.pdf",
        ["Page one: the battery lasts 14 months.", "Page two: pairing.", "Page three: warranty."],
    )


# --- PDF: damaged, not a PDF, empty -------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    for name in ("empty.pdf", "empty.txt", "empty.html"):
        (tmp_path / name).write_bytes(b"")
        status = one(tmp_path / name)
        assert (status.state, status.reason) == ("empty", "The file is empty (0 bytes).")


def test_html_saved_as_pdf(tmp_path: Path) -> None:
    path = tmp_path / "download.pdf"
    path.write_text("<!DOCTYPE html><html><body><p>Access denied</p></body></html>")
    status = one(path)
    assert status.state == "failed"
    assert status.reason == "Not a PDF: the file is an HTML page saved with a .pdf name."


def test_truncated_pdf(tmp_path: Path, three_pages: Path) -> None:
    data = three_pages.read_bytes()
    path = tmp_path / "truncated.pdf"
    path.write_bytes(data[: len(data) // 3])
    status = one(path, options=FAST)
    assert status.state == "failed"
    assert status.reason.startswith("The PDF is damaged or truncated (")
    assert one_sentence(status.reason)


def test_header_only_pdf(tmp_path: Path) -> None:
    path = tmp_path / "header.pdf"
    path.write_bytes(b"%PDF-1.7\n")
    status = one(path, options=FAST)
    assert status.state == "failed"
    assert status.reason.startswith("The PDF is damaged or truncated (")


def test_image_only_pdf_is_empty(tmp_path: Path) -> None:
    status = one(make_image_pdf(tmp_path / "scan.pdf", pages=2))
    assert status.state == "empty"
    assert status.reason == "No text found: the PDF has no text layer (scanned or image-only?)."


def test_pages_with_no_text_are_reported(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "mixed.pdf", ["Text on one.", "", "Text on three."])
    result = load_paths([path])
    doc = result.documents[0]
    assert doc.meta["empty_pages"] == [2]
    assert result.statuses[0].state == "ok"
    assert result.statuses[0].reason == "Pages without text: 2."


# --- PDF: encryption ----------------------------------------------------------------------


def test_pdf_needing_a_password(tmp_path: Path, three_pages: Path) -> None:
    path = encrypt_pdf(three_pages, tmp_path / "locked.pdf", user_password="s3cret")

    status = one(path)  # no password given
    assert status.state == "failed"
    assert status.reason == "The PDF is encrypted and needs a password (pass --password)."

    status = one(path, password="wrong")
    assert status.state == "failed"
    assert status.reason == "The PDF is encrypted and the password given is wrong."

    result = load_paths([path], password="s3cret")
    assert [s.state for s in result.statuses] == ["ok"]
    assert "battery lasts 14 months" in result.documents[0].text
    assert result.documents[0].meta["encrypted"] is True


def test_pdf_with_empty_user_password_opens_silently(tmp_path: Path, three_pages: Path) -> None:
    path = encrypt_pdf(three_pages, tmp_path / "owner-only.pdf", user_password="")
    result = load_paths([path])
    assert [(s.state, s.reason) for s in result.statuses] == [("ok", "")]
    assert "Page three: warranty." in result.documents[0].text


@pytest.mark.parametrize("algorithm", ["AES-128", "AES-256", "RC4-128"])
def test_encrypted_pdf_algorithms(tmp_path: Path, three_pages: Path, algorithm: str) -> None:
    pytest.importorskip("cryptography")  # pypdf[crypto]: AES needs it
    path = encrypt_pdf(three_pages, tmp_path / "aes.pdf", "pw", algorithm=algorithm)
    doc = load(path, password="pw")
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert "pairing" in doc.text


# --- PDF: hangs, bombs, bad pages (the worker's budget) -----------------------------------

WRAPPER = """
import importlib.util, os, signal, sys, time
spec = importlib.util.spec_from_file_location("_pdf_worker", {worker!r})
worker = importlib.util.module_from_spec(spec)
spec.loader.exec_module(worker)
real_extract, real_open = worker.extract_page, worker.open_reader

def extract_page(reader, index):
    text = real_extract(reader, index)
    if "HANG-HERE" in text:
        time.sleep(600)
    if "CRASH-HERE" in text:
        os.kill(os.getpid(), signal.SIGKILL)
    if "HOG-HERE" in text:
        hog = bytearray(8 << 30)  # 8 GB: over any budget the tests set
        return str(len(hog))
    return text

def open_reader(data, password, out):
    if b"HANG-ON-OPEN" in data:
        time.sleep(600)
    return real_open(data, password, out)

worker.extract_page = extract_page
worker.open_reader = open_reader
sys.exit(worker.main(sys.argv))
"""


@pytest.fixture
def misbehaving_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the real worker with pages that hang, crash or hog memory on a marker in their text."""
    script = tmp_path / "wrapped_worker.py"
    script.write_text(WRAPPER.format(worker=pdf.WORKER_SCRIPT))
    monkeypatch.setattr(pdf, "WORKER_SCRIPT", str(script))


@posix_only
def test_cyclic_xref_chain_finishes_within_budget(tmp_path: Path, three_pages: Path) -> None:
    path = with_cyclic_xref(three_pages, tmp_path / "cycle.pdf")
    status = without_hanging(one, path, options=FAST)
    # pypdf may recover the file through the original table or give up on it; either way the
    # run goes on with a one-sentence status.
    assert status.state in {"ok", "failed"} and (
        status.state == "ok" or one_sentence(status.reason)
    )


@posix_only
@pytest.mark.usefixtures("misbehaving_worker")
def test_pdf_that_hangs_while_opening_is_given_up(tmp_path: Path, three_pages: Path) -> None:
    hanging = tmp_path / "a-hangs.pdf"
    hanging.write_bytes(three_pages.read_bytes() + b"\n% HANG-ON-OPEN\n")
    good = tmp_path / "b-good.txt"
    good.write_text("Still answered.", encoding="utf-8")
    result = without_hanging(load_paths, [tmp_path], options=FAST)
    states = {Path(s.path).name: (s.state, s.reason) for s in result.statuses}
    assert states["a-hangs.pdf"] == (
        "failed",
        "Gave up on the PDF: opening it took longer than 1.5 s (a looping cross-reference table?).",
    )
    assert states["b-good.txt"][0] == "ok"
    assert states["three.pdf"][0] == "ok"  # the next PDF gets a fresh worker


@posix_only
@pytest.mark.usefixtures("misbehaving_worker")
def test_hanging_page_costs_only_that_page(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "hang.pdf", ["First page.", "HANG-HERE", "Third page."])
    doc = without_hanging(load_paths, [path], options=FAST).documents[0]
    assert doc.meta["failed_pages"] == {2: "took longer than 1.5 s"}
    assert doc.text[doc.pages[0].start : doc.pages[0].end] == "First page."
    assert doc.text[doc.pages[2].start : doc.pages[2].end] == "Third page."


@posix_only
@pytest.mark.usefixtures("misbehaving_worker")
def test_file_budget_bounds_many_hanging_pages(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "hangs.pdf", ["Good.", "HANG-HERE", "HANG-HERE", "HANG-HERE"])
    options = LoadOptions(pdf_timeout_s=2.5, pdf_page_timeout_s=1.5, pdf_memory_mb=512)
    result = without_hanging(load_paths, [path], options=options)
    doc = result.documents[0]
    assert doc.text.startswith("Good.")
    assert doc.meta["failed_pages"][2] == "took longer than 1.5 s"
    assert doc.meta["failed_pages"][4] == "not read: the file's time budget ran out"


@posix_only
@pytest.mark.usefixtures("misbehaving_worker")
def test_page_that_crashes_the_worker_costs_only_that_page(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "crash.pdf", ["Before.", "CRASH-HERE", "After."])
    result = load_paths([path], options=FAST)
    doc = result.documents[0]
    assert doc.meta["failed_pages"] == {2: "the PDF reader crashed (killed by SIGKILL)"}
    assert "Before." in doc.text and "After." in doc.text
    assert result.statuses[0].reason == (
        "Pages that could not be read: 2: the PDF reader crashed (killed by SIGKILL)."
    )


@posix_only
@pytest.mark.usefixtures("misbehaving_worker")
def test_memory_budget_stops_a_page_that_balloons(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "hog.pdf", ["Before.", "HOG-HERE", "After."])
    doc = load_paths([path], options=FAST).documents[0]
    assert doc.meta["failed_pages"] == {2: "needs more than the 512 MB memory budget"}
    assert "After." in doc.text


@posix_only
def test_decompression_bomb_keeps_memory_bounded(tmp_path: Path, three_pages: Path) -> None:
    path = with_bomb_page(three_pages, tmp_path / "bomb.pdf", index=1, megabytes=256)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result = load_paths([path], options=FAST)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100  # the 256 MB never reached this process
    doc = result.documents[0]
    assert list(doc.meta["failed_pages"]) == [2]  # pypdf's limit or our budget stopped it
    assert "battery lasts 14 months" in doc.text and "warranty" in doc.text


def test_one_broken_page_among_good_ones(tmp_path: Path, three_pages: Path) -> None:
    path = with_broken_page(three_pages, tmp_path / "broken-page.pdf", index=1)
    result = load_paths([path])
    doc = result.documents[0]
    assert list(doc.meta["failed_pages"]) == [2]
    assert doc.meta["failed_pages"][2].startswith("NotImplementedError")  # not a PyPdfError
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert (
        doc.text[doc.pages[0].start : doc.pages[0].end] == "Page one: the battery lasts 14 months."
    )
    assert doc.text[doc.pages[1].start : doc.pages[1].end] == ""
    assert doc.text[doc.pages[2].start : doc.pages[2].end] == "Page three: warranty."
    assert result.statuses[0].state == "ok"
    assert result.statuses[0].reason.startswith("Pages that could not be read: 2: ")


def test_loader_raising_unexpected_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(data: bytes, source: str, options: LoadOptions):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(REGISTRY, ".md", explode)
    (tmp_path / "a.md").write_text("# Boom\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("The warranty lasts two years.", encoding="utf-8")
    make_pdf(tmp_path / "c.pdf", ["The battery lasts 14 months."])
    result = load_paths([tmp_path])
    states = {Path(s.path).name: (s.state, s.reason) for s in result.statuses}
    assert states["a.md"] == (
        "failed",
        "Unexpected ZeroDivisionError while reading the file: division by zero.",
    )
    assert states["b.txt"][0] == states["c.pdf"][0] == "ok"
    assert len(result.documents) == 2


# --- PDF text clean-up keeps offsets honest -----------------------------------------------


def test_clean_pdf_text_repairs() -> None:
    assert clean_pdf_text("Br¨oker, P´eter Juh´asz, J´erˆome, Fran¸cois") == (
        "Bröker, Péter Juhász, Jérôme, François"
    )
    assert clean_pdf_text("\ufb01le \ufb02ow e\ufb03cient \ufb00ect") == "file flow efficient ffect"
    assert clean_pdf_text("func-\ntion and Win-  \n dows") == "function and Windows"
    # A hyphen before a capital or a digit is a real one: only the line break goes.
    assert clean_pdf_text("S-\nPlus, ISBN 978-\n0521, Marquardt-\nLevenberg") == (
        "S-Plus, ISBN 978-0521, Marquardt-Levenberg"
    )
    assert clean_pdf_text("soft\u00ad\nhyphen") == "softhyphen"
    assert clean_pdf_text("a\x00b\x0bc\x08d\x88e") == "ab\ncde"
    # ASCII ` ^ ~ stay: in manuals they are code, not accents.
    assert clean_pdf_text("~/.gnuplot x^2 `cmd`") == "~/.gnuplot x^2 `cmd`"


def test_clean_text_keeps_tabs_and_newlines() -> None:
    assert clean_text("a\tb\r\nc\rd\x00") == "a\tb\nc\nd"


def test_pdf_page_boundaries_on_normalised_text(tmp_path: Path) -> None:
    pages = ["Hans-Bernhard Br\u00a8oker wrote func-\ntion docs.", "Second page: P\u00b4eter."]
    doc = load(make_pdf(tmp_path / "accents.pdf", pages))
    assert doc.text[doc.pages[0].start : doc.pages[0].end] == (
        "Hans-Bernhard Bröker wrote function docs."
    )
    assert doc.text[doc.pages[1].start : doc.pages[1].end] == "Second page: Péter."
    assert doc.page_at(doc.text.index("Péter")) == 2


@pytest.mark.skipif(not has_unicode_font(), reason="needs DejaVu Sans to draw ligatures")
def test_pdf_ligatures_expanded(tmp_path: Path) -> None:
    doc = load(
        make_pdf(tmp_path / "lig.pdf", ["The \ufb01rst \ufb02oor", "o\ufb03ce"], unicode_font=True)
    )
    assert doc.text[doc.pages[0].start : doc.pages[0].end] == "The first floor"
    assert doc.text[doc.pages[1].start : doc.pages[1].end] == "office"


_SPACING_BEFORE_LETTER = re.compile("[" + "".join(SPACING_DIACRITICS) + r"][^\W\d_]")
_LIGATURE_CHARS = re.compile("[" + "".join(LIGATURES) + "]")


@pytest.mark.slow
@pytest.mark.skipif(not MANUALS.is_dir(), reason="../shared/corpus/manuals not present")
def test_real_manuals_have_no_spacing_diacritics_or_ligatures() -> None:
    result = load_paths(sorted(MANUALS.glob("*.pdf")))
    assert len(result.documents) == 3, result.statuses
    for doc in result.documents:
        assert not _SPACING_BEFORE_LETTER.findall(doc.text), doc.source
        assert not _LIGATURE_CHARS.findall(doc.text), doc.source
        assert not re.search(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]", doc.text), doc.source
        for page in doc.pages:  # page ranges tile the text in order
            assert 0 <= page.start <= page.end <= len(doc.text)
    gnuplot = next(d for d in result.documents if d.source.endswith("gnuplot.pdf"))
    assert "Bröker" in gnuplot.text


# --- encodings ----------------------------------------------------------------------------


def test_utf8_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffThe warranty lasts two years.".encode())
    doc = load(path)
    assert doc.text == "The warranty lasts two years."
    assert doc.meta["encoding"] == "utf-8"


def test_utf16_without_bom(tmp_path: Path) -> None:
    path = tmp_path / "utf16.txt"
    path.write_bytes("Größe: 14 Monate Batterie.".encode("utf-16-le"))
    doc = load(path)
    assert doc.text == "Größe: 14 Monate Batterie."
    assert doc.meta["encoding"] == "utf-16-le"


def test_short_utf8_with_symbols(tmp_path: Path) -> None:
    path = tmp_path / "symbols.txt"
    path.write_bytes("▶hello".encode())
    assert load(path).text == "▶hello"  # a detector alone would guess wrong on 8 bytes


def test_cp1252_text(tmp_path: Path) -> None:
    path = tmp_path / "legacy.txt"
    path.write_bytes("Café crème “quoted” naïve – 50€".encode("cp1252"))
    doc = load(path)
    assert doc.text == "Café crème “quoted” naïve – 50€"
    assert doc.meta["encoding"] == "cp1252"


def test_cp1250_text_is_not_forced_to_cp1252(tmp_path: Path) -> None:
    path = tmp_path / "polish.txt"
    path.write_bytes("Zażółć gęślą jaźń – polski tekst tutaj".encode("cp1250"))
    assert load(path).text == "Zażółć gęślą jaźń – polski tekst tutaj"


def test_nul_bytes_in_txt_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "nul.txt"
    path.write_bytes(b"The battery\x00 lasts 14\x00 months.")
    status = one(path)
    assert status.state == "ok"
    assert load(path).text == "The battery lasts 14 months."


def test_binary_file_named_txt_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "photo.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    status = one(path)
    assert status.state == "skipped"
    assert status.reason.startswith("The file looks binary, not text")


def test_whitespace_only_document(tmp_path: Path) -> None:
    for name, content in (
        ("blank.txt", " \n\t\n  "),
        ("blank.md", "\n\n"),
        ("blank.html", "<p> </p>"),
    ):
        (tmp_path / name).write_text(content, encoding="utf-8")
        status = one(tmp_path / name)
        assert (status.state, status.reason) == (
            "empty",
            "No text found: the file is empty or holds only whitespace.",
        )


# --- HTML and DOCX ------------------------------------------------------------------------


def test_html_with_only_script(tmp_path: Path) -> None:
    path = tmp_path / "app.html"
    path.write_text(
        "<html><head><script>var a = 'not text';</script></head>"
        "<body><script>render()</script><noscript></noscript></body></html>",
        encoding="utf-8",
    )
    assert one(path).state == "empty"


def test_html_adjacent_paragraphs_are_separated(tmp_path: Path) -> None:
    path = tmp_path / "p.html"
    path.write_text("<p>a</p><p>b</p><div>c</div><li>d</li>e<br>f", encoding="utf-8")
    doc = load(path)
    assert doc.text == "a\nb\nc\nd\ne\nf"
    assert "ab" not in doc.text


def test_html_declared_legacy_charset(tmp_path: Path) -> None:
    path = tmp_path / "legacy.html"
    path.write_bytes(
        '<meta charset="windows-1252"><p>Caf\u00e9 \u201cS\u00f8ren\u201d</p>'.encode("cp1252")
    )
    assert load(path).text == "Café “Søren”"


def test_html_table_cells_and_hidden_text(tmp_path: Path) -> None:
    path = tmp_path / "t.html"
    path.write_text(
        "<table><tr><th>Model</th><th>Battery</th></tr><tr><td>Aurora 3</td><td>14 months</td>"
        "</tr></table><p hidden>secret</p><div style='display: none'>also secret</div>",
        encoding="utf-8",
    )
    assert load(path).text == "Model\tBattery\nAurora 3\t14 months"


def _make_docx(path: Path, *, with_table_only: bool = False) -> Path:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    if not with_table_only:
        document.add_heading("Aurora 3 specifications", level=1)
        document.add_paragraph("The console has a 7-inch screen.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Battery life"
    table.cell(0, 1).text = "About 14 months"
    table.cell(1, 0).text = "Warranty"
    table.cell(1, 1).text = "Two years"
    if not with_table_only:
        document.add_paragraph("Keep the receipt.")
    document.save(str(path))
    return path


def test_docx_paragraphs_tables_and_headings(tmp_path: Path) -> None:
    doc = load(_make_docx(tmp_path / "spec.docx"))
    assert doc.text == (
        "Aurora 3 specifications\nThe console has a 7-inch screen.\n"
        "Battery life\tAbout 14 months\nWarranty\tTwo years\nKeep the receipt."
    )
    assert [(s.title, s.start) for s in doc.sections] == [("Aurora 3 specifications", 0)]
    assert doc.meta["format"] == "docx"


def test_docx_with_text_only_in_a_table(tmp_path: Path) -> None:
    status = one(_make_docx(tmp_path / "table.docx", with_table_only=True))
    assert status.state == "ok"
    doc = load(tmp_path / "table.docx")
    assert doc.text == "Battery life\tAbout 14 months\nWarranty\tTwo years"


def test_corrupt_docx(tmp_path: Path) -> None:
    pytest.importorskip("docx")
    not_zip = tmp_path / "a-garbage.docx"
    not_zip.write_bytes(b"PK\x03\x04 this is not really a zip")
    wrong_zip = tmp_path / "b-wrong.docx"
    with zipfile.ZipFile(wrong_zip, "w") as archive:
        archive.writestr("hello.txt", "a zip, but not a Word document")
    for path in (not_zip, wrong_zip):
        status = one(path)
        assert status.state == "failed"
        assert status.reason.startswith("The DOCX file is damaged or not a DOCX (")


def test_docx_without_the_extra_is_skipped_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "spec.docx"
    path.write_bytes(b"PK\x03\x04")
    monkeypatch.setitem(sys.modules, "docx", None)  # makes `import docx` raise ImportError
    status = one(path)
    assert (status.state, status.reason) == (
        "skipped",
        "Reading .docx files needs python-docx: pip install 'docqa[docx]'.",
    )


# --- folder walking -----------------------------------------------------------------------


@posix_only
def test_symlink_loop(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "doc.txt").write_text("inside", encoding="utf-8")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)  # back to the root
    (root / "self").symlink_to(root / "self")  # a link to itself
    result = load_paths([root])
    states = {Path(s.path).name: s for s in result.statuses}
    assert states["doc.txt"].state == "ok"
    assert states["loop"].state == "skipped"
    assert states["loop"].reason == "Symbolic link to a folder already read (a loop?)."
    assert states["self"].state == "skipped"
    assert len(result.documents) == 1  # read once, not once per trip round the loop


@posix_only
def test_symlink_pointing_outside_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.txt").write_text("not yours", encoding="utf-8")
    root = tmp_path / "root"
    root.mkdir()
    (root / "mine.txt").write_text("yours", encoding="utf-8")
    (root / "link.txt").symlink_to(outside / "private.txt")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)

    result = load_paths([root])
    states = {Path(s.path).name: (s.state, s.reason) for s in result.statuses}
    assert states["link.txt"] == (
        "skipped",
        f"Symbolic link points outside the folder (to {(outside / 'private.txt').resolve()}).",
    )
    assert states["linkdir"][0] == "skipped"
    assert [d.text for d in result.documents] == ["yours"]

    followed = load_paths([root], follow_outside=True)
    assert sorted(d.text for d in followed.documents) == ["not yours", "yours"]  # read once


@posix_only
def test_symlink_inside_the_root_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("once", encoding="utf-8")
    (tmp_path / "alias.txt").symlink_to(tmp_path / "real.txt")
    result = load_paths([tmp_path])
    assert [d.text for d in result.documents] == ["once"]


@posix_only
def test_fifo_in_the_folder_is_skipped_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")  # opening it for reading would block forever
    (tmp_path / "real.txt").write_text("text", encoding="utf-8")
    result = load_paths([tmp_path])
    states = {Path(s.path).name: (s.state, s.reason) for s in result.statuses}
    assert states["pipe.txt"] == ("skipped", "Not a regular file (a FIFO).")
    assert states["real.txt"][0] == "ok"


def test_empty_folder(tmp_path: Path) -> None:
    result = load_paths([tmp_path])
    assert result.documents == () and result.statuses == ()
    with pytest.raises(NoDocumentsError) as info:
        result.require_documents()
    assert one_sentence(str(info.value))


def test_hidden_files_and_folders_are_passed_over(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.txt").write_text("no", encoding="utf-8")
    (tmp_path / ".notes.md").write_text("no", encoding="utf-8")
    (tmp_path / "doc.md").write_text("yes", encoding="utf-8")
    result = load_paths([tmp_path])
    assert [Path(s.path).name for s in result.statuses] == ["doc.md"]


# --- acceptance: a folder of bad files plus sample_docs -----------------------------------


def test_bad_folder_plus_sample_docs_answers_from_the_good_files(
    tmp_path: Path, three_pages: Path
) -> None:
    root = tmp_path / "mess"
    shutil.copytree(SAMPLE_DOCS, root / "sample_docs")
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.pdf").write_bytes(b"")
    (bad / "page.pdf").write_text("<html><body>saved page</body></html>")
    (bad / "truncated.pdf").write_bytes(three_pages.read_bytes()[:300])
    (bad / "header.pdf").write_bytes(b"%PDF-1.4\n")
    encrypt_pdf(three_pages, bad / "locked.pdf", user_password="pw")
    make_image_pdf(bad / "scan.pdf")
    with_cyclic_xref(three_pages, bad / "cycle.pdf")
    with_broken_page(three_pages, bad / "broken-page.pdf", index=1)
    (bad / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (bad / "nul.txt").write_bytes(b"abc\x00def")
    (bad / "script.html").write_text("<script>x()</script>")
    (bad / "blank.md").write_text("   \n")
    (bad / "corrupt.docx").write_bytes(b"not a zip")
    (bad / "notes.xyz").write_text("unsupported")

    result = load_paths([root], options=FAST)
    by_name = {Path(s.path).name: s for s in result.statuses}
    assert {n: by_name[n].state for n in ("aurora-manual.md", "aurora-manual.pdf")} == {
        "aurora-manual.md": "ok",
        "aurora-manual.pdf": "ok",
    }
    assert by_name["faq.html"].state == by_name["release-notes.txt"].state == "ok"
    assert by_name["locked.pdf"].state == "failed"
    assert by_name["scan.pdf"].state == "empty"
    assert by_name["binary.txt"].state == "skipped"
    assert by_name["notes.xyz"].state == "skipped"
    for status in result.statuses:
        assert status.state == "ok" or one_sentence(status.reason), status
    sources = {Path(d.source).name for d in result.documents}
    assert {"aurora-manual.md", "aurora-manual.pdf", "faq.html", "release-notes.txt"} <= sources
    manual = next(d for d in result.documents if d.source.endswith("aurora-manual.pdf"))
    assert "The battery lasts about 14 months" in manual.text


# --- PDF: a long PDF read by two workers at once --------------------------------------------


def test_a_long_pdf_read_in_two_halves_gives_the_same_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: a PDF of `SPLIT_MIN_PAGES` pages or more has its second half read by a second
    worker at the same time; the document is the one a single worker gives, page for page."""
    path = make_pdf(tmp_path / "long.pdf", [f"Page {n} says {n * 7} lanterns." for n in range(9)])
    monkeypatch.setattr(pdf, "SPLIT_MIN_PAGES", 10**6)
    whole = load(path)
    halves = []
    real = pdf._extract_apart
    monkeypatch.setattr(pdf, "SPLIT_MIN_PAGES", 4)
    monkeypatch.setattr(pdf.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(pdf, "_extract_apart", lambda *a: halves.append(a[2]) or real(*a))
    split = load(path)
    assert halves == [4]  # pages 5-9 came from the second worker
    assert split.text == whole.text and split.pages == whole.pages
    assert split.text[split.pages[8].start : split.pages[8].end] == "Page 8 says 56 lanterns."


def test_split_pdfs_false_keeps_a_long_pdf_to_one_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20: a Ray build actor holds one CPU, so its PDFs are read by one worker process
    (`LoadOptions.split_pdfs`); the text is the same."""
    path = make_pdf(tmp_path / "long.pdf", [f"Page {n} says {n * 7} lanterns." for n in range(9)])
    monkeypatch.setattr(pdf, "SPLIT_MIN_PAGES", 4)
    monkeypatch.setattr(pdf.os, "cpu_count", lambda: 2)
    halves = []
    real = pdf._extract_apart
    monkeypatch.setattr(pdf, "_extract_apart", lambda *a: halves.append(a[2]) or real(*a))
    [split] = load_paths([path]).documents
    assert halves == [4]
    [one] = load_paths([path], options=LoadOptions(split_pdfs=False)).documents
    assert halves == [4]  # no second worker this time
    assert one.text == split.text and one.pages == split.pages


@posix_only
@pytest.mark.usefixtures("misbehaving_worker")
def test_a_bad_page_in_the_second_half_costs_only_that_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pdf, "SPLIT_MIN_PAGES", 4)
    monkeypatch.setattr(pdf.os, "cpu_count", lambda: 2)
    texts = ["One.", "Two.", "Three.", "HANG-HERE", "Five.", "CRASH-HERE", "Seven.", "Eight."]
    doc = load_paths([make_pdf(tmp_path / "bad.pdf", texts)], options=FAST).documents[0]
    assert doc.meta["failed_pages"] == {
        4: "took longer than 1.5 s",
        6: "the PDF reader crashed (killed by SIGKILL)",
    }
    for n in (1, 2, 3, 5, 7, 8):
        assert doc.text[doc.pages[n - 1].start : doc.pages[n - 1].end] == texts[n - 1]
