"""Reading SQuAD files and building the paragraph- and document-level example sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docqa.errors import InputError
from docqa.squad import (
    PARAGRAPH_SEPARATOR,
    Article,
    SquadQuestion,
    build_examples,
    gold_spans,
    iter_questions,
    join_article,
    read_squad,
)

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "squad-v1.1-tiny.json"
V2 = FIXTURES / "squad-v2.0-tiny.json"


def test_reads_v11_articles_paragraphs_and_questions_in_file_order():
    articles = read_squad(V1)
    assert [a.title for a in articles] == ["Rivers", "Towers"]
    assert [len(a.paragraphs) for a in articles] == [4, 2]  # Rivers#3 has no questions
    assert [q.id for q in iter_questions(articles)] == ["r1", "r2", "r3", "r4", "t1", "t2", "t3"]
    r1 = articles[0].questions[0]
    assert r1 == SquadQuestion(
        id="r1",
        question="Which direction does the Nile flow?",
        answers=("north", "north-flowing"),
        answer_starts=(20, 20),
        is_impossible=False,
        article_index=0,
        paragraph_index=0,
    )
    t3 = articles[1].questions[2]
    assert (t3.article_index, t3.paragraph_index) == (1, 1)


def test_reads_v20_unanswerable_questions_without_their_plausible_answers():
    questions = {q.id: q for q in iter_questions(read_squad(V2))}
    assert {qid for qid, q in questions.items() if q.is_impossible} == {"s2", "s4", "m2"}
    # plausible_answers are not gold: keeping them would score "no answer" as wrong.
    assert questions["s2"].answers == () and questions["s2"].answer_starts == ()
    assert questions["s3"].answers == ("95", "95 known moons")


def test_join_article_keeps_every_paragraph_in_order_with_a_blank_line():
    article = read_squad(V1)[0]
    text, starts = join_article(article)
    assert PARAGRAPH_SEPARATOR == "\n\n"
    assert text == "\n\n".join(article.paragraphs)
    assert len(starts) == 4
    for p, start in enumerate(starts):
        assert text[start : start + len(article.paragraphs[p])] == article.paragraphs[p]
    assert text.endswith("Rivers carry water, sediment and nutrients from land to the sea.")


@pytest.mark.parametrize("path", [V1, V2], ids=["v1.1", "v2.0"])
def test_document_level_reproduces_every_gold_offset_in_the_joined_text(path):
    articles = read_squad(path)
    groups = build_examples(articles, "document")
    assert len(groups) == len(articles)
    n_golds = 0
    for article, group in zip(articles, groups, strict=True):
        joined, _ = join_article(article)
        assert group.document.text == joined
        assert group.document.source == article.title
        spans_by_id = gold_spans(article)
        for q, spans in zip(group.questions, group.gold_spans, strict=True):
            assert spans == spans_by_id[q.id]
            assert len(spans) == len(q.answers)
            for (start, end), answer in zip(spans, q.answers, strict=True):
                assert end - start == len(answer)
                assert joined[start : start + len(answer)] == answer
                n_golds += 1
    assert n_golds == (13 if path == V1 else 7)


def test_document_level_offsets_come_from_answer_start_not_a_text_search():
    # "Toronto" appears twice in its paragraph; the gold is the second one (capital of Ontario).
    towers = read_squad(V1)[1]
    joined, starts = join_article(towers)
    ((start, end),) = gold_spans(towers)["t2"]
    assert start == starts[1] + towers.paragraphs[1].rindex("Toronto")
    assert start != joined.index("Toronto")
    assert joined[start:end] == "Toronto"


def test_paragraph_level_asks_each_question_of_its_own_paragraph():
    articles = read_squad(V1)
    groups = build_examples(articles, "paragraph")
    # Rivers#3 has no questions, so no group for it.
    assert [g.document.source for g in groups] == [
        "Rivers#0",
        "Rivers#1",
        "Rivers#2",
        "Towers#0",
        "Towers#1",
    ]
    for g in groups:
        for q, spans in zip(g.questions, g.gold_spans, strict=True):
            assert g.document.text == articles[q.article_index].paragraphs[q.paragraph_index]
            assert [g.document.text[s:e] for s, e in spans] == list(q.answers)
            assert [s for s, _ in spans] == list(q.answer_starts)


@pytest.mark.parametrize(
    ("limit", "ids"),
    [
        (0, []),
        (1, ["r1"]),
        (5, ["r1", "r2", "r3", "r4", "t1"]),  # crosses into the second article
        (100, ["r1", "r2", "r3", "r4", "t1", "t2", "t3"]),
    ],
)
@pytest.mark.parametrize("level", ["paragraph", "document"])
def test_limit_takes_the_first_questions_in_file_order(level, limit, ids):
    groups = build_examples(read_squad(V1), level, limit=limit)
    assert [q.id for g in groups for q in g.questions] == ids


def test_limited_document_level_still_reads_the_whole_article():
    (group,) = build_examples(read_squad(V1), "document", limit=1)
    assert group.document.text == join_article(read_squad(V1)[0])[0]


def test_wrong_answer_start_is_refused(tmp_path):
    data = json.loads(V1.read_text())
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] += 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match="r1"):
        read_squad(bad)


def test_missing_or_malformed_files_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_squad(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_squad(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("[]")
    with pytest.raises(InputError, match="not a SQuAD file"):
        read_squad(tmp_path / "y.json")


def test_unknown_level_is_refused():
    with pytest.raises(InputError, match="level"):
        build_examples([Article("T", ("x",), ())], "section")  # type: ignore[arg-type]
