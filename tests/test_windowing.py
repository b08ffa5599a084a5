"""Windowing: one tokenization per document with offsets, and the stride/overflow slicing."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import VOCAB
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from docqa import windowing
from docqa.errors import InputError, ModelLoadError
from docqa.windowing import (
    ChunkScheme,
    PairTemplate,
    QuestionTruncatedWarning,
    WindowSpec,
    check_question,
    chunk_length,
    fast_backend,
    load_tokenizer,
    make_windows,
    pair_template,
    piece_bounds,
    tokenize_question,
    tokenize_text,
    tokenizer_files_key,
    tokenizer_fingerprint,
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


# --- mutation testing (issue 21): exact values where the tests above check properties -------


def test_piece_bounds_cut_where_a_run_of_whitespace_starts():
    assert piece_bounds("aaa bbb ccc", 5) == [(0, 3), (3, 7), (7, 11)]
    assert piece_bounds("aaa bbb", 7) == [(0, 7)], "a text of exactly `size` is one piece"
    assert piece_bounds("", 5) == [(0, 0)]
    assert piece_bounds("aaaa   bbbb", 8) == [(0, 4), (4, 11)]
    assert piece_bounds("aaaa  bbbbb", 8) == [(0, 4), (4, 11)]
    # The last space before the nominal end, not the first.
    assert piece_bounds("aaaa b cccc", 8) == [(0, 6), (6, 11)]
    # A space at the nominal end or just before it; none within it, but one just after.
    assert piece_bounds("aaa bbbbbb", 4) == [(0, 3), (3, 7), (7, 10)]
    assert piece_bounds("aaaaa bbbb", 4) == [(0, 4), (4, 8), (8, 10)]
    assert piece_bounds("a b c", 2) == [(0, 1), (1, 3), (3, 5)]


def test_piece_bounds_look_back_at_most_half_a_piece_for_a_space():
    # The space at 7 is within half a piece (6) of the nominal end (12): cut there.
    assert piece_bounds("aaaaaaa bbbbbbbbbbbb", 12) == [(0, 7), (7, 19), (19, 20)]
    # The space at 1 is not: cut at the nominal end, inside the word.
    assert piece_bounds("a bbbbbbbbbbbbbbbbbbb", 12) == [(0, 12), (12, 21)]


def test_piece_bounds_cut_inside_a_whitespace_run_longer_than_the_look_back():
    # Spaces 3..8 reach back past the look-back window (4..8): cut at the last space.
    assert piece_bounds("aaa" + " " * 6 + "bbbb", 8) == [(0, 8), (8, 13)]


def test_piece_bounds_without_a_space_cut_after_the_last_ideograph_in_reach():
    # Ideographs at 2 (too far back), 5 (in reach) and 10 (past the nominal end, 8).
    assert piece_bounds("ab東cd東efgh東ij", 8) == [(0, 6), (6, 13)]


def _words(text: str) -> dict[int, tuple[int, int]]:
    """Character position -> range of the space-separated word it is in."""
    return {i: (m.start(), m.end()) for m in re.finditer(r"\S+", text) for i in range(*m.span())}


@pytest.mark.parametrize("n_pieces", [1, 2, 17, 21])
def test_a_text_tokenized_in_pieces_gets_the_tokens_and_offsets_of_one_pass(
    tokenizer, monkeypatch, n_pieces
):
    """Pieces of at most 24 characters: one batch, a batch of two, and a second batch of one
    and of five."""
    vocab = ["unaffable", "tokenization", "of", "w12", "cats", "and", "x7y"]
    words = itertools.cycle(vocab)
    text = next(words)
    while len(piece_bounds(text, 24)) < n_pieces:
        text += " " + next(words)
    assert len(piece_bounds(text, 24)) == n_pieces
    monkeypatch.setattr(windowing, "PIECE_CHARS", 24)
    tok = tokenize_text(tokenizer, text)
    one_pass = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert tok.ids.tolist() == one_pass["input_ids"]
    assert list(zip(tok.starts.tolist(), tok.ends.tolist(), strict=True)) == [
        tuple(o) for o in one_pass["offset_mapping"]
    ]
    words = _words(text)
    assert [words[s] for s in tok.starts.tolist()] == list(
        zip(tok.word_start.tolist(), tok.word_end.tolist(), strict=True)
    )


def test_token_offsets_and_whole_word_ranges_exactly(tokenizer):
    tok = tokenize_text(tokenizer, "unaffable tokenization of cats")
    assert tokenizer.convert_ids_to_tokens(tok.ids.tolist()) == [
        "una",
        "##ffa",
        "##ble",
        "token",
        "##ization",
        "of",
        "cats",
    ]
    assert tok.starts.tolist() == [0, 3, 6, 10, 15, 23, 26]
    assert tok.ends.tolist() == [3, 6, 9, 15, 22, 25, 30]
    assert tok.word_start.tolist() == [0, 0, 0, 10, 10, 23, 26]
    assert tok.word_end.tolist() == [9, 9, 9, 22, 22, 25, 30]
    assert all(a.dtype == np.int64 for a in (tok.ids, tok.starts, tok.word_start, tok.word_end))
    empty = tokenize_text(tokenizer, "")
    assert len(empty) == 0
    assert all(len(a) == 0 for a in (empty.starts, empty.ends, empty.word_start, empty.word_end))


def test_a_question_of_exactly_max_question_len_tokens_is_kept_whole(tokenizer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids = tokenize_question(tokenizer, "who wrote it?", 4)
    assert ids == tokenizer("who wrote it?", add_special_tokens=False)["input_ids"]
    assert len(ids) == 4


def test_the_truncation_warning_names_the_caller_not_docqa(tokenizer):
    with pytest.warns(QuestionTruncatedWarning) as caught:
        tokenize_question(tokenizer, "why " * 10, 3)
    assert caught[0].message.args[0] == "The question has 10 tokens; only the first 3 are used."
    assert Path(caught[0].filename).name != "windowing.py"


def test_empty_question_message():
    with pytest.raises(InputError) as caught:
        check_question(" ")
    assert str(caught.value) == "The question is empty."
    check_question("why?")


class _PairEncoding(dict):
    def __init__(self, ids, seq, types):
        super().__init__(input_ids=ids)
        if types is not None:
            self["token_type_ids"] = types
        self.seq = seq

    def sequence_ids(self):
        return self.seq


class FakePairTokenizer:
    """A tokenizer whose (question, context) pair is laid out as given: ``seq`` says which
    positions hold the question (0), the context (1) or special tokens (None)."""

    def __init__(self, ids, seq, types=None, cls_token_id=None):
        self.ids, self.seq, self.types, self.cls_token_id = ids, seq, types, cls_token_id

    def __call__(self, question, context, **options):
        return _PairEncoding(self.ids, self.seq, self.types)


def test_pair_template_of_bert_and_of_a_tokenizer_that_does_not_return_token_types(tokenizer):
    bert = PairTemplate(
        prefix=(101,),
        middle=(102,),
        suffix=(102,),
        question_type=0,
        context_type=1,
        middle_type=0,
        suffix_type=1,
        cls_index=0,
    )
    assert pair_template(tokenizer) == bert
    # DistilBERT's tokenizer does not return token types unless asked; the layout is BERT's.
    distil = AutoTokenizer.from_pretrained(str(VOCAB), model_input_names=["input_ids"])
    assert "token_type_ids" not in distil("a", "b")
    assert pair_template(distil) == bert


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        pytest.param(
            # RoBERTa: <s> q </s></s> c </s>, no token types at all.
            FakePairTokenizer([0, 10, 2, 2, 20, 2], [None, 0, None, None, 1, None], None, 0),
            PairTemplate((0,), (2, 2), (2,), 0, 0, 0, 0, 0),
            id="roberta",
        ),
        pytest.param(
            # [CLS] not first; middle and suffix typed unlike the question and context.
            FakePairTokenizer(
                [7, 101, 10, 102, 20, 102], [None, None, 0, None, 1, None], [0, 0, 0, 1, 1, 2], 101
            ),
            PairTemplate((7, 101), (102,), (102,), 0, 1, 1, 2, 1),
            id="cls-second",
        ),
        pytest.param(
            # XLNet-like: q c <cls>, nothing between question and context, <cls> at the end.
            FakePairTokenizer([10, 20, 101], [0, 1, None], [0, 1, 2], 101),
            PairTemplate((), (), (101,), 0, 1, 0, 2, 0),
            id="cls-last",
        ),
        pytest.param(
            # Nothing after the context: its type is the context's.
            FakePairTokenizer([101, 10, 102, 20], [None, 0, None, 1], [0, 0, 0, 1], 101),
            PairTemplate((101,), (102,), (), 0, 1, 0, 1, 0),
            id="no-suffix",
        ),
    ],
)
def test_pair_template_learns_any_layout(layout, expected):
    assert pair_template(layout) == expected


@pytest.mark.parametrize("seq", [[None, 0, None], [None, 1, None]])
def test_pair_template_refuses_a_tokenizer_without_pairs(seq):
    with pytest.raises(InputError) as caught:
        pair_template(FakePairTokenizer([101, 10, 102], seq, [0, 0, 0], 101))
    assert str(caught.value) == "This tokenizer cannot encode a question and a context as a pair."


def test_windows_of_a_span_with_a_template_typed_every_way(tokenizer):
    text = tokenize_text(tokenizer, " ".join(f"w{i}" for i in range(40)))
    template = PairTemplate((5, 6), (7, 8), (9,), 2, 3, 4, 5, 0)
    windows = make_windows(template, [11, 12], text, 1, max_seq_len=16, doc_stride=3, span=(4, 20))
    # 16 - 2 question - 5 special = 9 context tokens, 3 of them shared with the next window.
    assert [(w.token_start, w.token_end) for w in windows] == [(4, 13), (10, 19), (16, 20)]
    for w in windows:
        context = text.ids[w.token_start : w.token_end].tolist()
        assert w.input_ids.tolist() == [5, 6, 11, 12, 7, 8, *context, 9]
        assert w.token_type_ids.tolist() == [2, 2, 2, 2, 4, 4] + [3] * len(context) + [5]
        assert w.input_ids.dtype == w.token_type_ids.dtype == np.int64
        assert w.context_offset == 6 and w.doc_index == 1
    [whole] = make_windows(template, [11], text, 0, max_seq_len=200, doc_stride=3)
    assert (whole.token_start, whole.token_end) == (0, len(text))


def test_fast_backend_and_fingerprint_refuse_a_slow_tokenizer():
    message = "docqa needs a fast (Rust) tokenizer; this model only has a slow one."
    for needs_fast in (fast_backend, tokenizer_fingerprint):
        with pytest.raises(InputError) as caught:
            needs_fast(object())
        assert str(caught.value) == message


def test_tokenizer_fingerprint_is_stable_and_sees_only_what_decides_tokens(tokenizer):
    """An index stores the fingerprint of the tokenizer it was cut with: the same vocabulary
    must keep its fingerprint across docqa versions, or every index would be rebuilt."""
    fresh = AutoTokenizer.from_pretrained(str(VOCAB))  # padding and truncation to 128 baked in
    assert fresh.backend_tokenizer.truncation is not None
    assert tokenizer_fingerprint(fresh) == "26b3cbffb707e732"
    fast_backend(fresh)  # resets padding and truncation
    assert tokenizer_fingerprint(fresh) == "26b3cbffb707e732"
    fresh.add_tokens(["docqa-new-token"])
    assert tokenizer_fingerprint(fresh) != "26b3cbffb707e732"


def test_chunk_length_message_and_smallest_chunk():
    assert chunk_length(68, 64, 3) == 1
    with pytest.raises(InputError) as caught:
        chunk_length(67, 64, 3)
    assert str(caught.value) == (
        "max_seq_len (67) leaves no room for context after a 64-token question."
    )


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ({"max_seq_len": 384.0}, "max_seq_len must be a whole number of tokens, not 384.0."),
        ({"doc_stride": True}, "doc_stride must be a whole number of tokens, not True."),
        ({"max_question_len": "8"}, "max_question_len must be a whole number of tokens, not '8'."),
        ({"max_question_len": 0}, "max_question_len must be at least 1."),
        ({"doc_stride": -1}, "doc_stride must be 0 or more, not -1."),
        ({"max_seq_len": 4097}, "max_seq_len above 4096 is not supported."),
        (
            {"max_seq_len": 64, "doc_stride": 0},
            "doc_stride (0) must be smaller than the 0 context tokens left in a 64-token window "
            "(max_seq_len) beside a 64-token question (max_question_len) and the special tokens.",
        ),
    ],
)
def test_window_spec_messages(shape, message):
    with pytest.raises(InputError) as caught:
        WindowSpec(**shape)
    assert str(caught.value) == message


def test_window_spec_accepts_its_bounds():
    assert WindowSpec(max_seq_len=4096).max_seq_len == 4096
    assert WindowSpec(doc_stride=0).doc_stride == 0
    assert WindowSpec(max_question_len=1).chunk_len(3) == 384 - 1 - 3
    # A tokenizer with more special tokens than WindowSpec allows for leaves too little room.
    assert WindowSpec(max_seq_len=128, doc_stride=59).chunk_len(4) == 60
    with pytest.raises(InputError) as caught:
        WindowSpec(max_seq_len=128, doc_stride=59).chunk_len(5)
    assert str(caught.value) == (
        "doc_stride (59) must be smaller than this tokenizer's 59 context tokens per window."
    )


def test_chunk_scheme_for_a_tokenizer_and_remembered(tokenizer):
    scheme = ChunkScheme.for_tokenizer(
        tokenizer, max_seq_len=256, doc_stride=32, max_question_len=20
    )
    fingerprint = tokenizer_fingerprint(tokenizer)
    assert (scheme.fingerprint, scheme.chunk_len, scheme.stride) == (fingerprint, 233, 32)
    assert scheme.key == f"{fingerprint}:233:32"
    assert scheme.tokenizer is tokenizer and scheme.load is None

    def load():
        return scheme

    remembered = ChunkScheme.remembered(fingerprint, 3, 256, 32, 20, load=load)
    assert remembered == scheme
    assert remembered.tokenizer is None and remembered.load is load
    assert ChunkScheme.remembered("f", 4, tokenizer=tokenizer).tokenizer is tokenizer
    assert ChunkScheme.remembered("f", 4).chunk_len == 384 - 64 - 4


def test_a_remembered_scheme_loads_its_tokenizer_once_when_first_needed(tokenizer):
    loads = []

    def load():
        loads.append(1)
        return ChunkScheme.for_tokenizer(tokenizer)

    scheme = ChunkScheme.remembered(tokenizer_fingerprint(tokenizer), 3, load=load)
    assert loads == []
    assert scheme.require_tokenizer() is tokenizer
    assert scheme.require_tokenizer() is tokenizer
    assert loads == [1] and scheme.tokenizer is tokenizer
    # A scheme with its tokenizer never loads.
    ChunkScheme.for_tokenizer(tokenizer).__class__(  # same fields, a load that must not run
        scheme.fingerprint, scheme.chunk_len, scheme.stride, tokenizer, lambda: 1 / 0
    ).require_tokenizer()


def test_a_remembered_scheme_refuses_changed_or_missing_tokenizer_files(tokenizer):
    changed = ChunkScheme.remembered("0" * 16, 3, load=lambda: ChunkScheme.for_tokenizer(tokenizer))
    with pytest.raises(InputError) as caught:
        changed.require_tokenizer()
    assert str(caught.value) == (
        "The reader's tokenizer files changed while docqa was running; run the command again."
    )
    with pytest.raises(InputError) as caught:
        ChunkScheme.remembered("0" * 16, 3).require_tokenizer()
    assert str(caught.value) == "This chunk scheme has no tokenizer to cut new documents with."


# --- the tokenizer of a model, without loading the model ------------------------------------


def _tokenizer_folder(folder: Path) -> Path:
    """A copy of the uncased vocabulary's tokenizer files, with their modification times."""
    folder.mkdir(parents=True)
    for file in VOCAB.iterdir():
        shutil.copy2(file, folder / file.name)
    return folder


