"""Ingest, the writing side: walk → plan → parse → tokenize → commit (and vectors, if asked).

* walk: `docqa.loaders.walk` lists the files under each folder given, with skip reasons;
* plan (`_plan`): per file, by stat and content hash only, what it takes: nothing, chunks for
  a new scheme, a known document for a renamed or copied file, or a parse;
* parse (`_parse_in_order`): the files to parse go to a pool of worker processes (one per
  core by default, ``workers`` to choose) and come back in walk order;
* tokenize (`_ensure_chunks`): each text part is tokenized once and cut into the chunks
  `make_chunks` would cut from the whole text (`_ChunkCutter`), with their BM25 terms;
* commit: each file, and each text part of a large one, in its own transaction;
* vectors (`_ensure_vectors`): dense piece vectors for chunks that have none, in batches.

Updating is incremental: a file whose size and modification time are unchanged is not read at
all; one whose bytes are unchanged (touched, renamed, copied) is not parsed; files deleted from
a folder that is re-indexed are dropped. Each file is committed on its own, in SQLite's
write-ahead log, so a build killed at any moment leaves an index that holds every file finished
before the kill, and the next run carries on. A very large file is tokenized, chunked and
embedded in pieces (a text part, a batch of chunks), each committed as it is finished, so
memory stays bounded by the piece size and a kill loses only the piece in flight. An update
that finds nothing to write takes no lock.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from docqa.errors import InputError
from docqa.index.store import (
    Store,
    bump_generation,
    db_text,
    doc_parts,
    pack_tokens,
    path_from_db,
    path_to_db,
    read_block,
    read_only_error,
    release_memory,
    text_range,
    tokens_from_blocks,
    transaction,
    write_vectors,
)
from docqa.retrieve import PIECE_BLOCK, Chunk, DenseEncoder
from docqa.types import Document, FileStatus
from docqa.windowing import ChunkScheme, TokenizedText, piece_bounds, tokenize_text

#: Characters per stored text part. A document is tokenized and chunked one part at a time,
#: and read back one part at a time, so this (not the file's size) bounds the memory of
#: indexing and asking; each part is committed on its own.
PART_CHARS = 1 << 22
#: Chunks embedded and committed together by the dense encoder.
VECTOR_BATCH = 256

#: Chunks of one document (``encoder``, ``doc_id``, ``scheme``), each with whether it has
#: vectors yet.
_VECTOR_STATE = (
    "SELECT w.id, w.char_start, w.char_end, v.chunk_id IS NOT NULL FROM chunks w "
    "LEFT JOIN vectors v ON v.chunk_id = w.id AND v.encoder = ? "
    "WHERE w.doc_id = ? AND w.scheme = ?"
)
#: Those that have none.
_WITHOUT_VECTORS = _VECTOR_STATE + " AND v.chunk_id IS NULL"

#: ``progress(done, total, path)`` after each file of an update; a callable that takes a
#: fourth argument also gets the pages parsed so far (``progress(done, total, path, pages)``).
UpdateProgress = Callable[..., None]
#: ``pieces(done, total, what)`` during long work on one file (its text parts, its vectors).
PieceProgress = Callable[[int, int, str], None]


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
    tokenized: int  # documents tokenized into chunks for the scheme
    removed: int  # files dropped because they are gone
    pages: int  # pages of the documents parsed (throughput)
    seconds: float
    parse_seconds: float = 0.0  # of ``seconds``, waiting for parsed documents
    #: Files left unread because ``max_wait`` ran out (not in ``files``; the next update
    #: reads them).
    unread: int = 0
    #: Seconds of each phase: walk (listing folders), plan (stat and hash), parse (waiting
    #: for parsed documents), tokenize (storing, tokenizing and windowing, committed per
    #: file), vectors (precomputed with an encoder), finish (dropping files that are gone).
    phases: dict[str, float] = field(default_factory=dict)

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


def update(
    store: Store,
    paths: Iterable[str | os.PathLike],
    scheme: ChunkScheme | Callable[[], ChunkScheme] | None = None,
    *,
    encoder: DenseEncoder | None = None,
    password: str | None = None,
    options=None,
    progress: UpdateProgress | None = None,
    follow_outside: bool = False,
    pieces: PieceProgress | None = None,
    workers: int | None = None,
    max_wait: float | None = None,
) -> UpdateReport:
    """Bring the index up to date with ``paths`` (files and folders, recursively).

    Files whose size and modification time match the index are not read; files whose
    content hash is already known are not parsed; documents are tokenized once per
    ``scheme``; with ``encoder``, chunks get dense vectors. Files that disappeared from a
    folder given here (or a file given here that no longer exists) are dropped.

    ``scheme`` may be a function that makes it: it is then called only once the files to
    parse are being parsed, so that loading a tokenizer does not hold them up.
    ``progress(done, total, path)`` is called after each file; ``pieces(done, total,
    what)`` during long work inside one file (a large file's text parts, its vectors).
    ``workers``: processes that parse files (default one per core; 1 parses here, in this
    process). ``max_wait``: seconds after which no further file is parsed: what is done is
    kept and answers, the rest is counted in ``UpdateReport.unread`` for the next update.
    """
    from docqa.loaders import LoadOptions
    from docqa.loaders.walk import walk

    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1 (got {workers}).")
    if max_wait is not None and not max_wait >= 0:
        raise InputError(f"max_wait must be 0 or more seconds (got {max_wait}).")
    started = time.perf_counter()
    phases = dict.fromkeys(("walk", "plan", "parse", "tokenize", "vectors", "finish"), 0.0)
    clock = _Clock(phases)
    report_progress = _with_pages(progress)
    db = store.connect()
    # Made once, when first needed.
    get_scheme = functools.cache(
        scheme if callable(scheme) else lambda: scheme or ChunkScheme.default()
    )
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
                entries.append((str(entry.path), os.path.abspath(entry.path), entry.skip_reason))
        elif path.is_file():
            entries.append((str(path), key, ""))
            given_files.append(key)
        else:
            entries.append((str(path), key, "Not a regular file."))

    clock("walk")
    files: list[IndexedFile] = []
    statuses: list[FileStatus] = []
    counts = {"parsed": 0, "reused": 0, "tokenized": 0, "pages": 0}
    unread = 0
    changed = False
    removed = 0
    parse_s = 0.0
    total = len(entries)
    hashes: dict[str, tuple[int, int, str]] = {}
    # Plan first (stat, hash and reads only) without the lock: readers never wait for
    # another process's build when nothing here needs writing. Only if something does,
    # take the lock and plan again under it: that build may have done part of the work.
    plans, seen, snapshot = _plan_all(db, entries, options.password, hashes, get_scheme)
    writing = _needs_writing(db, plans, folders, given_files, seen, snapshot, encoder)
    if writing and store.read_only:
        raise read_only_error(store.directory)
    with store.write_lock() if writing else contextlib.nullcontext():
        if writing:
            plans, seen, snapshot = _plan_all(db, entries, options.password, hashes, get_scheme)
        clock("plan")
        # The files that need parsing are parsed in parallel, then applied in walk
        # order, one transaction per file.
        to_parse = [(key, shown) for _, shown, key, plan in plans if _needs_parse(plan)]
        # Parsed documents arrive in walk order and each is committed at once, so a kill
        # loses at most the files being parsed at that moment. The workers start now,
        # before anything needs the scheme (which may load a tokenizer).
        parsed = _parse_in_order(to_parse, options, workers)
        next(parsed)
        try:
            for done, shown, key, plan in plans:
                if isinstance(plan, str):
                    state = "failed" if plan.startswith("No such file") else "skipped"
                    statuses.append(FileStatus(shown, state, plan))
                elif _needs_parse(plan) and (
                    unread or (max_wait is not None and time.perf_counter() - started > max_wait)
                ):
                    unread += 1  # out of time: not parsed, not remembered, read next time
                    continue
                else:
                    result = None
                    if _needs_parse(plan):
                        result = next(parsed)
                        parse_s += clock("parse")
                    record, did = _apply(
                        db, shown, key, plan, result, get_scheme(), snapshot, pieces
                    )
                    clock("tokenize")
                    for name in counts:
                        counts[name] += did.get(name, 0)
                    changed = changed or bool(did.get("changed"))
                    files.append(record)
                    statuses.append(FileStatus(shown, record.state, record.reason))
                if report_progress:
                    report_progress(done, total, shown, counts["pages"])
        finally:
            parsed.close()  # the workers stop at once, their unstarted files cancelled
        if writing:
            gone = _missing(db, folders, given_files, seen)
            if gone or changed:
                removed = _drop_missing(db, gone)
            if removed:
                changed = True
            if changed:
                bump_generation(db)
            clock("finish")
            if encoder is not None:
                # Vectors are not part of what a generation caches (the BM25 index): no bump.
                _ensure_vectors(db, get_scheme(), encoder, [f.doc_id for f in files], pieces)
                clock("vectors")
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
        unread=unread,
        phases={name: round(t, 4) for name, t in phases.items()},
    )


class _Clock:
    """Adds the time since its last call to a phase: ``clock("parse")`` ends a stretch of
    parsing (and returns its seconds)."""

    def __init__(self, phases: dict[str, float]):
        self.phases = phases
        self.last = time.perf_counter()

    def __call__(self, phase: str) -> float:
        now = time.perf_counter()
        spent, self.last = now - self.last, now
        self.phases[phase] += spent
        return spent


def _with_pages(progress: UpdateProgress | None):
    """``progress`` as a callable of four arguments (done, total, path, pages parsed so far):
    one written for the three of earlier versions is called without the pages."""
    if progress is None:
        return None
    try:
        inspect.signature(progress).bind(0, 0, "", 0)
    except TypeError:
        return lambda done, total, path, pages: progress(done, total, path)
    except ValueError:  # no signature to read (a builtin): called as documented
        pass
    return progress


class _Snapshot:
    """What the index holds about files, read in a few queries before planning: an unchanged
    folder is then planned (and found to need nothing) without a query per file."""

    def __init__(self, db, scheme: Callable[[], ChunkScheme]):
        from docqa.loaders import LOADER_VERSIONS

        self._db, self.scheme = db, scheme
        #: stored path → (size, mtime_ns, sha256, state, reason, doc_id)
        self.files = {
            row[0]: row[1:]
            for row in db.execute(
                "SELECT path, size, mtime_ns, sha256, state, reason, doc_id FROM files"
            )
        }
        #: documents made by their format's current loader
        self.current = frozenset(
            doc_id
            for doc_id, loader, fmt in db.execute(
                "SELECT id, loader, json_extract(meta, '$.format') FROM documents"
            )
            if loader >= LOADER_VERSIONS.get(fmt, 0)
        )

    @functools.cached_property
    def chunked(self) -> frozenset[int]:
        """Documents whose every text part is tokenized for the scheme (read when first
        needed: the scheme may have to be loaded)."""
        rows = self._db.execute(
            "SELECT d.id FROM documents d WHERE d.parts <= (SELECT COUNT(*) FROM tokens t "
            "WHERE t.doc_id = d.id AND t.scheme = ?)",
            (self.scheme().key,),
        )
        return frozenset(row[0] for row in rows)


def _plan_all(db, entries, password, hashes, scheme):
    """``([(done, shown, key, plan or skip reason)], keys seen, snapshot)``: each file once,
    in walk order (``done`` counts the entries up to it, for progress)."""
    from docqa.loaders import REGISTRY, unsupported_reason

    snapshot = _Snapshot(db, scheme)
    plans: list[tuple[int, str, str, object]] = []
    seen: set[str] = set()
    for done, (shown, key, skip) in enumerate(entries, 1):
        if key in seen:
            continue  # a file named twice, or under two folders given: once
        seen.add(key)
        if not skip and os.path.splitext(key)[1].lower() not in REGISTRY:
            skip = unsupported_reason(Path(key))
        plans.append((done, shown, key, skip or _plan(db, key, password, hashes, snapshot)))
    return plans, seen, snapshot


def _needs_writing(db, plans, folders, given_files, seen, snapshot, encoder) -> bool:
    """Whether applying ``plans`` would write anything (reads only)."""
    same = [p for *_, p in plans if not isinstance(p, str) and p.kind != "error"]
    if any(plan.kind != "same" for plan in same):
        return True  # known before the scheme is needed (it may have to be loaded)
    doc_ids = [plan.doc_id for plan in same if plan.doc_id is not None]
    if any(doc_id not in snapshot.chunked for doc_id in doc_ids):
        return True
    if _missing(db, folders, given_files, seen):
        return True
    return encoder is not None and _lacks_vectors(db, snapshot.scheme(), encoder, doc_ids)


def _lacks_vectors(db, scheme, encoder, doc_ids) -> bool:
    """Whether `_ensure_vectors` would add any vector for ``doc_ids``."""
    for doc_id in sorted(set(doc_ids)):
        row = db.execute(
            _WITHOUT_VECTORS + " LIMIT 1",
            (encoder.name, doc_id, scheme.key),
        ).fetchone()
        if row is not None:
            return True
    return False


def _plan(db, key: str, password: str | None, hashes, snapshot: _Snapshot) -> _Plan:
    """What updating one file takes: nothing, a re-tokenization, a parse (stat/hash only).

    ``hashes`` keeps ``key``'s hash with the size and time it was taken at, so that
    planning again (under the lock) does not read an unchanged file twice.
    """
    try:
        st = os.stat(key)
    except OSError as exc:
        return _Plan("error", reason=f"Cannot read the file: {exc.strerror}.")
    row = snapshot.files.get(path_to_db(key))
    same_stat = row is not None and (row[0], row[1]) == (st.st_size, st.st_mtime_ns)
    if (
        same_stat
        and (row[3] != "ok" or row[5] is not None)
        and not _retry_password(row[3], row[4], password)
        and (row[5] is None or row[5] in snapshot.current)
    ):
        return _Plan("same", st, row[2], row[3], row[4], row[5])
    # Size or time changed (or never seen): hash the bytes; parse only unknown content.
    taken = hashes.get(key)
    if taken is not None and taken[:2] == (st.st_size, st.st_mtime_ns):
        sha = taken[2]
    else:
        try:
            sha = sha256_file(key)
        except OSError as exc:
            return _Plan("error", reason=f"Cannot read the file: {exc.strerror}.")
        hashes[key] = (st.st_size, st.st_mtime_ns, sha)
    known = db.execute(
        "SELECT d.id, (SELECT reason FROM files f WHERE f.doc_id = d.id LIMIT 1) "
        "FROM documents d WHERE d.sha256 = ?",
        (sha,),
    ).fetchone()
    if known is not None and _loader_current(db, known[0]):
        return _Plan("known", st, sha, "ok", known[1] or "", known[0])
    prior = db.execute(
        "SELECT state, reason FROM files WHERE sha256 = ? AND state != 'ok' LIMIT 1", (sha,)
    ).fetchone()
    if prior is not None and not _retry_password(prior[0], prior[1], password):
        return _Plan("known", st, sha, prior[0], prior[1], None)
    return _Plan("parse", st, sha)


def _apply(db, shown, key, plan: _Plan, parsed, scheme, snapshot: _Snapshot, pieces=None):
    did = {"parsed": 0, "reused": 0, "tokenized": 0, "pages": 0, "changed": 0}
    if plan.kind == "error":
        return IndexedFile(shown, key, "failed", plan.reason, None), did
    if plan.kind == "same":
        did["reused"] = 1
        if plan.doc_id is not None and plan.doc_id not in snapshot.chunked:
            did["tokenized"] = did["changed"] = _ensure_chunks(
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
    whole = True  # one text part: the document and its chunks in one transaction
    with transaction(db):
        if doc is not None:
            doc_id = _insert_document(db, doc, sha)
        if doc_id is not None:
            whole = doc_parts(db, doc_id) == 1
        db.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                path_to_db(key),
                plan.stat.st_size,
                plan.stat.st_mtime_ns,
                sha,
                state,
                db_text(reason),
                doc_id,
                time.time(),
            ),
        )
        if doc_id is not None and whole:
            did["tokenized"] = _ensure_chunks(db, doc_id, scheme, text=doc)
    if doc_id is not None and not whole:
        # A document stored in parts: each part's chunks are committed as it is done,
        # so a kill keeps the parts finished and the next run carries on from there.
        did["tokenized"] = _ensure_chunks(db, doc_id, scheme, text=doc, pieces=pieces, label=shown)
    did["changed"] = 1
    return IndexedFile(shown, key, state, reason, doc_id), did


def _ensure_chunks(
    db,
    doc_id: int,
    scheme: ChunkScheme,
    text=None,
    pieces: PieceProgress | None = None,
    label: str = "",
) -> int:
    """Tokenize ``doc_id`` and store its chunks for ``scheme``, one text part at a time,
    from the first part not done yet; 1 if anything was done, 0 if it was all there.

    A part's tokens and the chunks they complete are committed together, so a kill keeps
    every finished part and the next call carries on. The chunks are those `make_chunks`
    cuts from the whole token stream: the tokens of the chunk that runs on into the next
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
    tokenizer = scheme.require_tokenizer()
    if isinstance(text, Document):
        text = text.text
    chars = db.execute("SELECT chars FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]
    ends = [start for _, start in parts[1:]] + [chars]
    emitted = db.execute(
        "SELECT COUNT(*) FROM chunks WHERE doc_id = ? AND scheme = ?", (doc_id, scheme.key)
    ).fetchone()[0]
    cutter = _ChunkCutter(scheme.chunk_len, scheme.stride, emitted)
    if done:
        _carry_into(db, doc_id, scheme, cutter)
    todo = list(zip(parts[done:], ends[done:], strict=True))

    def part_text(i: int) -> str:
        (part, start), end = todo[i]
        if text is not None:
            return text[start:end]
        return db.execute(
            "SELECT text FROM texts WHERE doc_id = ? AND part = ?", (doc_id, part)
        ).fetchone()[0]

    # The tokenizer releases the GIL: while this thread cuts chunks and BM25 terms from
    # one part, a helper thread tokenizes the next (one part ahead only, for memory).
    ahead = ThreadPoolExecutor(1) if len(todo) > 1 else None
    try:
        piece = part_text(0)
        tokenizing = _run(ahead, tokenize_text, tokenizer, piece)
        for i, ((part, start), _) in enumerate(todo):
            tokens = tokenizing.result()
            if i + 1 < len(todo):
                following = part_text(i + 1)
                tokenizing = _run(ahead, tokenize_text, tokenizer, following)
            last = part == len(parts) - 1
            chunks, chunk_texts = cutter.add(tokens, known, piece, start, last)
            terms = _chunk_terms(chunk_texts)
            del chunk_texts
            with transaction(db):
                db.execute(
                    "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?, ?)",
                    (doc_id, scheme.key, part, known, len(tokens), pack_tokens(tokens)),
                )
                db.executemany(
                    "INSERT INTO chunks (doc_id, scheme, position, token_start, "
                    "token_end, char_start, char_end, terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (doc_id, scheme.key, at, c.token_start, c.token_end, c.start, c.end, t)
                        for (at, c), t in zip(chunks, terms, strict=True)
                    ],
                )
                # In the same transaction as the chunks: a cached BM25 index is never
                # taken for current while chunks it lacks are already committed.
                bump_generation(db)
            known += len(tokens)
            if pieces is not None and len(parts) > 1:
                pieces(part + 1, len(parts), f"chunks of {label}")
            if i + 1 < len(todo):
                piece = following
    finally:
        if ahead is not None:
            ahead.shutdown(wait=True, cancel_futures=True)
    if len(todo) > 1:
        release_memory()
    return 1


def _carry_into(db, doc_id: int, scheme: ChunkScheme, cutter: _ChunkCutter) -> None:
    """Give ``cutter`` the stored tokens (and text) from its next chunk's start on: an
    interrupted tokenization carries on where its last committed part ended."""
    rows = db.execute(
        "SELECT t.part, t.token_start, t.n, x.char_start FROM tokens t JOIN texts x "
        "ON x.doc_id = t.doc_id AND x.part = t.part "
        "WHERE t.doc_id = ? AND t.scheme = ? AND t.token_start + t.n > ? ORDER BY t.part",
        (doc_id, scheme.key, cutter.next),
    ).fetchall()
    if not rows:
        return
    blocks = [read_block(db, doc_id, scheme.key, part) for part, *_ in rows]
    first = rows[0][1]
    tokens = tokens_from_blocks(blocks, [r[3] for r in rows])
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
    db,
    scheme: ChunkScheme,
    encoder: DenseEncoder,
    doc_ids,
    pieces: PieceProgress | None = None,
) -> int:
    """Dense piece vectors for the chunks of ``doc_ids`` that have none yet; how many.

    A chunk's pieces are cut over its block (`PIECE_BLOCK` chunks: `DenseEncoder.cut_pieces`),
    so the blocks holding such a chunk are encoded whole, `VECTOR_BATCH` chunks at a time,
    each batch committed as it is done: a kill loses only the batch being encoded, and the
    text read is only the batch's.
    """
    ids = sorted({d for d in doc_ids if d is not None})
    per_batch = max(1, VECTOR_BATCH // PIECE_BLOCK)
    added = 0
    for doc_id in ids:
        rows = db.execute(
            _VECTOR_STATE + " ORDER BY w.position", (encoder.name, doc_id, scheme.key)
        ).fetchall()
        blocks = [rows[b : b + PIECE_BLOCK] for b in range(0, len(rows), PIECE_BLOCK)]
        blocks = [block for block in blocks if not all(has for *_, has in block)]
        batches = [
            [row for block in blocks[b : b + per_batch] for row in block]
            for b in range(0, len(blocks), per_batch)
        ]
        label = ""
        if pieces is not None and len(batches) > 1:
            shown = db.execute(
                "SELECT path FROM files WHERE doc_id = ? ORDER BY path LIMIT 1", (doc_id,)
            ).fetchone()
            label = os.path.basename(path_from_db(shown[0]) or "") if shown else ""
        for done, batch in enumerate(batches, 1):
            lo, hi = batch[0][1], max(e for _, _, e, _ in batch)
            text = text_range(db, doc_id, lo, hi)
            vectors, owners = encoder.encode_chunks(
                text, [(s - lo, e - lo) for _, s, e, _ in batch]
            )
            mine = [(w, vectors[owners == i]) for i, (w, _, _, has) in enumerate(batch) if not has]
            with transaction(db):
                write_vectors(db, encoder.name, mine)
            added += len(mine)
            if label:
                pieces(done, len(batches), f"vectors of {label}")
    return added


def _missing(db, folders, given_files, seen) -> list[str]:
    """Files of the index under the folders given (or given by name) that are gone."""
    gone: list[str] = []
    for folder in folders:
        # Compared as bytes: a name that is not UTF-8 is stored as a BLOB (`path_to_db`).
        prefix = os.fsencode(os.path.join(folder, ""))
        rows = db.execute(
            "SELECT path FROM files WHERE substr(CAST(path AS BLOB), 1, ?) = ?",
            (len(prefix), prefix),
        ).fetchall()
        gone += [p for p in (path_from_db(r[0]) for r in rows) if p not in seen]
    for key in given_files:
        if os.path.exists(key):
            continue
        if db.execute("SELECT 1 FROM files WHERE path = ?", (path_to_db(key),)).fetchone():
            gone.append(key)
    return gone


def _drop_missing(db, gone: list[str]) -> int:
    """Forget the files ``gone``, and documents no file points to any more."""
    # Documents go only now: during the update one may still be wanted by a file
    # planned before another file stopped pointing to it.
    with transaction(db):
        db.executemany("DELETE FROM files WHERE path = ?", [(path_to_db(p),) for p in gone])
        _collect_garbage(db)
    return len(gone)


def indexed_files(db) -> list[IndexedFile]:
    """Every file the index knows, by path."""
    rows = db.execute("SELECT path, state, reason, doc_id FROM files ORDER BY path").fetchall()
    found = []
    for stored, state, reason, doc_id in rows:
        path = path_from_db(stored)
        found.append(IndexedFile(path, path, state, reason, doc_id))
    return found


# -- helpers ----------------------------------------------------------------------------------


def _retry_password(state: str, reason: str, password: str | None) -> bool:
    """Whether a stored failure is one a password changes: a PDF that needed a password (or
    got a wrong one) is parsed again when one is given now; one that got a wrong password is
    parsed again without, so that it says it needs one."""
    from docqa.loaders.pdf import NEEDS_PASSWORD, WRONG_PASSWORD

    if state != "failed":
        return False
    return reason in (NEEDS_PASSWORD, WRONG_PASSWORD) if password else reason == WRONG_PASSWORD


def sha256_file(path: str) -> str:
    """The SHA-256 of a file's bytes, read a block at a time (the content hash that says
    whether a file changed)."""
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


def _parse_in_order(items: list[tuple[str, str]], options, workers: int | None = None) -> Iterator:
    """Load each (key, shown) file, yielding ``(document or None, status)`` in input order,
    after a first ``None`` once the workers have started (``next`` starts them).

    PDF parsing is single-threaded pure Python (pypdf), serialised inside one process, so a
    folder of PDFs uses several cores only from separate processes: with enough to parse,
    ``workers`` worker processes (default one per core) parse ahead while the caller commits
    what is done; with 1, every file is parsed here.
    """
    if not items:
        yield None
        return
    size = sum(os.path.getsize(k) for k, _ in items if os.path.exists(k))
    if workers is None:
        workers = os.cpu_count() or 1
    workers = min(workers, len(items))
    if workers < 2 or len(items) < PARALLEL_MIN_FILES or size < PARALLEL_MIN_BYTES:
        yield None
        for key, shown in items:
            yield _load_one(key, shown, options)
        return
    import multiprocessing

    # spawn, not fork: the parent may hold torch's thread pools, which fork does not copy safely.
    context = multiprocessing.get_context("spawn")
    # Biggest first, so that the pool does not end on one long file with the other cores idle.
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
            yield None
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


def _loader_current(db, doc_id: int | None) -> bool:
    """Whether document ``doc_id`` was made by its format's current loader (or is none)."""
    from docqa.loaders import LOADER_VERSIONS

    if doc_id is None:
        return True
    row = db.execute(
        "SELECT loader, json_extract(meta, '$.format') FROM documents WHERE id = ?", (doc_id,)
    ).fetchone()
    return row is None or row[0] >= LOADER_VERSIONS.get(row[1], 0)


def _insert_document(db, doc: Document, sha: str) -> int:
    row = db.execute("SELECT id FROM documents WHERE sha256 = ?", (sha,)).fetchone()
    if row is not None:
        if _loader_current(db, row[0]):
            return row[0]
        # Made by an older loader: replaced, with its chunks and vectors (cascade); files
        # that held it find the new one by its hash.
        db.execute("DELETE FROM documents WHERE id = ?", (row[0],))
    from docqa.loaders import LOADER_VERSIONS

    bounds = piece_bounds(doc.text, PART_CHARS)
    fmt = doc.meta.get("format")
    cur = db.execute(
        "INSERT INTO documents (sha256, pages, sections, meta, chars, parts, loader, regions) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            sha,
            json.dumps([[p.number, p.start, p.end] for p in doc.pages]),
            json.dumps([[s.title, s.start] for s in doc.sections]),
            json.dumps(doc.meta, default=str),
            len(doc.text),
            len(bounds),
            LOADER_VERSIONS.get(fmt, 0) if isinstance(fmt, str) else 0,
            json.dumps([[r.start, r.end, r.role] for r in doc.regions]),
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

        from docqa.retrieve import STOPWORDS, make_stemmer

        self.stop = frozenset(_infer_stopwords(STOPWORDS))
        self.stemmer = make_stemmer()

    def __missing__(self, word: str) -> str:
        if word in self.stop:
            stem = ""
        else:
            stem = self.stemmer.stemWord(word) if self.stemmer is not None else word
        if len(self) < 1 << 20:  # a cache, not a record of every word ever seen
            self[word] = stem
        return stem


_STEMS: _Stems | None = None


def _chunk_terms(texts: Sequence[str]) -> list[str]:
    """Each text's `docqa.retrieve.bm25_tokens`, joined by spaces as the index stores them:
    the same terms, found with one cached lookup per word instead of bm25s's several passes
    over every text, which counts for the chunks of a very large file."""
    global _STEMS
    if _STEMS is None:
        _STEMS = _Stems()
    term_of = _STEMS.__getitem__
    return [
        " ".join(filter(None, map(term_of, _TERM_WORDS.findall(t.replace("_", " ").lower()))))
        for t in texts
    ]


def _run(pool: ThreadPoolExecutor | None, func, *args) -> Future:
    """``func(*args)`` in ``pool``, or at once here (a finished future) without one."""
    if pool is not None:
        return pool.submit(func, *args)
    done: Future = Future()
    done.set_result(func(*args))
    return done


def _collect_garbage(db) -> None:
    """Drop documents no file points to any more (their tokens, chunks, vectors cascade)."""
    db.execute(
        "DELETE FROM documents WHERE id NOT IN (SELECT doc_id FROM files WHERE doc_id IS NOT NULL)"
    )


def _slice_tokens(t: TokenizedText, lo: int, hi: int) -> TokenizedText:
    return TokenizedText(
        t.ids[lo:hi], t.starts[lo:hi], t.ends[lo:hi], t.word_start[lo:hi], t.word_end[lo:hi]
    )


class _ChunkCutter:
    """Cuts a token stream that arrives part by part into the chunks `make_chunks` cuts from
    the whole stream (same bounds, same positions), keeping only the tokens and text of the
    last, unfinished chunk between parts."""

    def __init__(self, chunk_len: int, stride: int, emitted: int = 0):
        self.length = chunk_len
        self.step = chunk_len - stride
        self.position = emitted
        self.next = emitted * self.step  # first token of the next chunk
        self.carry: TokenizedText | None = None  # tokens from ``next`` on, offsets absolute
        self.carry_text = ""  # the text from the carry's first token to the last part's end
        self.carry_char = 0  # where ``carry_text`` starts in the document

    def carry_over(self, tokens: TokenizedText, text: str, char: int) -> None:
        self.carry, self.carry_text, self.carry_char = tokens, text, char

    def add(
        self, tokens: TokenizedText, first: int, text: str, char: int, final: bool
    ) -> tuple[list[tuple[int, Chunk]], list[str]]:
        """Chunks completed by one more part: ``tokens`` (offsets within ``text``, the
        part's text, which starts at character ``char``), whose first token is token
        ``first`` of the document. ``final``: the last part, whose end ends the last chunk.
        Returns ``([(position, chunk)], [text of each chunk])``."""
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
        chunk_texts: list[str] = []
        while known and (final or self.next + self.length < known):
            start, end = self.next, min(self.next + self.length, known)
            a, b = int(shifted.starts[start - first]), int(shifted.ends[end - 1 - first])
            found.append((self.position, Chunk(0, start, end, a, b)))
            chunk_texts.append(text[a - char : b - char])
            self.position += 1
            if end >= known:
                break
            self.next += self.step
        keep = self.next - first
        cut = int(shifted.starts[keep]) if keep < len(shifted) else char + len(text)
        self.carry_over(_slice_tokens(shifted, keep, len(shifted)), text[cut - char :], cut)
        return found, chunk_texts
