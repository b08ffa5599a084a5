"""Search, the reading side: ranking chunks for a question, stored documents and tokens.

* `Searcher.rank`: the best chunks of some documents for a question, over a `Corpus` of
  every chunk of a scheme (cached per generation): BM25 (`_bm25`, stored in the index and
  rebuilt from the chunks' terms when they change, `_bm25_from_chunks`) fused with dense
  similarity over BM25's best candidates, their vectors made on first need (`StoredVectors`);
* `Searcher.search`: ranked chunks with their file, page and best snippet (`Hit`);
* `Searcher.document`, `Searcher.tokens`: a stored document, and the reader tokens of any
  range of it, reading only the text parts the range spans (whole parts kept in a cache of
  bounded size).

Nothing here writes but the caches (the BM25 index, vectors made on demand), and only when the
write lock is free at once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from docqa.errors import IndexBusyError, IndexWriteError, InputError
from docqa.index.store import (
    Store,
    doc_parts,
    path_from_db,
    read_block,
    read_vectors,
    release_memory,
    text_range,
    tokens_from_blocks,
    transaction,
    write_vectors,
)
from docqa.retrieve import (
    Bm25,
    Chunk,
    DenseEncoder,
    Retriever,
    piece_blocks,
    piece_vectors,
    skipped_chunks,
)
from docqa.types import Document, Page, Region, Section
from docqa.windowing import ChunkScheme, TokenizedText

#: Tokens of text parts kept in memory for reading (many small documents' parts).
CACHED_TOKENS = 1 << 22
#: Parts with more tokens than this are not cached whole: only the ranges read are read.
CACHED_PART_TOKENS = 1 << 16


@dataclass(frozen=True)
class Hit:
    """One chunk found by `Index.search`, best first."""

    path: str
    doc_id: int
    start: int  # character range of the chunk in the document's text
    end: int
    score: float
    page: int | None
    snippet_start: int  # the best few sentences of the chunk, for display
    snippet_end: int
    text: str = field(repr=False)  # the document's whole text

    @property
    def snippet(self) -> str:
        return self.text[self.snippet_start : self.snippet_end]

    def to_dict(self) -> dict:
        """The hit as JSON (`docqa search --json`, the HTTP API's ``/v1/search``), defined once."""
        return {
            "source": self.path,
            "doc_id": self.doc_id,
            "page": self.page,
            "start": self.start,
            "end": self.end,
            "score": self.score,
            "snippet": self.snippet,
            "snippet_start": self.snippet_start,
            "snippet_end": self.snippet_end,
        }


@dataclass
class Corpus:
    """All chunks of one scheme, with the retriever over them (cached per generation)."""

    generation: int
    chunk_ids: np.ndarray
    doc_ids: np.ndarray
    token_start: np.ndarray
    token_end: np.ndarray
    char_start: np.ndarray
    char_end: np.ndarray
    retriever: Retriever
    #: Chunks at least half inside a table of contents or an index (`SKIPPED_ROLES`).
    furniture: np.ndarray | None = None


class Searcher:
    """The reading side of one `Store`, with its caches (the corpus of each scheme and
    encoder, token blocks). One may be used from several threads: each thread reads through
    its own connection, and the caches are shared under a lock."""

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()  # the caches below
        self.corpora: dict[tuple[str, str | None], Corpus] = {}
        self.tokens_cache: OrderedDict[tuple[int, str, int], np.ndarray] = OrderedDict()

    def document_id(self, sha256: str) -> int | None:
        """The id of the stored document whose content hash is ``sha256`` (None: not stored)."""
        db = self.store.connect()
        row = db.execute("SELECT id FROM documents WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else int(row[0])

    def document(self, doc_id: int, source: str | None = None) -> Document:
        """The stored document ``doc_id``, as its loader made it, with ``source`` as its name."""
        db = self.store.connect()
        row = db.execute(
            "SELECT d.pages, d.sections, d.meta, d.sha256, d.regions, "
            "(SELECT path FROM files f WHERE f.doc_id = d.id ORDER BY path LIMIT 1) "
            "FROM documents d WHERE d.id = ?",
            (doc_id,),
        ).fetchone()
        if row is None:
            raise InputError(f"The index has no document {doc_id}.")
        pages, sections, meta, sha, regions, path = row
        if doc_parts(db, doc_id) == 1:
            (text,) = db.execute("SELECT text FROM texts WHERE doc_id = ?", (doc_id,)).fetchone()
        else:
            # Joined as UTF-8 bytes, decoded once: a str per part and the joined str would hold
            # the text twice at once, at up to four bytes a character each.
            data = b"".join(
                blob
                for (blob,) in db.execute(
                    "SELECT CAST(text AS BLOB) FROM texts WHERE doc_id = ? ORDER BY part",
                    (doc_id,),
                )
            )
            text = data.decode("utf-8")
            del data
        return Document(
            text=text,
            source=source or path_from_db(path) or "",
            pages=tuple(Page(*p) for p in json.loads(pages)),
            sections=tuple(Section(*s) for s in json.loads(sections)),
            regions=tuple(Region(*r) for r in json.loads(regions)),
            sha256=sha,
            meta=json.loads(meta),
        )

    def tokens(
        self, doc_id: int, scheme: ChunkScheme, lo: int = 0, hi: int | None = None
    ) -> TokenizedText:
        """The stored reader tokens ``[lo, hi)`` of ``doc_id`` for ``scheme`` (default all),
        character offsets into the whole text; only the text parts they span are read."""
        db = self.store.connect()
        rows = db.execute(
            "SELECT t.part, t.token_start, t.n, x.char_start FROM tokens t JOIN texts x "
            "ON x.doc_id = t.doc_id AND x.part = t.part "
            "WHERE t.doc_id = ? AND t.scheme = ? ORDER BY t.part",
            (doc_id, scheme.key),
        ).fetchall()
        if not rows:
            raise InputError(f"Document {doc_id} has no chunks for this model in the index.")
        total = rows[-1][1] + rows[-1][2]
        hi = total if hi is None else min(hi, total)
        lo = max(0, min(lo, hi))
        mine = [r for r in rows if r[1] < hi and r[1] + r[2] > lo] or rows[-1:]
        blocks, starts = [], []
        for part, first, n, char_start in mine:
            a, b = max(lo, first) - first, min(hi, first + n) - first
            if n <= CACHED_PART_TOKENS:
                blocks.append(self._token_block(db, doc_id, scheme, part)[:, a:b])
            else:
                blocks.append(_read_token_range(db, doc_id, scheme.key, part, n, a, b))
            starts.append(char_start)
        return tokens_from_blocks(blocks, starts)

    def _token_block(self, db, doc_id: int, scheme: ChunkScheme, part: int) -> np.ndarray:
        """One part's packed tokens (`_unpack_block`), kept in a cache of bounded size."""
        key = (doc_id, scheme.key, part)
        with self._lock:  # threads share the cache
            hit = self.tokens_cache.get(key)
            if hit is not None:
                self.tokens_cache.move_to_end(key)
                return hit
        block = read_block(db, *key)
        with self._lock:
            self.tokens_cache[key] = block
            held = sum(b.shape[1] for b in self.tokens_cache.values())
            while held > CACHED_TOKENS and len(self.tokens_cache) > 1:
                _, dropped = self.tokens_cache.popitem(last=False)
                held -= dropped.shape[1]
        return block

    def rank(
        self, question: str, doc_ids: Sequence[int], corpus: Corpus, k: int, contents: bool
    ) -> list[tuple[Chunk, float]]:
        """`Index.rank` over ``corpus`` (`corpus`: the chunks of one scheme and encoder);
        ``contents``: also chunks in tables of contents and indexes."""
        if not len(corpus.chunk_ids):
            return []
        mask = np.isin(corpus.doc_ids, np.asarray(list(doc_ids), dtype=np.int64))
        if not contents:
            mask &= ~corpus.furniture
        if not mask.any():
            return []
        ranked = corpus.retriever.rank(question, k, mask)
        return [
            (
                Chunk(
                    int(corpus.doc_ids[i]),
                    int(corpus.token_start[i]),
                    int(corpus.token_end[i]),
                    int(corpus.char_start[i]),
                    int(corpus.char_end[i]),
                ),
                score,
            )
            for i, score in ranked
        ]

    def search(
        self, query: str, doc_ids: Sequence[int], corpus: Corpus, k: int, paths, contents: bool
    ) -> list[Hit]:
        """`Index.search` over ``corpus``: `rank`, then each chunk's file, page and snippet."""
        # Neighbouring chunks overlap; rank a few spare ones so that k distinct chunks
        # remain after dropping snippets that overlap one already shown.
        ranked = self.rank(query, doc_ids, corpus, 3 * k, contents)
        return hits_from_ranked(
            ranked, k, query, lambda doc_id: self.document(doc_id, (paths or {}).get(doc_id))
        )

    def corpus(self, scheme: ChunkScheme, encoder: DenseEncoder | None) -> Corpus:
        """Every chunk of ``scheme`` with its retriever (and ``encoder``'s vectors), cached
        until the generation changes."""
        generation = self.store.generation()
        cache_key = (scheme.key, encoder.name if encoder else None)
        cached = self.corpora.get(cache_key)
        if cached is not None and cached.generation == generation:
            return cached
        db = self.store.connect()
        cursor = db.execute(
            "SELECT id, doc_id, token_start, token_end, char_start, char_end FROM chunks "
            "WHERE scheme = ? ORDER BY id",
            (scheme.key,),
        )
        # Straight into an array: a list of a row tuple per chunk is large and lingers.
        flat = np.fromiter(itertools.chain.from_iterable(cursor), dtype=np.int64)
        cols = flat.reshape(-1, 6).T.copy()
        del flat
        size = cols.shape[1]
        bm25 = self._bm25(db, scheme, generation, size)
        retriever = Retriever(bm25)
        if encoder is not None and size:
            source = StoredVectors(self.store, encoder, cols[0], cols[1], cols[4], cols[5])
            retriever = Retriever(bm25, encoder, source)
        corpus = Corpus(generation, *cols, retriever=retriever)
        corpus.furniture = _furniture(db, corpus)
        self.corpora[cache_key] = corpus
        return corpus

    def _bm25(self, db, scheme: ChunkScheme, generation: int, size: int) -> Bm25:
        """The BM25 index over the ``size`` chunks of ``scheme``: the stored one if it is
        current, else built afresh (and stored when the write lock is free)."""
        row = db.execute(
            "SELECT generation, state FROM bm25 WHERE scheme = ?", (scheme.key,)
        ).fetchone()
        if row is not None and row[0] == generation:
            try:
                cached = Bm25.from_state(row[1])
                if cached.size == size:
                    return cached
            except Exception:
                pass  # a damaged cache is only a cache: rebuild it below
        bm25 = _bm25_from_chunks(db, scheme.key)
        if size >= _BM25_BLOCK * 64:
            release_memory()
        # Caching needs the write lock; a reader that cannot get it at once (or cannot write
        # at all: a read-only index, a full disk) just goes on.
        with contextlib.suppress(IndexBusyError, IndexWriteError, sqlite3.OperationalError):
            if self.store.read_only:
                return bm25
            with self.store.write_lock(timeout=0), transaction(db):
                if self.store.generation() == generation:
                    db.execute(
                        "INSERT OR REPLACE INTO bm25 VALUES (?, ?, ?)",
                        (scheme.key, generation, bm25.to_state()),
                    )
        return bm25


class StoredVectors:
    """The `docqa.retrieve.VectorSource` of an index's chunks: vectors are read from the
    index, and those of chunks that have none yet are encoded now and stored, so that every
    later question (in any process) reuses them. Indexing never waits for this: vectors are
    made when a question first ranks a chunk among BM25's candidates (or all at once by
    ``docqa index --vectors``).

    Storing is best effort: a read-only index, a full disk or another process's update (the
    write lock is not free at once) only means the vectors are kept in memory instead.
    """

    def __init__(self, store: Store, encoder: DenseEncoder, chunk_ids, doc_ids, starts, ends):
        self.store = store
        self.encoder = encoder
        self.chunk_ids = chunk_ids
        self.doc_ids = doc_ids
        self.starts = starts
        self.ends = ends
        self.block_starts, self.block_ends = piece_blocks(doc_ids, starts, ends)
        self.kept: dict[int, np.ndarray] = {}

    def __call__(self, positions: np.ndarray) -> list[np.ndarray]:
        db = self.store.connect()
        ids = [int(self.chunk_ids[i]) for i in positions]
        wanted = [w for w in ids if w not in self.kept]
        self.kept.update(read_vectors(db, self.encoder.name, wanted))
        missing = [(int(i), w) for i, w in zip(positions, ids, strict=True) if w not in self.kept]
        if missing:
            chunks = [
                (
                    int(self.doc_ids[i]),
                    int(self.starts[i]),
                    int(self.ends[i]),
                    int(self.block_starts[i]),
                    int(self.block_ends[i]),
                )
                for i, _ in missing
            ]
            encoded = piece_vectors(
                self.encoder, chunks, lambda doc_id, lo, hi: text_range(db, doc_id, lo, hi)
            )
            # Kept as stored (float16): the question that made them ranks with what every
            # later question, another process or a corpus reads back.
            made = [(w, v.astype(np.float16)) for (_, w), v in zip(missing, encoded, strict=True)]
            self.kept.update(made)
            self._store(db, made)
        return [self.kept[w] for w in ids]

    def _store(self, db, made: list[tuple[int, np.ndarray]]) -> None:
        if self.store.read_only:
            return
        busy = (IndexBusyError, IndexWriteError, sqlite3.OperationalError)
        with contextlib.suppress(*busy), self.store.write_lock(timeout=0), transaction(db):
            write_vectors(db, self.encoder.name, made)


# -- helpers ----------------------------------------------------------------------------------


def hits_from_ranked(
    ranked: Sequence[tuple[Chunk, float]],
    k: int,
    query: str,
    document: Callable[[int], Document],
) -> list[Hit]:
    """The first ``k`` of ``ranked`` chunks as `Hit`s, each with its file, page and best
    snippet for ``query``, skipping a chunk whose snippet overlaps one already kept (chunks
    overlap: rank about 3k of them). ``document(doc_id)`` gives a chunk's document."""
    from docqa.retrieve import best_snippet

    hits: list[Hit] = []
    docs: dict[int, Document] = {}
    for chunk, score in ranked:
        if len(hits) == k:
            break
        doc = docs.get(chunk.doc_id)
        if doc is None:
            doc = docs[chunk.doc_id] = document(chunk.doc_id)
        s, e = best_snippet(doc.text, chunk.start, chunk.end, query)
        if any(
            h.doc_id == chunk.doc_id and h.snippet_start < e and s < h.snippet_end for h in hits
        ):
            continue
        hits.append(
            Hit(
                doc.source,
                chunk.doc_id,
                chunk.start,
                chunk.end,
                score,
                doc.page_at(s),
                s,
                e,
                doc.text,
            )
        )
    return hits


def _furniture(db, corpus: Corpus) -> np.ndarray:
    """Which chunks of ``corpus`` lie in its documents' contents or index regions."""
    rows = db.execute("SELECT id, regions FROM documents WHERE regions != '[]'").fetchall()
    regions = {doc_id: json.loads(found) for doc_id, found in rows}
    return skipped_chunks(corpus.doc_ids, corpus.char_start, corpus.char_end, regions)


#: Chunks whose BM25 terms are counted together while the BM25 index is built.
_BM25_BLOCK = 1024


def _bm25_from_chunks(db, scheme_key: str) -> Bm25:
    """BM25 over every chunk of a scheme, from their stored terms, a block of chunks at a
    time: each chunk's terms become ids and counts at once, so no list of every term of
    every chunk is ever built (for a very large file, tens of millions of strings)."""
    vocab: dict[str, int] = {}
    term_blocks, count_blocks, length_blocks, width_blocks = [], [], [], []
    cursor = db.execute("SELECT terms FROM chunks WHERE scheme = ? ORDER BY id", (scheme_key,))
    while rows := cursor.fetchmany(_BM25_BLOCK):
        words = [terms.split() for (terms,) in rows]
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        ids = np.fromiter(
            (vocab.setdefault(w, len(vocab)) for chunk in words for w in chunk),
            dtype=np.int64,
            count=int(lengths.sum()),
        )
        del words
        # One key per (chunk, term): sorting them gives each chunk's distinct terms and
        # their counts, in chunk order.
        span = max(len(vocab), 1)
        owners = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
        keys, counts = np.unique(owners * span + ids, return_counts=True)
        term_blocks.append((keys % span).astype(np.int32))
        count_blocks.append(counts.astype(np.int32))
        width_blocks.append(np.bincount(keys // span, minlength=len(rows)))
        length_blocks.append(lengths)
    if not length_blocks:
        return Bm25([])
    widths = np.concatenate(width_blocks)
    indptr = np.zeros(len(widths) + 1, dtype=np.int64)
    np.cumsum(widths, out=indptr[1:])
    return Bm25.from_term_counts(
        vocab,
        indptr,
        np.concatenate(term_blocks),
        np.concatenate(count_blocks),
        np.concatenate(length_blocks),
    )


def _read_token_range(db, doc_id: int, scheme_key: str, part: int, n: int, a: int, b: int):
    """Columns ``[a, b)`` of a packed part of ``n`` tokens, as `_unpack_block` gives them,
    without bringing the whole part into Python: a few chunks of a part of a million
    tokens cost their own bytes, not the part's."""
    width = 4 * (b - a)
    row = db.execute(
        "SELECT " + ", ".join(["substr(data, ?, ?)"] * 5) + " FROM tokens "
        "WHERE doc_id = ? AND scheme = ? AND part = ?",
        (*(v for k in range(5) for v in (4 * (k * n + a) + 1, width)), doc_id, scheme_key, part),
    ).fetchone()
    return np.frombuffer(b"".join(row), dtype="<i4").reshape(5, b - a)
