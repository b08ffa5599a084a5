"""A persistent index of documents on disk: text, pages, windows and BM25, in one SQLite file.

    >>> from docqa.index import Index, WindowScheme
    >>> with Index("/tmp/my-index") as index:                     # doctest: +SKIP
    ...     report = index.update(["manuals/"], scheme=WindowScheme.default())
    ...     hits = index.search("how do I set the axis range", ["manuals/"], k=5)

What is stored (``index.sqlite3`` in the index folder; by default the user cache directory):

* ``files``: every file seen, by absolute path, with size, modification time, content hash
  (SHA-256 of the bytes) and loader status (ok, empty, skipped, failed and why);
* ``documents``: extracted text, pages, sections and loader metadata, keyed by content hash,
  so a renamed or copied file is never parsed twice;
* ``tokens`` and ``windows``: the reader tokenization of each document and its
  question-independent windows (`docqa.retrieve.Chunk`), per `WindowScheme` (tokenizer and
  window size), with each window's BM25 terms; ``vectors``: its dense piece vectors;
* ``bm25``: the `bm25s` score matrix over all windows, rebuilt when the windows change.

Updating is incremental: a file whose size and modification time are unchanged is not read at
all; one whose bytes are unchanged (touched, renamed, copied) is not parsed; files deleted from
a folder that is re-indexed are dropped. Each file is committed on its own, in SQLite's
write-ahead log, so a build killed at any moment leaves an index that holds every file finished
before the kill, and the next run carries on. Only one process updates an index at a time
(a lock file beside the database); readers never wait for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from docqa.errors import IndexBusyError, IndexCorruptError, InputError
from docqa.retrieve import (
    Bm25,
    Chunk,
    DenseEncoder,
    Retriever,
    bm25_tokens,
    chunk_length,
    make_chunks,
)
from docqa.types import Document, FileStatus, Page, Section
from docqa.windowing import TokenizedText, pair_template, tokenize_text

SCHEMA_VERSION = 1
DB_NAME = "index.sqlite3"
LOCK_NAME = "index.lock"

#: ``progress(done, total, path)`` after each file of an update.
UpdateProgress = Callable[[int, int, str], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    pages TEXT NOT NULL,
    sections TEXT NOT NULL,
    meta TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    doc_id INTEGER REFERENCES documents(id) ON DELETE SET NULL,
    indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_doc ON files(doc_id);
CREATE TABLE IF NOT EXISTS tokens (
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    scheme TEXT NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (doc_id, scheme)
);
CREATE TABLE IF NOT EXISTS windows (
    id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    scheme TEXT NOT NULL,
    position INTEGER NOT NULL,
    token_start INTEGER NOT NULL,
    token_end INTEGER NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    terms TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS windows_doc ON windows(scheme, doc_id, position);
CREATE TABLE IF NOT EXISTS vectors (
    window_id INTEGER PRIMARY KEY REFERENCES windows(id) ON DELETE CASCADE,
    encoder TEXT NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS bm25 (
    scheme TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    state BLOB NOT NULL
);
"""


