"""Answer sanity at decoding (issue 17, item 3): what a person would never accept as an answer
is dropped, whatever the reader's score: a span across a page boundary, a page number alone on
its line, a footnote marker, punctuation."""

from __future__ import annotations

from docqa import DocQA, Document, Page
from docqa.aggregate import answer_defect, code_without_kind_words, whole_code_token


def paged(*pages: str) -> Document:
    """A document of these pages, joined as the PDF loader joins them."""
    text, ranges, at = "", [], 0
    for n, page in enumerate(pages, 1):
        if text:
            text += "\n\n"
            at = len(text)
        text += page
        ranges.append(Page(n, at, len(text)))
    return Document(text=text, source="manual.pdf", pages=tuple(ranges), sha256=str(hash(text)))


def ask(doc: Document, top_k: int = 1) -> list[str]:
    qa = DocQA(max_seq_len=128, doc_stride=32, dense=False, index=False)
    return [a.text for a in qa.ask("Where does the kestrel go?", doc, top_k=top_k, chunks=None)]


def test_a_page_number_alone_on_its_line_is_not_an_answer_nor_in_one(plant):
    plant({"66": 10.0, "to Africa": 5.0})
    doc = paged("Each autumn the kestrel migrates to Africa.\n66", "More text follows here.")
    # Neither "66" nor "to Africa.\n66" (the phrase's start with the number's end).
    assert ask(doc) == ["to Africa"]
    # The same number inside a sentence is an answer like any other.
    plant({"66": 10.0, "to Africa": 5.0})
    assert ask(paged("The kestrel flies 66 miles a day to Africa.")) == ["66"]


def test_a_span_into_the_label_of_a_numbered_line_is_not_an_answer(plant):
    """A footnote body the layout cleanup could not move (its marker, in ``1:10.3``, reads as
    a number) begins a line with its number: ``x.\n3`` is a sentence's end and that label."""
    plant({"Africa.\n3": 10.0, "migrates to": 8.0})
    doc = paged("Each autumn the kestrel migrates to Africa.\n3 Kestrels are small falcons.")
    # Neither "Africa.\n3" nor "migrates to Africa.\n3".
    assert ask(doc) == ["migrates to"]
    assert answer_defect("four times.\n3. A vector", 5, 14) == "numbered line"
    assert answer_defect("of x.\n3 paste(...)", 3, 13) == "numbered line"
    # Prose wrapped before a number goes on across the break: no sentence ends there, or
    # "1.0" labels nothing.
    assert answer_defect("the\n35 standard fonts", 0, 15) is None
    assert answer_defect("run it.\n1.0 is the default", 4, 11) is None


def test_a_span_across_a_page_boundary_is_not_an_answer(plant):
    plant({"Africa. Chapter 9": 10.0, "Chapter 9": 5.0})
    doc = paged("Each autumn the kestrel migrates to Africa.", "Chapter 9 Falcons")
    assert ask(doc) == ["Chapter 9"]


def test_a_footnote_marker_is_not_an_answer_nor_part_of_one(plant):
    plant({"39": 10.0, "Africa": 5.0})
    text = "The kestrel migrates to Africa.39 It returns in spring."
    # Widened to the whole word, "Africa" would be "Africa.39": the marker is cut off; and
    # no answer starts with it ("39 It").
    assert ask(paged(text), top_k=2) == ["Africa."]


def test_rules_one_by_one():
    text = "Install it.39 Then run R.\n66\nChapter 9 (1843) costs $30"
    assert answer_defect(text, 11, 13) == "footnote marker"
    assert answer_defect(text, 26, 28) == "page number"
    assert answer_defect(text, 20, 31, breaks=[26]) == "crosses a page or region boundary"
    assert answer_defect(text, 10, 11) == "no words"
    assert answer_defect(text, 29, 38) is None  # "Chapter 9"
    year = text.index("1843")
    assert answer_defect(text, year, year + 4) is None  # in parentheses: not a marker
    dollars = text.index("30")
    assert answer_defect(text, dollars, dollars + 2) is None


