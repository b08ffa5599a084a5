"""Windowing: one tokenization per document with offsets, and the stride/overflow slicing."""

from __future__ import annotations

import itertools
import unicodedata
import warnings

import numpy as np
import pytest
from conftest import VOCAB
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docqa.errors import InputError
from docqa.windowing import (
    QuestionTruncatedWarning,
    make_windows,
    pair_template,
    tokenize_question,
    tokenize_text,
    window_bounds,
)

# --- window_bounds ----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 3000), st.integers(1, 400), st.data())
def test_window_bounds_cover_every_token_with_exact_overlap(n_tokens, max_context, data):
    stride = data.draw(st.integers(0, max_context - 1))
    bounds = window_bounds(n_tokens, max_context, stride)
    assert bounds[0][0] == 0
    assert bounds[-1][1] == n_tokens
    for start, end in bounds:
        assert 0 <= start <= end <= n_tokens
        assert end - start <= max_context
    for (s1, e1), (s2, _) in itertools.pairwise(bounds):
        assert e1 - s2 == stride, "neighbouring windows overlap by exactly doc_stride"
        assert e1 - s1 == max_context, "only the last window may be short"
        assert s2 > s1
    # No redundant window: the one before the last does not already reach the end.
    assert len(bounds) == 1 or bounds[-2][1] < n_tokens
    covered = np.zeros(n_tokens, dtype=bool)
    for start, end in bounds:
        covered[start:end] = True
    assert covered.all()


def test_window_bounds_rejects_stride_as_large_as_the_window():
    with pytest.raises(InputError, match="doc_stride"):
        window_bounds(100, 10, 10)


# --- offsets: tokenize_text -------------------------------------------------------------


def _char_class(ch: str) -> str:
    """How BERT's basic tokenizer sees one character (uncased, accents stripped).

    ``space`` separates words, ``own`` is a word by itself (punctuation, CJK ideographs),
    ``gone`` is deleted before splitting (control and format characters, combining accents),
    ``word`` is part of a word.
    """
    cat = unicodedata.category(ch)
    if ch in " \t\n\r" or cat == "Zs":
        return "space"
    if ch in "\x00\ufffd" or cat.startswith("C") or cat == "Mn":
        return "gone"
    cp = ord(ch)
    if (33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126) or cat.startswith(
        "P"
    ):
        return "own"
    if (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2CEAF  # extensions C, D and E, as the tokenizer has them
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    ):
        return "own"
    return "word"


def _cuts_a_word(text: str, at: int) -> bool:
    """Whether a boundary at character ``at`` falls inside a word (between two word chars)."""
    left = at - 1
    while left >= 0 and _char_class(text[left]) == "gone":
        left -= 1
    right = at
    while right < len(text) and _char_class(text[right]) == "gone":
        right += 1
    if left < 0 or right >= len(text):
        return False
    return _char_class(text[left]) == "word" and _char_class(text[right]) == "word"


# Accents (precomposed and combining), emoji (with joiners and skin tones), CJK, Arabic,
# Cyrillic, Devanagari, punctuation and odd whitespace, mixed in any order.
pieces = st.sampled_from(
    [
        "café",
        "cafe\u0301",
        "naïve",
        "Ærøskøbing",
        "straße",
        "😀",
        "👩‍👩‍👧",
        "👍🏽",
        "東京都",
        "日本語のテキスト",
        "한국어",
        "مرحبا",
        "Привет",
        "नमस्ते",
        "x²",
        "ﬁle",
        "e-mail",
        "U.S.A.",
        "3.14",
        "—",
        "...",
        "'s",
        " ",
        "  ",
        "\n",
        "\t",
        "\u00a0",
        "\u200b",
        "word",
        "wordpiece",
        "unaffable",
        "tokenization",
    ]
)
texts = st.one_of(
    st.lists(pieces, max_size=30).map("".join),
    st.lists(st.one_of(pieces, st.text(max_size=8)), max_size=20).map("".join),
    st.text(max_size=200),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.data())
