"""A persistent index of documents on disk: text, pages, windows and BM25, in one SQLite file.

    >>> from docqa.index import Index, WindowScheme
    >>> with Index("/tmp/my-index") as index:                     # doctest: +SKIP
    ...     report = index.update(["manuals/"], scheme=WindowScheme.default())
    ...     hits = index.search("how do I set the axis range", ["manuals/"], k=5)

What is stored (``index.sqlite3`` in the index folder; by default the user cache directory):

* ``files``: every file seen, by absolute path, with size, modification time, content hash
  (SHA-256 of the bytes) and loader status (ok, empty, skipped, failed and why);
* ``documents``: pages, sections and loader metadata, keyed by content hash, so a renamed or
  copied file is never parsed twice; ``texts``: the extracted text, in parts of at most
  `PART_CHARS` characters cut at whitespace (one part for all but very large files);
* ``tokens`` and ``windows``: the reader tokenization of each text part and the document's
  question-independent windows (`docqa.retrieve.Chunk`), per `WindowScheme` (tokenizer and
  window size), with each window's BM25 terms; ``vectors``: its dense piece vectors;
* ``bm25``: the `bm25s` score matrix over all windows, rebuilt when the windows change.

Updating is incremental: a file whose size and modification time are unchanged is not read at
all; one whose bytes are unchanged (touched, renamed, copied) is not parsed; files deleted from
a folder that is re-indexed are dropped. Each file is committed on its own, in SQLite's
write-ahead log, so a build killed at any moment leaves an index that holds every file finished
before the kill, and the next run carries on. A very large file is tokenized, windowed and
embedded in pieces (a text part, a batch of windows), each committed as it is finished, so
memory stays bounded by the piece size and a kill loses only the piece in flight. Only one
process updates an index at a time (a lock file beside the database); readers never wait for it:
an update that finds nothing to write takes no lock. The folder is private (0700, its files
0600): it holds every document's text. A folder this user cannot write to is read as it is.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import itertools
import json
import os
import re
import sqlite3
import stat
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from docqa.errors import (
    IndexBusyError,
    IndexCorruptError,
    IndexReadOnlyError,
    IndexWriteError,
    InputError,
)
from docqa.retrieve import (
    Bm25,
    Chunk,
    DenseEncoder,
    Retriever,
    chunk_length,
)
from docqa.types import Document, FileStatus, Page, Section
from docqa.windowing import TokenizedText, pair_template, piece_bounds, tokenize_text

SCHEMA_VERSION = 2
DB_NAME = "index.sqlite3"
LOCK_NAME = "index.lock"
#: Characters per stored text part. A document is tokenized and windowed one part at a time,
#: and read back one part at a time, so this (not the file's size) bounds the memory of
#: indexing and asking; each part is committed on its own.
PART_CHARS = 1 << 22
#: Windows embedded and committed together by the dense encoder.
VECTOR_BATCH = 256
#: Tokens of text parts kept in memory for reading (many small documents' parts).
CACHED_TOKENS = 1 << 22
#: Parts with more tokens than this are not cached whole: only the ranges read are read.
CACHED_PART_TOKENS = 1 << 16

#: Windows of one document (``encoder``, ``doc_id``, ``scheme``) that have no vector yet.
_WITHOUT_VECTORS = (
    "SELECT w.id, w.char_start, w.char_end FROM windows w "
    "LEFT JOIN vectors v ON v.window_id = w.id AND v.encoder = ? "
    "WHERE w.doc_id = ? AND w.scheme = ? AND v.window_id IS NULL"
)

#: ``progress(done, total, path)`` after each file of an update.
UpdateProgress = Callable[[int, int, str], None]
#: ``pieces(done, total, what)`` during long work on one file (its text parts, its vectors).
PieceProgress = Callable[[int, int, str], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    pages TEXT NOT NULL,
    sections TEXT NOT NULL,
    meta TEXT NOT NULL,
    chars INTEGER NOT NULL DEFAULT 0,
    parts INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS texts (
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    part INTEGER NOT NULL,
    char_start INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (doc_id, part)
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
    part INTEGER NOT NULL DEFAULT 0,
    token_start INTEGER NOT NULL DEFAULT 0,
    n INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (doc_id, scheme, part)
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

_MIGRATE_FROM_1 = (
    "CREATE TABLE texts (doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE, "
    "part INTEGER NOT NULL, char_start INTEGER NOT NULL, text TEXT NOT NULL, "
    "PRIMARY KEY (doc_id, part))",
    "INSERT INTO texts (doc_id, part, char_start, text) SELECT id, 0, 0, text FROM documents",
    "ALTER TABLE documents ADD COLUMN chars INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE documents ADD COLUMN parts INTEGER NOT NULL DEFAULT 1",
    "UPDATE documents SET chars = length(text)",
    "ALTER TABLE documents DROP COLUMN text",
    "CREATE TABLE tokens_v2 (doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE, "
    "scheme TEXT NOT NULL, part INTEGER NOT NULL DEFAULT 0, token_start INTEGER NOT NULL "
    "DEFAULT 0, n INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (doc_id, scheme, part))",
    "INSERT INTO tokens_v2 (doc_id, scheme, part, token_start, n, data) "
    "SELECT doc_id, scheme, 0, 0, n, data FROM tokens",
    "DROP TABLE tokens",
    "ALTER TABLE tokens_v2 RENAME TO tokens",
    f"PRAGMA user_version={SCHEMA_VERSION}",
)


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
    from docqa.reader import cached_model_folder, check_model_folder, resolve_model
    from docqa.retrieve import encoder_path

    hf_logging.set_verbosity_error()
    name = resolve_model(model)
    # No code from the model folder: refused with its own sentence, whoever named the model.
    local = Path(name).expanduser()
    folder = local if local.is_dir() else cached_model_folder(name)
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
    """SQLite's and the file system's errors as one sentence that says what happened (busy,
    read-only, disk full, damaged); only a damaged index is told to rebuild."""

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        try:
            return func(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise _db_error(self.directory, exc) from exc
        except OSError as exc:
            error = _os_error(self.directory, exc)
            if error is None:
                raise
            raise error from exc

    return wrapper


def _db_error(directory: Path, exc: sqlite3.DatabaseError) -> InputError:
    # The result code's name (Python 3.11+) when there is one, else SQLite's message.
    name = getattr(exc, "sqlite_errorname", None) or ""
    text = str(exc).lower()
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text:
        return IndexBusyError(
            f"The index in {directory} is busy (another docqa process is writing to it); "
            "try again in a moment."
        )
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return _disk_full(directory)
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM")) or "readonly" in text:
        return _read_only(directory)
    damaged = ("malformed", "not a database", "no such table", "no such column")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or any(d in text for d in damaged):
        return _corrupt(directory, exc)
    if name.startswith("SQLITE_IOERR") or "i/o error" in text:
        return IndexWriteError(
            f"A disk error stopped docqa reading or writing the index in {directory} ({exc}); "
            "check the disk and try again."
        )
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return InputError(
            f"Cannot open the index in {directory} ({exc}); check that folder's permissions."
        )
    return InputError(f"The index in {directory} could not be used ({exc}).")


def _os_error(directory: Path, exc: OSError) -> InputError | None:
    """A file-system error about the index as a sentence; None for one about anything else."""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return _disk_full(directory)
    denied = (errno.EROFS, errno.EACCES, errno.EPERM)
    if exc.errno in denied and exc.filename is not None:
        where = os.path.abspath(os.fsdecode(exc.filename))
        if where == os.path.abspath(directory) or where.startswith(
            os.path.join(os.path.abspath(directory), "")
        ):
            return _read_only(directory)
    return None


def _disk_full(directory: Path) -> IndexWriteError:
    return IndexWriteError(
        f"Could not write to the index in {directory}: the disk is full (free some space and "
        "run again; what was indexed before is kept)."
    )


def _read_only(directory: Path) -> IndexReadOnlyError:
    return IndexReadOnlyError(
        f"The index in {directory} is read-only (no permission to write there, or a read-only "
        "disk): it answers about files already indexed but cannot index new or changed ones; "
        "pass --index DIR to use a writable folder."
    )


def _corrupt(directory: Path, exc: Exception) -> IndexCorruptError:
    return IndexCorruptError(
        f"The index in {directory} cannot be read ({exc}); rebuild it with "
        f"`docqa index --rebuild --index {directory} PATH...` or delete that folder."
    )


class _Connection(sqlite3.Connection):
    """A SQLite connection that can be held weakly (the base class cannot)."""


class Index:
    """The on-disk index in ``directory`` (created if missing); use as a context manager.

    ``lock_timeout`` is how long `update` waits for another process's update to finish before
    raising `IndexBusyError` (0: fail at once). One `Index` may be used from several threads:
    each thread gets its own SQLite connection. A folder this user cannot write to is opened
    read-only (``read_only``): it answers about the files it holds and refuses to index more.
    """

    def __init__(self, directory: str | os.PathLike | None = None, lock_timeout: float = 60.0):
        self.directory = Path(directory).expanduser() if directory else default_index_dir()
        self.lock_timeout = lock_timeout
        self.read_only = False
        # SQLite connections cannot cross threads: one per thread, all closed by `close`;
        # weakly held, so that the connection of a thread that ended closes with it.
        self._local = threading.local()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._epoch = 0  # bumped by `close`, so that a thread's old connection is not reused
        self._lock = threading.Lock()  # the connection list and the caches below
        self._corpora: dict[tuple[str, str | None], _Corpus] = {}
        self._tokens_cache: OrderedDict[tuple[int, str, int], np.ndarray] = OrderedDict()

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
        """Close every thread's connection (using the index again opens new ones)."""
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
            self._epoch += 1
        for db in connections:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    @_wrap_db_errors
    def connect(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the index created or checked) on first use;
        raises `IndexCorruptError` if damaged."""
        local = self._local
        if getattr(local, "epoch", None) == self._epoch:
            return local.db
        if self.directory.exists() and not self.directory.is_dir():
            raise InputError(f"The index location {self.directory} is a file, not a folder.")
        self._make_folder()
        db = self._open()
        try:
            self._check(db)
        except BaseException:
            db.close()
            raise
        with self._lock:
            self._connections.add(db)
            local.db, local.epoch = db, self._epoch
        return db

    def _make_folder(self) -> None:
        """The index folder, private to its user: it holds every document's text, decrypted
        PDFs included (0700 whatever the umask; an older, wider one is tightened)."""
        created = not self.directory.exists()
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if created:
                os.chmod(self.directory, 0o700)  # mkdir's mode is cut by the umask
        except OSError as exc:
            raise InputError(
                f"Cannot create the index folder {self.directory}: {exc.strerror or exc}."
            ) from None
        _tighten(self.directory)

    def _open(self) -> sqlite3.Connection:
        """A connection: read-write where this user may write, read-only otherwise."""
        exists = self.path.exists()
        writable = os.access(self.directory, os.W_OK) and (
            not exists or os.access(self.path, os.W_OK)
        )
        if not writable and not exists:
            raise IndexReadOnlyError(
                f"The index folder {self.directory} is read-only and holds no index yet; "
                "pass --index DIR to use a writable folder."
            )
        if not exists:
            # Created 0600 before SQLite opens it: SQLite gives -wal and -shm its permissions.
            _create_private_file(self.path)
        for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", LOCK_NAME):
            _tighten(self.directory / name)
        self.read_only = not writable
        # check_same_thread=False only so that `close` may close another thread's connection;
        # each connection is used by its own thread.
        settings = {"isolation_level": None, "check_same_thread": False, "factory": _Connection}
        if writable:
            return sqlite3.connect(os.fsencode(self.path), timeout=30.0, **settings)
        uri = self.path.absolute().as_uri()
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30.0, **settings)
        try:
            db.execute("PRAGMA user_version").fetchone()
            return db
        except sqlite3.OperationalError:
            db.close()
            wal = Path(f"{self.path}-wal")
            if wal.exists() and wal.stat().st_size:
                raise
        # SQLite reads a WAL database only with its -shm file, which a read-only folder cannot
        # get; with no write-ahead log left the main file is the whole index, read as immutable.
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, **settings)

    def _check(self, db: sqlite3.Connection) -> None:
        """Set the connection up; create the schema in a new index, check it in an old one."""
        # Reading the header is what detects a file that is not a database at all.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and self.read_only:
            raise IndexReadOnlyError(
                f"The index folder {self.directory} is read-only and holds no index yet; "
                "pass --index DIR to use a writable folder."
            )
        if version == 0:
            version = self._create(db)
        if version == 1 and not self.read_only:
            version = self._migrate(db)
        if version != SCHEMA_VERSION:
            raise IndexCorruptError(
                f"The index in {self.directory} was written by another docqa version "
                f"(schema {version}); rebuild it with `docqa index --rebuild --index "
                f"{self.directory} PATH...`."
            )
        if not self.read_only:
            # Switching to WAL needs the database to itself, so only a new index does it (under
            # the write lock, in `_create`); later connections find it set.
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                with self._write_lock():
                    db.execute("PRAGMA journal_mode=WAL")
            # WAL with synchronous=NORMAL survives a killed process (not a power cut) and
            # keeps commits cheap: one commit per file.
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        if not {"files", "documents", "windows", "meta"} <= tables:
            raise IndexCorruptError(
                f"The index in {self.directory} is incomplete; rebuild it with "
                f"`docqa index --rebuild --index {self.directory} PATH...`."
            )

    def _create(self, db: sqlite3.Connection) -> int:
        """Create the schema of a new index; returns the version the index has now.

        Under the write lock: another thread or process opening the same new index waits for
        the schema here instead of racing to create it (or to switch the journal mode, which
        SQLite refuses as "database is locked" while another connection writes)."""
        with self._write_lock():
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != 0:
                return version  # created meanwhile
            db.execute("PRAGMA journal_mode=WAL")
            with _transaction(db):
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return SCHEMA_VERSION

    def _migrate(self, db: sqlite3.Connection) -> int:
        """Bring a version-1 index (each document's text and tokens in one row) to this
        version without parsing or tokenizing anything again: each text becomes its
        document's only part. Returns the version the index has now (still 1 where SQLite is
        too old to drop a column: the caller then asks for a rebuild)."""
        if sqlite3.sqlite_version_info < (3, 35, 0):
            return 1
        with self._write_lock(), _transaction(db):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 1:  # not migrated meanwhile by another process
                for statement in _MIGRATE_FROM_1:
                    db.execute(statement)
                version = SCHEMA_VERSION
        return version

    @contextlib.contextmanager
    def _write_lock(self, timeout: float | None = None):
        """One writer per index: a lock file held for the whole update (released by the OS
        if the process dies, so a killed build never leaves the index locked). ``timeout``
        overrides ``lock_timeout`` for this call only (threads share the object)."""
        from filelock import FileLock, Timeout

        wait = self.lock_timeout if timeout is None else timeout
        lock = FileLock(str(self.directory / LOCK_NAME), timeout=wait, mode=0o600)
        try:
            lock.acquire()
        except Timeout:
            raise IndexBusyError(
                f"Another docqa process is updating the index in {self.directory}; "
                f"waited {wait:g} s. Try again when it finishes, or pass "
                "--index DIR to use another index."
            ) from None
        except OSError as exc:
            error = _os_error(self.directory, exc)
            if error is None:
                raise
            raise error from None
        try:
            yield
        finally:
            lock.release()

    @classmethod
    def rebuild(cls, directory: str | os.PathLike | None = None) -> None:
        """Delete the index database in ``directory`` (the next update starts afresh)."""
        folder = Path(directory).expanduser() if directory else default_index_dir()
        for suffix in ("", "-wal", "-shm"):
            try:
                (folder / (DB_NAME + suffix)).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise IndexReadOnlyError(
                        f"Cannot rebuild the index in {folder}: the folder is read-only (no "
                        "permission to write there, or a read-only disk); pass --index DIR "
                        "to build one in a writable folder."
                    ) from None
                raise InputError(
                    f"Cannot delete the index in {folder}: {exc.strerror or exc}."
                ) from None

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
        pieces: PieceProgress | None = None,
    ) -> UpdateReport:
        """Bring the index up to date with ``paths`` (files and folders, recursively).

        Files whose size and modification time match the index are not read; files whose
        content hash is already known are not parsed; documents are tokenized once per
        ``scheme``; with ``encoder``, windows get dense vectors. Files that disappeared from a
        folder given here (or a file given here that no longer exists) are dropped.

        ``progress(done, total, path)`` is called after each file; ``pieces(done, total,
        what)`` during long work inside one file (a large file's text parts, its vectors).
        """
        from docqa.loaders import LoadOptions
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
        removed = 0
        parse_s = 0.0
        total = len(entries)
        hashes: dict[str, tuple[int, int, str]] = {}
        # Plan first (stat, hash and reads only) without the lock: readers never wait for
        # another process's build when nothing here needs writing. Only if something does,
        # take the lock and plan again under it: that build may have done part of the work.
        plans, seen = self._plan_all(db, entries, options.password, hashes)
        writing = self._needs_writing(db, plans, folders, given_files, seen, scheme, encoder)
        if writing and self.read_only:
            raise _read_only(self.directory)
        with self._write_lock() if writing else contextlib.nullcontext():
            if writing:
                plans, seen = self._plan_all(db, entries, options.password, hashes)
            # The files that need parsing are parsed in parallel, then applied in walk
            # order, one transaction per file.
            to_parse = [(key, shown) for _, shown, key, plan in plans if _needs_parse(plan)]
            # Parsed documents arrive in walk order and each is committed at once, so a kill
            # loses at most the files being parsed at that moment.
            parsed = _parse_in_order(to_parse, options)
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
                    record, did = self._apply(db, shown, key, plan, result, scheme, pieces)
                    for name in counts:
                        counts[name] += did.get(name, 0)
                    changed = changed or bool(did.get("changed"))
                    files.append(record)
                    statuses.append(FileStatus(shown, record.state, record.reason))
                if progress:
                    progress(done, total, shown)
            if writing:
                gone = self._missing(db, folders, given_files, seen)
                if gone or changed:
                    removed = self._drop_missing(db, gone)
                if removed:
                    changed = True
                if changed:
                    self._bump_generation(db)
                if encoder is not None and self._ensure_vectors(
                    db, scheme, encoder, [f.doc_id for f in files], pieces
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

    def _plan_all(self, db, entries, password, hashes):
        """``([(done, shown, key, plan or skip reason)], keys seen)``: each file once, in
        walk order (``done`` counts the entries up to it, for progress)."""
        from docqa.loaders import REGISTRY, _unsupported

        plans: list[tuple[int, str, str, object]] = []
        seen: set[str] = set()
        for done, (shown, key, skip) in enumerate(entries, 1):
            if key in seen:
                continue  # a file named twice, or under two folders given: once
            seen.add(key)
            if not skip and Path(key).suffix.lower() not in REGISTRY:
                skip = _unsupported(Path(key))
            plans.append((done, shown, key, skip or self._plan(db, key, password, hashes)))
        return plans, seen

    def _needs_writing(self, db, plans, folders, given_files, seen, scheme, encoder) -> bool:
        """Whether applying ``plans`` would write anything (reads only)."""
        doc_ids = []
        for _, _, _, plan in plans:
            if isinstance(plan, str) or plan.kind == "error":
                continue
            if plan.kind != "same":
                return True
            if plan.doc_id is not None:
                if not self._has_windows(db, plan.doc_id, scheme):
                    return True
                doc_ids.append(plan.doc_id)
        if self._missing(db, folders, given_files, seen):
            return True
        return encoder is not None and self._lacks_vectors(db, scheme, encoder, doc_ids)

    def _has_windows(self, db, doc_id: int, scheme: WindowScheme) -> bool:
        """Whether `_ensure_windows` has nothing to do for ``doc_id`` (its first check):
        every text part tokenized."""
        done = db.execute(
            "SELECT COUNT(*) FROM tokens WHERE doc_id = ? AND scheme = ?", (doc_id, scheme.key)
        ).fetchone()[0]
        return done >= _parts(db, doc_id)

    def _lacks_vectors(self, db, scheme, encoder, doc_ids) -> bool:
        """Whether `_ensure_vectors` would add any vector for ``doc_ids``."""
        for doc_id in sorted(set(doc_ids)):
            row = db.execute(
                _WITHOUT_VECTORS + " LIMIT 1",
                (encoder.name, doc_id, scheme.key),
            ).fetchone()
            if row is not None:
                return True
        return False

    def _plan(self, db, key: str, password: str | None = None, hashes=None) -> _Plan:
        """What updating one file takes: nothing, a re-tokenization, a parse (stat/hash only).

        ``hashes`` keeps ``key``'s hash with the size and time it was taken at, so that
        planning again (under the lock) does not read an unchanged file twice.
        """
        try:
            st = os.stat(key)
        except OSError as exc:
            return _Plan("error", reason=f"Cannot read the file: {exc.strerror}.")
        row = db.execute(
            "SELECT size, mtime_ns, sha256, state, reason, doc_id FROM files WHERE path = ?",
            (_db_path(key),),
        ).fetchone()
        same_stat = row is not None and (row[0], row[1]) == (st.st_size, st.st_mtime_ns)
        if (
            same_stat
            and (row[3] != "ok" or row[5] is not None)
            and not _retry_password(row[3], row[4], password)
        ):
            return _Plan("same", st, row[2], row[3], row[4], row[5])
        # Size or time changed (or never seen): hash the bytes; parse only unknown content.
        hashes = {} if hashes is None else hashes
        taken = hashes.get(key)
        if taken is not None and taken[:2] == (st.st_size, st.st_mtime_ns):
            sha = taken[2]
        else:
            try:
                sha = _sha256_file(key)
            except OSError as exc:
                return _Plan("error", reason=f"Cannot read the file: {exc.strerror}.")
            hashes[key] = (st.st_size, st.st_mtime_ns, sha)
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
        if prior is not None and not _retry_password(prior[0], prior[1], password):
            return _Plan("known", st, sha, prior[0], prior[1], None)
        return _Plan("parse", st, sha)

    def _apply(self, db, shown, key, plan: _Plan, parsed, scheme, pieces=None):
        did = {"parsed": 0, "reused": 0, "tokenized": 0, "pages": 0, "changed": 0}
        if plan.kind == "error":
            return IndexedFile(shown, key, "failed", plan.reason, None), did
        if plan.kind == "same":
            did["reused"] = 1
            if plan.doc_id is not None:
                did["tokenized"] = did["changed"] = self._ensure_windows(
                    db, plan.doc_id, scheme, pieces=pieces, label=shown
                )
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
        from docqa.loaders._base import is_too_large

        if plan.kind == "parse" and doc is None and is_too_large(reason):
            # Not remembered: under a larger --max-file-mb the next run reads it.
            return IndexedFile(shown, key, state, reason, None), did
        whole = True  # one text part: the document and its windows in one transaction
        with _transaction(db):
            if doc is not None:
                doc_id = _insert_document(db, doc, sha)
            if doc_id is not None:
                whole = _parts(db, doc_id) == 1
            db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _db_path(key),
                    plan.stat.st_size,
                    plan.stat.st_mtime_ns,
                    sha,
                    state,
                    _db_text(reason),
                    doc_id,
                    time.time(),
                ),
            )
            if doc_id is not None and whole:
                did["tokenized"] = self._ensure_windows(db, doc_id, scheme, text=doc)
        if doc_id is not None and not whole:
            # A document stored in parts: each part's windows are committed as it is done,
            # so a kill keeps the parts finished and the next run carries on from there.
            did["tokenized"] = self._ensure_windows(
                db, doc_id, scheme, text=doc, pieces=pieces, label=shown
            )
        did["changed"] = 1
        return IndexedFile(shown, key, state, reason, doc_id), did

    def _ensure_windows(
        self,
        db,
        doc_id: int,
        scheme: WindowScheme,
        text=None,
        pieces: PieceProgress | None = None,
        label: str = "",
    ) -> int:
        """Tokenize ``doc_id`` and store its windows for ``scheme``, one text part at a time,
        from the first part not done yet; 1 if anything was done, 0 if it was all there.

        A part's tokens and the windows they complete are committed together, so a kill keeps
        every finished part and the next call carries on. The windows are those `make_chunks`
        cuts from the whole token stream: the tokens of the window that runs on into the next
        part are carried over to it. ``text`` is the document's text (or its `Document`) when
        the caller has it; otherwise each part is read back from the index.
        """
        parts = db.execute(
            "SELECT part, char_start FROM texts WHERE doc_id = ? ORDER BY part", (doc_id,)
        ).fetchall()
        done, known = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(n), 0) FROM tokens WHERE doc_id = ? AND scheme = ?",
            (doc_id, scheme.key),
        ).fetchone()
        if done >= len(parts):
            return 0
        if scheme.tokenizer is None:
            raise InputError("This window scheme has no tokenizer to cut new documents with.")
        if isinstance(text, Document):
            text = text.text
        chars = db.execute("SELECT chars FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]
        ends = [start for _, start in parts[1:]] + [chars]
        emitted = db.execute(
            "SELECT COUNT(*) FROM windows WHERE doc_id = ? AND scheme = ?", (doc_id, scheme.key)
        ).fetchone()[0]
        cutter = _WindowCutter(scheme.chunk_len, scheme.stride, emitted)
        if done:
            self._carry_into(db, doc_id, scheme, cutter)
        todo = list(zip(parts[done:], ends[done:], strict=True))

        def part_text(i: int) -> str:
            (part, start), end = todo[i]
            if text is not None:
                return text[start:end]
            return db.execute(
                "SELECT text FROM texts WHERE doc_id = ? AND part = ?", (doc_id, part)
            ).fetchone()[0]

        # The tokenizer releases the GIL: while this thread cuts windows and BM25 terms from
        # one part, a helper thread tokenizes the next (one part ahead only, for memory).
        ahead = ThreadPoolExecutor(1) if len(todo) > 1 else None
        try:
            piece = part_text(0)
            tokenizing = _run(ahead, tokenize_text, scheme.tokenizer, piece)
            for i, ((part, start), _) in enumerate(todo):
                tokens = tokenizing.result()
                if i + 1 < len(todo):
                    following = part_text(i + 1)
                    tokenizing = _run(ahead, tokenize_text, scheme.tokenizer, following)
                last = part == len(parts) - 1
                chunks, window_texts = cutter.add(tokens, known, piece, start, last)
                terms = _window_terms(window_texts)
                del window_texts
                with _transaction(db):
                    db.execute(
                        "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?, ?)",
                        (doc_id, scheme.key, part, known, len(tokens), _pack_tokens(tokens)),
                    )
                    db.executemany(
                        "INSERT INTO windows (doc_id, scheme, position, token_start, "
                        "token_end, char_start, char_end, terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (doc_id, scheme.key, at, c.token_start, c.token_end, c.start, c.end, t)
                            for (at, c), t in zip(chunks, terms, strict=True)
                        ],
                    )
                    # In the same transaction as the windows: a cached BM25 index is never
                    # taken for current while windows it lacks are already committed.
                    self._bump_generation(db)
                known += len(tokens)
                if pieces is not None and len(parts) > 1:
                    pieces(part + 1, len(parts), f"windows of {label}")
                if i + 1 < len(todo):
                    piece = following
        finally:
            if ahead is not None:
                ahead.shutdown(wait=True, cancel_futures=True)
        if len(todo) > 1:
            _release_memory()
        return 1

    def _carry_into(self, db, doc_id: int, scheme: WindowScheme, cutter: _WindowCutter) -> None:
        """Give ``cutter`` the stored tokens (and text) from its next window's start on: an
        interrupted tokenization carries on where its last committed part ended."""
        rows = db.execute(
            "SELECT t.part, t.token_start, t.n, x.char_start FROM tokens t JOIN texts x "
            "ON x.doc_id = t.doc_id AND x.part = t.part "
            "WHERE t.doc_id = ? AND t.scheme = ? AND t.token_start + t.n > ? ORDER BY t.part",
            (doc_id, scheme.key, cutter.next),
        ).fetchall()
        if not rows:
            return
        blocks = [self._token_block(db, doc_id, scheme, part) for part, *_ in rows]
        first = rows[0][1]
        tokens = _tokens_from_blocks(blocks, [r[3] for r in rows])
        keep = cutter.next - first
        text = "".join(
            db.execute(
                "SELECT text FROM texts WHERE doc_id = ? AND part = ?", (doc_id, part)
            ).fetchone()[0]
            for part, *_ in rows
        )
        text_start = rows[0][3]
        cut = int(tokens.starts[keep]) if keep < len(tokens) else text_start + len(text)
        cutter.carry_over(_slice_tokens(tokens, keep, len(tokens)), text[cut - text_start :], cut)

    def _ensure_vectors(
        self,
        db,
        scheme: WindowScheme,
        encoder: DenseEncoder,
        doc_ids,
        pieces: PieceProgress | None = None,
    ) -> int:
        """Dense piece vectors for the windows of ``doc_ids`` that have none yet; how many.

        `VECTOR_BATCH` windows at a time, each batch committed as it is done: a kill loses
        only the batch being encoded, and the text read is only the batch's.
        """
        ids = sorted({d for d in doc_ids if d is not None})
        added = 0
        for doc_id in ids:
            rows = db.execute(
                _WITHOUT_VECTORS + " ORDER BY w.position",
                (encoder.name, doc_id, scheme.key),
            ).fetchall()
            batches = [rows[b : b + VECTOR_BATCH] for b in range(0, len(rows), VECTOR_BATCH)]
            label = ""
            if pieces is not None and len(batches) > 1:
                shown = db.execute(
                    "SELECT path FROM files WHERE doc_id = ? ORDER BY path LIMIT 1", (doc_id,)
                ).fetchone()
                label = os.path.basename(_path_from_db(shown[0]) or "") if shown else ""
            for done, batch in enumerate(batches, 1):
                lo, hi = batch[0][1], max(e for _, _, e in batch)
                text = _text_range(db, doc_id, lo, hi)
                vectors, owners = encoder.encode_windows(
                    text, [(s - lo, e - lo) for _, s, e in batch]
                )
                with _transaction(db):
                    for i, (window_id, _, _) in enumerate(batch):
                        mine = vectors[owners == i].astype(np.float16)
                        db.execute(
                            "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                            (window_id, encoder.name, len(mine), mine.tobytes()),
                        )
                added += len(batch)
                if label:
                    pieces(done, len(batches), f"vectors of {label}")
        return added

    def _missing(self, db, folders, given_files, seen) -> list[str]:
        """Files of the index under the folders given (or given by name) that are gone."""
        gone: list[str] = []
        for folder in folders:
            # Compared as bytes: a name that is not UTF-8 is stored as a BLOB (`_db_path`).
            prefix = os.fsencode(os.path.join(folder, ""))
            rows = db.execute(
                "SELECT path FROM files WHERE substr(CAST(path AS BLOB), 1, ?) = ?",
                (len(prefix), prefix),
            ).fetchall()
            gone += [p for p in (_path_from_db(r[0]) for r in rows) if p not in seen]
        for key in given_files:
            if os.path.exists(key):
                continue
            if db.execute("SELECT 1 FROM files WHERE path = ?", (_db_path(key),)).fetchone():
                gone.append(key)
        return gone

    def _drop_missing(self, db, gone: list[str]) -> int:
        """Forget the files ``gone``, and documents no file points to any more."""
        # Documents go only now: during the update one may still be wanted by a file
        # planned before another file stopped pointing to it.
        with _transaction(db):
            db.executemany("DELETE FROM files WHERE path = ?", [(_db_path(p),) for p in gone])
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
        found = []
        for stored, state, reason, doc_id in rows:
            path = _path_from_db(stored)
            found.append(IndexedFile(path, path, state, reason, doc_id))
        return found

    @_wrap_db_errors
    def document(self, doc_id: int, source: str | None = None) -> Document:
        """The stored document ``doc_id``, as its loader made it, with ``source`` as its name."""
        db = self.connect()
        row = db.execute(
            "SELECT d.pages, d.sections, d.meta, d.sha256, "
            "(SELECT path FROM files f WHERE f.doc_id = d.id ORDER BY path LIMIT 1) "
            "FROM documents d WHERE d.id = ?",
            (doc_id,),
        ).fetchone()
        if row is None:
            raise InputError(f"The index has no document {doc_id}.")
        pages, sections, meta, sha, path = row
        if _parts(db, doc_id) == 1:
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
            source=source or _path_from_db(path) or "",
            pages=tuple(Page(*p) for p in json.loads(pages)),
            sections=tuple(Section(*s) for s in json.loads(sections)),
            sha256=sha,
            meta=json.loads(meta),
        )

    @_wrap_db_errors
    def tokenized(self, doc_id: int, scheme: WindowScheme) -> TokenizedText:
        """All the stored reader tokens of ``doc_id`` for ``scheme`` (never re-tokenized).

        Arrays as long as the document: for reading a few windows of a large one, `tokens`.
        """
        return self.tokens(doc_id, scheme)

    @_wrap_db_errors
    def tokens(
        self, doc_id: int, scheme: WindowScheme, lo: int = 0, hi: int | None = None
    ) -> TokenizedText:
        """The stored reader tokens ``[lo, hi)`` of ``doc_id`` for ``scheme`` (default all),
        character offsets into the whole text; only the text parts they span are read."""
        db = self.connect()
        rows = db.execute(
            "SELECT t.part, t.token_start, t.n, x.char_start FROM tokens t JOIN texts x "
            "ON x.doc_id = t.doc_id AND x.part = t.part "
            "WHERE t.doc_id = ? AND t.scheme = ? ORDER BY t.part",
            (doc_id, scheme.key),
        ).fetchall()
        if not rows:
            raise InputError(f"Document {doc_id} has no windows for this model in the index.")
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
        return _tokens_from_blocks(blocks, starts)

    def _token_block(self, db, doc_id: int, scheme: WindowScheme, part: int) -> np.ndarray:
        """One part's packed tokens (`_unpack_block`), kept in a cache of bounded size."""
        key = (doc_id, scheme.key, part)
        with self._lock:  # threads share the cache
            hit = self._tokens_cache.get(key)
            if hit is not None:
                self._tokens_cache.move_to_end(key)
                return hit
        n, data = db.execute(
            "SELECT n, data FROM tokens WHERE doc_id = ? AND scheme = ? AND part = ?", key
        ).fetchone()
        block = _unpack_block(n, data)
        with self._lock:
            self._tokens_cache[key] = block
            held = sum(b.shape[1] for b in self._tokens_cache.values())
            while held > CACHED_TOKENS and len(self._tokens_cache) > 1:
                _, dropped = self._tokens_cache.popitem(last=False)
                held -= dropped.shape[1]
        return block

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
        cursor = db.execute(
            "SELECT id, doc_id, token_start, token_end, char_start, char_end FROM windows "
            "WHERE scheme = ? ORDER BY id",
            (scheme.key,),
        )
        # Straight into an array: a list of a row tuple per window is large and lingers.
        flat = np.fromiter(itertools.chain.from_iterable(cursor), dtype=np.int64)
        cols = flat.reshape(-1, 6).T.copy()
        del flat
        size = cols.shape[1]
        bm25 = self._bm25(db, scheme, generation, size)
        vectors = owners = None
        if encoder is not None and size:
            vectors, owners = self._vectors(db, scheme, encoder, cols[0])
        retriever = Retriever(bm25, vectors, owners, encoder if vectors is not None else None)
        corpus = _Corpus(generation, *cols, retriever=retriever)
        self._corpora[cache_key] = corpus
        return corpus

    def _bm25(self, db, scheme: WindowScheme, generation: int, size: int) -> Bm25:
        """The BM25 index over the ``size`` windows of ``scheme``: the stored one if it is
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
        bm25 = _bm25_from_windows(db, scheme.key)
        if size >= _BM25_BLOCK * 64:
            _release_memory()
        # Caching needs the write lock; a reader that cannot get it at once (or cannot write
        # at all: a read-only index, a full disk) just goes on.
        with contextlib.suppress(IndexBusyError, IndexWriteError, sqlite3.OperationalError):
            if self.read_only:
                return bm25
            with self._write_lock(timeout=0), _transaction(db):
                if self.generation() == generation:
                    db.execute(
                        "INSERT OR REPLACE INTO bm25 VALUES (?, ?, ?)",
                        (scheme.key, generation, bm25.to_state()),
                    )
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
        # SQLite has already rolled back after some errors (a full disk): then there is
        # nothing to roll back, and trying would hide the error that says what happened.
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _db_path(path: str) -> str | bytes:
    """``path`` as the index stores it: text, or for a name that is not valid UTF-8 (bytes
    that ``os.fsdecode`` turned into lone surrogates, which SQLite text cannot hold) its
    bytes, as a BLOB; `_path_from_db` turns either back into the same ``str``."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def _path_from_db(value: str | bytes | None) -> str | None:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _db_text(text: str) -> str:
    """``text`` safe for a SQLite text column: lone surrogates (from a file name that is not
    UTF-8, inside a message) as backslash escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _retry_password(state: str, reason: str, password: str | None) -> bool:
    """Whether a stored failure is one a password changes: a PDF that needed a password (or
    got a wrong one) is parsed again when one is given now; one that got a wrong password is
    parsed again without, so that it says it needs one."""
    from docqa.loaders.pdf import NEEDS_PASSWORD, WRONG_PASSWORD

    if state != "failed":
        return False
    return reason in (NEEDS_PASSWORD, WRONG_PASSWORD) if password else reason == WRONG_PASSWORD


def _create_private_file(path: Path) -> None:
    """Create ``path`` empty, readable and writable by its owner only, whatever the umask."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _tighten(path: Path) -> None:
    """Take group and other permissions off ``path`` where this user owns it: an index made
    by an older docqa, or under a loose umask, holds every document's text."""
    if not hasattr(os, "getuid"):
        return  # Windows: no POSIX permission bits
    try:
        st = os.stat(path)
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)
    except OSError:
        pass  # missing, or a read-only disk: nothing to tighten there


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
#: Files above this size are parsed in the indexing process itself, never in a worker.
PARALLEL_MAX_BYTES = 32 << 20


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
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),)
    ) as pool:
        # A very large file is read here, when its turn comes: from a worker its document
        # would cross over as a pickle, a copy of its text on each side at once.
        futures = {
            key: pool.submit(_load_one, key, shown, options)
            for key, shown in by_size
            if not os.path.exists(key) or os.path.getsize(key) <= PARALLEL_MAX_BYTES
        }
        try:
            for key, shown in items:
                future = futures.get(key)
                yield future.result() if future is not None else _load_one(key, shown, options)
        finally:
            # Stopped early (a full disk while applying, an interrupt): the error is told now,
            # not after parsing every file still queued for nothing.
            pool.shutdown(wait=False, cancel_futures=True)


