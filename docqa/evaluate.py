"""``docqa eval``: SQuAD EM/F1, window recall and throughput of a reader on a SQuAD file.

The reader is only used through ``predict(question, documents) -> Prediction``, so anything
with that method can be measured (``docqa.DocQA``, or a fake in tests).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Protocol

from docqa.errors import InputError
from docqa.metrics import na_prob_of, squad_evaluate
from docqa.squad import Level, Span, build_examples, iter_questions, read_squad
from docqa.types import Document, Prediction, WindowRef

Progress = Callable[[int, int], None]

# Keys of ``EvalReport.to_json()`` in the order they are printed; the SQuAD ones keep the
# official v2.0 script's names so existing tooling reads them.
_JSON_KEYS = (
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
)


class Predictor(Protocol):
    """What ``evaluate`` needs of a reader: ``docqa.DocQA`` has it."""

    def predict(self, question: str, documents: Sequence[Document]) -> Prediction: ...


@dataclass(frozen=True)
class EvalReport:
    """Scores of one evaluation run; percentages are 0–100 as in the official SQuAD scripts.

    ``HasAns_*``/``NoAns_*``/``best_*`` are None unless the file has unanswerable questions
    (SQuAD 2.0); ``HasAns_*``/``NoAns_*`` are also None when the evaluated questions hold none
    of that kind. ``best_*_thresh`` is in the units of ``Prediction.null_score_diff`` (raw
    logits): the no-answer threshold that would have scored best. ``window_recall`` is None
    when no evaluated question is answerable. ``questions_per_s`` leaves out the first
    question, which pays for loading the model; ``seconds`` is the whole run.
    """

    level: Level
    exact: float
    f1: float
    total: int
    window_recall: float | None
    questions_per_s: float
    windows_per_question: float
    seconds: float
    predictions: dict[str, str] = field(repr=False)  # official {id: answer} format
    HasAns_exact: float | None = None
    HasAns_f1: float | None = None
    HasAns_total: int | None = None
    NoAns_exact: float | None = None
    NoAns_f1: float | None = None
    NoAns_total: int | None = None
    best_exact: float | None = None
    best_exact_thresh: float | None = None
    best_f1: float | None = None
    best_f1_thresh: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (no predictions); absent v2.0 keys are left out.

        >>> r = EvalReport("paragraph", 50.0, 75.0, 2, 100.0, 8.0, 1.0, 0.3, {"q": "x"})
        >>> r.to_json()["f1"], "HasAns_exact" in r.to_json()
        (75.0, False)
        """
        out: dict[str, Any] = {}
        for key in _JSON_KEYS:
            value = getattr(self, key)
            if value is None and key.startswith(("HasAns_", "NoAns_", "best_")):
                continue
            # JSON has no infinities; a threshold can only be infinite when nothing was read.
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            out[key] = value
        return out


def gold_in_windows(gold: Sequence[Span], windows: Sequence[WindowRef], doc_index: int) -> bool:
    """Whether any gold span lies entirely inside one window read of document ``doc_index``.

    A gold answer split across two windows does not count: no single window could return it.

    >>> w = (WindowRef(0, 0, 100), WindowRef(0, 80, 200))
    >>> gold_in_windows([(90, 120)], w, 0), gold_in_windows([(150, 210)], w, 0)
    (True, False)
    """
    return any(
        w.doc_index == doc_index and w.start <= start and end <= w.end
        for start, end in gold
        for w in windows
    )


def evaluate(
    data_path: str | PathLike[str],
    qa: Predictor,
    level: Level = "document",
    limit: int | None = None,
    progress: Progress | None = None,
    windows: int | None = None,
    per_article: int | None = None,
) -> EvalReport:
    """Ask ``qa`` every question of a SQuAD v1.1/v2.0 file and score its answers.

    ``level="paragraph"`` asks each question of its own paragraph; ``"document"`` asks it of
    its whole article (paragraphs joined in order), the same ``Document`` object for every
    question of the article so the reader can reuse its tokenization. ``limit`` keeps the
    first N questions in file order; ``per_article`` the first N of every article (a sample
    spread over the whole file), before ``limit``. ``progress(done, total)`` is called after
    each question.
    ``windows=N`` asks the reader to read only the N windows its retriever ranks best
    (``qa.predict(question, documents, windows=N)``); window recall then measures retrieval.

    >>> import docqa  # doctest: +SKIP
    >>> report = evaluate("dev-v1.1.json", docqa.DocQA(), level="paragraph")  # doctest: +SKIP
    >>> report.exact, report.f1, report.window_recall  # doctest: +SKIP
    (86.9, 93.2, 100.0)
    """
    articles = read_squad(data_path)
    # Decided on the whole file, so --limit does not change which keys the report has.
    with_no_answer = any(q.is_impossible for q in iter_questions(articles))
    groups = build_examples(articles, level, limit, per_article)
    total = sum(len(g.questions) for g in groups)
    if total == 0:
        raise InputError(f"no questions to evaluate in {data_path}")

    predictions: dict[str, str] = {}
    na_probs: dict[str, float] = {}
    answers: dict[str, tuple[str, ...]] = {}
    answerable = recalled = windows_read = 0
    done = 0
    started = time.perf_counter()
    first_done = started
    for group in groups:
        documents = (group.document,)  # one tuple per group: same objects for every question
        for question, gold in zip(group.questions, group.gold_spans, strict=True):
            if windows is None:
                prediction = qa.predict(question.question, documents)
            else:
                prediction = qa.predict(question.question, documents, windows=windows)
            predictions[question.id] = prediction.answers[0].text if prediction.answers else ""
            na_probs[question.id] = na_prob_of(prediction.null_score_diff)
            answers[question.id] = question.answers
            windows_read += len(prediction.windows_read)
            if gold:
                answerable += 1
                recalled += gold_in_windows(gold, prediction.windows_read, doc_index=0)
            done += 1
            if done == 1:
                first_done = time.perf_counter()
            if progress is not None:
                progress(done, total)
    finished = time.perf_counter()

    scores = squad_evaluate(predictions, answers, na_probs=na_probs, no_answer_keys=with_no_answer)
    # The first question pays for the lazy model load; leaving it out gives the steady rate.
    timed, seconds = (total - 1, finished - first_done) if total > 1 else (1, finished - started)
    return EvalReport(
        level=level,
        exact=float(scores["exact"]),
        f1=float(scores["f1"]),
        total=int(scores["total"]),
        window_recall=100.0 * recalled / answerable if answerable else None,
        questions_per_s=timed / seconds if seconds > 0 else math.inf,
        windows_per_question=windows_read / total,
        seconds=finished - started,
        predictions=predictions,
        **{k: v for k, v in scores.items() if k not in ("exact", "f1", "total")},
    )