def test_contents_and_index_regions_are_skipped_unless_asked_for(plant):
    """Issue 17, item 2: a table of contents shares the question's words but holds no answer;
    it is neither retrieved nor answered from, unless include_contents."""
    from docqa.types import Region

    contents = "Contents\nMigration of the kestrel . . . . 12\nFalcons . . . . 14"
    body = "Each autumn the kestrel migrates to Africa, where it winters."
    doc = paged(contents, body)
    doc = Document(
        text=doc.text,
        source=doc.source,
        pages=doc.pages,
        regions=(Region(0, len(contents), "contents"),),
        sha256="contents-test",
    )
    plant({"Migration of the kestrel": 10.0, "to Africa": 5.0})
    settings = {"max_seq_len": 48, "doc_stride": 8, "max_question_len": 16, "index": False}
    for exhaustive in (True, False):  # every window read, and retrieval of one window
        for include, expected in ((False, "to Africa"), (True, "Migration of the kestrel")):
            qa = DocQA(dense=False, include_contents=include, **settings)
            [answer] = qa.ask(
                "Where does the kestrel migrate?", doc, chunks=1, exhaustive=exhaustive
            )
            assert answer.text == expected, (exhaustive, include)


def test_the_index_keeps_regions_and_search_skips_contents_unless_asked(tmp_path, scheme):
    """Regions found by the PDF loader are stored with the document; retrieval skips the
    windows of a table of contents or an index unless include_contents."""
    from test_layout import furnished_pdf

    from docqa.index import Index
    from docqa.loaders import load

    folder = tmp_path / "docs"
    folder.mkdir()
    pdf = furnished_pdf(folder / "manual.pdf")
    with Index(tmp_path / "ix") as index:
        r = index.update([folder], scheme)
        [doc_id] = r.doc_ids
        assert index.document(doc_id).regions == load(pdf).regions
        roles = {region.role for region in index.document(doc_id).regions}
        assert roles == {"contents", "index", "footnotes"}
        hits = index.search("widget chapter", r.doc_ids, scheme, k=3)
        assert hits and all(h.page not in (1, 8) for h in hits)
        hits = index.search("widget chapter", r.doc_ids, scheme, k=3, include_contents=True)
        assert hits[0].page == 1


def test_an_identifier_or_a_call_is_answered_whole(plant):
    """Issue 17: on the manuals the reader returned ``$year`` for ``R.version$year`` and
    ``demo`` for ``demo("scoping")``; a code token is one answer."""
    plant({"$ year": 10.0})  # the tokens of "$year": the pre-tokenizer splits "$" off
    assert ask(paged("Use R.version$year, or read the NEWS file.")) == ["R.version$year"]
    plant({"demo": 10.0})
    assert ask(paged('Type demo("scoping") at the prompt.')) == ['demo("scoping")']
    plant({"log": 10.0})
    assert ask(paged("It writes (to fit.log) as it goes.")) == ["fit.log"]


def test_prose_is_not_widened(plant):
    """SQuAD-like prose keeps the reader's span: hyphens, possessives and citation marks are
    not code."""
    plant({"axis": 10.0})
    assert ask(paged("Set the x-axis range first.")) == ["axis"]
    plant({"debts": 10.0})
    assert ask(paged("They took on debts).[1] Later they paid.")) == ["debts"]


def test_a_word_naming_the_kind_of_code_is_not_part_of_the_answer(plant):
    """Issue 17: on the manuals the reader returned ``function unclass()`` and
    ``qr() function``; the answer is the code, the word repeats what the question asked."""
    plant({"function unclass()": 10.0})
    assert ask(paged("Use the function unclass() to drop the class.")) == ["unclass()"]
    plant({"the qr() function": 10.0})
    assert ask(paged("Then the qr() function computes it.")) == ["qr()"]
    # Any other word beside the code, or a kind word beside prose, stays as read.
    plant({"function unclass() drops": 10.0})
    assert ask(paged("The function unclass() drops the class.")) == ["function unclass() drops"]
    plant({"R function": 10.0})
    assert ask(paged("Use the R function for it.")) == ["R function"]


