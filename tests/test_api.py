"""DocQA end to end with a planted reader: offsets, pages, files, windows, ranking, no-answer.

The planted reader (tests/planted.py) peaks exactly on chosen phrases, so each test knows
which span must come back; a random-weight tiny model checks the real loading path and the
offset invariant on any text.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
from conftest import MANUALS, PHRASE, filler
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pdfgen import make_pdf

import docqa.api
from docqa import Answer, DocQA, Document, InputError, load
from docqa.windowing import tokenize_question, tokenize_text, window_bounds


def squash(text: str) -> str:
    return " ".join(text.split())


def check_invariants(answers: list[Answer]) -> None:
    """What every answer list must satisfy, whatever the question and documents."""
    for a in answers:
        assert isinstance(a, Answer)
        assert a.document.text[a.start : a.end] == a.text
        assert a.text and a.text == a.text.strip()
        assert 0 < a.score <= 1
        assert a.source == a.document.source
        assert a.page == a.document.page_at(a.start)
    logits = [a.logit for a in answers]
    assert logits == sorted(logits, reverse=True), "ranked by raw logit"
    scores = [a.score for a in answers]
    assert scores == sorted(scores, reverse=True), "scores rank as logits do"
    assert sum(scores) <= 1 + 1e-6
    places = [(a.source, a.start, a.end) for a in answers]
    assert len(set(places)) == len(places), "each span once"


def core(**settings) -> DocQA:
    """A DocQA reading every window of its documents in memory: the core path, without
    retrieval, index or dense encoder (they choose windows; these tests are about reading)."""
    return DocQA(chunks=None, index=False, dense=False, **settings)


def context_tokens(tokenizer, question: str, max_seq_len: int) -> int:
    """Document tokens per window, as `make_windows` computes it for BERT's template."""
    return max_seq_len - len(tokenize_question(tokenizer, question, 16)) - 3


# --- window boundaries ------------------------------------------------------------------


def straddling_text(tokenizer, question: str, max_seq_len: int, stride: int):
    """A text whose PHRASE starts 3 tokens before window 1 ends and finishes in window 2."""
    c = context_tokens(tokenizer, question, max_seq_len)
    text = f"{filler(c - 3)} {PHRASE} {filler(300, 3)}"
    tok = tokenize_text(tokenizer, text)
    first = int(np.flatnonzero(tok.starts == text.index(PHRASE))[0])
    n_phrase = len(tokenizer(PHRASE, add_special_tokens=False)["input_ids"])
    (_, end1), (start2, end2) = window_bounds(len(tok), c, stride)[:2]
    assert first < end1 < first + n_phrase <= end2 and first >= start2, "phrase straddles"
    return text


@pytest.mark.parametrize("partial", [False, True])
def test_answer_across_a_window_boundary_comes_back_whole(plant, tokenizer, partial):
    # partial=True: window 1 also tempts with the cut-off half of the phrase at its edge; the
    # max-context rule must leave the whole phrase from window 2.
    plant({PHRASE: 10.0}, partial=partial)
    question = "where does it go?"
    text = straddling_text(tokenizer, question, 64, 16)
    doc = Document.from_text(text, source="long.txt")
    qa = core(max_seq_len=64, doc_stride=16, max_question_len=16, max_context=True)
    [a] = qa.ask(question, doc)
    assert a.text == PHRASE
    assert (a.start, a.end) == (text.index(PHRASE), text.index(PHRASE) + len(PHRASE))
    assert a.source == "long.txt" and a.page == 1
    check_invariants([a])


# --- pages, manuals, folders ------------------------------------------------------------


def test_answer_on_page_7_of_a_generated_pdf(plant, tmp_path):
    plant({PHRASE: 10.0})
    pages = [f"Page {n}. " + filler(150, n) for n in range(1, 11)]
    pages[6] = f"Page 7. {filler(60)} The {PHRASE} every year. {filler(60, 1)}"
    path = make_pdf(tmp_path / "birds.pdf", pages)
    answers = core().ask("Where does the kestrel go?", path, top_k=3)
    best = answers[0]
    assert squash(best.text) == PHRASE
    assert best.page == 7
    assert best.source == str(path)
    page7 = best.document.pages[6]
    assert page7.number == 7 and page7.start <= best.start < best.end <= page7.end
    check_invariants(answers)


@pytest.fixture(scope="module")
def r_faq() -> Document:
    return load(MANUALS / "R-FAQ.pdf")


