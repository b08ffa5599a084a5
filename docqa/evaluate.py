"""``docqa eval``: SQuAD EM/F1, window recall and throughput of a reader on a SQuAD file.

The reader is only used through ``predict(question, documents) -> Prediction``, so anything
with that method can be measured (``docqa.DocQA``, or a fake in tests).

``evaluate_docs`` scores questions about the user's own files (a JSONL file) through the
path ``docqa ask`` takes (``ask_paths``: loaders, index, retrieval, reader), so a change
anywhere on that path shows in the figures. A reader that answers many questions at once
(`BatchAsker`: a corpus on Ray) is given them all together; `squad_files` turns a SQuAD file's
articles into files and questions about them, so SQuAD is measured on that path too.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from docqa.api import DEFAULT_CHUNKS
from docqa.errors import InputError
from docqa.loaders import LoadResult
from docqa.metrics import na_prob_of, question_scores, squad_evaluate
from docqa.squad import (
    Level,
    Span,
    build_examples,
    iter_questions,
    join_article,
    per_article,
    read_squad,
)
from docqa.types import Document, FileStatus, Prediction, WindowRef

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
    chunks: int | None = None,
    per_article: int | None = None,
) -> EvalReport:
    """Ask ``qa`` every question of a SQuAD v1.1/v2.0 file and score its answers.

    ``level="paragraph"`` asks each question of its own paragraph; ``"document"`` asks it of
    its whole article (paragraphs joined in order), the same ``Document`` object for every
    question of the article so the reader can reuse its tokenization. ``limit`` keeps the
    first N questions in file order; ``per_article`` the first N of every article (a sample
    spread over the whole file), before ``limit``. ``progress(done, total)`` is called after
    each question.
    ``chunks=N`` asks the reader to read only the N chunks its retriever ranks best
    (``qa.predict(question, documents, chunks=N)``); window recall then measures retrieval.

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
            if chunks is None:
                prediction = qa.predict(question.question, documents)
            else:
                prediction = qa.predict(question.question, documents, chunks=chunks)
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


# --- questions about the user's own files (``docqa eval QUESTIONS.jsonl --docs PATH``) ---


class PathAsker(Protocol):
    """What ``evaluate_docs`` needs of a reader: ``docqa.DocQA`` has it."""

    def index(self, paths: Iterable[str | os.PathLike], progress: Any = None) -> Any: ...

    def ask_paths(
        self,
        question: str,
        paths: Iterable[str | os.PathLike],
        top_k: int = 1,
        chunks: int | None = ...,
    ) -> tuple[Prediction, Any]: ...


@runtime_checkable
class BatchAsker(PathAsker, Protocol):
    """A `PathAsker` that answers many questions at once (`docqa.scale.CorpusQA` on Ray):
    the best answer's text for each question, asked of ``paths[i]``."""

    def ask_batch(
        self,
        questions: Sequence[str],
        paths: Sequence[Sequence[str | os.PathLike]],
        chunks: int | None = ...,
    ) -> list[str]: ...


@dataclass(frozen=True)
class DocsQuestion:
    """One line of a questions file: gold answers, and the file to ask it of (None: all)."""

    id: str
    question: str
    answers: tuple[str, ...]
    file: str | None = None
    split: str | None = None
    line: int = 0


