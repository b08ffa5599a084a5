"""Span decoding and the max-context rule: pure functions checked against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docqa.spans import Span, best_spans, best_window_per_token
from docqa.windowing import window_bounds


def brute_force(start, end, max_answer_len, top_n, allowed=None, allowed_ends=None):
    """Every legal (i, j), scored and ordered the documented way: score, then position."""
    spans = [
        (float(start[i]) + float(end[j]), i, j)
        for i in range(len(start))
        for j in range(i, min(len(end), i + max_answer_len))
        if (allowed is None or allowed[i]) and (allowed_ends is None or allowed_ends[j])
    ]
    spans.sort(key=lambda s: (-s[0], s[1], s[2]))
    return [(i, j, score) for score, i, j in spans[:top_n]]


# Small integers make ties common, so the tie-break order is tested too; floats test the rest.
logit_values = st.one_of(
    st.integers(-3, 3).map(float),
    st.floats(-20, 20, allow_nan=False, allow_infinity=False, width=32),
)


@st.composite
def window_logits(draw):
    n = draw(st.integers(0, 40))
    start = np.array(draw(st.lists(logit_values, min_size=n, max_size=n)), dtype=np.float32)
    end = np.array(draw(st.lists(logit_values, min_size=n, max_size=n)), dtype=np.float32)
    mask = st.none() | st.lists(st.booleans(), min_size=n, max_size=n).map(np.array)
    return start, end, draw(mask), draw(mask)


@settings(max_examples=300, deadline=None)
@given(window_logits(), st.integers(1, 45), st.integers(1, 60))
def test_best_spans_matches_brute_force(logits, max_answer_len, top_n):
    start, end, allowed, allowed_ends = logits
    got = best_spans(start, end, max_answer_len, top_n, allowed, allowed_ends)
    want = brute_force(start, end, max_answer_len, top_n, allowed, allowed_ends)
    assert [(s.start, s.end) for s in got] == [(i, j) for i, j, _ in want]
    assert [s.score for s in got] == pytest.approx([score for _, _, score in want])
    for s in got:
        assert 0 <= s.start <= s.end < len(start)
        assert s.end - s.start < max_answer_len
        assert allowed is None or allowed[s.start]
        assert allowed_ends is None or allowed_ends[s.end]


def test_best_spans_never_ends_before_it_starts():
    # The best start is after the best end: the pair (3, 0) must not be chosen.
    start = np.array([0.0, 0, 0, 9])
    end = np.array([9.0, 0, 0, 0])
    best = best_spans(start, end, 30, 1)[0]
    assert best.start <= best.end
    assert best.score == pytest.approx(9.0)


def test_best_spans_respects_max_answer_len():
    start = np.array([5.0, 0, 0, 0, 0])
    end = np.array([0.0, 0, 0, 0, 5])
    assert best_spans(start, end, 5, 1) == [Span(0, 4, 10.0)]
    assert best_spans(start, end, 4, 1)[0].score == pytest.approx(5.0)


def test_best_spans_all_starts_masked_gives_nothing():
    assert best_spans(np.zeros(5), np.zeros(5), 3, 4, np.zeros(5, dtype=bool)) == []
    assert best_spans(np.zeros(0), np.zeros(0), 3, 4) == []


# --- the max-context rule (run_squad.py's _check_is_max_context) -------------------------


def reference_max_context(bounds, n_tokens):
    """run_squad.py's rule, written out the slow way: most context, earliest window on ties."""
    best = []
    for t in range(n_tokens):
        scores = [
            (min(t - s, e - 1 - t) + 0.01 * (e - s), w)
            for w, (s, e) in enumerate(bounds)
            if s <= t < e
        ]
        best.append(max(scores, key=lambda x: (x[0], -x[1]))[1])
    return best


def test_max_context_two_windows_split_in_the_middle():
    # Tokens 0..9 in windows [0, 8) and [4, 12): token 5 has 5 left/2 right in the first,
    # 1 left/6 right in the second, so min 2 > 1: first window. Token 6: 1 vs 2: second.
    best = best_window_per_token([(0, 8), (4, 12)], 12)
    assert best.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]


def test_max_context_tokens_near_a_window_edge_belong_to_the_next_window():
    bounds = window_bounds(1000, 100, 40)
    best = best_window_per_token(bounds, 1000)
    for w, (_, e) in enumerate(bounds[:-1]):
        assert best[e - 1] != w, "the last token of a window has no right context there"
    for w, (s, _) in enumerate(bounds[1:], 1):
        assert best[s] != w, "the first token of a window has no left context there"


def test_max_context_longer_window_wins_ties():
    # Token 2 has min context 2 in both windows; the longer window gets the 0.01 bonus.
    assert best_window_per_token([(0, 5), (0, 6)], 6).tolist()[2] == 1


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300), st.integers(2, 60), st.data())
def test_max_context_matches_reference(n_tokens, max_context, data):
    stride = data.draw(st.integers(0, max_context - 1))
    bounds = window_bounds(n_tokens, max_context, stride)
    best = best_window_per_token(bounds, n_tokens)
    assert best.tolist() == reference_max_context(bounds, n_tokens)
    for t, w in enumerate(best.tolist()):
        assert bounds[w][0] <= t < bounds[w][1], "a token's best window must contain it"


# --- edge cases the brute-force comparison reaches only by chance (issue 21, mutation) ------


def test_best_spans_window_of_one_token_gives_its_one_span():
    assert best_spans(np.array([3.0]), np.array([2.0]), 30, 1) == [Span(0, 0, 5.0)]


def test_best_spans_returns_the_only_legal_span():
    # One-token answers, and only the last token may start one: a single candidate.
    start = np.array([1.0, 2.0, 0.0])
    end = np.array([0.0, 2.0, 1.0])
    allowed = np.array([False, False, True])
    assert best_spans(start, end, 1, 5, allowed) == [Span(2, 2, 1.0)]


def test_best_spans_top_n_zero_gives_nothing():
    assert best_spans(np.array([1.0, 2.0]), np.array([1.0, 2.0]), 30, 0) == []


def test_allowed_starts_given_as_zeros_and_ones_masks_like_booleans():
    # A 0/1 integer mask must mask starts, not be read as row indices.
    start = np.array([1.0, 2.0, 0.0])
    end = np.array([0.0, 2.0, 1.0])
    got = best_spans(start, end, 30, 5, np.array([0, 1, 0]))
    assert got == best_spans(start, end, 30, 5, np.array([False, True, False]))
    assert [(s.start, s.end, s.score) for s in got] == [(1, 1, 4.0), (1, 2, 3.0)]


def test_allowed_ends_given_as_zeros_and_ones_masks_like_booleans():
    start = np.array([2.0, 1.0, 0.0])
    end = np.array([0.0, 2.0, 1.0])
    got = best_spans(start, end, 30, 5, None, np.array([1, 0, 1]))
    assert got == best_spans(start, end, 30, 5, None, np.array([True, False, True]))
    # No span ends at token 1, where the reader's best end is.
    assert [(s.start, s.end, s.score) for s in got] == [
        (0, 2, 3.0),
        (0, 0, 2.0),
        (1, 2, 2.0),
        (2, 2, 1.0),
    ]


def test_max_context_a_later_window_beats_the_best_one_despite_a_worse_one_between():
    # Token 5 has context 2 in window 0, none in the one-token window 1, and 5 in window 2:
    # window 1 losing must not stop window 2 from winning.
    best = best_window_per_token([(3, 8), (5, 6), (0, 11)], 11)
    assert best.tolist() == [2] * 11