def _exit_with_parent(parent: int) -> None:
    """In a pool worker: exit when the process that started it dies, even by kill -9 (a
    worker waiting for work would otherwise live on as an orphan, and its PDF worker too).

    Linux: the kernel sends SIGKILL (``PR_SET_PDEATHSIG``). It fires when the thread that
    started the worker ends, which is after the pool is done with: the pool lives inside
    `_parse_in_order`, in that thread. Elsewhere, and as a backstop, a thread polls.
    """
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    # A parent that died before the kernel was asked is seen by the first poll.
    threading.Thread(target=watch, name="docqa-parent-watch", daemon=True).start()


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
    bounds = piece_bounds(doc.text, PART_CHARS)
    cur = db.execute(
        "INSERT INTO documents (sha256, pages, sections, meta, chars, parts) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            sha,
            json.dumps([[p.number, p.start, p.end] for p in doc.pages]),
            json.dumps([[s.title, s.start] for s in doc.sections]),
            json.dumps(doc.meta, default=str),
            len(doc.text),
            len(bounds),
        ),
    )
    doc_id = int(cur.lastrowid)
    # Cut at whitespace, like the tokenizer's pieces: tokens never span two parts, so the
    # parts tokenized one by one give the tokens of the whole text.
    for part, (start, end) in enumerate(bounds):
        db.execute(
            "INSERT INTO texts VALUES (?, ?, ?, ?)", (doc_id, part, start, doc.text[start:end])
        )
    return doc_id