def read_questions(
    path: str | PathLike[str], split: str | None = None, answers: bool = True
) -> list[DocsQuestion]:
    """The questions of a JSONL file, one JSON object a line, in file order.

    Each line holds ``id`` (string or integer), ``question`` (text), ``answers`` (a non-empty
    list of gold texts; optional with ``answers=False``, for questions only to be answered)
    and optionally ``file`` (the one file to ask it of, relative to the
    documents given) and ``split``; other keys (``page``, notes) are ignored. Blank lines are
    skipped. With ``split``, only lines whose ``split`` equals it are kept. A line that breaks
    these rules raises `InputError` naming its line number.

    >>> read_questions("questions.jsonl", split="dev")[0].answers  # doctest: +SKIP
    ('R_LIBS_USER', 'R_LIBS_USER environment variable')
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"No such questions file: {path}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read the questions file {path}: {exc}.") from None
    questions: list[DocsQuestion] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        question = _parse_line(line, f"{path}, line {number}", number, answers)
        if question.id in seen:
            raise InputError(
                f"{path}, line {number}: id {question.id!r} was already used on line "
                f"{seen[question.id]}."
            )
        seen[question.id] = number
        if split is None or question.split == split:
            questions.append(question)
    return questions


def _parse_line(line: str, where: str, number: int, need_answers: bool = True) -> DocsQuestion:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg}).") from None
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object with id, question and answers.")
    if not need_answers:
        record.setdefault("answers", None)
    missing = [key for key in ("id", "question", "answers") if key not in record]
    if missing:
        raise InputError(f"{where}: missing {', '.join(repr(k) for k in missing)}.")
    qid = record["id"]
    # bool is an int subclass, and an id of true is surely a mistake.
    if isinstance(qid, bool) or not isinstance(qid, (str, int)) or str(qid) == "":
        raise InputError(f"{where}: 'id' must be a non-empty string or an integer.")
    question = record["question"]
    if not isinstance(question, str) or not question.strip():
        raise InputError(f"{where}: 'question' must be non-empty text.")
    answers = record["answers"]
    if answers is None and not need_answers:
        answers = []
    elif (
        not isinstance(answers, list)
        or not answers
        or not all(isinstance(a, str) and a.strip() for a in answers)
    ):
        raise InputError(f"{where}: 'answers' must be a non-empty list of non-empty strings.")
    file = record.get("file")
    if file is not None and (not isinstance(file, str) or not file.strip()):
        raise InputError(f"{where}: 'file' must be a file name.")
    if file is not None and (Path(file).is_absolute() or ".." in Path(file).parts):
        raise InputError(f"{where}: 'file' must be relative to the documents given, not {file!r}.")
    split = record.get("split")
    if split is not None and not isinstance(split, str):
        raise InputError(f"{where}: 'split' must be a string.")
    return DocsQuestion(str(qid), question, tuple(answers), file, split, number)


def resolve_file(name: str, docs: Sequence[str | PathLike[str]]) -> Path | None:
    """The one path ``name`` points to among ``docs``, or None when none holds it.

    A folder holds ``name`` when ``folder / name`` is a file; a file given directly is
    ``name`` when its path ends with ``name``. `InputError` when two different files match.

    >>> resolve_file("a.pdf", ["/nowhere"]) is None
    True
    """
    wanted = Path(name).parts
    found: dict[str, Path] = {}
    for root in map(Path, docs):
        if root.is_dir():
            candidate = root / name
            if candidate.is_file():
                found.setdefault(os.path.realpath(candidate), candidate)
        elif root.is_file() and root.parts[-len(wanted) :] == wanted:
            found.setdefault(os.path.realpath(root), root)
    if len(found) > 1:
        shown = ", ".join(str(p) for p in found.values())
        raise InputError(f"{name!r} names more than one of the documents given: {shown}.")
    return next(iter(found.values()), None)


# Shapes of a wrong answer that no reader of the page would give: text lifted from page
# furniture (running heads, page numbers, contents lines) rather than from the body.
_NUMBER_ONLY = re.compile(r"\W*\d+\W*")
_BREAK_THEN_NUMBER = re.compile(r"\n\s*\d")  # "66\n9 R coding standards", "47\n8.4"
_CONTENTS_LEADER = re.compile(r"(?:\.\s*){4,}\d")  # "Group methods . . . . 34"


def furniture_kind(text: str) -> str | None:
    """Why ``text`` looks like page furniture rather than an answer, or None when it does not.

    The kinds: ``"number only"`` (one whole number, such as a page number; a version like
    4.2.1 is not one), ``"punctuation only"``, ``"line break + number"`` (a span running over
    a line break into a number: a page number or a numbered heading), ``"contents leader"``
    (a dot leader followed by a page number). The empty answer ("no answer") is not furniture.

    >>> furniture_kind("33"), furniture_kind("66\\n9 R coding"), furniture_kind("4.2.1")
    ('number only', 'line break + number', None)
    """
    stripped = text.strip()
    if not stripped:
        return None
    if not any(ch.isalnum() for ch in stripped):
        return "punctuation only"
    if _NUMBER_ONLY.fullmatch(stripped):
        return "number only"
    if _CONTENTS_LEADER.search(stripped):
        return "contents leader"
    if _BREAK_THEN_NUMBER.search(stripped):
        return "line break + number"
    return None


@dataclass(frozen=True)
class DocsEvalReport:
    """Scores of questions asked of the user's own files; percentages are 0–100.

    ``exact``/``f1`` follow the official SQuAD rules (normalised text, best over the gold
    answers). ``furniture`` maps the id of each wrong answer (exact match 0) that looks like
    page furniture to its kind (`furniture_kind`); a right answer is never counted, so a
    question whose gold is a number does not inflate it. ``chunks`` is the reading depth
    (None: every window). ``questions_per_s`` leaves out the first question, which pays for
    loading the model; ``seconds`` is the whole run, indexing included. ``files`` holds the
    status of every file indexed (the ones not read are worth showing).
    """

    exact: float
    f1: float
    total: int
    furniture: dict[str, str]
    chunks: int | None
    split: str | None
    questions_per_s: float
    seconds: float
    predictions: dict[str, str] = field(repr=False)  # {id: answer}, as the SQuAD scripts take
    files: tuple[FileStatus, ...] = field(default=(), repr=False)  # what indexing each path did

    @property
    def furniture_answers(self) -> int:
        """How many wrong answers look like page furniture."""
        return len(self.furniture)

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (no predictions).

        >>> r = DocsEvalReport(50.0, 60.0, 2, {"q2": "number only"}, 10, "dev", 2.0, 1.5, {})
        >>> r.to_json()["furniture_answers"], r.to_json()["furniture"]
        (1, {'q2': 'number only'})
        """
        rate = self.questions_per_s
        return {
            "exact": self.exact,
            "f1": self.f1,
            "total": self.total,
            "furniture_answers": self.furniture_answers,
            "furniture": dict(self.furniture),
            "chunks": self.chunks,
            "split": self.split,
            "questions_per_s": rate if math.isfinite(rate) else None,  # JSON has no infinity
            "seconds": self.seconds,
        }