def default_index_dir() -> Path:
    """``$DOCQA_INDEX``, else docqa's folder in the user cache directory (``platformdirs``)."""
    env = os.environ.get("DOCQA_INDEX")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("docqa")) / "index"


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash of everything in a fast tokenizer that decides its tokens and offsets.

    Padding and truncation settings are left out: they differ between copies of the same
    vocabulary and never reach `docqa.windowing.tokenize_text`.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise InputError("docqa needs a fast (Rust) tokenizer; this model only has a slow one.")
    spec = json.loads(backend.to_str())
    kept = {k: spec.get(k) for k in ("normalizer", "pre_tokenizer", "model", "added_tokens")}
    blob = json.dumps(kept, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class WindowScheme:
    """How documents are cut into windows: whose tokens, how long, how much overlap.

    ``chunk_len`` is the context length left beside a ``max_question_len``-token question in a
    ``max_seq_len`` window (`docqa.retrieve.chunk_length`), so the reader reads each stored
    window as one model input. The tokenizer object travels along (not stored, not compared).
    """

    fingerprint: str
    chunk_len: int
    stride: int
    tokenizer: object = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.fingerprint}:{self.chunk_len}:{self.stride}"

    @classmethod
    def for_tokenizer(
        cls,
        tokenizer,
        max_seq_len: int = 384,
        doc_stride: int = 128,
        max_question_len: int = 64,
    ) -> WindowScheme:
        n_special = pair_template(tokenizer).n_special
        chunk_len = chunk_length(max_seq_len, max_question_len, n_special)
        if doc_stride >= chunk_len:
            raise InputError(
                f"doc_stride ({doc_stride}) must be smaller than the window's context "
                f"({chunk_len} tokens)."
            )
        return cls(tokenizer_fingerprint(tokenizer), chunk_len, doc_stride, tokenizer)

    @classmethod
    def default(cls, model: str | None = None, **settings) -> WindowScheme:
        """The scheme of ``model``'s tokenizer (default: the bundled reader's), loading only
        the tokenizer. Without a loadable one, the sentence encoder's tokenizer, which is the
        same uncased BERT vocabulary as the bundled reader and bert-large-uncased."""
        return cls.for_tokenizer(load_tokenizer(model), **settings)


def load_tokenizer(model: str | None = None):
    """The tokenizer of ``model`` (name or folder; default the bundled reader), offline.

    Falls back to the sentence encoder's tokenizer when no model is given and the default
    reader is not available, so `docqa search` works on a machine with no reader at all.
    """
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from docqa.errors import ModelLoadError
    from docqa.reader import resolve_model
    from docqa.retrieve import encoder_path

    hf_logging.set_verbosity_error()
    name = resolve_model(model)
    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception as exc:
        if model or os.environ.get("DOCQA_MODEL"):
            raise ModelLoadError(
                f"Cannot load the tokenizer of {name!r} ({type(exc).__name__}); pass --model "
                "PATH to a local model folder."
            ) from exc
    return AutoTokenizer.from_pretrained(str(encoder_path()), local_files_only=True)


@dataclass(frozen=True)
class IndexedFile:
    """A file of the index: where it is, its status and, if it loaded, its document id."""

    path: str  # as the caller named it (relative paths stay relative)
    key: str  # absolute path: the index's key
    state: str
    reason: str
    doc_id: int | None


@dataclass(frozen=True)
class UpdateReport:
    """What one `Index.update` did: per-file statuses and counts."""

    files: tuple[IndexedFile, ...]
    statuses: tuple[FileStatus, ...]  # every path, in walk order, as ``load_paths`` reports them
    parsed: int  # files whose bytes went through a loader
    reused: int  # files whose content was already known (unchanged, touched, renamed, copied)
    tokenized: int  # documents tokenized into windows for the scheme
    removed: int  # files dropped because they are gone
    pages: int  # pages of the documents parsed (throughput)
    seconds: float
    parse_seconds: float = 0.0  # of ``seconds``, waiting for parsed documents

    @property
    def pages_per_s(self) -> float | None:
        """PDF/text parsing throughput of this update (None when nothing was parsed)."""
        return self.pages / self.parse_seconds if self.parsed and self.parse_seconds else None

    @property
    def doc_ids(self) -> list[int]:
        seen: dict[int, None] = {}
        for f in self.files:
            if f.doc_id is not None:
                seen.setdefault(f.doc_id, None)
        return list(seen)


@dataclass(frozen=True)
class Hit:
    """One window found by `Index.search`, best first."""

    path: str
    doc_id: int
    start: int  # character range of the window in the document's text
    end: int
    score: float
    page: int | None
    snippet_start: int  # the best few sentences of the window, for display
    snippet_end: int
    text: str = field(repr=False)  # the document's whole text

    @property
    def snippet(self) -> str:
        return self.text[self.snippet_start : self.snippet_end]


@dataclass
class _Corpus:
    """All windows of one scheme, with the retriever over them (cached per generation)."""

    generation: int
    window_ids: np.ndarray
    doc_ids: np.ndarray
    token_start: np.ndarray
    token_end: np.ndarray
    char_start: np.ndarray
    char_end: np.ndarray
    retriever: Retriever