_TERM_WORDS = re.compile(r"\w\w+")


class _Stems(dict):
    """Word → its BM25 term (Snowball stem), or "" for a stop word, filled as words come."""

    def __init__(self) -> None:
        super().__init__()
        from bm25s.tokenization import _infer_stopwords

        from docqa.retrieve import STOPWORDS, _stemmer

        self.stop = frozenset(_infer_stopwords(STOPWORDS))
        self.stemmer = _stemmer()

    def __missing__(self, word: str) -> str:
        if word in self.stop:
            stem = ""
        else:
            stem = self.stemmer.stemWord(word) if self.stemmer is not None else word
        if len(self) < 1 << 20:  # a cache, not a record of every word ever seen
            self[word] = stem
        return stem


_STEMS: _Stems | None = None


def _window_terms(texts: Sequence[str]) -> list[str]:
    """Each text's `docqa.retrieve.bm25_tokens`, joined by spaces as the index stores them:
    the same terms, found with one cached lookup per word instead of bm25s's several passes
    over every text, which counts for the windows of a very large file."""
    global _STEMS
    if _STEMS is None:
        _STEMS = _Stems()
    term_of = _STEMS.__getitem__
    return [
        " ".join(filter(None, map(term_of, _TERM_WORDS.findall(t.replace("_", " ").lower()))))
        for t in texts
    ]