def test_answer_in_a_real_manual(plant, r_faq):
    phrase = "whose denominator is a power of 2"
    assert squash(r_faq.text).lower().count(phrase) == 1
    plant({phrase: 10.0})
    [a] = core().ask("Which fractions are exact?", MANUALS / "R-FAQ.pdf")
    assert squash(a.text) == phrase
    assert a.page == 41
    assert a.source.endswith("R-FAQ.pdf")
    assert a.start == squash_index(a.document.text, phrase)
    check_invariants([a])


def squash_index(text: str, phrase: str) -> int:
    """Where ``phrase`` starts in ``text`` when any run of whitespace may separate its words."""
    pattern = r"\s+".join(re.escape(w) for w in phrase.split())
    match = re.search(pattern, text)
    assert match is not None
    return match.start()


@pytest.mark.parametrize("default_path", [False, True])
def test_the_right_file_wins_in_a_folder(plant, tmp_path, default_path):
    plant({PHRASE: 10.0, "grey heron": 6.0, "barn owl": 3.0})
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text(f"{filler(200)} The grey heron waits. {filler(50)}")
    (tmp_path / "sub" / "b.md").write_text(f"# Birds\n\n{filler(300)}\n\nThe {PHRASE}.\n")
    (tmp_path / "c.html").write_text(f"<p>{filler(100)} A barn owl hunts.</p>")
    make_pdf(tmp_path / "d.pdf", [filler(100), filler(100, 5)])
    (tmp_path / "e.bin").write_bytes(b"\x00\x01 not a document")
    # default_path: the index and retrieval that `ask` uses on paths by default (BM25 only).
    qa = DocQA(dense=False) if default_path else core()
    [best] = qa.ask("Which bird migrates?", tmp_path)
    assert best.source == str(tmp_path / "sub" / "b.md")
    assert best.text == PHRASE
    top = qa.ask("Which bird migrates?", tmp_path, top_k=3)
    assert [(os.path.basename(a.source), a.text) for a in top] == [
        ("b.md", PHRASE),
        ("a.txt", "grey heron"),
        ("c.html", "barn owl"),
    ]
    check_invariants(top)


# --- ranking, de-duplication, scores ----------------------------------------------------


def test_top_k_follows_raw_logits_across_windows_and_documents(plant):
    # A per-window softmax would rank "grey heron" first: alone in its window, while the best
    # phrase shares its window with a strong rival.
    plant({PHRASE: 8.0, "barn owl": 7.0, "grey heron": 7.5})
    doc1 = Document.from_text(f"{filler(20)} {PHRASE} {filler(5)} barn owl {filler(20)}", "1")
    doc2 = Document.from_text(f"{filler(20)} grey heron {filler(20)}", "2")
    answers = core().ask("Which bird?", [doc2, doc1], top_k=3)
    assert [a.text for a in answers] == [PHRASE, "grey heron", "barn owl"]
    assert [a.logit for a in answers] == pytest.approx([16.0, 15.0, 14.0])
    check_invariants(answers)
    # The score is a softmax of raw logits over one candidate set: ratios are exp(Δlogit).
    assert answers[0].score / answers[1].score == pytest.approx(math.exp(1.0), rel=1e-4)
    assert answers[1].score / answers[2].score == pytest.approx(math.exp(1.0), rel=1e-4)


@pytest.mark.parametrize("max_context", [False, True])
def test_span_seen_by_two_overlapping_windows_appears_once(plant, tokenizer, max_context):
    plant({PHRASE: 10.0, "grey heron": 5.0})
    question = "Which bird?"
    c = context_tokens(tokenizer, question, 64)
    # Window 2 starts at c - 32: the phrase at token c - 20 lies inside both windows.
    text = f"{filler(c - 20)} {PHRASE} {filler(60)} grey heron {filler(100)}"
    tok = tokenize_text(tokenizer, text)
    first = int(np.flatnonzero(tok.starts == text.index(PHRASE))[0])
    n_phrase = len(tokenizer(PHRASE, add_special_tokens=False)["input_ids"])
    bounds = window_bounds(len(tok), c, 32)
    assert bounds[1][0] <= first and first + n_phrase <= bounds[0][1], "phrase in both windows"
    qa = core(max_seq_len=64, doc_stride=32, max_question_len=16, max_context=max_context)
    answers = qa.ask(question, Document.from_text(text), top_k=5)
    assert [a.text for a in answers].count(PHRASE) == 1
    assert answers[0].text == PHRASE and answers[1].text == "grey heron"
    check_invariants(answers)


