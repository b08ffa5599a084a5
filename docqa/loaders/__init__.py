"""Loaders: files and folders → ``Document`` objects, with a status for every path.

>>> from docqa.loaders import load_paths
>>> result = load_paths(["sample_docs"])  # doctest: +SKIP
>>> [(s.path, s.state) for s in result.statuses if s.state != "ok"]  # doctest: +SKIP
[('sample_docs/make_pdf.py', 'skipped')]

One module per format, chosen by suffix through ``REGISTRY``. A single bad file inside a folder
never raises: it becomes a ``FileStatus`` and the other files load.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from docqa.errors import InputError, LoaderError, NoDocumentsError
from docqa.loaders import docx, html, markdown, pdf, text
from docqa.loaders._base import FileEmpty, FileSkipped, Loader, LoadOptions, too_large
from docqa.loaders.walk import walk
from docqa.types import Document, FileStatus

__all__ = [
    "LOADER_VERSIONS",
    "REGISTRY",
    "FileEmpty",
    "FileSkipped",
    "LoadOptions",
    "LoadResult",
    "Loader",
    "load",
    "load_paths",
    "register",
    "supported_suffixes",
]

#: Suffix (lower case, with the dot) → loader.
REGISTRY: dict[str, Loader] = {}

#: The version of each format's loader (``Document.meta["format"]``; absent: 0). Raised when a
#: loader's text for the same bytes changes, so that an index parses those files again.
#: PDF 1: page furniture removed, footnotes moved, contents and index regions (issue 17).
LOADER_VERSIONS: dict[str, int] = {"pdf": 1}


def register(suffixes: Iterable[str], loader: Loader) -> None:
    """Make ``loader`` read files with these suffixes (``".pdf"``); later calls win."""
    for suffix in suffixes:
        REGISTRY[suffix.lower()] = loader


for _module in (pdf, text, markdown, html, docx):
    register(_module.SUFFIXES, _module.load)


def supported_suffixes() -> tuple[str, ...]:
    """The suffixes docqa reads, sorted: ``('.htm', '.html', '.markdown', '.md', ...)``."""
    return tuple(sorted(REGISTRY))


@dataclass(frozen=True)
class LoadResult:
    """Documents that loaded with text, and what happened to every path (in load order)."""

    documents: tuple[Document, ...]
    statuses: tuple[FileStatus, ...]

    def by_state(self, state: str) -> tuple[FileStatus, ...]:
        """The statuses in one state: ``result.by_state("failed")``."""
        return tuple(s for s in self.statuses if s.state == state)

    @property
    def all_ok(self) -> bool:
        """True when every path loaded with text."""
        return all(s.state == "ok" for s in self.statuses)

    def require_documents(self) -> tuple[Document, ...]:
        """The documents, or ``NoDocumentsError`` with one sentence saying why there are none."""
        if self.documents:
            return self.documents
        if not self.statuses:
            raise NoDocumentsError("No files to read: the folders given are empty.")
        counts = {}
        for s in self.statuses:
            counts[s.state] = counts.get(s.state, 0) + 1
        summary = ", ".join(f"{n} {state}" for state, n in counts.items())
        if len(self.statuses) == 1:
            only = self.statuses[0]
            # "No such file or directory: X" already names the path; other reasons do not.
            message = only.reason if only.path in only.reason else f"{only.path}: {only.reason}"
            raise NoDocumentsError(message)
        raise NoDocumentsError(
            f"No readable document among {len(self.statuses)} files ({summary})."
        )


def _loader_for(path: Path) -> Loader | None:
    return REGISTRY.get(path.suffix.lower())


def unsupported_reason(path: Path) -> str:
    suffix = path.suffix or "(no suffix)"
    return f"Unsupported file type {suffix}; docqa reads {', '.join(supported_suffixes())}."


def _read(path: Path, loader: Loader, options: LoadOptions) -> Document:
    """Read and load one regular file; every failure becomes a ``LoaderError``."""
    try:
        # Checked before reading: a file over the limit costs a stat, not its size in memory.
        reason = too_large(path.stat().st_size, options)
    except OSError:
        reason = None  # read_bytes below reports it
    if reason:
        raise FileSkipped(reason)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(f"Cannot read the file: {exc.strerror or exc}.") from None
    try:
        return loader(data, str(path), options)
    except LoaderError:
        raise
    except Exception as exc:
        # A loader bug or a library raising outside its error hierarchy must cost this file
        # only, never the run.
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        message = f"Unexpected {type(exc).__name__} while reading the file"
        raise LoaderError(f"{message}: {detail.rstrip('.')}." if detail else f"{message}.") from exc


def _empty_reason(doc: Document) -> str:
    if doc.meta.get("format") == "pdf":
        return "No text found: the PDF has no text layer (scanned or image-only?)."
    return "No text found: the file is empty or holds only whitespace."


def _status_for(doc: Document) -> FileStatus:
    if not doc.text.strip():
        return FileStatus(doc.source, "empty", _empty_reason(doc))
    empty_pages = doc.meta.get("empty_pages") or ()
    note = ""
    if empty_pages:
        listed = ", ".join(str(n) for n in empty_pages[:10])
        more = "…" if len(empty_pages) > 10 else ""
        note = f"Pages without text: {listed}{more}."
    failed_pages = doc.meta.get("failed_pages") or {}
    if failed_pages:
        listed = "; ".join(f"{n}: {why}".rstrip(".") for n, why in list(failed_pages.items())[:5])
        more = "; …" if len(failed_pages) > 5 else ""
        note = (note + " " if note else "") + f"Pages that could not be read: {listed}{more}."
    return FileStatus(doc.source, "ok", note)


def load(path: str | os.PathLike[str], password: str | None = None) -> Document:
    """Load one file as a ``Document``.

    Raises ``InputError`` if ``path`` does not exist and ``LoaderError`` (one sentence) if it
    cannot be read or its type is unsupported (``FileSkipped``, a subclass). A file without
    text loads as a ``Document`` whose ``text`` is empty.

    >>> load("sample_docs/release-notes.txt").meta["format"]  # doctest: +SKIP
    'text'
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"No such file or directory: {path}")
    if path.is_dir():
        raise LoaderError(f"{path} is a folder; use load_paths() to read folders.")
    if not path.is_file():
        raise FileSkipped(f"{path} is not a regular file.")
    loader = _loader_for(path)
    if loader is None:
        raise FileSkipped(unsupported_reason(path))
    return _read(path, loader, LoadOptions(password=password))