def test_load_tokenizer_loads_a_folder_and_not_its_pickle_weights(tmp_path):
    folder = _tokenizer_folder(tmp_path / "model")
    (folder / "pytorch_model.bin").write_bytes(b"not read")  # refused for a model, not here
    loaded = load_tokenizer(str(folder))
    assert loaded.name_or_path == str(folder)
    assert loaded.is_fast and tokenize_text(loaded, "unaffable").ids.tolist() == [
        14477,
        20961,
        3468,
    ]


def test_load_tokenizer_refuses_a_folder_that_asks_for_its_own_code(tmp_path):
    folder = _tokenizer_folder(tmp_path / "model")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": ["tok.Tok", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="own code"):
        load_tokenizer(str(folder))


def test_load_tokenizer_of_a_named_model_that_is_not_there_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCQA_MODEL", raising=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError) as caught:
        load_tokenizer(str(tmp_path / "empty"))
    assert re.fullmatch(
        rf"Cannot load the tokenizer of '{re.escape(str(tmp_path / 'empty'))}' "
        r"\((?!NoneType)\w+\); pass --model PATH to a local model folder\.",
        str(caught.value),
    ), str(caught.value)
    # $DOCQA_MODEL names the model as --model does.
    monkeypatch.setenv("DOCQA_MODEL", str(tmp_path / "empty"))
    with pytest.raises(ModelLoadError, match="Cannot load the tokenizer"):
        load_tokenizer()


