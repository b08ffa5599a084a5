"""The stride/overflow tokenizer: a context tokenized once, cut into overlapping question windows.

A document is tokenized once, with character offsets, and kept as a `TokenizedText`. For each
question the token stream is sliced into windows of at most ``max_seq_len`` tokens
(question, context and special tokens together) that overlap by ``doc_stride`` context tokens,
the same layout as Hugging Face's ``stride``/``return_overflowing_tokens``. Slicing token
arrays is cheap; tokenizing an 800k-character manual is not, so the slice is what we repeat.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from docqa.errors import InputError


class QuestionTruncatedWarning(UserWarning):
    """The question had more tokens than ``max_question_len`` and was cut."""


@dataclass(frozen=True)
class TokenizedText:
    """One document's tokens and, for each token, character ranges into the original text.

    ``word_start``/``word_end`` give the character range of the whole word a token belongs to,
    so answers can be widened to whole words (never half a WordPiece).
    """

    ids: np.ndarray  # int64 [n]
    starts: np.ndarray  # int64 [n] character start of each token
    ends: np.ndarray  # int64 [n] character end of each token
    word_start: np.ndarray  # int64 [n]
    word_end: np.ndarray  # int64 [n]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class PairTemplate:
    """Where a model's special tokens go around (question, context), learnt from its tokenizer.

    BERT builds ``[CLS] q [SEP] c [SEP]`` with token types 0/1; RoBERTa builds
    ``<s> q </s></s> c </s>`` and has no token types. Learning the layout once from the
    tokenizer keeps windowing model-agnostic.
    """

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    question_type: int
    context_type: int
    middle_type: int
    suffix_type: int
    cls_index: int  # position scored as "no answer"

    @property
    def n_special(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


@dataclass(frozen=True)
class Window:
    """One model input: the question and a slice ``[token_start, token_end)`` of a document."""

    doc_index: int
    input_ids: np.ndarray  # int64 [seq]
    token_type_ids: np.ndarray  # int64 [seq]
    context_offset: int  # position in input_ids of the first context token
    token_start: int  # first document token in this window
    token_end: int  # one past the last document token

    def __len__(self) -> int:
        return len(self.input_ids)


def tokenize_text(tokenizer, text: str) -> TokenizedText:
    """Tokenize a whole document once, without special tokens, keeping offsets and words.

    Goes through the fast tokenizer's backend directly: it has no length limit to warn about
    and returns offsets and word ids in one pass.
    """
    backend = _backend(tokenizer)
    enc = backend.encode(text, add_special_tokens=False)
    n = len(enc.ids)
    ids = np.asarray(enc.ids, dtype=np.int64)
    offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(n, 2)
    starts, ends = offsets[:, 0].copy(), offsets[:, 1].copy()
    word_start, word_end = starts.copy(), ends.copy()
    words = enc.word_ids
    if n and all(w is not None for w in words):
        word_ids = np.asarray(words, dtype=np.int64)
        # A word's character range runs from its first token's start to its last token's end.
        boundaries = np.flatnonzero(np.diff(word_ids)) + 1
        for group in np.split(np.arange(n), boundaries):
            word_start[group] = starts[group[0]]
            word_end[group] = ends[group[-1]]
    return TokenizedText(ids, starts, ends, word_start, word_end)


def tokenize_question(tokenizer, question: str, max_question_len: int) -> list[int]:
    """Question token ids, cut to ``max_question_len`` with a warning rather than an error."""
    if not question or not question.strip():
        raise InputError("The question is empty.")
    ids = _backend(tokenizer).encode(question.strip(), add_special_tokens=False).ids
    if len(ids) > max_question_len:
        warnings.warn(
            f"The question has {len(ids)} tokens; only the first {max_question_len} are used.",
            QuestionTruncatedWarning,
            stacklevel=2,
        )
        ids = ids[:max_question_len]
    return list(ids)


def pair_template(tokenizer) -> PairTemplate:
    """Learn where the tokenizer puts special tokens in a (question, context) pair."""
    enc = tokenizer("a", "b", add_special_tokens=True, return_token_type_ids=True)
    ids = list(enc["input_ids"])
    types = list(enc.get("token_type_ids") or [0] * len(ids))
    seq = enc.sequence_ids()
    q_pos = [i for i, s in enumerate(seq) if s == 0]
    c_pos = [i for i, s in enumerate(seq) if s == 1]
    if not q_pos or not c_pos:
        raise InputError("This tokenizer cannot encode a question and a context as a pair.")
    q0, q1, c0, c1 = q_pos[0], q_pos[-1] + 1, c_pos[0], c_pos[-1] + 1
    cls_id = tokenizer.cls_token_id
    cls_index = ids.index(cls_id) if cls_id is not None and cls_id in ids[:q0] else 0
    return PairTemplate(
        prefix=tuple(ids[:q0]),
        middle=tuple(ids[q1:c0]),
        suffix=tuple(ids[c1:]),
        question_type=types[q0],
        context_type=types[c0],
        middle_type=types[q1] if c0 > q1 else types[q0],
        suffix_type=types[c1] if len(ids) > c1 else types[c0],
        cls_index=cls_index,
    )


def window_bounds(n_tokens: int, max_context: int, doc_stride: int) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` covering ``n_tokens`` with ``doc_stride`` tokens of overlap.

    >>> window_bounds(10, 4, 2)
    [(0, 4), (2, 6), (4, 8), (6, 10)]
    """
    if max_context <= doc_stride:
        raise InputError(
            f"doc_stride ({doc_stride}) must be smaller than the context part of a window "
            f"({max_context} tokens)."
        )
    step = max_context - doc_stride
    bounds = []
    start = 0
    while True:
        end = min(start + max_context, n_tokens)
        bounds.append((start, end))
        if end >= n_tokens:
            return bounds
        start += step


