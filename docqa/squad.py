"""SQuAD v1.1 / v2.0 files as typed records, and the two evaluation settings built from them.

``paragraph`` level asks each question of the one paragraph its annotator saw (the classic
SQuAD setting). ``document`` level joins every paragraph of an article, in order, into one
long document and asks each question of all of it: the long-document setting docqa exists for.

The training code imports from here too (``read_squad``, ``join_article``, ``gold_spans``),
so that training and evaluation agree on the joined text and on where each answer lies in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any, Literal

from docqa.errors import InputError
from docqa.types import Document

Level = Literal["paragraph", "document"]
LEVELS: tuple[Level, ...] = ("paragraph", "document")

# A blank line: readers and sentence splitters see a paragraph break, and no word of one
# paragraph can merge with a word of the next.
PARAGRAPH_SEPARATOR = "\n\n"

Span = tuple[int, int]  # half-open character range [start, end)


@dataclass(frozen=True)
class SquadQuestion:
    """One question with its gold answers; offsets point into its own paragraph.

    ``answers`` is empty for a SQuAD 2.0 unanswerable question (its ``plausible_answers`` are
    deliberately not kept: they are not gold). Duplicate gold answers are kept as in the file,
    since the official scripts score against the list as given.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    answer_starts: tuple[int, ...]
    is_impossible: bool
    article_index: int
    paragraph_index: int


@dataclass(frozen=True)
class Article:
    """One ``data[]`` entry: its paragraphs in file order and all their questions in file order."""

    title: str
    paragraphs: tuple[str, ...]
    questions: tuple[SquadQuestion, ...]


@dataclass(frozen=True)
class ExampleGroup:
    """Questions asked of one ``Document``, with each question's gold spans in its text.

    At document level a group is an article, so the reader sees the same ``Document`` object
    for every question of it (and can reuse its tokenization); at paragraph level a group is
    one paragraph.
    """

    document: Document
    questions: tuple[SquadQuestion, ...]
    gold_spans: tuple[tuple[Span, ...], ...]  # parallel to ``questions``


def parse_squad(data: Mapping[str, Any]) -> list[Article]:
    """Turn a loaded SQuAD JSON object into articles; v1.1 and v2.0 alike.

    >>> arts = parse_squad({"data": [{"title": "T", "paragraphs": [{"context": "Hi Bob.",
    ...     "qas": [{"id": "q1", "question": "Who?",
    ...              "answers": [{"text": "Bob", "answer_start": 3}]}]}]}]})
    >>> arts[0].questions[0].answers, arts[0].questions[0].is_impossible
    (('Bob',), False)
    """
    try:
        entries = data["data"]
    except (KeyError, TypeError):
        raise InputError("not a SQuAD file: no top-level 'data' list") from None
    articles: list[Article] = []
    for a, entry in enumerate(entries):
        paragraphs: list[str] = []
        questions: list[SquadQuestion] = []
        for p, para in enumerate(entry["paragraphs"]):
            context = para["context"]
            paragraphs.append(context)
            for qa in para["qas"]:
                answers = qa.get("answers", [])
                texts = tuple(ans["text"] for ans in answers)
                starts = tuple(int(ans["answer_start"]) for ans in answers)
                for text, start in zip(texts, starts, strict=True):
                    # Every offset computed later (joined text, window recall, training labels)
                    # trusts these; a wrong one would silently score a correct reader as wrong.
                    if context[start : start + len(text)] != text:
                        raise InputError(
                            f"question {qa['id']}: answer {text!r} is not at "
                            f"answer_start {start} of its paragraph"
                        )
                questions.append(
                    SquadQuestion(
                        id=str(qa["id"]),
                        question=qa["question"],
                        answers=texts,
                        answer_starts=starts,
                        # v1.1 has no such field; a v2.0 record without answers is unanswerable.
                        is_impossible=bool(qa.get("is_impossible", not texts)),
                        article_index=a,
                        paragraph_index=p,
                    )
                )
        articles.append(
            Article(entry.get("title", f"article {a}"), tuple(paragraphs), tuple(questions))
        )
    return articles