def test_load_tokenizer_falls_back_to_the_sentence_encoders_without_a_reader(monkeypatch):
    import docqa.reader
    from docqa.retrieve import encoder_path

    monkeypatch.delenv("DOCQA_MODEL", raising=False)
    monkeypatch.setattr(docqa.reader, "resolve_model", lambda name: "/nonexistent/reader")
    assert load_tokenizer().name_or_path == str(encoder_path())


def test_the_default_chunk_scheme_is_the_named_models(monkeypatch):
    scheme = ChunkScheme.default(str(VOCAB), max_seq_len=256, doc_stride=32)
    assert (scheme.chunk_len, scheme.stride) == (256 - 64 - 3, 32)
    assert scheme.tokenizer.name_or_path == str(VOCAB)


def test_tokenizer_files_key_changes_with_the_folder_and_its_files(tmp_path):
    a = _tokenizer_folder(tmp_path / "a")
    b = _tokenizer_folder(tmp_path / "b")  # same names, sizes and times; another folder
    key = tokenizer_files_key(str(a))
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert tokenizer_files_key(str(a)) == key
    assert tokenizer_files_key(str(b)) not in (key, None)
    config = a / "tokenizer_config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
    assert tokenizer_files_key(str(a)) != key
    key = tokenizer_files_key(str(a))
    (a / "added.txt").write_text("x")
    assert tokenizer_files_key(str(a)) != key
    # Not on this machine: no key without loading.
    assert tokenizer_files_key("nobody/no-such-model") is None