def test_duplicates_from_overlapping_windows_count_once_in_the_score(plant, tokenizer):
    # Every other span scores about -90: if the phrase seen by two windows were counted
    # twice in the softmax, its score would be 0.5, not 1.
    plant({PHRASE: 10.0}, baseline=-100.0)
    c = context_tokens(tokenizer, "Which bird?", 64)
    text = f"{filler(c - 20)} {PHRASE} {filler(100)}"
    qa = core(max_seq_len=64, doc_stride=32, max_question_len=16, max_context=False)
    prediction = qa.predict("Which bird?", [Document.from_text(text)], top_k=3)
    assert len(prediction.windows_read) > 2
    [best, *_] = prediction.answers
    assert best.text == PHRASE
    assert best.score == pytest.approx(1.0, abs=1e-6)


def test_an_answer_said_in_two_places_pools_their_probability(plant):
    # The owl is the surest single place; the heron, said in two files (once capitalised),
    # is the likelier answer: its places' probabilities add up.
    plant({"barn owl": 7.5, "grey heron": 7.3})
    doc1 = Document.from_text(f"{filler(20)} A grey heron waits. {filler(20, 3)}", "1")
    doc2 = Document.from_text(f"{filler(20, 5)} The Grey Heron, or a barn owl. {filler(9)}", "2")
    alone = core(pool_answers=False).ask("Which bird?", [doc1, doc2], top_k=3)
    assert [(a.text, a.source) for a in alone] == [
        ("barn owl", "2"),
        ("grey heron", "1"),
        ("Grey Heron", "2"),
    ]
    pooled = core().ask("Which bird?", [doc1, doc2], top_k=3)
    assert [(a.text, a.source) for a in pooled] == [("grey heron", "1"), ("barn owl", "2")]
    assert pooled[0].score == pytest.approx(alone[1].score + alone[2].score, rel=1e-6)
    assert pooled[0].logit == pytest.approx(np.logaddexp(alone[1].logit, alone[2].logit))
    assert pooled[1].score == pytest.approx(alone[0].score, rel=1e-6)
    check_invariants(pooled)


def test_no_answer_when_cls_wins(plant):
    doc = Document.from_text(f"{filler(30)} {PHRASE} {filler(30)}")
    plant({PHRASE: 10.0}, cls=15.0)  # null 30 beats the best span's 20
    assert core(no_answer_threshold=0.0).ask("Where?", doc) == []
    assert core(no_answer_threshold=11.0).ask("Where?", doc)[0].text == PHRASE
    assert core().ask("Where?", doc)[0].text == PHRASE, "no threshold: always an answer"
    plant({PHRASE: 10.0}, cls=5.0)
    assert core(no_answer_threshold=0.0).ask("Where?", doc)[0].text == PHRASE


def test_every_answer_is_a_probability_with_the_offset_invariant(plant, tmp_path):
    plant({PHRASE: 4.0, "grey heron": 3.0}, baseline=1.0)
    pages = [f"{filler(80)} grey heron {filler(80, 2)}", f"{filler(40)} {PHRASE}.", "x y z"]
    path = make_pdf(tmp_path / "p.pdf", pages)
    qa = core(max_seq_len=96, doc_stride=32, max_question_len=16)
    answers = qa.ask("Which bird?", path, top_k=10)
    # Fewer than 10 can come back: answers overlapping a better one are left out.
    assert 2 <= len(answers) <= 10
    assert {a.page for a in answers[:2]} == {1, 2}
    check_invariants(answers)


# --- offsets on any text ----------------------------------------------------------------

pieces = st.sampled_from(
    [
        *["café", "cafe\u0301s", "Ærø", "straße", "😀", "👩‍👩‍👧", "東京都", "한국어", "مرحبا"],
        *["Привет", "नमस्ते", "ﬁle", "U.S.A.", "—", "\n", "\u00a0", "İstanbul", "x²", "word"],
    ]
)
random_text = st.lists(st.one_of(pieces, st.text(max_size=6)), max_size=25).map(" ".join)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(left=random_text, right=random_text)
def test_planted_answer_exact_in_any_text(planted_qa, left, right):
    text = f"{left} {PHRASE} {right}"
    qa = planted_qa
    answers = qa.ask("Where?", Document.from_text(text), top_k=3)
    check_invariants(answers)
    assert answers[0].text == PHRASE
    assert answers[0].start == text.index(f" {PHRASE} ") + 1