def _load_file(path: Path, options: LoadOptions) -> tuple[Document | None, FileStatus]:
    loader = _loader_for(path)
    if loader is None:
        return None, FileStatus(str(path), "skipped", unsupported_reason(path))
    try:
        if path.stat().st_size == 0:
            return None, FileStatus(str(path), "empty", "The file is empty (0 bytes).")
    except OSError:
        pass  # _read reports it
    try:
        doc = _read(path, loader, options)
    except FileSkipped as exc:
        return None, FileStatus(str(path), "skipped", str(exc))
    except FileEmpty as exc:
        return None, FileStatus(str(path), "empty", str(exc))
    except LoaderError as exc:
        return None, FileStatus(str(path), "failed", str(exc))
    status = _status_for(doc)
    return (doc if status.state == "ok" else None), status


def load_paths(
    paths: Iterable[str | os.PathLike[str]],
    password: str | None = None,
    *,
    follow_outside: bool = False,
    options: LoadOptions | None = None,
) -> LoadResult:
    """Load files and folders (recursively, by suffix) and report every path's status.

    Never raises for a bad file: a missing path or a broken file becomes a ``failed`` status,
    an unsupported or binary one ``skipped``, one without text ``empty``. Only ``ok`` files
    appear in ``documents``. Each file is read once, even when named twice or reached through
    a link, in a stable order: the paths as given, each folder's files in name order.

    ``password`` opens encrypted PDFs; ``follow_outside=True`` lets symbolic links in a
    folder lead outside it. ``options`` sets the PDF time and memory budget.

    >>> result = load_paths(["sample_docs", "missing.txt"])  # doctest: +SKIP
    >>> result.statuses[-1]  # doctest: +SKIP
    FileStatus(path='missing.txt', state='failed', reason='No such file or directory: missing.txt')
    """
    if options is None:
        options = LoadOptions(password=password)
    elif password is not None:
        options = dataclasses.replace(options, password=password)
    documents: list[Document] = []
    statuses: list[FileStatus] = []
    seen: set[tuple[int, int]] = set()

    def add(path: Path, key: tuple[int, int]) -> None:
        if key in seen:
            return  # the same file named twice or reached through a link: read once
        seen.add(key)
        doc, status = _load_file(path, options)
        statuses.append(status)
        if doc is not None:
            documents.append(doc)

    for given in paths:
        path = Path(given)
        if not os.path.lexists(path):
            statuses.append(FileStatus(str(path), "failed", f"No such file or directory: {path}"))
            continue
        try:
            st = path.stat()
        except OSError:
            statuses.append(FileStatus(str(path), "failed", f"Broken symbolic link: {path}"))
            continue
        if stat.S_ISDIR(st.st_mode):
            for entry in walk(path, follow_outside=follow_outside):
                if entry.skip_reason:
                    statuses.append(FileStatus(str(entry.path), "skipped", entry.skip_reason))
                elif entry.key is not None:
                    add(entry.path, entry.key)
        elif stat.S_ISREG(st.st_mode):
            add(path, (st.st_dev, st.st_ino))
        else:
            statuses.append(FileStatus(str(path), "skipped", "Not a regular file."))
    return LoadResult(tuple(documents), tuple(statuses))
