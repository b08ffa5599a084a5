"""Ranking the spans of every window read (issue 21: the decoding and ranking that lived in
`DocQA._read` are pure functions in `docqa.aggregate`, tested here with hand-made candidates).

What each test pins: retrieval boosts are scaled over the chunks read and weighted; the
no-answer decision uses raw reader logits even when the ranking is fused; ``null_margin``
ranks by the margin over the span's own window; the threshold is strict; duplicates merge
after boosting; the places that give the same answer pool into one (each place once);
skipped regions mask answer starts; page and region edges break answers.
"""

from __future__ import annotations

import numpy as np
import pytest

from docqa.aggregate import (
    Candidate,
    answer_breaks,
    pool_same_answers,
    rank_candidates,
    retrieval_boosts,
    sane_candidates,
    starts_outside,
)
from docqa.types import Document, Page, Region

# --- retrieval_boosts -------------------------------------------------------------------------


def test_boosts_scale_scores_to_the_weight_over_the_chunks_read():
    assert retrieval_boosts([10.0, 30.0, 20.0, 25.0], 2.0) == [0.0, 2.0, 1.0, 1.5]


def test_boosts_are_linear_in_the_weight_and_independent_of_the_score_scale():
    assert retrieval_boosts([0.1, 0.3, 0.2], 8.0) == pytest.approx([0.0, 8.0, 4.0])
    assert retrieval_boosts([-5.0, 5.0], 4.0) == [0.0, 4.0]


@pytest.mark.parametrize(
    ("scores", "weight"),
    [([1.0, 2.0], 0.0), ([3.0], 4.0), ([], 4.0), ([2.0, 2.0, 2.0], 4.0)],
    ids=["no-weight", "one-chunk", "none", "all-equal"],
)
def test_no_boosts_when_nothing_would_be_added(scores, weight):
    assert retrieval_boosts(scores, weight) is None


# --- rank_candidates --------------------------------------------------------------------------


def cand(start: int, logit: float, null: float = 0.0, doc: int = 0) -> Candidate:
    return Candidate(doc, start, start + 3, logit, null)


def test_ranked_best_first_with_the_no_answer_difference_in_raw_logits():
    ranked, diff = rank_candidates([cand(0, 2.0), cand(10, 5.0), cand(20, 3.0)], [1.0, -1.5])
    assert [c.start for c in ranked] == [10, 20, 0]
    assert diff == -1.5 - 5.0  # the lowest null score minus the best span


def test_boosts_reorder_the_ranking_but_not_the_no_answer_difference():
    cs = [cand(0, 5.0), cand(10, 4.0)]
    plain, plain_diff = rank_candidates(cs, [0.0])
    fused, fused_diff = rank_candidates(cs, [0.0], boosts=[0.0, 2.0])
    assert [c.start for c in plain] == [0, 10]
    assert [(c.start, c.logit) for c in fused] == [(10, 6.0), (0, 5.0)]
    assert plain_diff == fused_diff == -5.0


def test_a_boosted_duplicate_keeps_its_best_boosted_logit():
    same = [cand(0, 5.0), cand(0, 4.0), cand(10, 5.5)]
    ranked, _ = rank_candidates(same, [0.0, 0.0], boosts=[0.0, 3.0, 0.0])
    assert [(c.start, c.logit) for c in ranked] == [(0, 7.0), (10, 5.5)]


def test_null_margin_ranks_by_the_margin_over_the_own_window():
    sure = cand(0, 6.0, null=5.5)  # its window thinks it holds no answer
    modest = cand(10, 4.0, null=-1.0)
    by_logit, _ = rank_candidates([sure, modest], [5.5, -1.0])
    by_margin, diff = rank_candidates([sure, modest], [5.5, -1.0], rank_by="null_margin")
    assert [c.start for c in by_logit] == [0, 10]
    assert [(c.start, c.logit) for c in by_margin] == [(10, 5.0), (0, 0.5)]
    assert diff == -1.0 - 6.0  # unchanged by the ranking rule


def test_null_margin_applies_after_the_boost():
    [c], _ = rank_candidates([cand(0, 4.0, null=1.0)], [1.0], [2.0], rank_by="null_margin")
    assert c.logit == 4.0 + 2.0 - 1.0


@pytest.mark.parametrize(
    ("threshold", "abstains"), [(None, False), (2.0, True), (3.0, False), (3.5, False)]
)
def test_the_no_answer_threshold_is_strict(threshold, abstains):
    ranked, diff = rank_candidates([cand(0, 1.0)], [4.0], no_answer_threshold=threshold)
    assert diff == 3.0
    assert (ranked == []) is abstains


def test_the_threshold_judges_raw_logits_even_when_boosts_would_win():
    ranked, diff = rank_candidates([cand(0, 1.0)], [4.0], [10.0], no_answer_threshold=2.0)
    assert (ranked, diff) == ([], 3.0)


def test_nothing_read_means_no_difference_and_no_abstention():
    assert rank_candidates([], [], no_answer_threshold=0.0) == ([], None)
    assert rank_candidates([], [1.0]) == ([], float("inf"))


# --- pool_same_answers ---------------------------------------------------------------------------

POOL_TEXTS = ["Use pict2e. The Pict2e terminal, or gnuplot; pict2e!", "gnuplot and the pict2e"]


def at(doc: int, word: str, logit: float, occurrence: int = 0) -> Candidate:
    """A candidate on the ``occurrence``-th ``word`` (any case) of ``POOL_TEXTS[doc]``."""
    text, start = POOL_TEXTS[doc].lower(), -1
    for _ in range(occurrence + 1):
        start = text.index(word, start + 1)
    return Candidate(doc, start, start + len(word), logit, 0.0)


