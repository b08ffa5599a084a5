"""DocQA.ask_many: the answers of asking one by one, with loading and tokenization shared."""

from __future__ import annotations

import pytest
from conftest import MANUALS

import docqa.api
import docqa.index
from docqa import DocQA, Document, InputError

WORDS = ["river", "stone", "lantern", "harbor", "meadow", "copper", "winter", "garden"]
QUESTIONS = [f"Question {i}: where does the bird build its nest?" for i in range(10)]


def words(n: int, offset: int = 0) -> str:
    return " ".join(WORDS[(offset * 7 + i) % len(WORDS)] for i in range(n))


def key(answers):
    return [(a.text, a.start, a.end, a.source, a.score, a.logit) for a in answers]


class Counts:
    """Calls to loading, tokenizing and model loading made in this process."""

    def __init__(self, monkeypatch):
        self.load_paths = 0
        self.tokenize = 0
        real_load, real_api_tok = docqa.api.load_paths, docqa.api.tokenize_text
        real_index_tok = docqa.index.ingest.tokenize_text

        def load_paths(*args, **kwargs):
            self.load_paths += 1
            return real_load(*args, **kwargs)

        def counted(real):
            def tokenize(*args, **kwargs):
                self.tokenize += 1
                return real(*args, **kwargs)

            return tokenize

        monkeypatch.setattr(docqa.api, "load_paths", load_paths)
        monkeypatch.setattr(docqa.api, "tokenize_text", counted(real_api_tok))
        monkeypatch.setattr(docqa.index.ingest, "tokenize_text", counted(real_index_tok))


@pytest.mark.parametrize("chunks", [None, 2])
def test_ask_many_equals_asking_one_by_one(tiny_model, chunks):
    docs = [
        Document.from_text(
            words(300, d) + " The heron nests in the alder. " + words(200, d + 1), source=f"doc{d}"
        )
        for d in range(2)
    ]
    settings = {"max_seq_len": 64, "doc_stride": 16, "max_question_len": 16}
    qa = DocQA(model=str(tiny_model), chunks=chunks, index=False, dense=False, **settings)
    many = qa.ask_many(QUESTIONS[:4], docs, top_k=3)
    fresh = DocQA(model=str(tiny_model), chunks=chunks, index=False, dense=False, **settings)
    one = [fresh.ask(q, docs, top_k=3) for q in QUESTIONS[:4]]
    assert [key(a) for a in many] == [key(a) for a in one]
    assert all(len(a) == 3 for a in many)


def test_ask_many_on_files_through_the_index_equals_ask(tiny_model, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for d in range(3):
        (folder / f"note{d}.txt").write_text(words(250, d) + " The heron nests here. ")
    settings = {"max_seq_len": 64, "doc_stride": 16, "max_question_len": 16, "dense": False}
    qa = DocQA(model=str(tiny_model), index=tmp_path / "ix", chunks=3, **settings)
    many = qa.ask_many(QUESTIONS[:3], folder, top_k=2)
    one = [qa.ask(q, folder, top_k=2) for q in QUESTIONS[:3]]
    assert [key(a) for a in many] == [key(a) for a in one]


def test_ten_questions_of_a_manual_load_and_tokenize_it_once(plant, monkeypatch):
    """Issue 5: ten questions of one 113-page manual in one DocQA parse and tokenize it once."""
    model = plant({"data frame": 10.0})
    counts = Counts(monkeypatch)
    qa = DocQA(index=False, dense=False)
    # Every window is read: the questions share no words with the planted phrase, so which
    # windows retrieval picks would decide the answer, and this test is about loading once.
    answers = qa.ask_many(QUESTIONS, MANUALS / "R-intro.pdf", exhaustive=True)
    assert [a[0].text.lower() for a in answers] == ["data frame"] * 10
    assert counts.load_paths == 1
    assert counts.tokenize == 1
    assert len(model.loads) == 1


def test_ten_questions_through_the_index_parse_and_tokenize_once(plant, monkeypatch, tmp_path):
    model = plant({"data frame": 10.0})
    counts = Counts(monkeypatch)
    qa = DocQA(index=tmp_path / "ix", dense=False)
    parsed = []
    index = qa.index

    def counting_index(*args, **kwargs):
        report = index(*args, **kwargs)
        parsed.append(report.parsed)
        return report

    monkeypatch.setattr(qa, "index", counting_index)
    # Every window is read: the questions share no words with the planted phrase, so which
    # windows retrieval picks would decide the answer, and this test is about loading once.
    answers = qa.ask_many(QUESTIONS, MANUALS / "R-intro.pdf", exhaustive=True)
    assert [a[0].text.lower() for a in answers] == ["data frame"] * 10
    assert sum(parsed) == 1
    assert counts.tokenize == 1
    assert len(model.loads) == 1


def test_ask_many_keeps_question_order_and_takes_no_bare_string(plant):
    plant({"heron": 5.0, "alder": 3.0})
    doc = Document.from_text("The heron nests in the alder by the river.")
    qa = DocQA(index=False, dense=False)
    assert qa.ask_many([], doc) == []
    [first, second] = qa.ask_many(["Which bird?", "Which tree?"], doc, top_k=2)
    assert [a.text for a in first] == [a.text for a in second] == ["heron", "alder"]
    with pytest.raises(InputError, match="list of questions"):
        qa.ask_many("Which bird?", doc)
