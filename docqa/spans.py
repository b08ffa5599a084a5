"""Span decoding: pure functions over one window's start/end logits.

A span (i, j) scores ``start_logits[i] + end_logits[j]`` — raw logits, never a per-window
softmax, so that scores from different windows and files can be ranked together (Google's
``run_squad.py`` and Haystack rank the same way; what a per-window softmax costs at document
level: README, What the score means).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Span:
    """A candidate answer inside one window, as context-token positions ``[start, end]``."""

    start: int  # index into the window's context tokens (0 = first context token)
    end: int  # inclusive
    score: float  # start_logit + end_logit


def best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    max_answer_len: int,
    top_n: int,
    allowed_starts: np.ndarray | None = None,
    allowed_ends: np.ndarray | None = None,
) -> list[Span]:
    """The ``top_n`` best spans over context-only logits, best first.

    ``start_logits``/``end_logits`` hold only the context part of the window, so question and
    special tokens cannot be chosen. A span needs ``start <= end`` and
    ``end - start < max_answer_len``; ``allowed_starts`` and ``allowed_ends`` (bool per token,
    None for all) mask the tokens that may start and end one (the max-context rule, skipped
    regions, a window's cut edges). Ties are broken by position so the result is
    deterministic.

    >>> [(s.start, s.end) for s in best_spans(np.array([0., 5, 0]), np.array([0., 0, 5]), 30, 1)]
    [(1, 2)]
    """
    n = len(start_logits)
    width = min(max_answer_len, n)
    if n == 0 or width <= 0 or top_n <= 0:
        return []
    # A barred start or end scores -inf, and so does every span that has it.
    starts = start_logits.astype(np.float64)
    ends = end_logits.astype(np.float64)
    if allowed_starts is not None:
        starts[~np.asarray(allowed_starts, dtype=bool)] = -np.inf
    if allowed_ends is not None:
        ends[~np.asarray(allowed_ends, dtype=bool)] = -np.inf
    scores = np.full((n, width), -np.inf, dtype=np.float64)
    for d in range(width):
        scores[: n - d, d] = starts[: n - d] + ends[d:]
    flat = scores.ravel()
    finite = np.flatnonzero(np.isfinite(flat))
    if len(finite) == 0:
        return []
    k = min(top_n, len(finite))
    picked = finite
    if k < len(finite):
        # Keep every span tied with the k-th best, so the position tie-break below decides
        # among them (argpartition alone would pick arbitrary ones).
        kth = np.partition(flat[finite], len(finite) - k)[len(finite) - k]
        picked = finite[flat[finite] >= kth]
    # Sort by score, then by position: a stable, reproducible order for equal scores.
    order = np.lexsort((picked, -flat[picked]))[:k]
    return [
        Span(int(idx // width), int(idx // width + idx % width), float(flat[idx]))
        for idx in picked[order]
    ]


def best_window_per_token(bounds: list[tuple[int, int]], n_tokens: int) -> np.ndarray:
    """For each document token, the window in which it has the most context (``run_squad.py``).

    A token's context in a window is ``min(tokens left of it, tokens right of it)`` plus a small
    bonus for longer windows; only the best window may start an answer at that token, which
    removes duplicate and edge-of-window answers at the source.

    >>> best_window_per_token([(0, 4), (2, 6)], 6).tolist()
    [0, 0, 0, 1, 1, 1]
    """
    best_score = np.full(n_tokens, -np.inf)
    best = np.zeros(n_tokens, dtype=np.int64)
    for w, (start, end) in enumerate(bounds):
        t = np.arange(start, end)
        score = np.minimum(t - start, end - 1 - t) + 0.01 * (end - start)
        better = score > best_score[start:end]
        best_score[start:end] = np.where(better, score, best_score[start:end])
        best[start:end] = np.where(better, w, best[start:end])
    return best