@pytest.fixture(scope="module")
def planted_qa(tokenizer):
    """One DocQA with a planted reader for all hypothesis examples (fixtures run once)."""
    from planted import PlantedModel, planted_loader

    mp = pytest.MonkeyPatch()
    model = PlantedModel(tokenizer, {PHRASE: 10.0})
    mp.setattr(docqa.reader, "load_model", planted_loader(model, tokenizer))
    qa = core(max_seq_len=48, doc_stride=16, max_question_len=8)
    qa.warm_up()
    mp.undo()
    return qa


@pytest.fixture(scope="module")
def tiny_qa(tiny_model):
    qa = core(
        model=str(tiny_model), device="cpu", max_seq_len=48, doc_stride=16, max_question_len=8
    )
    qa.warm_up()
    return qa


#: A line holding only a number: read as a page number, never an answer (issue 17).
NUMBER_LINE = re.compile(r"[ \t]*\(?[0-9]+\)?[ \t]*")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=random_text)
@example(text="0")
@example(text="0\nx")
def test_tiny_model_answers_satisfy_the_offset_invariant(tiny_qa, text):
    answers = tiny_qa.ask("what is it?", Document.from_text(text), top_k=3)
    check_invariants(answers)
    lines = [line for line in text.split("\n") if not NUMBER_LINE.fullmatch(line)]
    if any(c.isalnum() for line in lines for c in line):
        assert answers, "a text with words off number-only lines always has some span"
    elif text.strip() == "0":
        assert answers == [], "a number alone on its line is a page number"


# --- once per document, once per DocQA --------------------------------------------------


@pytest.mark.parametrize("through_index", [False, True])
def test_documents_tokenized_once_and_model_loaded_once(
    plant, monkeypatch, tmp_path, through_index
):
    import docqa.index

    model = plant({PHRASE: 10.0})
    calls = []

    def counting(tokenizer, text):
        calls.append(len(text))
        return tokenize_text(tokenizer, text)

    monkeypatch.setattr(docqa.api, "tokenize_text", counting)
    monkeypatch.setattr(docqa.index.ingest, "tokenize_text", counting)
    # Paths go through the persistent index (a temporary folder in tests) unless index=False.
    qa = DocQA(dense=False) if through_index else core()
    assert model.loads == [], "building a DocQA loads nothing"
    doc = Document.from_text(f"{filler(500)} {PHRASE} {filler(500)}")
    path = tmp_path / "same.txt"
    path.write_text(doc.text)
    for i in range(10):
        assert qa.ask(f"Question number {i}?", doc)[0].text == PHRASE
        assert qa.ask(f"Question number {i}?", path)[0].text == PHRASE
    assert len(model.loads) == 1
    assert len(calls) == 2, "once for the Document, once for the file"


# --- the public surface -----------------------------------------------------------------


def test_public_imports_and_document_from_text():
    import docqa

    assert {"DocQA", "Answer", "Document", "load"} <= set(docqa.__all__)
    doc = Document.from_text("Paris is the capital of France.", source="note")
    assert doc.source == "note" and doc.page_at(0) == 1 and doc.sha256
    assert doc == Document.from_text("Paris is the capital of France.", source="note")


@pytest.mark.parametrize(
    "settings_",
    [
        {"doc_stride": 400},
        {"doc_stride": 384},
        {"doc_stride": -1},
        {"max_seq_len": 64, "doc_stride": 32},  # 64 - 64 question tokens leaves nothing
        {"max_answer_len": 0},
        {"batch_size": 0},
        {"device": "tpu"},
    ],
)
def test_bad_settings_fail_at_construction(plant, settings_):
    model = plant({PHRASE: 1.0})
    with pytest.raises(InputError):
        DocQA(**settings_)
    assert model.loads == []


@pytest.mark.parametrize("question", ["", "  "])
def test_empty_question_is_an_input_error(plant, question):
    plant({PHRASE: 1.0})
    with pytest.raises(InputError):
        core().ask(question, Document.from_text("some text"))


def test_long_question_is_truncated_not_fatal(plant):
    from docqa.windowing import QuestionTruncatedWarning

    plant({PHRASE: 10.0})
    doc = Document.from_text(f"{filler(100)} {PHRASE} {filler(100)}")
    with pytest.warns(QuestionTruncatedWarning):
        [a] = core(max_seq_len=128, doc_stride=32).ask("why " * 200, doc)
    assert a.text == PHRASE