#: Windows whose BM25 terms are counted together while the BM25 index is built.
_BM25_BLOCK = 1024


def _bm25_from_windows(db, scheme_key: str) -> Bm25:
    """BM25 over every window of a scheme, from their stored terms, a block of windows at a
    time: each window's terms become ids and counts at once, so no list of every term of
    every window is ever built (for a very large file, tens of millions of strings)."""
    vocab: dict[str, int] = {}
    term_blocks, count_blocks, length_blocks, width_blocks = [], [], [], []
    cursor = db.execute("SELECT terms FROM windows WHERE scheme = ? ORDER BY id", (scheme_key,))
    while rows := cursor.fetchmany(_BM25_BLOCK):
        words = [terms.split() for (terms,) in rows]
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        ids = np.fromiter(
            (vocab.setdefault(w, len(vocab)) for window in words for w in window),
            dtype=np.int64,
            count=int(lengths.sum()),
        )
        del words
        # One key per (window, term): sorting them gives each window's distinct terms and
        # their counts, in window order.
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


def _release_memory() -> None:
    """Give the memory freed by a large piece of work back to the system.

    glibc keeps freed heap memory for reuse rather than returning it; after a very large file
    the process would stay near that peak and add the next one on top (indexing, then
    answering, in one ``docqa ask``). Elsewhere there is nothing to do.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None).malloc_trim(0)


def _run(pool: ThreadPoolExecutor | None, func, *args) -> Future:
    """``func(*args)`` in ``pool``, or at once here (a finished future) without one."""
    if pool is not None:
        return pool.submit(func, *args)
    done: Future = Future()
    done.set_result(func(*args))
    return done


def _parts(db, doc_id: int) -> int:
    return db.execute("SELECT parts FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]


def _text_range(db, doc_id: int, lo: int, hi: int) -> str:
    """Characters ``[lo, hi)`` of a stored document's text, reading only the parts they span."""
    rows = db.execute(
        "SELECT part, char_start FROM texts WHERE doc_id = ? ORDER BY part", (doc_id,)
    ).fetchall()
    pieces = []
    for i, (part, start) in enumerate(rows):
        end = rows[i + 1][1] if i + 1 < len(rows) else None
        if (end is not None and end <= lo) or start >= hi:
            continue
        a = max(lo, start) - start
        # substr counts characters, from 1.
        (piece,) = db.execute(
            "SELECT substr(text, ?, ?) FROM texts WHERE doc_id = ? AND part = ?",
            (a + 1, hi - max(lo, start), doc_id, part),
        ).fetchone()
        pieces.append(piece)
    return "".join(pieces)


