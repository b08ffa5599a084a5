"""SQuAD exact match and F1, computed exactly as the official v2.0 evaluation script does.

Why not torchmetrics: its SQuAD helpers (``torchmetrics.functional.text.squad._normalize_text``,
``_compute_f1_score``, ``_compute_exact_match_score``) follow the official v2.0 rules, but they
are private (no stability promise), return float32 tensors (the official script works in
float64, and the best-threshold sweep breaks ties on running sums, so float32 can move
``best_*_thresh``), and the public ``squad()`` only returns averages, so the HasAns/NoAns splits
and the no-answer threshold cannot be built on it. The few lines below are a transcription of
the official functions; ``tests/test_metrics.py`` checks them against hand-computed cases and,
where torchmetrics is installed, against its helpers on many strings.

One rule set serves v1.1 and v2.0 files. The official v1.1 script differs from v2.0 only when a
gold answer normalises to the empty string (v2.0 drops such golds, and scores F1 1 when gold
and prediction are both empty, where v1.1 scores 0); no gold of the SQuAD v1.1 dev or train
data normalises to empty, so on them both scripts give the same figures.

All figures are percentages (0–100), as the official scripts print them.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower case, drop ASCII punctuation, drop the articles a/an/the, collapse white space.

    The order matters (punctuation goes before articles, so "the-end" → "theend" keeps "the"),
    and it is the official order.

    >>> normalize_answer("The  Eiffel-Tower!")
    'eiffeltower'
    >>> normalize_answer("an apple and A pear")
    'apple and pear'
    """
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def exact_score(prediction: str, gold: str) -> int:
    """1 when prediction and gold are equal after normalisation, else 0.

    >>> exact_score("the Eiffel Tower", "Eiffel tower.")
    1
    """
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-overlap F1 of normalised prediction and gold; 1.0 when both are empty (no answer).

    >>> round(f1_score("Eiffel Tower in Paris", "the Eiffel Tower"), 4)  # P=2/4, R=2/2
    0.6667
    >>> f1_score("", "")
    1
    """
    gold_tokens = _tokens(gold)
    pred_tokens = _tokens(prediction)
    if not gold_tokens or not pred_tokens:
        # An empty answer means "no answer": right only if both say so.
        return int(gold_tokens == pred_tokens)
    num_same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if num_same == 0:
        return 0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def gold_texts(answers: Sequence[str]) -> list[str]:
    """The gold answers the official v2.0 script scores against: ``[""]`` for no answer.

    >>> gold_texts(["Paris", "  the "]), gold_texts([])
    (['Paris'], [''])
    """
    golds = [a for a in answers if normalize_answer(a)]
    return golds or [""]


def question_scores(prediction: str, answers: Sequence[str]) -> tuple[int, float]:
    """(EM, F1) of one prediction, each the maximum over the question's gold answers.

    >>> question_scores("Paris", ["Paris, France", "paris"])
    (1, 1.0)
    >>> question_scores("", [])  # unanswerable, and predicted so
    (1, 1)
    """
    golds = gold_texts(answers)
    return (
        max(exact_score(prediction, g) for g in golds),
        max(f1_score(prediction, g) for g in golds),
    )


def find_best_thresh(
    predictions: Mapping[str, str],
    scores: Mapping[str, float],
    na_probs: Mapping[str, float],
    has_answer: Mapping[str, bool],
) -> tuple[float, float]:
    """Best score (0–100) over no-answer thresholds, and the threshold reaching it.

    The official sweep: with a threshold below every ``na_prob`` all questions are predicted
    unanswerable, which scores the unanswerable ones. Raising it past each question in order
    of ``na_prob`` lets that question keep its prediction: an answerable one gains its score, an
    unanswerable one loses its point if a span was predicted. Only strict improvements move the
    threshold, so ties keep the lowest one, and it starts at 0.0 as in the script.

    >>> preds = {"a": "x", "b": "y", "c": ""}
    >>> find_best_thresh(preds, {"a": 1, "b": 0, "c": 1}, {"a": -2.0, "b": 1.0, "c": 3.0},
    ...                  {"a": True, "b": False, "c": False})
    (100.0, -2.0)
    """
    num_no_ans = sum(1 for qid in has_answer if not has_answer[qid])
    cur_score = float(num_no_ans)
    best_score = cur_score
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            diff = scores[qid]
        elif predictions[qid]:
            diff = -1  # a span predicted for an unanswerable question
        else:
            diff = 0
        cur_score += diff
        if cur_score > best_score:
            best_score = cur_score
            best_thresh = na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


def squad_evaluate(
    predictions: Mapping[str, str],
    answers: Mapping[str, Sequence[str]],
    na_probs: Mapping[str, float] | None = None,
    no_answer_keys: bool | None = None,
) -> dict[str, float | int]:
    """The official v2.0 result dict for predictions keyed by question id.

    ``answers`` maps every question id to its gold texts (empty for unanswerable). The main
    ``exact``/``f1`` score the predictions as given: a question counts as predicted
    unanswerable when its prediction is "" (the reader already applied its own threshold, so
    the script's ``--na-prob-thresh`` step is not repeated). ``no_answer_keys`` adds the
    ``HasAns_*``/``NoAns_*`` splits (each only when it has questions) and, given ``na_probs``
    (higher = more likely unanswerable), the ``best_*`` keys; by default it is on when some
    question is unanswerable. Every question needs a prediction.

    >>> squad_evaluate({"q1": "Paris", "q2": "in 1889"}, {"q1": ["Paris"], "q2": ["1889"]})
    {'exact': 50.0, 'f1': 83.33333333333333, 'total': 2}
    """
    missing = [qid for qid in answers if qid not in predictions]
    if missing:
        raise ValueError(f"no prediction for {len(missing)} question(s), e.g. {missing[0]}")
    if not answers:
        raise ValueError("no questions to score")
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    for qid, golds in answers.items():
        exact[qid], f1[qid] = question_scores(predictions[qid], golds)
    has_answer = {qid: bool(golds) for qid, golds in answers.items()}

    def block(qids: Sequence[str]) -> tuple[float, float, int]:
        n = len(qids)
        return 100.0 * sum(exact[q] for q in qids) / n, 100.0 * sum(f1[q] for q in qids) / n, n

    result: dict[str, float | int] = {}
    result["exact"], result["f1"], result["total"] = block(list(answers))
    if no_answer_keys is None:
        no_answer_keys = not all(has_answer.values())
    if not no_answer_keys:
        return result
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [q for q, has in has_answer.items() if has == wanted]
        if qids:
            ex, f, n = block(qids)
            result[f"{prefix}_exact"], result[f"{prefix}_f1"], result[f"{prefix}_total"] = ex, f, n
    if na_probs is not None:
        preds = {qid: predictions[qid] for qid in answers}
        probs = {qid: na_probs[qid] for qid in answers}
        result["best_exact"], result["best_exact_thresh"] = find_best_thresh(
            preds, exact, probs, has_answer
        )
        result["best_f1"], result["best_f1_thresh"] = find_best_thresh(preds, f1, probs, has_answer)
    return result


def na_prob_of(null_score_diff: float | None) -> float:
    """A reader's ``null_score_diff`` as the official script's ``na_prob``.

    None means no window was read, so the reader had no evidence either way: it sorts below
    every real score, so no threshold ever turns it into a no-answer prediction.

    >>> na_prob_of(None)
    -inf
    """
    return -math.inf if null_score_diff is None else float(null_score_diff)