def _wrap_db_errors(func):
    def wrapper(self, *args, **kwargs):
        try:
            return func(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise IndexBusyError(
                    f"The index in {self.directory} is busy (another docqa process is writing "
                    "to it); try again in a moment."
                ) from exc
            raise _corrupt(self.directory, exc) from exc
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.directory, exc) from exc

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def _corrupt(directory: Path, exc: Exception) -> IndexCorruptError:
    return IndexCorruptError(
        f"The index in {directory} cannot be read ({exc}); rebuild it with "
        f"`docqa index --rebuild --index {directory} PATH...` or delete that folder."
    )


class Index:
    """The on-disk index in ``directory`` (created if missing); use as a context manager.

    ``lock_timeout`` is how long `update` waits for another process's update to finish before
    raising `IndexBusyError` (0: fail at once).
    """

    def __init__(self, directory: str | os.PathLike | None = None, lock_timeout: float = 60.0):
        self.directory = Path(directory).expanduser() if directory else default_index_dir()
        self.lock_timeout = lock_timeout
        self._db: sqlite3.Connection | None = None
        self._corpora: dict[tuple[str, str | None], _Corpus] = {}
        self._tokens_cache: dict[tuple[int, str], TokenizedText] = {}

    @property
    def path(self) -> Path:
        return self.directory / DB_NAME

    # -- connection ---------------------------------------------------------------------------

    def __enter__(self) -> Index:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @_wrap_db_errors
    def connect(self) -> sqlite3.Connection:
        """Open (and create or check) the database; raises `IndexCorruptError` if damaged."""
        if self._db is not None:
            return self._db
        if self.directory.exists() and not self.directory.is_dir():
            raise InputError(f"The index location {self.directory} is a file, not a folder.")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"Cannot create the index folder {self.directory}: {exc.strerror or exc}."
            ) from None
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            # Reading the header is what detects a file that is not a database at all.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise IndexCorruptError(
                    f"The index in {self.directory} was written by another docqa version "
                    f"(schema {version}); rebuild it with `docqa index --rebuild --index "
                    f"{self.directory} PATH...`."
                )
            db.execute("PRAGMA journal_mode=WAL")
            # WAL with synchronous=NORMAL survives a killed process (not a power cut) and
            # keeps commits cheap: one commit per file.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            if version == 0:
                with self._write_lock(), _transaction(db):
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('generation', '0')",
                    )
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            else:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
                if not {"files", "documents", "windows", "meta"} <= tables:
                    raise IndexCorruptError(
                        f"The index in {self.directory} is incomplete; rebuild it with "
                        f"`docqa index --rebuild --index {self.directory} PATH...`."
                    )
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    @contextlib.contextmanager
    def _write_lock(self):
        """One writer per index: a lock file held for the whole update (released by the OS
        if the process dies, so a killed build never leaves the index locked)."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.directory / LOCK_NAME), timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:
            raise IndexBusyError(
                f"Another docqa process is updating the index in {self.directory}; "
                f"waited {self.lock_timeout:g} s. Try again when it finishes, or pass "
                "--index DIR to use another index."
            ) from None
        try:
            yield
        finally:
            lock.release()

    @classmethod
    def rebuild(cls, directory: str | os.PathLike | None = None) -> None:
        """Delete the index database in ``directory`` (the next update starts afresh)."""
        folder = Path(directory).expanduser() if directory else default_index_dir()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                (folder / (DB_NAME + suffix)).unlink()

    # -- updating -----------------------------------------------------------------------------

    @_wrap_db_errors
    def update(
        self,
        paths: Iterable[str | os.PathLike],
        scheme: WindowScheme | None = None,
        *,
        encoder: DenseEncoder | None = None,
        password: str | None = None,
        options=None,
        progress: UpdateProgress | None = None,
        follow_outside: bool = False,
    ) -> UpdateReport:
        """Bring the index up to date with ``paths`` (files and folders, recursively).

        Files whose size and modification time match the index are not read; files whose
        content hash is already known are not parsed; documents are tokenized once per
        ``scheme``; with ``encoder``, windows get dense vectors. Files that disappeared from a
        folder given here (or a file given here that no longer exists) are dropped.
        """
        from docqa.loaders import REGISTRY, LoadOptions
        from docqa.loaders.walk import walk

        started = time.perf_counter()
        db = self.connect()
        scheme = scheme or WindowScheme.default()
        if options is None:
            options = LoadOptions(password=password)
        entries: list[tuple[str, str, str]] = []  # (shown path, key, skip reason)
        folders: list[str] = []
        given_files: list[str] = []
        for given in paths:
            path = Path(given)
            key = os.path.abspath(path)
            if not os.path.lexists(path):
                entries.append((str(path), key, f"No such file or directory: {path}"))
                given_files.append(key)
                continue
            if path.is_dir():
                folders.append(key)
                for entry in walk(path, follow_outside=follow_outside):
                    entries.append(
                        (str(entry.path), os.path.abspath(entry.path), entry.skip_reason)
                    )
            elif path.is_file():
                entries.append((str(path), key, ""))
                given_files.append(key)
            else:
                entries.append((str(path), key, "Not a regular file."))

        files: list[IndexedFile] = []
        statuses: list[FileStatus] = []
        counts = {"parsed": 0, "reused": 0, "tokenized": 0, "pages": 0}
        changed = False
        total = len(entries)
        with self._write_lock():
            # Plan first (stat and hash only), so the files that need parsing can be parsed
            # in parallel; then apply in walk order, one transaction per file.
            plans: list[tuple[int, str, str, object]] = []
            seen: set[str] = set()
            for done, (shown, key, skip) in enumerate(entries, 1):
                if key in seen:
                    continue  # a file named twice, or under two folders given: once
                seen.add(key)
                if not skip and Path(key).suffix.lower() not in REGISTRY:
                    from docqa.loaders import _unsupported

                    skip = _unsupported(Path(key))
                plans.append((done, shown, key, skip or self._plan(db, key)))
            to_parse = [(key, shown) for _, shown, key, plan in plans if _needs_parse(plan)]
            # Parsed documents arrive in walk order and each is committed at once, so a kill
            # loses at most the files being parsed at that moment.
            parsed = _parse_in_order(to_parse, options)
            parse_s = 0.0
            for done, shown, key, plan in plans:
                if isinstance(plan, str):
                    state = "failed" if plan.startswith("No such file") else "skipped"
                    statuses.append(FileStatus(shown, state, plan))
                else:
                    result = None
                    if _needs_parse(plan):
                        waited = time.perf_counter()
                        result = next(parsed)
                        parse_s += time.perf_counter() - waited
                    record, did = self._apply(db, shown, key, plan, result, scheme)
                    for name in counts:
                        counts[name] += did.get(name, 0)
                    changed = changed or bool(did.get("changed"))
                    files.append(record)
                    statuses.append(FileStatus(shown, record.state, record.reason))
                if progress:
                    progress(done, total, shown)
            removed = self._drop_missing(db, folders, given_files, seen)
            if removed:
                changed = True
            if changed:
                self._bump_generation(db)
            if encoder is not None and self._ensure_vectors(
                db, scheme, encoder, [f.doc_id for f in files]
            ):
                self._bump_generation(db)
        return UpdateReport(
            files=tuple(files),
            statuses=tuple(statuses),
            parsed=counts["parsed"],
            reused=counts["reused"],
            tokenized=counts["tokenized"],
            removed=removed,
            pages=counts["pages"],
            seconds=time.perf_counter() - started,
            parse_seconds=parse_s,
        )

    def _plan(self, db, key: str) -> _Plan:
        """What updating one file takes: nothing, a re-tokenization, a parse (stat/hash only)."""
        try:
            st = os.stat(key)
        except OSError as exc:
            return _Plan("error", reason=f"Cannot read the file: {exc.strerror}.")
        row = db.execute(
            "SELECT size, mtime_ns, sha256, state, reason, doc_id FROM files WHERE path = ?",
            (key,),
        ).fetchone()
        same_stat = row is not None and (row[0], row[1]) == (st.st_size, st.st_mtime_ns)
        if same_stat and (row[3] != "ok" or row[5] is not None):
            return _Plan("same", st, row[2], row[3], row[4], row[5])
        # Size or time changed (or never seen): hash the bytes; parse only unknown content.
        try:
            sha = _sha256_file(key)
        except OSError as exc:
            return _Plan("error", reason=f"Cannot read the file: {exc.strerror}.")
        known = db.execute(
            "SELECT d.id, (SELECT reason FROM files f WHERE f.doc_id = d.id LIMIT 1) "
            "FROM documents d WHERE d.sha256 = ?",
            (sha,),
        ).fetchone()
        if known is not None:
            return _Plan("known", st, sha, "ok", known[1] or "", known[0])
        prior = db.execute(
            "SELECT state, reason FROM files WHERE sha256 = ? AND state != 'ok' LIMIT 1", (sha,)
        ).fetchone()
        if prior is not None:
            return _Plan("known", st, sha, prior[0], prior[1], None)
        return _Plan("parse", st, sha)

    def _apply(self, db, shown, key, plan: _Plan, parsed, scheme):
        did = {"parsed": 0, "reused": 0, "tokenized": 0, "pages": 0, "changed": 0}
        if plan.kind == "error":
            return IndexedFile(shown, key, "failed", plan.reason, None), did
        if plan.kind == "same":
            did["reused"] = 1
            if plan.doc_id is not None:
                did["tokenized"] = did["changed"] = self._ensure_windows(db, plan.doc_id, scheme)
            return IndexedFile(shown, key, plan.state, plan.reason, plan.doc_id), did
        doc: Document | None = None
        sha, state, reason, doc_id = plan.sha256, plan.state, plan.reason, plan.doc_id
        if plan.kind == "parse":
            doc, status = parsed
            did["parsed"] = 1
            state, reason = status.state, status.reason
            if doc is not None:
                did["pages"] = len(doc.pages)
                sha = doc.sha256 or sha
        else:
            did["reused"] = 1
        with _transaction(db):
            if doc is not None:
                doc_id = _insert_document(db, doc, sha)
            db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    plan.stat.st_size,
                    plan.stat.st_mtime_ns,
                    sha,
                    state,
                    reason,
                    doc_id,
                    time.time(),
                ),
            )
            if doc_id is not None:
                did["tokenized"] = self._ensure_windows(db, doc_id, scheme, text=doc)
        did["changed"] = 1
        return IndexedFile(shown, key, state, reason, doc_id), did

    def _ensure_windows(self, db, doc_id: int, scheme: WindowScheme, text=None) -> int:
        """Tokenize ``doc_id`` and store its windows for ``scheme`` unless already there."""
        have = db.execute(
            "SELECT 1 FROM tokens WHERE doc_id = ? AND scheme = ?", (doc_id, scheme.key)
        ).fetchone()
        if have is not None:
            return 0
        if scheme.tokenizer is None:
            raise InputError("This window scheme has no tokenizer to cut new documents with.")
        if isinstance(text, Document):
            text = text.text
        if text is None:
            text = db.execute("SELECT text FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]
        tokens = tokenize_text(scheme.tokenizer, text)
        chunks = make_chunks(tokens, 0, scheme.chunk_len, scheme.stride)
        terms = bm25_tokens([text[c.start : c.end] for c in chunks])
        with _transaction(db):
            db.execute(
                "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?)",
                (doc_id, scheme.key, len(tokens), _pack_tokens(tokens)),
            )
            db.executemany(
                "INSERT INTO windows (doc_id, scheme, position, token_start, token_end, "
                "char_start, char_end, terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (doc_id, scheme.key, i, c.token_start, c.token_end, c.start, c.end, " ".join(t))
                    for i, (c, t) in enumerate(zip(chunks, terms, strict=True))
                ],
            )
        return 1

    def _ensure_vectors(self, db, scheme: WindowScheme, encoder: DenseEncoder, doc_ids) -> int:
        """Dense piece vectors for the windows of ``doc_ids`` that have none yet; how many."""
        ids = sorted({d for d in doc_ids if d is not None})
        added = 0
        for doc_id in ids:
            rows = db.execute(
                "SELECT w.id, w.char_start, w.char_end FROM windows w "
                "LEFT JOIN vectors v ON v.window_id = w.id AND v.encoder = ? "
                "WHERE w.doc_id = ? AND w.scheme = ? AND v.window_id IS NULL ORDER BY w.position",
                (encoder.name, doc_id, scheme.key),
            ).fetchall()
            if not rows:
                continue
            text = db.execute("SELECT text FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]
            vectors, owners = encoder.encode_windows(text, [(s, e) for _, s, e in rows])
            with _transaction(db):
                for i, (window_id, _, _) in enumerate(rows):
                    mine = vectors[owners == i].astype(np.float16)
                    db.execute(
                        "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                        (window_id, encoder.name, len(mine), mine.tobytes()),
                    )
            added += len(rows)
        return added

    def _drop_missing(self, db, folders, given_files, seen) -> int:
        """Forget files under the folders given (or given by name) that were not found."""
        gone: list[str] = []
        for folder in folders:
            prefix = folder.rstrip(os.sep) + os.sep
            rows = db.execute(
                "SELECT path FROM files WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
            ).fetchall()
            gone += [p for (p,) in rows if p not in seen]
        for key in given_files:
            if not os.path.exists(key):
                gone.append(key)
        # Documents no file points to any more go too, only now: during the update one may
        # still be wanted by a file planned before another file stopped pointing to it.
        with _transaction(db):
            db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in gone])
            _collect_garbage(db)
        return len(gone)

    def _bump_generation(self, db) -> None:
        with _transaction(db):
            db.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
            )

    def generation(self) -> int:
        row = self.connect().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    # -- reading ------------------------------------------------------------------------------

    @_wrap_db_errors
    def files(self) -> list[IndexedFile]:
        """Every file the index knows, by path."""
        rows = (
            self.connect()
            .execute("SELECT path, state, reason, doc_id FROM files ORDER BY path")
            .fetchall()
        )
        return [IndexedFile(p, p, s, r, d) for p, s, r, d in rows]

    @_wrap_db_errors
    def document(self, doc_id: int, source: str | None = None) -> Document:
        """The stored document ``doc_id``, as its loader made it, with ``source`` as its name."""
        row = (
            self.connect()
            .execute(
                "SELECT d.text, d.pages, d.sections, d.meta, d.sha256, "
                "(SELECT path FROM files f WHERE f.doc_id = d.id ORDER BY path LIMIT 1) "
                "FROM documents d WHERE d.id = ?",
                (doc_id,),
            )
            .fetchone()
        )
        if row is None:
            raise InputError(f"The index has no document {doc_id}.")
        text, pages, sections, meta, sha, path = row
        return Document(
            text=text,
            source=source or path or "",
            pages=tuple(Page(*p) for p in json.loads(pages)),
            sections=tuple(Section(*s) for s in json.loads(sections)),
            sha256=sha,
            meta=json.loads(meta),
        )

    @_wrap_db_errors
    def tokenized(self, doc_id: int, scheme: WindowScheme) -> TokenizedText:
        """The stored reader tokens of ``doc_id`` for ``scheme`` (never re-tokenized)."""
        key = (doc_id, scheme.key)
        hit = self._tokens_cache.get(key)
        if hit is not None:
            return hit
        row = (
            self.connect()
            .execute("SELECT n, data FROM tokens WHERE doc_id = ? AND scheme = ?", key)
            .fetchone()
        )
        if row is None:
            raise InputError(f"Document {doc_id} has no windows for this model in the index.")
        tokens = _unpack_tokens(row[0], row[1])
        if len(self._tokens_cache) > 32:
            self._tokens_cache.pop(next(iter(self._tokens_cache)))
        self._tokens_cache[key] = tokens
        return tokens

    @_wrap_db_errors
    def rank(
        self,
        question: str,
        doc_ids: Sequence[int],
        scheme: WindowScheme,
        k: int,
        encoder: DenseEncoder | None = None,
    ) -> list[tuple[Chunk, float]]:
        """The ``k`` best windows of documents ``doc_ids`` for ``question``, best first.

        ``Chunk.doc_index`` is the document's id in the index. IDF statistics come from the
        whole index; only windows of ``doc_ids`` can be returned.
        """
        corpus = self._corpus(scheme, encoder)
        if not len(corpus.window_ids):
            return []
        mask = np.isin(corpus.doc_ids, np.asarray(list(doc_ids), dtype=np.int64))
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
        self,
        query: str,
        doc_ids: Sequence[int],
        scheme: WindowScheme,
        k: int = 10,
        encoder: DenseEncoder | None = None,
        paths: dict[int, str] | None = None,
    ) -> list[Hit]:
        """Ranked windows with their file, page and best snippet; no reader model involved."""
        from docqa.retrieve import best_snippet

        hits: list[Hit] = []
        docs: dict[int, Document] = {}
        # Neighbouring windows overlap; rank a few spare ones so that k distinct passages
        # remain after dropping snippets that overlap one already shown.
        for chunk, score in self.rank(query, doc_ids, scheme, 3 * k, encoder):
            if len(hits) == k:
                break
            doc = docs.get(chunk.doc_index)
            if doc is None:
                source = (paths or {}).get(chunk.doc_index)
                doc = docs[chunk.doc_index] = self.document(chunk.doc_index, source)
            s, e = best_snippet(doc.text, chunk.start, chunk.end, query)
            if any(
                h.doc_id == chunk.doc_index and h.snippet_start < e and s < h.snippet_end
                for h in hits
            ):
                continue
            hits.append(
                Hit(
                    doc.source,
                    chunk.doc_index,
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

    def _corpus(self, scheme: WindowScheme, encoder: DenseEncoder | None) -> _Corpus:
        generation = self.generation()
        cache_key = (scheme.key, encoder.name if encoder else None)
        cached = self._corpora.get(cache_key)
        if cached is not None and cached.generation == generation:
            return cached
        db = self.connect()
        rows = db.execute(
            "SELECT id, doc_id, token_start, token_end, char_start, char_end FROM windows "
            "WHERE scheme = ? ORDER BY id",
            (scheme.key,),
        ).fetchall()
        cols = np.asarray(rows, dtype=np.int64).reshape(len(rows), 6).T
        bm25 = self._bm25(db, scheme, generation)
        vectors = owners = None
        if encoder is not None and rows:
            vectors, owners = self._vectors(db, scheme, encoder, cols[0])
        retriever = Retriever(bm25, vectors, owners, encoder if vectors is not None else None)
        corpus = _Corpus(generation, *cols, retriever=retriever)
        self._corpora[cache_key] = corpus
        return corpus

    def _bm25(self, db, scheme: WindowScheme, generation: int) -> Bm25:
        row = db.execute(
            "SELECT generation, state FROM bm25 WHERE scheme = ?", (scheme.key,)
        ).fetchone()
        if row is not None and row[0] == generation:
            try:
                return Bm25.from_state(row[1])
            except Exception:
                pass  # a damaged cache is only a cache: rebuild it below
        terms = [
            t.split()
            for (t,) in db.execute(
                "SELECT terms FROM windows WHERE scheme = ? ORDER BY id", (scheme.key,)
            )
        ]
        bm25 = Bm25(terms)
        # Caching needs the write lock; a reader that cannot get it at once just goes on.
        with contextlib.suppress(IndexBusyError, sqlite3.OperationalError):
            saved = self.lock_timeout
            self.lock_timeout = 0
            try:
                with self._write_lock(), _transaction(db):
                    if self.generation() == generation:
                        db.execute(
                            "INSERT OR REPLACE INTO bm25 VALUES (?, ?, ?)",
                            (scheme.key, generation, bm25.to_state()),
                        )
            finally:
                self.lock_timeout = saved
        return bm25

    def _vectors(self, db, scheme, encoder, window_ids):
        rows = db.execute(
            "SELECT w.id, v.n, v.data FROM windows w JOIN vectors v ON v.window_id = w.id "
            "WHERE w.scheme = ? AND v.encoder = ? ORDER BY w.id",
            (scheme.key, encoder.name),
        ).fetchall()
        # Windows never embedded (indexed with --no-dense, and not asked about since) keep a
        # dense score of -inf: they rank by BM25 alone.
        position = {int(w): i for i, w in enumerate(window_ids)}
        dim = None
        blocks, owners = [], []
        for window_id, n, data in rows:
            block = np.frombuffer(data, dtype=np.float16)
            if n:
                dim = dim or block.size // n
                blocks.append(block.reshape(n, dim))
                owners.append(np.full(n, position[window_id], dtype=np.int64))
        if not blocks:
            return None, None
        return np.concatenate(blocks).astype(np.float32), np.concatenate(owners)


# -- helpers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection):
    """BEGIN IMMEDIATE … COMMIT (nested uses join the outer transaction)."""
    if db.in_transaction:
        yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class _Plan:
    kind: str  # error | same | known | parse
    stat: os.stat_result | None = None
    sha256: str | None = None
    state: str = ""
    reason: str = ""
    doc_id: int | None = None


def _needs_parse(plan) -> bool:
    return isinstance(plan, _Plan) and plan.kind == "parse"


#: Parse in worker processes only when there is this much to parse: a process pool costs
#: about a second to start.
PARALLEL_MIN_FILES = 2
PARALLEL_MIN_BYTES = 1 << 20


def _parse_in_order(items: list[tuple[str, str]], options) -> Iterator:
    """Load each (key, shown) file, yielding ``(document or None, status)`` in input order.

    PDF parsing is single-threaded pure Python (pypdf), serialised inside one process, so a
    folder of PDFs uses both cores only from separate processes: with enough to parse, two
    worker processes parse ahead while the caller commits what is done.
    """
    if not items:
        return
    size = sum(os.path.getsize(k) for k, _ in items if os.path.exists(k))
    workers = min(2, os.cpu_count() or 1, len(items))
    if workers < 2 or len(items) < PARALLEL_MIN_FILES or size < PARALLEL_MIN_BYTES:
        for key, shown in items:
            yield _load_one(key, shown, options)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent may hold torch's thread pools, which fork does not copy safely.
    context = multiprocessing.get_context("spawn")
    # Biggest first, so that the pool does not end on one long file with the other core idle.
    by_size = sorted(items, key=lambda kv: -os.path.getsize(kv[0]) if os.path.exists(kv[0]) else 0)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {key: pool.submit(_load_one, key, shown, options) for key, shown in by_size}
        for key, _ in items:
            yield futures[key].result()


def _load_one(key: str, shown: str, options) -> tuple[Document | None, FileStatus]:
    from docqa.loaders import load_paths

    result = load_paths([shown if os.path.exists(shown) else key], options=options)
    status = result.statuses[0] if result.statuses else FileStatus(shown, "failed", "Not read.")
    doc = result.documents[0] if result.documents else None
    return doc, status


def _insert_document(db, doc: Document, sha: str) -> int:
    row = db.execute("SELECT id FROM documents WHERE sha256 = ?", (sha,)).fetchone()
    if row is not None:
        return row[0]
    cur = db.execute(
        "INSERT INTO documents (sha256, text, pages, sections, meta) VALUES (?, ?, ?, ?, ?)",
        (
            sha,
            doc.text,
            json.dumps([[p.number, p.start, p.end] for p in doc.pages]),
            json.dumps([[s.title, s.start] for s in doc.sections]),
            json.dumps(doc.meta, default=str),
        ),
    )
    return int(cur.lastrowid)


def _collect_garbage(db) -> None:
    """Drop documents no file points to any more (their tokens, windows, vectors cascade)."""
    db.execute(
        "DELETE FROM documents WHERE id NOT IN (SELECT doc_id FROM files WHERE doc_id IS NOT NULL)"
    )


def _pack_tokens(t: TokenizedText) -> bytes:
    return np.stack([t.ids, t.starts, t.ends, t.word_start, t.word_end]).astype("<i4").tobytes()


def _unpack_tokens(n: int, data: bytes) -> TokenizedText:
    arr = np.frombuffer(data, dtype="<i4").reshape(5, n).astype(np.int64)
    return TokenizedText(arr[0], arr[1], arr[2], arr[3], arr[4])
