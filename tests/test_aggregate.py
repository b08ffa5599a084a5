"""Aggregation: token spans to character offsets, merging windows, ranking, no-answer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from docqa.aggregate import (
    Candidate,
    context_line,
    cut_edge_masks,
    merge_duplicates,
    null_score_diff,
    top_answers,
    window_candidates,
)
from docqa.windowing import Window, make_windows, pair_template, tokenize_question, tokenize_text

TEXT = "Alpha beta gamma. The unaffable tokenization ends here; delta epsilon zeta eta theta."


@pytest.fixture
def windows(tokenizer):
    text = tokenize_text(tokenizer, TEXT)
    question = tokenize_question(tokenizer, "what?", 64)
    # 8 context tokens per window, 4 of overlap: several windows over a short text.
    template = pair_template(tokenizer)
    max_seq_len = len(question) + template.n_special + 8
    return text, make_windows(template, question, text, 0, max_seq_len, 4)


def logits_for(window, text, start_token, end_token, value=5.0):
    """Window-length logits peaking on document tokens ``start_token``..``end_token``."""
    start = np.zeros(len(window), dtype=np.float32)
    end = np.zeros(len(window), dtype=np.float32)
    start[window.context_offset + start_token - window.token_start] = value
    end[window.context_offset + end_token - window.token_start] = value
    return start, end


def token_of(text, char):
    return int(np.flatnonzero(text.starts == char)[0])


def test_candidates_point_into_the_document_not_the_window(windows):
    text, ws = windows
    w = ws[2]
    first = w.token_start + 1
    start, end = logits_for(w, text, first, first + 2)
    best = window_candidates(w, start, end, text, 0, 30, 1)[0]
    assert best.start == text.word_start[first]
    assert best.end == text.word_end[first + 2]
    assert best.logit == pytest.approx(10.0)
    assert TEXT[best.start : best.end] in TEXT


def test_candidates_widen_wordpieces_to_whole_words(windows):
    text, ws = windows
    piece = token_of(text, TEXT.index("unaffable") + 3)  # "##ff..." inside the word
    w = next(w for w in ws if w.token_start <= piece - 1 and piece + 1 < w.token_end)
    start, end = logits_for(w, text, piece, piece)
    best = window_candidates(w, start, end, text, 0, 30, 1)[0]
    assert TEXT[best.start : best.end] == "unaffable"


def test_question_and_special_tokens_are_never_candidates(windows):
    text, ws = windows
    w = ws[0]
    start = np.zeros(len(w), dtype=np.float32)
    end = np.zeros(len(w), dtype=np.float32)
    start[: w.context_offset] = end[: w.context_offset] = 100.0  # [CLS], question, [SEP]
    start[-1] = end[-1] = 100.0  # final [SEP]
    for c in window_candidates(w, start, end, text, 0, 30, 50):
        assert c.logit == pytest.approx(0.0)
        assert text.word_start[w.token_start] <= c.start < c.end <= text.word_end[w.token_end - 1]


def test_null_logit_is_the_cls_score(windows):
    text, ws = windows
    start, end = logits_for(ws[0], text, 1, 1)
    start[0], end[0] = 3.0, 4.0
    assert window_candidates(ws[0], start, end, text, 0, 30, 1)[0].null_logit == 7.0


def test_allowed_starts_masks_starts(windows):
    text, ws = windows
    w = ws[1]
    start, end = logits_for(w, text, w.token_start + 2, w.token_start + 3)
    allowed = np.ones(w.token_end - w.token_start, dtype=bool)
    allowed[2] = False
    best = window_candidates(w, start, end, text, 0, 30, 1, allowed)[0]
    assert best.start != text.word_start[w.token_start + 2]


@pytest.mark.parametrize("edge", ["first", "last"])
def test_a_span_at_a_cut_edge_takes_no_place_among_a_windows_best(windows, edge):
    # A window inside the text: its first and last words may be halves of phrases. The
    # reader peaks on the word at one edge; with the edges masked, the one best span is the
    # inner one (a filter after the pick would leave the window with no candidate at all).
    text, ws = windows
    w = ws[2]
    assert w.token_start > 0 and w.token_end < len(text)
    at = w.token_start if edge == "first" else w.token_end - 1
    start, end = logits_for(w, text, at, at)
    inner = w.token_start + 3
    start[w.context_offset + 3] = end[w.context_offset + 3] = 2.0
    best = window_candidates(w, start, end, text, 0, 30, 1, *cut_edge_masks(w, text))
    assert [(c.start, c.end) for c in best] == [(text.word_start[inner], text.word_end[inner])]
    unmasked = window_candidates(w, start, end, text, 0, 30, 1)
    assert (unmasked[0].start, unmasked[0].end) == (text.word_start[at], text.word_end[at])


def test_cut_edge_masks_bar_the_whole_word_at_each_cut_edge_and_no_edge_of_the_text(windows):
    text, ws = windows
    first, last = ws[0], ws[-1]
    assert first.token_start == 0 and last.token_end == len(text)
    # Barred: exactly the tokens of the word at the cut edge (one or several pieces).
    starts, ends = cut_edge_masks(first, text)
    assert starts.all(), "the text's own start is no cut"
    words = text.word_start[: first.token_end]
    assert ends.tolist() == (words != words[-1]).tolist()
    assert 0 < (~ends).sum() < len(ends)
    starts, ends = cut_edge_masks(last, text)
    assert ends.all(), "the text's own end is no cut"
    words = text.word_end[last.token_start :]
    assert starts.tolist() == (words != words[0]).tolist()
    assert 0 < (~starts).sum() < len(starts)
    ids = np.zeros(6, dtype=np.int64)
    pieces = [TEXT[a:b] for a, b in zip(text.starts[:5], text.ends[:5], strict=True)]
    assert pieces == ["Alpha", "beta", "gamma", ".", "The"]
    # One token cut off at each side, each a word of its own.
    starts, ends = cut_edge_masks(Window(0, ids, ids, 1, 1, 5), text)
    assert starts.tolist() == [False, True, True, True]
    assert ends.tolist() == [True, True, True, False]
    # A word split into pieces: every piece of the word at the edge is barred.
    piece = token_of(text, TEXT.index("unaffable") + 3)
    ids = np.zeros(6, dtype=np.int64)
    w = Window(0, ids, ids, 1, piece, piece + 4)  # starts inside "unaffable"
    starts, _ = cut_edge_masks(w, text)
    same_word = text.word_start[w.token_start : w.token_end] == text.word_start[piece]
    assert not starts[same_word].any() and starts[~same_word].all()


def test_merge_keeps_one_per_span_with_the_best_logit():
    cs = [
        Candidate(0, 10, 20, 1.0, 0.0),
        Candidate(0, 10, 20, 3.0, 0.0),  # same span seen from the next window
        Candidate(1, 10, 20, 2.0, 0.0),  # same offsets, another document: distinct
        Candidate(0, 0, 5, 2.5, 0.0),
    ]
    merged = merge_duplicates(cs)
    assert [(c.doc_index, c.start, c.end, c.logit) for c in merged] == [
        (0, 10, 20, 3.0),
        (0, 0, 5, 2.5),
        (1, 10, 20, 2.0),
    ]


def test_top_answers_probabilities_follow_logits_and_skip_overlaps():
    cs = merge_duplicates(
        [
            Candidate(0, 0, 5, 4.0, 0.0),
            Candidate(0, 3, 9, 3.5, 0.0),  # overlaps the best: a variant, not a new place
            Candidate(0, 20, 25, 3.0, 0.0),
            Candidate(1, 0, 5, 1.0, 0.0),
        ]
    )
    top = top_answers(cs, 3)
    assert [(c.doc_index, c.start) for c, _ in top] == [(0, 0), (0, 20), (1, 0)]
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True)
    z = sum(math.exp(c.logit) for c in cs)  # over every candidate, shown or not
    assert probs == pytest.approx([math.exp(c.logit) / z for c, _ in top])
    assert all(0 < p <= 1 for p in probs)
    assert top_answers([], 3) == []


def test_top_answers_score_is_one_for_a_single_candidate():
    [(_, p)] = top_answers([Candidate(0, 0, 1, -50.0, 0.0)], 5)
    assert p == pytest.approx(1.0)


def test_null_score_diff_uses_the_most_confident_window():
    cs = [Candidate(0, 0, 1, 6.0, 0.0)]
    assert null_score_diff(cs, [9.0, 2.0, 5.0]) == pytest.approx(2.0 - 6.0)
    assert null_score_diff(cs, []) is None
    assert null_score_diff([], [1.0]) == math.inf


def test_context_line_is_one_line_around_the_answer():
    text = "first line\n" + "word " * 50 + "ANSWER here\nand " + "more " * 50
    start = text.index("ANSWER")
    line = context_line(text, start, start + 6, width=40)
    assert "\n" not in line and "ANSWER" in line
    assert line.startswith("…") and line.endswith("…")
    assert len(line) <= 6 + 2 * 40 + 2
    assert context_line("just ANSWER", 5, 11) == "just ANSWER"


def test_top_answers_keeps_adjacent_spans_they_do_not_overlap():
    # "Paris" ending where "France" starts are two places, not one answer and its variant.
    before = [Candidate(0, 6, 12, 2.0, 0.0), Candidate(0, 0, 6, 1.0, 0.0)]
    after = [Candidate(0, 0, 6, 2.0, 0.0), Candidate(0, 6, 12, 1.0, 0.0)]
    for cs in (before, after):
        assert [c for c, _ in top_answers(cs, 2)] == cs


def test_context_line_cuts_at_the_first_and_last_space_within_width():
    # 8 characters either side reach into "ab" and "kl": both are cut back to whole words.
    text = "ab cd ef ANSWER gh ij kl"
    assert context_line(text, 9, 15, width=8) == "…cd ef ANSWER gh ij…"


def test_context_line_shows_the_whole_text_when_it_fits():
    assert context_line("one ANSWER two three", 4, 10) == "one ANSWER two three"


def test_context_line_cuts_an_unbroken_run_at_exactly_width_characters():
    # A URL or a table row with no space near the answer: cut mid-run at 90 characters.
    text = "go to " + "y" * 95 + "ANSWER" + "z" * 95 + " now"
    start = text.index("ANSWER")
    assert context_line(text, start, start + 6) == "…" + "y" * 90 + "ANSWER" + "z" * 90 + "…"
    assert context_line("y" * 91 + "ANSWER", 91, 97) == "…" + "y" * 90 + "ANSWER"
