"""`Index`, the one public class: it holds a `Store` and a `Searcher` and hands each call to
the stage that does it (ingest for `update`, search for the reading side)."""

from __future__ import annotations

import os
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from docqa.index import ingest
from docqa.index.ingest import IndexedFile, UpdateReport
from docqa.index.search import Corpus, Hit, Searcher
from docqa.index.store import Store, default_index_dir, rebuild, wrap_db_errors
from docqa.retrieve import Chunk, DenseEncoder
from docqa.types import Document
from docqa.windowing import ChunkScheme, TokenizedText


class Index:
    """The on-disk index in ``directory`` (created if missing); use as a context manager.

    ``lock_timeout`` is how long `update` waits for another process's update to finish before
    raising `IndexBusyError` (0: fail at once). One `Index` may be used from several threads:
    each thread gets its own SQLite connection. A folder this user cannot write to is opened
    read-only (``read_only``): it answers about the files it holds and refuses to index more.
    """

    def __init__(self, directory: str | os.PathLike | None = None, lock_timeout: float = 60.0):
        folder = Path(directory).expanduser() if directory else default_index_dir()
        self._store = Store(folder, lock_timeout)
        self._searcher = Searcher(self._store)

    @property
    def directory(self) -> Path:
        return self._store.directory

    @property
    def lock_timeout(self) -> float:
        return self._store.lock_timeout

    @lock_timeout.setter
    def lock_timeout(self, seconds: float) -> None:
        self._store.lock_timeout = seconds

    @property
    def read_only(self) -> bool:
        return self._store.read_only

    @property
    def path(self) -> Path:
        return self._store.path

    # -- connection ---------------------------------------------------------------------------

    def __enter__(self) -> Index:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close every thread's connection (using the index again opens new ones)."""
        self._store.close()

    @wrap_db_errors
    def connect(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the index created or checked) on first use;
        raises `IndexCorruptError` if damaged."""
        return self._store.connect()

    @classmethod
    def rebuild(cls, directory: str | os.PathLike | None = None) -> None:
        """Delete the index database in ``directory`` (the next update starts afresh)."""
        rebuild(directory)

    def generation(self) -> int:
        return self._store.generation()

    @wrap_db_errors
    def scheme(self, files_key: str | None, load: Callable[[], ChunkScheme], **settings):
        """The chunk scheme of the tokenizer whose files have ``files_key``
        (`tokenizer_files_key`): remembered, when this index has seen those files, without
        loading the tokenizer (it is loaded, by ``load``, only if a document needs
        tokenizing); otherwise ``load()`` now, and remembered. ``settings``: the window shape
        (`ChunkScheme.for_tokenizer`)."""
        known = self._store.remembered_tokenizer(files_key) if files_key else None
        if known is not None:
            return ChunkScheme.remembered(*known, **settings, load=load)
        scheme = load()
        self.remember_scheme(files_key, scheme)
        return scheme

    @wrap_db_errors
    def remember_scheme(self, files_key: str | None, scheme: ChunkScheme) -> None:
        """Remember the scheme of a loaded tokenizer whose files have ``files_key``, for
        `scheme` in later processes (nothing is written when it is remembered already)."""
        if not files_key or scheme.n_special is None:
            return
        known = (scheme.fingerprint, scheme.n_special)
        if self._store.remembered_tokenizer(files_key) != known:
            self._store.remember_tokenizer(files_key, *known)

    # -- updating -----------------------------------------------------------------------------

    @wrap_db_errors
    def update(
        self,
        paths: Iterable[str | os.PathLike],
        scheme: ChunkScheme | Callable[[], ChunkScheme] | None = None,
        **settings,
    ) -> UpdateReport:
        """Bring the index up to date with ``paths`` (files and folders, recursively): files
        unchanged since the last update are not read, known contents are not parsed again,
        and files gone from a folder given are dropped.

        ``scheme`` (or a function that makes it) and the keyword ``settings`` (``encoder``,
        ``password``, ``options``, ``progress``, ``follow_outside``, ``pieces``, ``workers``,
        ``max_wait``) are those of `docqa.index.ingest.update`, which documents them.
        """
        return ingest.update(self._store, paths, scheme, **settings)

    # -- reading ------------------------------------------------------------------------------

    @wrap_db_errors
    def files(self) -> list[IndexedFile]:
        """Every file the index knows, by path."""
        return ingest.indexed_files(self.connect())

    @wrap_db_errors
    def document(self, doc_id: int, source: str | None = None) -> Document:
        """The stored document ``doc_id``, as its loader made it, with ``source`` as its name."""
        return self._searcher.document(doc_id, source)

    @wrap_db_errors
    def document_id(self, sha256: str) -> int | None:
        """The id of the stored document with content hash ``sha256`` (`Document.sha256`), or
        None: how an `Answer`'s document is found again in the index."""
        return self._searcher.document_id(sha256)

    @wrap_db_errors
    def tokenized(self, doc_id: int, scheme: ChunkScheme) -> TokenizedText:
        """All the stored reader tokens of ``doc_id`` for ``scheme`` (never re-tokenized).

        Arrays as long as the document: for reading a few chunks of a large one, `tokens`.
        """
        return self.tokens(doc_id, scheme)

    @wrap_db_errors
    def tokens(
        self, doc_id: int, scheme: ChunkScheme, lo: int = 0, hi: int | None = None
    ) -> TokenizedText:
        """The stored reader tokens ``[lo, hi)`` of ``doc_id`` for ``scheme`` (default all),
        character offsets into the whole text; only the text parts they span are read."""
        return self._searcher.tokens(doc_id, scheme, lo, hi)

    @wrap_db_errors
    def rank(
        self,
        question: str,
        doc_ids: Sequence[int],
        scheme: ChunkScheme,
        k: int,
        encoder: DenseEncoder | None = None,
        include_contents: bool = False,
    ) -> list[tuple[Chunk, float]]:
        """The ``k`` best chunks of documents ``doc_ids`` for ``question``, best first.

        ``Chunk.doc_id`` is the document's id in the index. IDF statistics come from the
        whole index; only chunks of ``doc_ids`` can be returned, and not those in a table of
        contents or an index unless ``include_contents``.
        """
        corpus = self._searcher.corpus(scheme, encoder)
        return self._searcher.rank(question, doc_ids, corpus, k, include_contents)

    @wrap_db_errors
    def search(
        self,
        query: str,
        doc_ids: Sequence[int],
        scheme: ChunkScheme,
        k: int = 10,
        encoder: DenseEncoder | None = None,
        paths: dict[int, str] | None = None,
        include_contents: bool = False,
    ) -> list[Hit]:
        """Ranked chunks with their file, page and best snippet; no reader model involved."""
        corpus = self._searcher.corpus(scheme, encoder)
        return self._searcher.search(query, doc_ids, corpus, k, paths, include_contents)

    # -- for tests: the write lock, and the caches of the reading side ------------------------

    def _write_lock(self, timeout: float | None = None):
        return self._store.write_lock(timeout)

    @property
    def _tokens_cache(self) -> OrderedDict[tuple[int, str, int], np.ndarray]:
        return self._searcher.tokens_cache

    def _corpus(self, scheme: ChunkScheme, encoder: DenseEncoder | None) -> Corpus:
        return self._searcher.corpus(scheme, encoder)