def _collect_garbage(db) -> None:
    """Drop documents no file points to any more (their tokens, windows, vectors cascade)."""
    db.execute(
        "DELETE FROM documents WHERE id NOT IN (SELECT doc_id FROM files WHERE doc_id IS NOT NULL)"
    )


def _pack_tokens(t: TokenizedText) -> bytes:
    """One text part's tokens, character offsets counted from the part's start (int32)."""
    return np.stack([t.ids, t.starts, t.ends, t.word_start, t.word_end]).astype("<i4").tobytes()


def _unpack_block(n: int, data: bytes) -> np.ndarray:
    """The ``[5, n]`` int32 view of a packed part (no copy)."""
    return np.frombuffer(data, dtype="<i4").reshape(5, n)


def _tokens_from_blocks(
    blocks: Sequence[np.ndarray], char_starts: Sequence[int], lo: int = 0, hi: int | None = None
) -> TokenizedText:
    """Columns ``[lo, hi)`` of consecutive parts' blocks as one `TokenizedText` whose offsets
    count from the start of the document (int64)."""
    pieces = []
    for block, start in zip(blocks, char_starts, strict=True):
        piece = block.astype(np.int64)
        piece[1:] += start
        pieces.append(piece)
    whole = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=1)
    whole = whole[:, lo:hi]
    return TokenizedText(whole[0], whole[1], whole[2], whole[3], whole[4])