def test_offsets_stay_in_bounds_and_on_word_boundaries(tokenizer, text, data):
    tok = tokenize_text(tokenizer, text)
    n = len(tok)
    for arr in (tok.starts, tok.ends, tok.word_start, tok.word_end):
        assert len(arr) == n
        assert ((arr >= 0) & (arr <= len(text))).all()
    assert (tok.word_start <= tok.starts).all()
    assert (tok.starts <= tok.ends).all()
    assert (tok.ends <= tok.word_end).all()
    assert (np.diff(tok.word_start) >= 0).all(), "words come in text order"
    if n == 0:
        return
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(i, n - 1))
    start, end = int(tok.word_start[i]), int(tok.word_end[j])
    answer = text[start:end]
    assert start < end and answer in text
    assert answer == answer.strip(), "an answer never starts or ends with whitespace"
    assert not _cuts_a_word(text, start), f"{answer!r} starts inside a word of {text!r}"
    assert not _cuts_a_word(text, end), f"{answer!r} ends inside a word of {text!r}"


def test_offsets_of_wordpieces_widen_to_the_whole_word(tokenizer):
    text = "The unaffable tokenization of naïve cafés."
    tok = tokenize_text(tokenizer, text)
    assert len(tok) > len(text.split()), "some words are several WordPieces"
    for k in range(len(tok)):
        word = text[tok.word_start[k] : tok.word_end[k]]
        assert word in {"The", "unaffable", "tokenization", "of", "naïve", "cafés", "."}


def test_long_text_fully_tokenized_right_after_loading():
    """Regression: bert-base-uncased's tokenizer.json has truncation and padding to 128 tokens
    baked in; going to the Rust backend directly kept them, so every document was cut to its
    first 128 tokens (and short ones padded with [PAD] at offset (0, 0))."""
    from transformers import AutoTokenizer

    fresh = AutoTokenizer.from_pretrained(str(VOCAB))  # nothing has reset the backend yet
    text = " ".join(f"w{i % 10}" for i in range(500))  # "w0" is two tokens: 1000 in all
    tok = tokenize_text(fresh, text)
    assert len(tok) == 1000
    assert tok.ends[-1] == len(text)
    fresh = AutoTokenizer.from_pretrained(str(VOCAB))
    assert len(tokenize_text(fresh, "short text")) == 2, "no padding to 128 either"


# --- questions and windows --------------------------------------------------------------


def test_long_question_is_truncated_with_a_warning(tokenizer):
    question = "why " * 100 + "?"
    with pytest.warns(QuestionTruncatedWarning, match="first 64"):
        ids = tokenize_question(tokenizer, question, 64)
    assert len(ids) == 64


def test_short_question_gives_no_warning(tokenizer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids = tokenize_question(tokenizer, "  Who wrote it?  ", 64)
    assert ids == tokenizer("Who wrote it?", add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_an_input_error(tokenizer, question):
    with pytest.raises(InputError, match="empty"):
        tokenize_question(tokenizer, question, 64)


def test_windows_are_question_pairs_over_consecutive_slices(tokenizer):
    text = tokenize_text(tokenizer, " ".join(f"token{i}" for i in range(300)))
    question = tokenize_question(tokenizer, "what is the token?", 64)
    template = pair_template(tokenizer)
    windows = make_windows(template, question, text, 3, max_seq_len=64, doc_stride=16)
    assert len(windows) > 3
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    for w in windows:
        assert len(w) <= 64
        assert w.doc_index == 3
        ids = w.input_ids.tolist()
        assert ids == [cls, *question, sep, *text.ids[w.token_start : w.token_end], sep]
        assert w.context_offset == len(question) + 2
        types = w.token_type_ids.tolist()
        assert types == [0] * w.context_offset + [1] * (len(ids) - w.context_offset)
    assert windows[0].token_start == 0 and windows[-1].token_end == len(text)
    # Matches what the tokenizer itself does with stride/overflow for the same pair.
    reference = tokenizer(
        tokenizer.decode(question),
        " ".join(f"token{i}" for i in range(300)),
        max_length=64,
        truncation="only_second",
        stride=16,
        return_overflowing_tokens=True,
    )["input_ids"]
    assert [w.input_ids.tolist() for w in windows] == [list(r) for r in reference]
