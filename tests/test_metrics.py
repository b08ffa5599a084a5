"""SQuAD EM/F1 against values computed by hand, for the v1.1 and v2.0 fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from docqa.metrics import (
    exact_score,
    f1_score,
    find_best_thresh,
    gold_texts,
    na_prob_of,
    normalize_answer,
    question_scores,
    squad_evaluate,
)
from docqa.squad import iter_questions, read_squad

FIXTURES = Path(__file__).parent / "fixtures"


def golds_of(path: Path) -> dict[str, tuple[str, ...]]:
    return {q.id: q.answers for q in iter_questions(read_squad(path))}


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  an\tApple,  A pear.  ", "apple pear"),
        ("theatre", "theatre"),  # articles only as whole words
        ("the-end", "theend"),  # punctuation goes first, so "the" is no longer a word
        ("north-flowing", "northflowing"),
        ("99.86%", "9986"),
        ("Ångström’s", "ångström’s"),  # only ASCII punctuation is stripped, as officially
        ("the", ""),
        ("«the»", "« »"),  # an article is replaced by a space, not deleted
    ],
)
def test_normalize_answer_follows_the_official_steps(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_f1_counts_repeated_tokens_once_per_occurrence():
    # pred [paris, paris, france] vs gold [paris]: common = min(2, 1) = 1, P=1/3, R=1 → F1 0.5
    assert f1_score("Paris Paris France", "Paris") == pytest.approx(0.5)


def test_empty_answers_mean_no_answer():
    assert gold_texts(["the", " "]) == [""]  # golds that normalise to nothing are dropped
    assert question_scores("", []) == (1, 1)
    assert question_scores("A", []) == (1, 1)  # "A" normalises to "" too: officially no answer
    assert question_scores("Paris", []) == (0, 0)
    assert question_scores("", ["Paris"]) == (0, 0)


def test_v11_fixture_hand_computed():
    predictions = {
        # gold "north-flowing" → [northflowing]; pred → [northflowing, river]: P=1/2 R=1 F1=2/3
        # gold "north" shares nothing. EM 0, F1 2/3.
        "r1": "North-flowing river",
        # equals gold "South America" after dropping the full stop: EM 1, F1 1.
        "r2": "South America.",
        # gold "the Black Forest" loses its article: EM 1, F1 1.
        "r3": "Black Forest",
        # [black, forest] vs [black, sea] (and vs [black, sea] again): P=R=1/2, F1 1/2. EM 0.
        "r4": "the Black Forest",
        # [completed, in, 1889, for] vs [1889]: P=1/4 R=1 F1=0.4;
        # vs [in, 1889]: P=2/4 R=1 F1=2/3 → max 2/3. EM 0.
        "t1": "completed in 1889 for",
        "t2": "Paris",  # nothing in common: 0, 0
        "t3": "",  # no answer given for an answerable question: 0, 0
    }
    result = squad_evaluate(predictions, golds_of(FIXTURES / "squad-v1.1-tiny.json"))
    # EM: 2/7. F1: (2/3 + 1 + 1 + 1/2 + 2/3 + 0 + 0) / 7 = (23/6) / 7 = 23/42.
    assert result == {
        "exact": pytest.approx(100 * 2 / 7),
        "f1": pytest.approx(100 * 23 / 42),
        "total": 7,
    }
    assert set(result) == {"exact", "f1", "total"}  # no v2.0 keys for a v1.1 file


V2_PREDICTIONS = {
    "s1": "the sun",  # gold "The Sun": EM 1, F1 1
    "s2": "",  # unanswerable, predicted so: EM 1, F1 1
    # [95, moons] vs [95]: P=1/2 R=1 F1=2/3; vs [95, known, moons]: P=1 R=2/3 F1=0.8 → 0.8. EM 0.
    "s3": "95 moons",
    "s4": "95",  # unanswerable but answered: 0, 0
    "s5": "",  # answerable but predicted unanswerable: 0, 0
    "m1": "Bonn",  # 1, 1
    "m2": "in 1827",  # unanswerable but answered: 0, 0
}
V2_NA_PROBS = {"s1": -3.0, "m1": -2.0, "s3": -1.0, "m2": -0.5, "s4": 0.5, "s5": 1.5, "s2": 2.0}


def test_v20_fixture_hand_computed():
    result = squad_evaluate(
        V2_PREDICTIONS, golds_of(FIXTURES / "squad-v2.0-tiny.json"), na_probs=V2_NA_PROBS
    )
    # Best-threshold sweep in na_prob order, starting from "all unanswerable" = 3 points
    # (s2, s4, m2), best_thresh 0.0:
    #            EM:  s1 +1 → 4 (thr -3.0)   F1:  s1 +1   → 4   (thr -3.0)
    #                 m1 +1 → 5 (thr -2.0)        m1 +1   → 5   (thr -2.0)
    #                 s3 +0 → 5 (tie: stays)      s3 +0.8 → 5.8 (thr -1.0)
    #                 m2 -1 → 4                   m2 -1   → 4.8
    #                 s4 -1 → 3                   s4 -1   → 3.8
    #                 s5 +0, s2 +0 → 3            s5 +0, s2 +0 → 3.8
    assert result == {
        "exact": pytest.approx(100 * 3 / 7),  # s1, s2, m1
        "f1": pytest.approx(100 * 3.8 / 7),  # 1 + 1 + 0.8 + 1
        "total": 7,
        "HasAns_exact": pytest.approx(100 * 2 / 4),  # s1, m1 of s1, s3, s5, m1
        "HasAns_f1": pytest.approx(100 * 2.8 / 4),
        "HasAns_total": 4,
        "NoAns_exact": pytest.approx(100 * 1 / 3),  # s2 of s2, s4, m2
        "NoAns_f1": pytest.approx(100 * 1 / 3),
        "NoAns_total": 3,
        "best_exact": pytest.approx(100 * 5 / 7),
        "best_exact_thresh": -2.0,
        "best_f1": pytest.approx(100 * 5.8 / 7),
        "best_f1_thresh": -1.0,
    }


def test_v20_keys_in_the_official_order():
    result = squad_evaluate(
        V2_PREDICTIONS, golds_of(FIXTURES / "squad-v2.0-tiny.json"), na_probs=V2_NA_PROBS
    )
    assert list(result) == [
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
    ]


def test_best_thresh_stays_at_zero_when_predicting_no_answer_everywhere_is_best():
    # Both answerable questions are wrong anyway, the unanswerable one was answered:
    # every threshold above the first na_prob only loses points.
    preds = {"a": "x", "b": "y", "c": "z"}
    score, thresh = find_best_thresh(
        preds,
        {"a": 0, "b": 0, "c": 0},
        {"a": 1.0, "b": 2.0, "c": -4.0},
        {"a": True, "b": True, "c": False},
    )
    assert (score, thresh) == (pytest.approx(100 / 3), 0.0)


def test_unread_question_never_becomes_no_answer_through_the_threshold():
    assert na_prob_of(None) == float("-inf")
    assert na_prob_of(2) == 2.0


def test_missing_prediction_is_an_error():
    with pytest.raises(ValueError, match="no prediction"):
        squad_evaluate({"q1": "x"}, {"q1": ["x"], "q2": ["y"]})


def test_agrees_with_torchmetrics_squad_helpers():
    # An independent, maintained implementation of the same official rules (float32 there).
    tm = pytest.importorskip("torchmetrics.functional.text.squad")
    strings = [
        "",
        "the",
        "The Eiffel Tower",
        "Eiffel tower, Paris",
        "an apple a day",
        "north-flowing river",
        "95 known moons",
        "Paris Paris France",
        "Ångström’s law",
        "  spaced\tout\nanswer ",
        "1975 to 2007",
    ]
    for pred in strings:
        assert normalize_answer(pred) == tm._normalize_text(pred)
        for gold in strings:
            assert exact_score(pred, gold) == int(tm._compute_exact_match_score(pred, gold))
            assert f1_score(pred, gold) == pytest.approx(float(tm._compute_f1_score(pred, gold)))
