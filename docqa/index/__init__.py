"""A persistent index of documents on disk: text, pages, chunks and BM25, in one SQLite file.

    >>> from docqa.index import Index, ChunkScheme
    >>> scheme = ChunkScheme.default()                           # doctest: +SKIP
    >>> with Index("/tmp/my-index") as index:                     # doctest: +SKIP
    ...     report = index.update(["manuals/"], scheme)
    ...     hits = index.search("how do I set the axis range", report.doc_ids, scheme, k=5)

A file is parsed once, its text tokenized once per `ChunkScheme` into question-independent
chunks with their BM25 terms, and every later question reads what is stored. Updating is
incremental and each file (each piece of a very large one) is committed as it is finished.

Where each stage lives (imports run one way: store ← ingest, store ← search, core ← both):

* `docqa.index.store`: what is stored (the schema and its migration), the per-thread
  connections, transactions, the write lock, the folder's permissions, SQLite and file-system
  errors as sentences, and the stored text and token helpers every stage reads with;
* `docqa.index.ingest`: the writing side, walk → plan → parse (worker processes) → tokenize
  into chunks → commit, and dense vectors when asked for (`UpdateReport`, `IndexedFile`);
* `docqa.index.search`: the reading side, ranking by BM25 and vectors over a cached corpus of
  chunks, snippets (`Hit`), stored documents and token ranges;
* `docqa.index.core`: `Index`, the one public class, which hands each call to its stage;
* `docqa.windowing`: `ChunkScheme` (whose tokenizer, how long, how much overlap),
  `load_tokenizer` and `tokenizer_fingerprint`, next to the windowing they describe.

The settings below are re-exported for reading; each is read, at call time, from the module
that defines it (`docqa.index.ingest.PART_CHARS`, ...), which is the one to change.
"""

from docqa.index.core import Index
from docqa.index.ingest import (
    PARALLEL_MAX_BYTES,
    PARALLEL_MIN_BYTES,
    PARALLEL_MIN_FILES,
    PART_CHARS,
    VECTOR_BATCH,
    IndexedFile,
    PieceProgress,
    UpdateProgress,
    UpdateReport,
)
from docqa.index.search import CACHED_PART_TOKENS, CACHED_TOKENS, Hit
from docqa.index.store import DB_NAME, LOCK_NAME, SCHEMA_VERSION, default_index_dir
from docqa.windowing import ChunkScheme, load_tokenizer, tokenizer_fingerprint

__all__ = [
    "CACHED_PART_TOKENS",
    "CACHED_TOKENS",
    "DB_NAME",
    "LOCK_NAME",
    "PARALLEL_MAX_BYTES",
    "PARALLEL_MIN_BYTES",
    "PARALLEL_MIN_FILES",
    "PART_CHARS",
    "SCHEMA_VERSION",
    "VECTOR_BATCH",
    "ChunkScheme",
    "Hit",
    "Index",
    "IndexedFile",
    "PieceProgress",
    "UpdateProgress",
    "UpdateReport",
    "default_index_dir",
    "load_tokenizer",
    "tokenizer_fingerprint",
]