def test_tokenizer_files_key_of_a_folder_whose_name_is_not_utf8(tmp_path):
    folder = _tokenizer_folder(tmp_path / os.fsdecode(b"model-\xff"))
    assert re.fullmatch(r"[0-9a-f]{16}", tokenizer_files_key(str(folder)))


# --- mutation testing (issue 21): empty arrays keep their integer type; hub names in the cache --


def test_token_arrays_stay_int64_when_a_piece_of_the_text_has_no_tokens(tokenizer):
    """Mutation testing (issue 21): `_encoding_arrays` gave float64 ids for an Encoding with no
    tokens (np.asarray of an empty list) when it was not told int64; an empty text, or a piece
    of a long text that is only whitespace, then made the document's ids, and every window cut
    from them, float64, which a model's embedding layer refuses."""
    text = "word " + " " * (2 * windowing.PIECE_CHARS) + "word"
    middle = piece_bounds(text)[1]
    assert len(piece_bounds(text)) == 3 and not text[middle[0] : middle[1]].strip()
    tok = tokenize_text(tokenizer, text)
    assert tok.ids.tolist() == [2773, 2773]  # "word", "word"
    assert tok.starts.tolist() == tok.word_start.tolist() == [0, len(text) - 4]
    assert tok.ends.tolist() == tok.word_end.tolist() == [4, len(text)]
    assert [a.dtype for a in (tok.ids, tok.starts, tok.ends, tok.word_start, tok.word_end)] == [
        np.int64
    ] * 5
    [window] = make_windows(pair_template(tokenizer), [2054], tok, 0, max_seq_len=16, doc_stride=4)
    assert window.input_ids.tolist() == [101, 2054, 102, 2773, 2773, 102]
    assert window.input_ids.dtype == np.int64
    empty = tokenize_text(tokenizer, "")
    assert [a.dtype for a in (empty.ids, empty.starts, empty.ends)] == [np.int64] * 3