def _read_token_range(db, doc_id: int, scheme_key: str, part: int, n: int, a: int, b: int):
    """Columns ``[a, b)`` of a packed part of ``n`` tokens, as `_unpack_block` gives them,
    without bringing the whole part into Python: a few windows of a part of a million
    tokens cost their own bytes, not the part's."""
    width = 4 * (b - a)
    row = db.execute(
        "SELECT " + ", ".join(["substr(data, ?, ?)"] * 5) + " FROM tokens "
        "WHERE doc_id = ? AND scheme = ? AND part = ?",
        (*(v for k in range(5) for v in (4 * (k * n + a) + 1, width)), doc_id, scheme_key, part),
    ).fetchone()
    return np.frombuffer(b"".join(row), dtype="<i4").reshape(5, b - a)


def _slice_tokens(t: TokenizedText, lo: int, hi: int) -> TokenizedText:
    return TokenizedText(
        t.ids[lo:hi], t.starts[lo:hi], t.ends[lo:hi], t.word_start[lo:hi], t.word_end[lo:hi]
    )


class _WindowCutter:
    """Cuts a token stream that arrives part by part into the windows `make_chunks` cuts from
    the whole stream (same bounds, same positions), keeping only the tokens and text of the
    last, unfinished window between parts."""

    def __init__(self, chunk_len: int, stride: int, emitted: int = 0):
        self.length = chunk_len
        self.step = chunk_len - stride
        self.position = emitted
        self.next = emitted * self.step  # first token of the next window
        self.carry: TokenizedText | None = None  # tokens from ``next`` on, offsets absolute
        self.carry_text = ""  # the text from the carry's first token to the last part's end
        self.carry_char = 0  # where ``carry_text`` starts in the document

    def carry_over(self, tokens: TokenizedText, text: str, char: int) -> None:
        self.carry, self.carry_text, self.carry_char = tokens, text, char

    def add(
        self, tokens: TokenizedText, first: int, text: str, char: int, final: bool
    ) -> tuple[list[tuple[int, Chunk]], list[str]]:
        """Windows completed by one more part: ``tokens`` (offsets within ``text``, the
        part's text, which starts at character ``char``), whose first token is token
        ``first`` of the document. ``final``: the last part, whose end ends the last window.
        Returns ``([(position, chunk)], [text of each window])``."""
        shifted = TokenizedText(
            tokens.ids,
            tokens.starts + char,
            tokens.ends + char,
            tokens.word_start + char,
            tokens.word_end + char,
        )
        if self.carry is not None:
            first -= len(self.carry)
            carry = self.carry
            shifted = TokenizedText(
                np.concatenate([carry.ids, shifted.ids]),
                np.concatenate([carry.starts, shifted.starts]),
                np.concatenate([carry.ends, shifted.ends]),
                np.concatenate([carry.word_start, shifted.word_start]),
                np.concatenate([carry.word_end, shifted.word_end]),
            )
            text, char = self.carry_text + text, self.carry_char
        known = first + len(shifted)
        found: list[tuple[int, Chunk]] = []
        window_texts: list[str] = []
        while known and (final or self.next + self.length < known):
            start, end = self.next, min(self.next + self.length, known)
            a, b = int(shifted.starts[start - first]), int(shifted.ends[end - 1 - first])
            found.append((self.position, Chunk(0, start, end, a, b)))
            window_texts.append(text[a - char : b - char])
            self.position += 1
            if end >= known:
                break
            self.next += self.step
        keep = self.next - first
        cut = int(shifted.starts[keep]) if keep < len(shifted) else char + len(text)
        self.carry_over(_slice_tokens(shifted, keep, len(shifted)), text[cut - char :], cut)
        return found, window_texts
