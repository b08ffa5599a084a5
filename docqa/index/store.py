"""The store: one SQLite file in the index folder, its schema, connections and write lock.

What is stored (``index.sqlite3`` in the index folder; by default the user cache directory):

* ``files``: every file seen, by absolute path, with size, modification time, content hash
  (SHA-256 of the bytes) and loader status (ok, empty, skipped, failed and why);
* ``documents``: pages, sections and loader metadata, keyed by content hash, so a renamed or
  copied file is never parsed twice; ``texts``: the extracted text, in parts of at most
  `docqa.index.ingest.PART_CHARS` characters cut at whitespace (one part for all but very
  large files);
* ``tokens`` and ``chunks``: the reader tokenization of each text part and the document's
  question-independent chunks (`docqa.retrieve.Chunk`), per `ChunkScheme` (tokenizer and
  chunk size), with each chunk's BM25 terms; ``vectors``: its dense piece vectors;
* ``bm25``: the `bm25s` score matrix over all chunks, rebuilt when the chunks change;
* ``meta``: the generation, a counter bumped by every change to what is indexed, which tells
  a cached BM25 index or corpus whether it is current.

Only one process updates an index at a time (a lock file beside the database); readers never
wait for it. The folder is private (0700, its files 0600): it holds every document's text. A
folder this user cannot write to is read as it is. Everything here is shared by ingest (the
writing side) and search (the reading side), which know nothing of each other.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import sqlite3
import stat
import sys
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from docqa.errors import (
    IndexBusyError,
    IndexCorruptError,
    IndexReadOnlyError,
    IndexWriteError,
    InputError,
)
from docqa.windowing import TokenizedText

SCHEMA_VERSION = 4
DB_NAME = "index.sqlite3"
LOCK_NAME = "index.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    pages TEXT NOT NULL,
    sections TEXT NOT NULL,
    meta TEXT NOT NULL,
    chars INTEGER NOT NULL DEFAULT 0,
    parts INTEGER NOT NULL DEFAULT 1,
    loader INTEGER NOT NULL DEFAULT 0,
    regions TEXT NOT NULL DEFAULT '[]'
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
CREATE TABLE IF NOT EXISTS chunks (
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
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(scheme, doc_id, position);
CREATE TABLE IF NOT EXISTS vectors (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
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
    "PRAGMA user_version=2",
)
_MIGRATE_FROM_2 = (
    # The version of the loader that made each document (0: before versions were kept), so
    # that a file parsed by an older loader is parsed again (`docqa.loaders.LOADER_VERSIONS`);
    # and each document's regions (`docqa.types.Region`).
    "ALTER TABLE documents ADD COLUMN loader INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE documents ADD COLUMN regions TEXT NOT NULL DEFAULT '[]'",
    "PRAGMA user_version=3",
)
_MIGRATE_FROM_3 = (
    # One name per concept: the stored question-independent slices are chunks (`Chunk`);
    # "window" is the reader's input. Renaming keeps every row, and the vectors' references.
    "ALTER TABLE windows RENAME TO chunks",
    "ALTER TABLE vectors RENAME COLUMN window_id TO chunk_id",
    "DROP INDEX IF EXISTS windows_doc",
    "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(scheme, doc_id, position)",
    "PRAGMA user_version=4",
)
#: The statements that bring an index from each older version to the next.
_MIGRATIONS = {1: _MIGRATE_FROM_1, 2: _MIGRATE_FROM_2, 3: _MIGRATE_FROM_3}


def default_index_dir() -> Path:
    """``$DOCQA_INDEX``, else docqa's folder in the user cache directory (``platformdirs``)."""
    env = os.environ.get("DOCQA_INDEX")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("docqa")) / "index"


def wrap_db_errors(func):
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
        return read_only_error(directory)
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
            return read_only_error(directory)
    return None


def _disk_full(directory: Path) -> IndexWriteError:
    return IndexWriteError(
        f"Could not write to the index in {directory}: the disk is full (free some space and "
        "run again; what was indexed before is kept)."
    )


def read_only_error(directory: Path) -> IndexReadOnlyError:
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


