"""``evaluate`` with fake readers: scores, window recall, levels, limit, report format.

The fakes only implement ``predict(question, documents) -> Prediction``, the one method
``evaluate`` may rely on. Gold positions are found from the raw fixture JSON (the paragraph's
``answer_start`` plus where that paragraph sits in the document handed to the reader), not
through ``docqa.squad``, so a wrong join or offset shows up as a wrong score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from docqa.errors import InputError
from docqa.evaluate import EvalReport, evaluate, gold_in_windows
from docqa.types import Answer, Document, Prediction, WindowRef

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "squad-v1.1-tiny.json"
V2 = FIXTURES / "squad-v2.0-tiny.json"


def raw_questions(path: Path) -> dict[str, tuple[str, list[dict]]]:
    """question text → (its paragraph's context, its raw answers)."""
    data = json.loads(path.read_text())
    return {
        qa["question"]: (para["context"], qa["answers"])
        for article in data["data"]
        for para in article["paragraphs"]
        for qa in para["qas"]
    }


def raw_contexts(path: Path) -> list[list[str]]:
    data = json.loads(path.read_text())
    return [[p["context"] for p in article["paragraphs"]] for article in data["data"]]


def make_answer(doc: Document, text: str, start: int = 0) -> Answer:
    return Answer(
        text=text,
        score=1.0,
        start=start,
        end=start + len(text),
        page=1,
        source=doc.source,
        context=text,
        document=doc,
    )


class GoldReader:
    """Answers with the first gold span, reading one window of 20 characters around it."""

    def __init__(self, path: Path) -> None:
        self.raw = raw_questions(path)
        self.calls: list[tuple[str, Sequence[Document]]] = []

    def gold_spans(self, question: str, doc: Document) -> list[tuple[int, int]]:
        context, answers = self.raw[question]
        offset = doc.text.index(context)  # where the question's paragraph sits in this document
        return [
            (offset + a["answer_start"], offset + a["answer_start"] + len(a["text"]))
            for a in answers
        ]

    def predict(self, question: str, documents: Sequence[Document]) -> Prediction:
        self.calls.append((question, documents))
        doc = documents[0]
        spans = self.gold_spans(question, doc)
        if not spans:
            return Prediction((), 5.0, (WindowRef(0, 0, len(doc.text)),))
        start, end = spans[0]
        window = WindowRef(0, max(0, start - 10), end + 10)
        return Prediction((make_answer(doc, doc.text[start:end], start),), -5.0, (window,))


class FixedReader:
    """Answers each question id's question with a fixed string ("" = no answer)."""

    def __init__(self, path: Path, answers: dict[str, str], null_diffs: dict[str, float]):
        data = json.loads(path.read_text())
        by_question = {
            qa["question"]: qa["id"]
            for article in data["data"]
            for para in article["paragraphs"]
            for qa in para["qas"]
        }
        self.answers = {q: answers[i] for q, i in by_question.items()}
        self.null_diffs = {q: null_diffs.get(i) for q, i in by_question.items()}

    def predict(self, question: str, documents: Sequence[Document]) -> Prediction:
        text = self.answers[question]
        answers = (make_answer(documents[0], text),) if text else ()
        window = WindowRef(0, 0, len(documents[0].text))
        return Prediction(answers, self.null_diffs[question], (window, window))


@pytest.mark.parametrize("level", ["paragraph", "document"])
@pytest.mark.parametrize("path", [V1, V2], ids=["v1.1", "v2.0"])
def test_a_reader_that_returns_the_gold_span_scores_100(path, level):
    reader = GoldReader(path)
    report = evaluate(path, reader, level=level)
    assert report.level == level
    assert (report.exact, report.f1, report.window_recall) == (100.0, 100.0, 100.0)
    assert report.total == 7 == len(reader.calls)
    assert report.windows_per_question == 1.0
    if path == V2:
        assert (report.HasAns_exact, report.NoAns_exact, report.best_f1) == (100.0, 100.0, 100.0)


def test_document_level_asks_of_the_whole_article_one_shared_document():
    reader = GoldReader(V1)
    evaluate(V1, reader, level="document")
    rivers, towers = raw_contexts(V1)
    docs = [documents for _, documents in reader.calls]
    assert all(len(d) == 1 for d in docs)
    # Rivers has 4 questions, Towers 3: the reader must get the very same object per article,
    # or it would re-tokenize a long document for every question.
    assert all(d[0] is docs[0][0] for d in docs[:4])
    assert all(d[0] is docs[4][0] for d in docs[4:])
    assert docs[0][0].text == "\n\n".join(rivers)  # every paragraph, in order
    assert docs[4][0].text == "\n\n".join(towers)
    assert (docs[0][0].source, docs[4][0].source) == ("Rivers", "Towers")


def test_paragraph_level_asks_of_the_paragraph_only():
    reader = GoldReader(V1)
    evaluate(V1, reader, level="paragraph")
    for question, (doc,) in reader.calls:
        assert doc.text == reader.raw[question][0]
    assert [d[0].source for _, d in reader.calls][:4] == [
        "Rivers#0",
        "Rivers#1",
        "Rivers#2",
        "Rivers#2",
    ]


def test_v11_scores_through_evaluate_match_the_hand_computed_ones():
    # Same predictions as tests/test_metrics.py::test_v11_fixture_hand_computed.
    predictions = {
        "r1": "North-flowing river",
        "r2": "South America.",
        "r3": "Black Forest",
        "r4": "the Black Forest",
        "t1": "completed in 1889 for",
        "t2": "Paris",
        "t3": "",
    }
    report = evaluate(V1, FixedReader(V1, predictions, {}), level="document")
    assert report.exact == pytest.approx(100 * 2 / 7)
    assert report.f1 == pytest.approx(100 * 23 / 42)
    assert report.predictions == predictions
    assert report.windows_per_question == 2.0
    assert report.HasAns_exact is None and report.best_f1 is None
    assert "HasAns_exact" not in report.to_json() and "best_f1" not in report.to_json()


def test_v20_scores_through_evaluate_match_the_hand_computed_ones():
    # Same case as tests/test_metrics.py::test_v20_fixture_hand_computed; na_prob is the
    # reader's null_score_diff, and an empty answer tuple means "predicted unanswerable".
    predictions = {
        "s1": "the sun",
        "s2": "",
        "s3": "95 moons",
        "s4": "95",
        "s5": "",
        "m1": "Bonn",
        "m2": "in 1827",
    }
    null_diffs = {"s1": -3.0, "m1": -2.0, "s3": -1.0, "m2": -0.5, "s4": 0.5, "s5": 1.5, "s2": 2.0}
    report = evaluate(V2, FixedReader(V2, predictions, null_diffs), level="paragraph")
    expected = {
        "exact": 100 * 3 / 7,
        "f1": 100 * 3.8 / 7,
        "total": 7,
        "HasAns_exact": 50.0,
        "HasAns_f1": 70.0,
        "HasAns_total": 4,
        "NoAns_exact": 100 / 3,
        "NoAns_f1": 100 / 3,
        "NoAns_total": 3,
        "best_exact": 100 * 5 / 7,
        "best_exact_thresh": -2.0,
        "best_f1": 100 * 5.8 / 7,
        "best_f1_thresh": -1.0,
    }
    got = report.to_json()
    assert {k: got[k] for k in expected} == pytest.approx(expected)
    assert report.predictions == predictions


class WindowReader:
    """Reads hand-placed windows relative to each question's gold spans; answers nothing."""

    def __init__(self) -> None:
        self.gold = GoldReader(V1)

    def predict(self, question: str, documents: Sequence[Document]) -> Prediction:
        doc = documents[0]
        spans = self.gold.gold_spans(question, doc)
        (s0, e0), *rest = spans
        qid = {
            "Which direction does the Nile flow?": "r1",
            "Where is the Amazon River?": "r2",
            "Where does the Danube rise?": "r3",
            "Into which sea does the Danube empty?": "r4",
            "When was the Eiffel Tower completed?": "t1",
            "Which city is the capital of Ontario?": "t2",
        }.get(question, "t3")
        windows = {
            # exactly the first gold, both ends inclusive of it → recalled
            "r1": [WindowRef(0, s0, e0)],
            # one window per gold, each a character short → missed
            "r2": [WindowRef(0, s, e - 1) for s, e in spans],
            # only the second gold is inside: any gold counts → recalled
            "r3": [WindowRef(0, rest[0][0], rest[0][1])] if rest else [],
            # right range, wrong document: index 1 was never passed in → missed
            "r4": [WindowRef(1, 0, len(doc.text))],
            # two windows that split every gold between them → missed
            "t1": [WindowRef(0, 0, s0 + 2), WindowRef(0, s0 + 2, len(doc.text))],
            # nothing read → missed
            "t2": [],
            # the whole document → recalled
            "t3": [WindowRef(0, 0, len(doc.text))],
        }[qid]
        return Prediction((), None, tuple(windows))


@pytest.mark.parametrize("level", ["paragraph", "document"])
def test_window_recall_counts_answers_lying_entirely_in_one_window_read(level):
    report = evaluate(V1, WindowReader(), level=level)
    assert report.window_recall == pytest.approx(100 * 3 / 7)  # r1, r3, t3
    assert report.windows_per_question == pytest.approx((1 + 2 + 1 + 1 + 2 + 0 + 1) / 7)
    assert report.exact == 0.0  # nothing answered


class ReadEverything:
    def predict(self, question: str, documents: Sequence[Document]) -> Prediction:
        return Prediction((), 1.0, (WindowRef(0, 0, len(documents[0].text)),))


def test_window_recall_counts_only_answerable_questions(tmp_path):
    # Everything read: every answerable gold is inside. Unanswerable questions have no gold;
    # counting them as misses would give 4 of 7 here instead of 100 %.
    report = evaluate(V2, ReadEverything(), level="document")
    assert report.window_recall == 100.0

    # Only unanswerable questions evaluated: there is no recall to report.
    data = json.loads(V2.read_text())
    music = data["data"][1]
    music["paragraphs"][0]["qas"] = [
        qa for qa in music["paragraphs"][0]["qas"] if qa["is_impossible"]
    ]
    path = tmp_path / "no-answers.json"
    path.write_text(json.dumps({"version": "v2.0", "data": [music]}))
    report = evaluate(path, ReadEverything(), level="document")
    assert (report.total, report.window_recall) == (1, None)
    assert report.to_json()["window_recall"] is None
    assert "HasAns_total" not in report.to_json() and report.NoAns_total == 1


def test_gold_in_windows_edges():
    windows = (WindowRef(0, 10, 20),)
    assert gold_in_windows([(10, 20)], windows, 0)
    assert not gold_in_windows([(9, 20)], windows, 0)
    assert not gold_in_windows([(10, 21)], windows, 0)
    assert not gold_in_windows([(12, 15)], windows, 1)
    assert not gold_in_windows([], windows, 0)


def test_limit_takes_the_first_questions_and_reports_progress():
    seen: list[tuple[int, int]] = []
    report = evaluate(
        V1, GoldReader(V1), level="document", limit=5, progress=lambda *a: seen.append(a)
    )
    assert list(report.predictions) == ["r1", "r2", "r3", "r4", "t1"]
    assert report.total == 5
    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_per_article_samples_every_article_before_the_limit():
    report = evaluate(V1, GoldReader(V1), level="document", per_article=2)
    assert list(report.predictions) == ["r1", "r2", "t1", "t2"]
    assert report.exact == 100.0
    report = evaluate(V1, GoldReader(V1), level="paragraph", per_article=1, limit=1)
    assert list(report.predictions) == ["r1"]


def test_v20_keys_are_decided_by_the_file_not_by_the_limit():
    # The first question of the v2.0 file is answerable: no NoAns split, but still a v2.0 report.
    report = evaluate(V2, GoldReader(V2), level="paragraph", limit=1)
    keys = report.to_json()
    assert keys["HasAns_total"] == 1
    assert "NoAns_total" not in keys
    assert "best_f1_thresh" in keys


def test_limit_zero_is_an_input_error():
    with pytest.raises(InputError, match="no questions"):
        evaluate(V1, GoldReader(V1), limit=0)


def test_report_json_has_the_documented_keys_and_is_strict_json():
    report = evaluate(V2, GoldReader(V2), level="document")
    data = report.to_json()
    assert list(data) == [
        "exact",
        "f1",
        "total",
        "HasAns_exact",
        "HasAns_f1",
        "HasAns_total",
        "NoAns_exact",
        "NoAns_f1",
        "NoAns_total",
        "best_exact",
        "best_exact_thresh",
        "best_f1",
        "best_f1_thresh",
        "window_recall",
        "questions_per_s",
        "windows_per_question",
        "seconds",
        "level",
    ]
    assert "predictions" not in data
    json.dumps(data, allow_nan=False)
    assert data["questions_per_s"] > 0 and data["seconds"] >= 0


def test_unread_questions_give_finite_json():
    # null_score_diff None (nothing read) must not leak -inf into JSON.
    report = evaluate(V2, WindowlessReader(), level="paragraph")
    json.dumps(report.to_json(), allow_nan=False)
    assert report.window_recall == 0.0
    assert report.best_exact == pytest.approx(100 * 3 / 7)  # all "" → the 3 unanswerable right


class WindowlessReader:
    def predict(self, question: str, documents: Sequence[Document]) -> Prediction:
        return Prediction((), None, ())


def test_questions_per_s_leaves_out_the_first_question(monkeypatch):
    # A reader whose first call (model loading) takes 10 s and each later one 0.01 s, on a
    # clock of its own: the rate is exact, whatever the machine's speed.
    import time

    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])

    class SlowStart(GoldReader):
        def predict(self, question, documents):
            now[0] += 0.01 if self.calls else 10.0
            return super().predict(question, documents)

    report = evaluate(V1, SlowStart(V1), level="paragraph")
    n = len(raw_questions(V1))
    assert n > 1
    assert report.seconds == pytest.approx(10.0 + 0.01 * (n - 1))
    assert report.questions_per_s == pytest.approx(100.0)  # with the first call: below 1/s


def test_to_json_turns_infinities_into_null():
    report = EvalReport("document", 0.0, 0.0, 1, None, math.inf, 0.0, 0.0, {"q": ""})
    assert report.to_json()["questions_per_s"] is None
    assert report.to_json()["window_recall"] is None


def test_cli_eval_json_with_a_per_article_sample(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from docqa.cli import app

    preds = tmp_path / "preds.json"
    result = CliRunner().invoke(
        app,
        [
            "eval", str(V1), "--model", str(tiny_model), "--per-article", "1", "--json",
            "--precision", "fp32", "--no-dense", "--predictions", str(preds),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["total"], report["per_article"], report["level"]) == (2, 1, "document")
    assert sorted(json.loads(preds.read_text())) == ["r1", "t1"]