def make_windows(
    template: PairTemplate,
    question_ids: list[int],
    text: TokenizedText,
    doc_index: int,
    max_seq_len: int,
    doc_stride: int,
    span: tuple[int, int] | None = None,
) -> list[Window]:
    """All windows of one document for one question, in document order.

    ``span`` limits them to the tokens ``[start, end)`` (a retrieved chunk); default: all.
    """
    lo, hi = span if span is not None else (0, len(text))
    max_context = max_seq_len - len(question_ids) - template.n_special
    head = np.asarray([*template.prefix, *question_ids, *template.middle], dtype=np.int64)
    head_types = np.asarray(
        [template.question_type] * (len(template.prefix) + len(question_ids))
        + [template.middle_type] * len(template.middle),
        dtype=np.int64,
    )
    tail = np.asarray(template.suffix, dtype=np.int64)
    tail_types = np.full(len(tail), template.suffix_type, dtype=np.int64)
    windows = []
    for s, e in window_bounds(hi - lo, max_context, doc_stride):
        start, end = lo + s, lo + e
        context = text.ids[start:end]
        windows.append(
            Window(
                doc_index=doc_index,
                input_ids=np.concatenate([head, context, tail]),
                token_type_ids=np.concatenate(
                    [head_types, np.full(len(context), template.context_type), tail_types]
                ),
                context_offset=len(head),
                token_start=start,
                token_end=end,
            )
        )
    return windows


def _backend(tokenizer):
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise InputError("docqa needs a fast (Rust) tokenizer; this model only has a slow one.")
    # A saved tokenizer.json can carry fixed truncation and padding (bert-base-uncased's pads
    # and cuts everything to 128 tokens). The transformers wrapper resets them on each call;
    # going to the backend directly, we must reset them ourselves.
    if backend.truncation is not None:
        backend.no_truncation()
    if backend.padding is not None:
        backend.no_padding()
    return backend