def test_windows_stay_int64_when_nothing_comes_before_or_after_the_context(tokenizer):
    """Mutation testing (issue 21): `make_windows` built its head (special tokens and question
    before the context) and tail (after it) with np.asarray; an empty one came out float64
    unless told int64, and made the whole window's ids or token types float64. Empty heads and
    tails are layouts `pair_template` learns (`test_pair_template_learns_any_layout`): XLNet's
    ``q c <cls>`` with a question of no tokens (`make_windows` takes any token list;
    `tokenize_question` now refuses a question of marks alone), and a pair with nothing after
    the context."""
    text = tokenize_text(tokenizer, "unaffable cats")
    cls_last = PairTemplate((), (), (101,), 0, 1, 0, 2, 0)
    [window] = make_windows(cls_last, [], text, 0, max_seq_len=16, doc_stride=2)
    assert window.input_ids.tolist() == [14477, 20961, 3468, 8870, 101]
    assert window.token_type_ids.tolist() == [1, 1, 1, 1, 2]
    assert window.context_offset == 0
    assert window.input_ids.dtype == window.token_type_ids.dtype == np.int64
    no_suffix = PairTemplate((101,), (102,), (), 0, 1, 0, 1, 0)
    [window] = make_windows(no_suffix, [2054], text, 0, max_seq_len=16, doc_stride=2)
    assert window.input_ids.tolist() == [101, 2054, 102, 14477, 20961, 3468, 8870]
    assert window.token_type_ids.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert window.input_ids.dtype == window.token_type_ids.dtype == np.int64