def read_squad(path: str | PathLike[str]) -> list[Article]:
    """Read a SQuAD v1.1 or v2.0 JSON file.

    >>> articles = read_squad("tests/fixtures/squad-v1.1-tiny.json")  # doctest: +SKIP
    >>> articles[0].title  # doctest: +SKIP
    'Rivers'
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON: {e}") from None
    return parse_squad(data)


def join_article(article: Article) -> tuple[str, tuple[int, ...]]:
    """All paragraphs joined in order with ``PARAGRAPH_SEPARATOR``, and where each one starts.

    >>> art = Article("T", ("One.", "Two."), ())
    >>> join_article(art)
    ('One.\\n\\nTwo.', (0, 6))
    """
    starts: list[int] = []
    offset = 0
    for para in article.paragraphs:
        starts.append(offset)
        offset += len(para) + len(PARAGRAPH_SEPARATOR)
    return PARAGRAPH_SEPARATOR.join(article.paragraphs), tuple(starts)


def question_gold_spans(question: SquadQuestion, offset: int = 0) -> tuple[Span, ...]:
    """Gold answers of one question as ``(start, end)`` spans, shifted by ``offset``.

    Pass ``paragraph_starts[question.paragraph_index]`` from ``join_article`` for spans in the
    joined text, or 0 for spans in the paragraph itself. Unanswerable questions give ``()``.

    >>> q = SquadQuestion("q", "Who?", ("Bob",), (3,), False, 0, 1)
    >>> question_gold_spans(q, offset=10)
    ((13, 16),)
    """
    return tuple(
        (offset + start, offset + start + len(text))
        for text, start in zip(question.answers, question.answer_starts, strict=True)
    )


def gold_spans(article: Article) -> dict[str, tuple[Span, ...]]:
    """Every question's gold spans in the text returned by ``join_article(article)``, by id.

    >>> art = Article("T", ("One.", "Hi Bob."),
    ...               (SquadQuestion("q", "Who?", ("Bob",), (3,), False, 0, 1),))
    >>> text, _ = join_article(art)
    >>> [text[s:e] for s, e in gold_spans(art)["q"]]
    ['Bob']
    """
    _, starts = join_article(article)
    return {q.id: question_gold_spans(q, starts[q.paragraph_index]) for q in article.questions}


def iter_questions(articles: Iterable[Article]) -> Iterator[SquadQuestion]:
    """All questions in file order."""
    for article in articles:
        yield from article.questions


def limit_articles(articles: Sequence[Article], limit: int | None) -> list[Article]:
    """Keep only the first ``limit`` questions in file order (None keeps all).

    Articles and paragraphs are kept whole, since a document-level question is asked of the
    whole article even when only some of its questions are evaluated.

    >>> q = lambda i: SquadQuestion(str(i), "?", (), (), True, 0, 0)
    >>> arts = [Article("A", ("x",), (q(1), q(2))), Article("B", ("y",), (q(3),))]
    >>> [[x.id for x in a.questions] for a in limit_articles(arts, 1)]
    [['1']]
    """
    if limit is None:
        return list(articles)
    if limit < 0:
        raise InputError(f"limit must be 0 or more, got {limit}")
    kept: list[Article] = []
    left = limit
    for article in articles:
        if left <= 0:
            break
        questions = article.questions[:left]
        left -= len(questions)
        kept.append(Article(article.title, article.paragraphs, questions))
    return kept


def per_article(articles: Sequence[Article], n: int | None) -> list[Article]:
    """Keep the first ``n`` questions of every article (None keeps all).

    A sample spread over all articles: the first N questions of a file all come from its first
    article or two, so a document-level score on them says more about those articles than
    about the reader.

    >>> q = lambda i: SquadQuestion(str(i), "?", (), (), True, 0, 0)
    >>> arts = [Article("A", ("x",), (q(1), q(2))), Article("B", ("y",), (q(3),))]
    >>> [[x.id for x in a.questions] for a in per_article(arts, 1)]
    [['1'], ['3']]
    """
    if n is None:
        return list(articles)
    if n < 1:
        raise InputError(f"per_article must be 1 or more, got {n}")
    return [Article(a.title, a.paragraphs, a.questions[:n]) for a in articles]


def build_examples(
    articles: Sequence[Article],
    level: Level = "document",
    limit: int | None = None,
    per_article_questions: int | None = None,
) -> list[ExampleGroup]:
    """Group the (first ``limit``) questions by the document they are asked of, in file order.

    ``per_article_questions`` first keeps only that many questions of each article.

    Paragraph level: one group per paragraph with questions, document
    ``Document.from_text(context, source=f"{title}#{p}")``. Document level: one group per
    article, document ``Document.from_text(joined, source=title)`` with gold offsets shifted
    into the joined text.

    >>> art = Article("T", ("One.", "Hi Bob."),
    ...               (SquadQuestion("q", "Who?", ("Bob",), (3,), False, 0, 1),))
    >>> g = build_examples([art], "document")[0]
    >>> g.document.source, g.gold_spans
    ('T', (((9, 12),),))
    >>> build_examples([art], "paragraph")[0].document.source
    'T#1'
    """
    if level not in LEVELS:
        raise InputError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    groups: list[ExampleGroup] = []
    for article in limit_articles(per_article(articles, per_article_questions), limit):
        if not article.questions:
            continue
        if level == "document":
            text, starts = join_article(article)
            doc = Document.from_text(text, source=article.title)
            spans = tuple(
                question_gold_spans(q, starts[q.paragraph_index]) for q in article.questions
            )
            groups.append(ExampleGroup(doc, article.questions, spans))
            continue
        by_paragraph: dict[int, list[SquadQuestion]] = {}
        for q in article.questions:
            by_paragraph.setdefault(q.paragraph_index, []).append(q)
        for p, questions in by_paragraph.items():
            doc = Document.from_text(article.paragraphs[p], source=f"{article.title}#{p}")
            spans = tuple(question_gold_spans(q) for q in questions)
            groups.append(ExampleGroup(doc, tuple(questions), spans))
    return groups