class Store:
    """The index database in ``directory``: per-thread connections, transactions, the write
    lock and the generation. `docqa.index.Index` holds one; ingest and search take it.

    ``lock_timeout`` is how long `write_lock` waits for another process's update to finish
    before raising `IndexBusyError` (0: fail at once).
    """

    def __init__(self, directory: Path, lock_timeout: float = 60.0):
        self.directory = directory
        self.lock_timeout = lock_timeout
        self.read_only = False
        # SQLite connections cannot cross threads: one per thread, all closed by `close`;
        # weakly held, so that the connection of a thread that ended closes with it.
        self._local = threading.local()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._epoch = 0  # bumped by `close`, so that a thread's old connection is not reused
        self._lock = threading.Lock()  # the connection list

    @property
    def path(self) -> Path:
        return self.directory / DB_NAME

    def close(self) -> None:
        """Close every thread's connection (using the index again opens new ones)."""
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
            self._epoch += 1
        for db in connections:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    @wrap_db_errors
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
        if version in _MIGRATIONS and not self.read_only:
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
                with self.write_lock():
                    db.execute("PRAGMA journal_mode=WAL")
            # WAL with synchronous=NORMAL survives a killed process (not a power cut) and
            # keeps commits cheap: one commit per file.
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        if not {"files", "documents", "chunks", "meta"} <= tables:
            raise IndexCorruptError(
                f"The index in {self.directory} is incomplete; rebuild it with "
                f"`docqa index --rebuild --index {self.directory} PATH...`."
            )

    def _create(self, db: sqlite3.Connection) -> int:
        """Create the schema of a new index; returns the version the index has now.

        Under the write lock: another thread or process opening the same new index waits for
        the schema here instead of racing to create it (or to switch the journal mode, which
        SQLite refuses as "database is locked" while another connection writes)."""
        with self.write_lock():
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != 0:
                return version  # created meanwhile
            db.execute("PRAGMA journal_mode=WAL")
            with transaction(db):
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return SCHEMA_VERSION

    def _migrate(self, db: sqlite3.Connection) -> int:
        """Bring an older index to this version without parsing or tokenizing anything
        again (from version 1, where each document's text and tokens were one row, each text
        becomes its document's only part). Returns the version the index has now (still 1
        where SQLite is too old to drop a column: the caller then asks for a rebuild)."""
        with self.write_lock(), transaction(db):
            # Read under the lock: another process may have migrated it meanwhile.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            while version in _MIGRATIONS:
                if version == 1 and sqlite3.sqlite_version_info < (3, 35, 0):
                    break
                for statement in _MIGRATIONS[version]:
                    db.execute(statement)
                version = db.execute("PRAGMA user_version").fetchone()[0]
        return version

    @contextlib.contextmanager
    def write_lock(self, timeout: float | None = None):
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

    def generation(self) -> int:
        row = self.connect().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def remembered_tokenizer(self, files_key: str) -> tuple[str, int] | None:
        """``(fingerprint, n_special)`` of the tokenizer whose files had ``files_key``, if
        this index has seen it (`remember_tokenizer`)."""
        row = (
            self.connect()
            .execute("SELECT value FROM meta WHERE key = ?", ("tokenizer:" + files_key,))
            .fetchone()
        )
        if row is None:
            return None
        try:
            fingerprint, n_special = json.loads(row[0])
            return str(fingerprint), int(n_special)
        except (ValueError, TypeError):
            return None  # not what this version writes: loaded again, and remembered anew

    def remember_tokenizer(self, files_key: str, fingerprint: str, n_special: int) -> None:
        """Remember a loaded tokenizer's scheme, so that later processes need not load it to
        know which chunks are its own (skipped on a read-only or busy index)."""
        if self.read_only:
            return
        try:
            db = self.connect()
            with transaction(db):
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    ("tokenizer:" + files_key, json.dumps([fingerprint, n_special])),
                )
        except sqlite3.OperationalError:
            pass  # busy or locked: only a shortcut is lost


def rebuild(directory: str | os.PathLike | None = None) -> None:
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


def bump_generation(db) -> None:
    """Count a change to what is indexed (inside the caller's transaction if there is one)."""
    with transaction(db):
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")


# -- helpers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def transaction(db: sqlite3.Connection):
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


def path_to_db(path: str) -> str | bytes:
    """``path`` as the index stores it: text, or for a name that is not valid UTF-8 (bytes
    that ``os.fsdecode`` turned into lone surrogates, which SQLite text cannot hold) its
    bytes, as a BLOB; `path_from_db` turns either back into the same ``str``."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def path_from_db(value: str | bytes | None) -> str | None:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def db_text(text: str) -> str:
    """``text`` safe for a SQLite text column: lone surrogates (from a file name that is not
    UTF-8, inside a message) as backslash escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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


def release_memory() -> None:
    """Give the memory freed by a large piece of work back to the system.

    glibc keeps freed heap memory for reuse rather than returning it; after a very large file
    the process would stay near that peak and add the next one on top (indexing, then
    answering, in one ``docqa ask``). Elsewhere there is nothing to do.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None).malloc_trim(0)


def doc_parts(db, doc_id: int) -> int:
    return db.execute("SELECT parts FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]


def text_range(db, doc_id: int, lo: int, hi: int) -> str:
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


def pack_tokens(t: TokenizedText) -> bytes:
    """One text part's tokens, character offsets counted from the part's start (int32)."""
    return np.stack([t.ids, t.starts, t.ends, t.word_start, t.word_end]).astype("<i4").tobytes()


def _unpack_block(n: int, data: bytes) -> np.ndarray:
    """The ``[5, n]`` int32 view of a packed part (no copy)."""
    return np.frombuffer(data, dtype="<i4").reshape(5, n)


def tokens_from_blocks(
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


def read_block(db, doc_id: int, scheme_key: str, part: int) -> np.ndarray:
    """One text part's packed tokens, read from the index (`_unpack_block`)."""
    n, data = db.execute(
        "SELECT n, data FROM tokens WHERE doc_id = ? AND scheme = ? AND part = ?",
        (doc_id, scheme_key, part),
    ).fetchone()
    return _unpack_block(n, data)


def write_vectors(db, encoder_name: str, chunks: Sequence[tuple[int, np.ndarray]]) -> None:
    """Store each ``(chunk id, piece vectors)`` as float16, in the caller's transaction."""
    db.executemany(
        "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
        [
            (chunk_id, encoder_name, len(v), v.astype(np.float16).tobytes())
            for chunk_id, v in chunks
        ],
    )


def read_vectors(db, encoder_name: str, chunk_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """The stored piece vectors ``[pieces, dim]`` of those of ``chunk_ids`` that have any."""
    found: dict[int, np.ndarray] = {}
    ids = [int(w) for w in chunk_ids]
    for b in range(0, len(ids), SQL_VARIABLES):
        batch = ids[b : b + SQL_VARIABLES]
        marks = ",".join("?" * len(batch))
        for chunk_id, n, data in db.execute(
            f"SELECT chunk_id, n, data FROM vectors WHERE encoder = ? AND chunk_id IN ({marks})",
            (encoder_name, *batch),
        ):
            block = np.frombuffer(data, dtype=np.float16)
            found[chunk_id] = block.reshape(n, block.size // n if n else 0)
    return found


#: Chunk ids per ``IN (...)`` query (SQLite allows at least 999 variables).
SQL_VARIABLES = 900