def _hub_snapshot(cache: Path, repo_id: str, revision: str = "0123abcd") -> Path:
    """``repo_id``'s tokenizer files as a download leaves them in a Hugging Face cache: a
    snapshot folder per revision, and refs/main naming the revision."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return _tokenizer_folder(repo / "snapshots" / revision)


def test_a_hub_name_in_the_cache_is_keyed_and_checked_by_its_snapshot_folder(tmp_path, monkeypatch):
    """Mutation testing (issue 21): `_model_folder` finds a hub name's files in its snapshot in
    the Hugging Face cache. Looking up another name (None), or taking the name for a folder,
    found none: `tokenizer_files_key` was None (so the index never remembered that tokenizer's
    chunk scheme, and every search loaded the tokenizer), and a cached tokenizer that asks for
    its own code was not refused with docqa's sentence before transformers saw it."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)  # no folder here is named like the model
    snapshot = _hub_snapshot(tmp_path / "hub", "someone/tiny-reader")
    key = tokenizer_files_key("someone/tiny-reader")
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert key == tokenizer_files_key(str(snapshot))
    config = snapshot / "tokenizer_config.json"
    options = json.loads(config.read_text())
    options["auto_map"] = {"AutoTokenizer": ["tok.Tok", None]}
    config.write_text(json.dumps(options))
    with pytest.raises(ModelLoadError) as caught:
        load_tokenizer("someone/tiny-reader")
    assert f"{snapshot} asks for its own code (auto_map in tokenizer_config.json)" in str(
        caught.value
    )


def test_a_question_of_marks_alone_is_refused_not_read_as_no_question(tokenizer):
    """A lone combining accent passes the empty-question check but has no token: the reader
    would read windows with no question in them."""
    from docqa.errors import InputError
    from docqa.windowing import tokenize_question

    with pytest.raises(InputError, match="no word"):
        tokenize_question(tokenizer, "\u0301", 64)
    assert tokenize_question(tokenizer, "caf\u00e9?", 64)