def test_kind_words_and_code_are_told_apart_from_the_punctuation_after_them():
    text = "Use the function unclass(), or the qr() function; then stop."
    cut = {
        text[s:e]: text[slice(*code_without_kind_words(text, s, e))] for s, e in [(8, 27), (35, 49)]
    }
    assert cut == {"function unclass(),": "unclass()", "qr() function;": "qr()"}


def test_a_page_reference_alone_is_not_an_answer():
    assert answer_defect("as shown (see p. 91).", 14, 19) == "page reference"
    assert answer_defect("see pp. 12-14 for it", 4, 13) == "page reference"
    assert answer_defect("the page 7 layout", 4, 10) == "page reference"
    assert answer_defect("run p.adjust now", 4, 12) is None


# --- the rules at their edges (issue 21, mutation testing) ---------------------------------


def test_a_span_that_ends_where_a_page_or_region_begins_does_not_cross_it():
    text = "Falcons winter in Africa.\n\nChapter 2"
    assert answer_defect(text, 15, 24, breaks=[24]) is None  # "in Africa"
    assert answer_defect(text, 15, 29, breaks=[24]) == "crosses a page or region boundary"


def test_a_page_number_on_the_last_line_of_the_text_is_a_page_number():
    # No newline after it: the line runs to the end of the text.
    assert answer_defect("The end of the chapter.\n7", 24, 25) == "page number"


def test_a_price_alone_on_its_line_is_not_a_page_number():
    assert answer_defect("Price:\n$30\nper seat", 7, 10) is None


def test_a_footnote_marker_near_the_start_of_the_text():
    assert answer_defect("Ok.39 Then it ran.", 3, 5) == "footnote marker"


def widened(text: str, answer: str) -> str:
    """What `whole_code_token` makes of the first ``answer`` in ``text``."""
    start = text.index(answer)
    a, b = whole_code_token(text, start, start + len(answer))
    return text[a:b]


def test_a_code_token_in_quotes_or_brackets_is_widened_without_them():
    assert widened('Type "make.names()" now', "names") == "make.names()"
    assert widened('Type "demo("scoping")" at the prompt.', "demo") == 'demo("scoping")'
    assert widened("see (R.home) for the folder", "home") == "R.home"
    assert widened("(R.home gives the folder)", "home") == "R.home"
    assert widened("It writes (fit.log as it goes)", "log") == "fit.log"
    assert widened('He wrote "fit.log is the file" there.', "log") == "fit.log"
    assert widened("(or call plot()) to draw", "plot") == "plot()"
    assert widened("R.home is the folder", "home") == "R.home"  # at the start of the text


def test_an_answer_of_several_words_is_widened_at_its_last_word():
    assert widened("then set R.x again", "set R") == "set R.x"
    assert widened("call a make.names() now", "a make") == "a make.names()"


def test_widening_keeps_what_the_reader_read():
    """Only what widening adds loses its punctuation, quotes and brackets: the reader's own
    full stop and brackets stay."""
    assert whole_code_token("It flew to Africa. Then", 11, 18) == (11, 18)  # "Africa."
    assert whole_code_token("born (1843 in Kent)", 5, 10) == (5, 10)  # "(1843"
    assert whole_code_token("born (1843) in Kent", 5, 11) == (5, 11)  # "(1843)"
    assert whole_code_token("see (R.home) now", 4, 11) == (4, 12)  # "(R.home" -> "(R.home)"
    assert whole_code_token("see (R.home) now", 5, 12) == (4, 12)  # "R.home)" -> "(R.home)"