def test_places_that_say_the_same_answer_pool_their_probability():
    # Three places say "pict2e" (one capitalised), none as sure as "gnuplot" alone.
    ranked = [
        at(0, "gnuplot", 3.0),
        at(0, "pict2e", 2.5, 1),
        at(0, "pict2e", 2.0),
        at(0, "pict2e", 1.0, 2),
    ]
    pooled = pool_same_answers(ranked, POOL_TEXTS)
    assert [(c.start, c.end) for c in pooled] == [(16, 22), (36, 43)]  # "Pict2e" leads
    assert pooled[0].logit == pytest.approx(np.log(np.exp(2.5) + np.exp(2.0) + np.exp(1.0)))
    assert pooled[1] == ranked[0]  # a lone answer keeps its own logit


def test_pooling_runs_across_documents_and_keeps_the_best_place():
    ranked = [at(1, "gnuplot", 2.0), at(0, "pict2e", 1.9), at(1, "pict2e", 1.8)]
    pooled = pool_same_answers(ranked, POOL_TEXTS)
    assert [(c.doc_index, c.start) for c in pooled] == [(0, 4), (1, 0)]
    assert pooled[0].logit == pytest.approx(np.logaddexp(1.9, 1.8))


def test_one_place_read_by_two_windows_counts_once():
    twice = [at(0, "pict2e", 2.0), at(0, "pict2e", 2.0), at(0, "gnuplot", 2.5)]
    ranked, _ = rank_candidates(twice, [0.0, 0.0], texts=POOL_TEXTS)
    assert [(c.start, c.logit) for c in ranked] == [(36, 2.5), (4, 2.0)]


def test_without_texts_each_place_ranks_alone():
    cs = [at(0, "gnuplot", 3.0), at(0, "pict2e", 2.6, 1), at(0, "pict2e", 2.1)]
    assert [c.start for c in rank_candidates(cs, [0.0])[0]] == [36, 16, 4]
    assert [c.start for c in rank_candidates(cs, [0.0], texts=POOL_TEXTS)[0]] == [16, 36]


def test_answers_of_articles_alone_pool_only_with_themselves():
    text = ["The a the an"]
    cs = [Candidate(0, 0, 3, 1.0, 0.0), Candidate(0, 4, 5, 1.0, 0.0), Candidate(0, 6, 9, 1.0, 0.0)]
    assert [(c.start, c.logit) for c in pool_same_answers(cs, text)] == [
        (0, 1.0),
        (4, 1.0),
        (6, 1.0),
    ]


# --- starts_outside, answer_breaks, sane_candidates --------------------------------------------


def test_starts_inside_a_skipped_region_are_masked_half_open():
    starts = np.array([0, 4, 5, 9, 10])
    assert starts_outside(None, starts, [(5, 10)]).tolist() == [True, True, False, False, True]
    allowed = np.array([False, True, True, True, True])
    masked = starts_outside(allowed, starts, [(0, 1), (9, 11)])
    assert masked.tolist() == [False, True, True, False, False]
    assert starts_outside(None, starts, []) is None


def test_breaks_are_the_later_page_starts_and_the_region_edges():
    doc = Document(
        text="x" * 100,
        source="m.pdf",
        pages=(Page(1, 0, 30), Page(2, 30, 60), Page(3, 60, 100)),
        regions=(Region(40, 60, "footnotes"), Region(70, 90, "contents")),
    )
    assert answer_breaks(doc) == [30, 40, 60, 70, 90]
    assert answer_breaks(Document.from_text("one page")) == []


def test_sane_candidates_drop_non_answers_and_widen_code():
    text = "Call make.names() first.\n66\nThen it works.39 Done."
    page_number = Candidate(0, 25, 27, 9.0, 0.0)
    code = Candidate(0, 5, 9, 8.0, 0.0)  # "make" of make.names()
    marker = Candidate(0, 33, 44, 7.0, 0.0)  # "it works.39" … with its footnote marker
    plain = Candidate(0, 0, 4, 6.0, 0.0)
    kept = sane_candidates([page_number, code, marker, plain], text, breaks=[])
    assert [text[c.start : c.end] for c in kept] == ["make.names()", "it works.", "Call"]
    assert kept[-1] is plain  # unchanged candidates pass through as they are
    assert [c.logit for c in kept] == [8.0, 7.0, 6.0]


def test_sane_candidates_drop_a_span_across_a_break():
    text = "last line of page one\nfirst line of page two"
    across = Candidate(0, 10, 30, 5.0, 0.0)
    within = Candidate(0, 0, 9, 4.0, 0.0)
    assert sane_candidates([across, within], text, breaks=[22]) == [within]


def test_every_skipped_region_masks_its_starts_not_only_the_last():
    starts = np.array([0, 4, 5, 9, 10])
    masked = starts_outside(None, starts, [(0, 1), (9, 11)])
    assert masked.tolist() == [False, True, True, False, False]


def test_a_start_the_max_context_rule_forbids_stays_forbidden_outside_the_regions():
    allowed = np.array([True, False, True, True, True])
    masked = starts_outside(allowed, np.array([0, 4, 5, 9, 10]), [(9, 11)])
    assert masked.tolist() == [True, False, True, False, False]


def test_boosts_must_be_one_per_candidate():
    with pytest.raises(ValueError):
        rank_candidates([cand(0, 1.0), cand(10, 2.0)], [0.0], boosts=[1.0])
