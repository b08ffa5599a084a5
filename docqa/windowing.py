"""The stride/overflow tokenizer: a context tokenized once, cut into overlapping question windows.

A document is tokenized once, with character offsets, and kept as a `TokenizedText`. For each
question the token stream is sliced into windows of at most ``max_seq_len`` tokens
(question, context and special tokens together) that overlap by ``doc_stride`` context tokens,
the same layout as Hugging Face's ``stride``/``return_overflowing_tokens``. Slicing token
arrays is cheap; tokenizing an 800k-character manual is not, so the slice is what we repeat.
That shape is one `WindowSpec`, which reading, indexing and training all take and check alike.

Retrieval (`docqa.retrieve`) and the persistent index (`docqa.index`) rank question-independent
*chunks* instead, each read as one window, cut as a `ChunkScheme` says: whose tokenizer
(`tokenizer_fingerprint`), how many context tokens beside the longest question
(`chunk_length`), how much overlap.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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


#: Characters per piece when a long text is tokenized: the fast tokenizer's cost per character
#: grows with the length of the string it is given, and its `Encoding` of a whole book costs
#: far more memory than the arrays kept from it; pieces of this size are about the fastest.
PIECE_CHARS = 1 << 16
#: How far back from a piece's nominal end a cut may move to find a space.
_CUT_SLACK = 1 << 12
# Cut only at ASCII whitespace: every tokenizer treats it as a word boundary (Unicode spaces
# and control characters are not boundaries for all of them: BERT deletes U+001C outright).
_SPACES = " \t\n\r"
# Without a space, after an ideograph or CJK punctuation: BERT cuts around each ideograph.
_CUT_AFTER = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


def piece_bounds(text: str, size: int = PIECE_CHARS) -> list[tuple[int, int]]:
    """Character ranges ``[start, end)`` that cut ``text`` into pieces of about ``size``.

    Each cut is placed where a run of whitespace starts, so the whitespace opens the next
    piece: tokens never span a cut, and byte-level BPE tokenizers, which fold a space into the
    word after it (``Ġword``), see the same words as in one pass. Only a stretch of ``size``
    characters without a space is cut elsewhere (after an ideograph if there is one).

    >>> piece_bounds("aaa bbb ccc", 5)
    [(0, 3), (3, 7), (7, 11)]
    """
    n = len(text)
    bounds: list[tuple[int, int]] = []
    start = 0
    while n - start > size:
        target = start + size
        lo = max(start + 1, target - min(_CUT_SLACK, size // 2))
        cut = max(text.rfind(c, lo, target + 1) for c in _SPACES)
        if cut > start:
            # Back to where this run of whitespace starts (a run longer than the slack is cut
            # inside: no tokenizer makes a token of it).
            run = cut
            while run > lo and text[run - 1] in _SPACES:
                run -= 1
            if text[run - 1] not in _SPACES:
                cut = run
        else:
            for m in _CUT_AFTER.finditer(text, lo, target):
                cut = m.end()
        if cut <= start:
            cut = target
        bounds.append((start, cut))
        start = cut
    bounds.append((start, n))
    return bounds


def tokenize_text(tokenizer, text: str) -> TokenizedText:
    """Tokenize a whole document once, without special tokens, keeping offsets and words.

    Goes through the fast tokenizer's backend directly: it has no length limit to warn about
    and returns offsets and word ids in one pass. A long text is tokenized in pieces cut at
    whitespace (`piece_bounds`) and the offsets are shifted back: the same tokens and offsets
    as one pass, at a memory cost bounded by the piece size rather than the text's.
    """
    backend = fast_backend(tokenizer)
    bounds = piece_bounds(text, PIECE_CHARS)
    parts: list[tuple[np.ndarray, ...]] = []
    # A few pieces at a time: encode_batch tokenizes them on all cores, and only their
    # Encodings are alive at once.
    for b in range(0, len(bounds), 16):
        batch = bounds[b : b + 16]
        if len(batch) == 1:
            encodings = [backend.encode(text[batch[0][0] : batch[0][1]], add_special_tokens=False)]
        else:
            encodings = backend.encode_batch(
                [text[s:e] for s, e in batch], add_special_tokens=False
            )
        for (start, _), enc in zip(batch, encodings, strict=True):
            parts.append(_encoding_arrays(enc, start))
    if len(parts) == 1:
        return TokenizedText(*parts[0])
    return TokenizedText(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def _encoding_arrays(enc, shift: int) -> tuple[np.ndarray, ...]:
    """ids, starts, ends, word_start, word_end of one Encoding, offsets moved by ``shift``."""
    n = len(enc.ids)
    ids = np.asarray(enc.ids, dtype=np.int64)
    flat = itertools.chain.from_iterable(enc.offsets)
    offsets = np.fromiter(flat, dtype=np.int64, count=2 * n).reshape(n, 2)
    starts, ends = offsets[:, 0] + shift, offsets[:, 1] + shift
    words = enc.word_ids
    if not n or None in words:
        return ids, starts, ends, starts.copy(), ends.copy()
    word_ids = np.asarray(words, dtype=np.int64)
    # A word's character range runs from its first token's start to its last token's end.
    first = np.empty(n, dtype=bool)
    first[0] = True
    first[1:] = word_ids[1:] != word_ids[:-1]
    last = np.empty(n, dtype=bool)
    last[-1] = True
    last[:-1] = first[1:]
    positions = np.arange(n)
    first_of = np.maximum.accumulate(np.where(first, positions, 0))
    last_of = np.minimum.accumulate(np.where(last, positions, n)[::-1])[::-1]
    return ids, starts, ends, starts[first_of], ends[last_of]


def check_question(question: str) -> None:
    """Refuse an empty question (before anything is loaded or read for it)."""
    if not question or not question.strip():
        raise InputError("The question is empty.")


def tokenize_question(tokenizer, question: str, max_question_len: int) -> list[int]:
    """Question token ids, cut to ``max_question_len`` with a warning rather than an error."""
    check_question(question)
    ids = fast_backend(tokenizer).encode(question.strip(), add_special_tokens=False).ids
    if not ids:
        # Marks alone (a lone combining accent): nothing for the reader to read.
        raise InputError("The question has no word the model can read.")
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


def fast_backend(tokenizer):
    """The Rust tokenizer behind ``tokenizer``, with no fixed truncation or padding: every
    caller that encodes through the backend directly goes through here."""
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


def chunk_length(max_seq_len: int, max_question_len: int, n_special: int) -> int:
    """Context tokens per chunk, so that any question that is not cut fits beside it.

    >>> chunk_length(384, 64, 3)
    317
    """
    n = max_seq_len - max_question_len - n_special
    if n < 1:
        raise InputError(
            f"max_seq_len ({max_seq_len}) leaves no room for context after a "
            f"{max_question_len}-token question."
        )
    return n


#: The most special tokens a tokenizer puts around a question–context pair (RoBERTa's
#: ``<s> q </s></s> c </s>``; BERT's ``[CLS] q [SEP] c [SEP]`` has 3). `WindowSpec` checks a
#: shape with this bound, before any tokenizer is loaded, so that a shape it accepts works
#: with every reader.
MAX_SPECIAL_TOKENS = 4
#: The longest window docqa accepts; a model's own limit is checked when it loads
#: (`docqa.modelio.check_window_length`).
MAX_SEQ_LEN_LIMIT = 4096


@dataclass(frozen=True)
class WindowSpec:
    """The shape of the reader's windows, defined and checked here once for reading,
    indexing, training and evaluation.

    ``max_seq_len`` tokens per window (question, context and special tokens together),
    ``doc_stride`` context tokens of overlap between neighbouring windows, questions cut to
    ``max_question_len`` tokens. A window must hold the longest question, the special tokens
    and more context than the overlap, or cutting a document into windows never advances.

    >>> WindowSpec()
    WindowSpec(max_seq_len=384, doc_stride=128, max_question_len=64)
    >>> WindowSpec(max_seq_len=256).chunk_len(3)
    189
    >>> WindowSpec(max_seq_len=128, doc_stride=128)
    Traceback (most recent call last):
    ...
    docqa.errors.InputError: doc_stride (128) must be smaller than the 60 context tokens left in a 128-token window (max_seq_len) beside a 64-token question (max_question_len) and the special tokens.
    """  # noqa: E501

    max_seq_len: int = 384
    doc_stride: int = 128
    max_question_len: int = 64

    def __post_init__(self):
        for name in ("max_seq_len", "doc_stride", "max_question_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"{name} must be a whole number of tokens, not {value!r}.")
        if self.max_question_len < 1:
            raise InputError("max_question_len must be at least 1.")
        if self.doc_stride < 0:
            raise InputError(f"doc_stride must be 0 or more, not {self.doc_stride}.")
        if self.max_seq_len > MAX_SEQ_LEN_LIMIT:
            raise InputError(f"max_seq_len above {MAX_SEQ_LEN_LIMIT} is not supported.")
        room = self.max_seq_len - self.max_question_len - MAX_SPECIAL_TOKENS
        if self.doc_stride >= room:
            raise InputError(
                f"doc_stride ({self.doc_stride}) must be smaller than the {max(room, 0)} "
                f"context tokens left in a {self.max_seq_len}-token window (max_seq_len) beside "
                f"a {self.max_question_len}-token question (max_question_len) and the special "
                "tokens."
            )

    def chunk_len(self, n_special: int) -> int:
        """Context tokens per stored chunk: what a window keeps beside the longest question
        and ``n_special`` special tokens (`chunk_length`), so that the reader reads each chunk
        as one window.

        >>> WindowSpec().chunk_len(3)
        317
        """
        n = chunk_length(self.max_seq_len, self.max_question_len, n_special)
        # Fails only for a tokenizer with more than MAX_SPECIAL_TOKENS special tokens.
        if self.doc_stride >= n:
            raise InputError(
                f"doc_stride ({self.doc_stride}) must be smaller than this tokenizer's "
                f"{n} context tokens per window."
            )
        return n


# -- the chunk scheme of a persistent index ----------------------------------------------------


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash of everything in a fast tokenizer that decides its tokens and offsets.

    Padding and truncation settings are left out: they differ between copies of the same
    vocabulary and never reach `tokenize_text`.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise InputError("docqa needs a fast (Rust) tokenizer; this model only has a slow one.")
    spec = json.loads(backend.to_str())
    kept = {k: spec.get(k) for k in ("normalizer", "pre_tokenizer", "model", "added_tokens")}
    blob = json.dumps(kept, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class ChunkScheme:
    """How documents are cut into chunks: whose tokens, how long, how much overlap.

    ``chunk_len`` is the context length left beside a ``max_question_len``-token question in a
    ``max_seq_len`` window (`chunk_length`), so the reader reads each stored chunk as one
    window. The tokenizer object travels along (not stored, not compared); a scheme
    remembered from an earlier load (`remembered`) has none until `require_tokenizer`.
    """

    fingerprint: str
    chunk_len: int
    stride: int
    tokenizer: object = field(default=None, compare=False, repr=False)
    #: Makes the same scheme with its tokenizer loaded (a remembered scheme).
    load: Callable[[], ChunkScheme] | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.fingerprint}:{self.chunk_len}:{self.stride}"

    @property
    def n_special(self) -> int | None:
        """The special tokens of a question–context pair (None without a tokenizer)."""
        return None if self.tokenizer is None else pair_template(self.tokenizer).n_special

    def require_tokenizer(self):
        """The tokenizer, loaded now if this scheme was remembered without it."""
        if self.tokenizer is None and self.load is not None:
            loaded = self.load()
            if loaded != self:
                raise InputError(
                    "The reader's tokenizer files changed while docqa was running; run the "
                    "command again."
                )
            # Kept on this (frozen) scheme: every later document reuses the loaded tokenizer.
            object.__setattr__(self, "tokenizer", loaded.tokenizer)
        if self.tokenizer is None:
            raise InputError("This chunk scheme has no tokenizer to cut new documents with.")
        return self.tokenizer

    @classmethod
    def for_tokenizer(
        cls,
        tokenizer,
        max_seq_len: int = WindowSpec.max_seq_len,
        doc_stride: int = WindowSpec.doc_stride,
        max_question_len: int = WindowSpec.max_question_len,
    ) -> ChunkScheme:
        n_special = pair_template(tokenizer).n_special
        return cls.remembered(
            tokenizer_fingerprint(tokenizer),
            n_special,
            max_seq_len,
            doc_stride,
            max_question_len,
            tokenizer=tokenizer,
        )

    @classmethod
    def remembered(
        cls,
        fingerprint: str,
        n_special: int,
        max_seq_len: int = WindowSpec.max_seq_len,
        doc_stride: int = WindowSpec.doc_stride,
        max_question_len: int = WindowSpec.max_question_len,
        *,
        tokenizer=None,
        load: Callable[[], ChunkScheme] | None = None,
    ) -> ChunkScheme:
        """The scheme of a tokenizer known by its fingerprint and special-token count, with
        the tokenizer itself (``tokenizer``) or a way to load it when needed (``load``)."""
        spec = WindowSpec(max_seq_len, doc_stride, max_question_len)
        return cls(fingerprint, spec.chunk_len(n_special), doc_stride, tokenizer, load)

    @classmethod
    def default(cls, model: str | None = None, **settings) -> ChunkScheme:
        """The scheme of ``model``'s tokenizer (default: the bundled reader's), loading only
        the tokenizer. Without a loadable one, the sentence encoder's tokenizer, which is the
        same uncased BERT vocabulary as the bundled reader and bert-large-uncased."""
        return cls.for_tokenizer(load_tokenizer(model), **settings)


def tokenizer_files_key(model: str | None = None) -> str | None:
    """A key that changes whenever the files of ``model``'s tokenizer may have changed (its
    folder, and each file's name, size and modification time), found without loading it; None
    when the folder is not known without loading (a hub name not in the cache)."""
    _, folder = _model_folder(model)
    if folder is None:
        return None
    try:
        folder = folder.resolve()
        parts = [str(folder)]
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            st = entry.stat()
            parts.append(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}")
    except OSError:
        return None
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _model_folder(model: str | None) -> tuple[str, Path | None]:
    """``model`` resolved (`resolve_model`), and its local folder: the path itself, or its
    snapshot in the Hugging Face cache (None when neither is on this machine)."""
    from docqa.modelio import cached_model_folder
    from docqa.reader import resolve_model

    name = resolve_model(model)
    local = Path(name).expanduser()
    return name, local if local.is_dir() else cached_model_folder(name)


def load_tokenizer(model: str | None = None):
    """The tokenizer of ``model`` (name or folder; default the bundled reader), offline.

    Falls back to the sentence encoder's tokenizer when no model is given and the default
    reader is not available, so `docqa search` works on a machine with no reader at all.
    """
    from docqa.modelio import LOADING

    with LOADING:
        return _load_tokenizer(model)


def _load_tokenizer(model: str | None):
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from docqa.errors import ModelLoadError
    from docqa.modelio import check_model_folder
    from docqa.retrieve import encoder_path

    hf_logging.set_verbosity_error()
    name, folder = _model_folder(model)
    # No code from the model folder: refused with its own sentence, whoever named the model.
    if folder is not None:
        check_model_folder(folder, weights=False)
    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True, trust_remote_code=False)
    except Exception as exc:
        if model or os.environ.get("DOCQA_MODEL"):
            raise ModelLoadError(
                f"Cannot load the tokenizer of {name!r} ({type(exc).__name__}); pass --model "
                "PATH to a local model folder."
            ) from exc
    return AutoTokenizer.from_pretrained(
        str(encoder_path()), local_files_only=True, trust_remote_code=False
    )