def squad_files(
    data_path: str | PathLike[str],
    folder: str | PathLike[str],
    per_article_n: int | None = None,
    limit: int | None = None,
) -> list[DocsQuestion]:
    """A SQuAD file as files and questions about them: each article written to ``folder``
    as ``article-NNNN.txt`` (its paragraphs joined as at document level), each answerable
    question asked of its article's file (the first ``per_article_n`` of every article,
    then the first ``limit``), for `evaluate_docs`.
    """
    articles = per_article(read_squad(data_path), per_article_n)
    questions: list[DocsQuestion] = []
    for i, article in enumerate(articles):
        name = f"article-{i:04d}.txt"
        Path(folder, name).write_text(join_article(article)[0], encoding="utf-8")
        questions += [
            DocsQuestion(q.id, q.question, q.answers, name) for q in article.questions if q.answers
        ]
    questions = questions[:limit] if limit is not None else questions
    if not questions:
        raise InputError(f"No answerable questions to evaluate in {data_path}.")
    return questions


def evaluate_docs(
    questions_path: str | PathLike[str] | Sequence[DocsQuestion],
    qa: PathAsker,
    docs: Sequence[str | PathLike[str]],
    chunks: int | None = DEFAULT_CHUNKS,
    split: str | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
    index_progress: Callable[[int, int, str], None] | None = None,
) -> DocsEvalReport:
    """Ask ``qa`` each question of a JSONL file (or each of a list of `DocsQuestion`) about
    the files in ``docs`` and score it.

    Each question goes through ``qa.ask_paths`` (the ``docqa ask`` path: index, retrieval
    of the ``chunks`` best chunks, or every window with None, then the reader) over all of
    ``docs``, or over its ``file`` alone when the line names one; the best answer's text is
    scored against the line's ``answers`` (see `read_questions` for the format). ``split``
    keeps the lines of that split, ``limit`` the first N of them. The file is read and every
    ``file`` resolved before anything is indexed, so a bad line fails at once; then ``docs``
    are indexed once (``index_progress(done, total, path)`` after each file) and a question
    whose own file could not be read fails before the first question is asked.
    ``progress(done, total)`` is called after each question; a `BatchAsker` is given every
    question at once instead.

    >>> import docqa  # doctest: +SKIP
    >>> report = evaluate_docs("questions.jsonl", docqa.DocQA(), ["manuals/"])  # doctest: +SKIP
    >>> report.exact, report.f1, report.furniture_answers  # doctest: +SKIP
    (50.0, 54.2, 3)
    """
    docs = [Path(p) for p in docs]
    if not docs:
        raise InputError("No documents were given to ask the questions of.")
    for p in docs:
        if not os.path.lexists(p):
            raise InputError(f"No such file or folder: {p}.")
    if isinstance(questions_path, (str, PathLike)):
        questions = read_questions(questions_path, split)
    else:
        questions = [q for q in questions_path if split is None or q.split == split]
    if limit is not None:
        questions = questions[:limit]
    if not questions:
        which = f" with split {split!r}" if split is not None else ""
        raise InputError(f"No questions{which} to evaluate in {questions_path}.")
    targets: list[list[Path]] = []
    for q in questions:
        if q.file is None:
            targets.append(docs)
            continue
        path = resolve_file(q.file, docs)
        if path is None:
            raise InputError(
                f"{questions_path}, line {q.line}: file {q.file!r} is not among the documents "
                "given."
            )
        targets.append([path])

    started = time.perf_counter()
    indexed = qa.index(docs, progress=index_progress)
    indexed_at = time.perf_counter()
    statuses = tuple(indexed.statuses)
    if not indexed.doc_ids:
        LoadResult((), statuses).require_documents()
    unread = {os.path.abspath(s.path): s for s in statuses if s.state != "ok"}
    for q, paths in zip(questions, targets, strict=True):
        status = unread.get(os.path.abspath(paths[0])) if q.file is not None else None
        if status is not None:
            raise InputError(
                f"{questions_path}, line {q.line}: {q.file!r} could not be read "
                f"({status.state}: {status.reason.rstrip('.')})."
            )

    answers = {q.id: q.answers for q in questions}
    first_done = started
    if isinstance(qa, BatchAsker):
        texts = qa.ask_batch([q.question for q in questions], targets, chunks)
        predictions = {q.id: text for q, text in zip(questions, texts, strict=True)}
    else:
        predictions = {}
        for done, (q, paths) in enumerate(zip(questions, targets, strict=True), start=1):
            prediction, _ = qa.ask_paths(q.question, paths, 1, chunks)
            predictions[q.id] = prediction.answers[0].text if prediction.answers else ""
            if done == 1:
                first_done = time.perf_counter()
            if progress is not None:
                progress(done, len(questions))
    finished = time.perf_counter()

    scores = squad_evaluate(predictions, answers, no_answer_keys=False)
    furniture: dict[str, str] = {}
    for qid, text in predictions.items():
        kind = furniture_kind(text)
        if kind is not None and not question_scores(text, answers[qid])[0]:
            furniture[qid] = kind
    total = len(questions)
    if isinstance(qa, BatchAsker):  # its readers load inside the batch: nothing to leave out
        timed, seconds = total, finished - indexed_at
    elif total > 1:
        timed, seconds = total - 1, finished - first_done
    else:
        timed, seconds = 1, finished - started
    return DocsEvalReport(
        exact=float(scores["exact"]),
        f1=float(scores["f1"]),
        total=int(scores["total"]),
        furniture=furniture,
        chunks=chunks,
        split=split,
        questions_per_s=timed / seconds if seconds > 0 else math.inf,
        seconds=finished - started,
        predictions=predictions,
        files=statuses,
    )
