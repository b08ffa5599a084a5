"""PDF (``.pdf``) through pypdf, parsed in a worker process under a time and memory budget.

Why a worker: pypdf still has open reports of hangs on cyclic cross-reference tables, of
decompression bombs, and of exceptions outside its own hierarchy. In a separate process with an
address-space limit (``RLIMIT_AS``) and a deadline, such a file costs itself only: the run goes
on, and the person is told what happened. The worker streams one frame per page, so a page that
hangs or crashes the worker costs that page; the worker is restarted after it.

Page texts are cleaned (``clean_pdf_text``) one page at a time and then joined by a blank line,
so page boundaries are computed on the normalised text that answers point into.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docqa.errors import LoaderError
from docqa.loaders._base import LoadOptions, build_document
from docqa.loaders.clean import clean_pdf_text
from docqa.types import Document, Page

SUFFIXES = (".pdf",)

#: Between pages; the blank line keeps the last word of one page apart from the next page's first.
PAGE_SEPARATOR = "\n\n"

#: The script the worker runs; tests point this at a wrapper that makes pages misbehave.
WORKER_SCRIPT = str(Path(__file__).with_name("_pdf_worker.py"))

_LENGTH = struct.Struct(">I")

#: Why a page after the file's deadline was never read.
BUDGET_SPENT = "not read: the file's time budget ran out"

#: Why an encrypted PDF did not open; the index parses such a file again when a password is
#: given (see `docqa.index`), so these are matched, not only shown.
NEEDS_PASSWORD = "The PDF is encrypted and needs a password (pass --password)."
WRONG_PASSWORD = "The PDF is encrypted and the password given is wrong."


def join_pages(page_texts: list[str]) -> tuple[str, tuple[Page, ...]]:
    """Join page texts; each ``Page`` covers exactly its own text (1-based numbers).

    >>> join_pages(["one", "two"])
    ('one\\n\\ntwo', (Page(number=1, start=0, end=3), Page(number=2, start=5, end=8)))
    """
    pages: list[Page] = []
    parts: list[str] = []
    offset = 0
    for number, page_text in enumerate(page_texts, start=1):
        if number > 1:
            parts.append(PAGE_SEPARATOR)
            offset += len(PAGE_SEPARATOR)
        pages.append(Page(number, offset, offset + len(page_text)))
        parts.append(page_text)
        offset += len(page_text)
    return "".join(parts), tuple(pages)


class _WorkerGone(Exception):
    """The worker process exited or closed its pipe."""


class _Worker:
    """One long-lived worker process; reused across files until it hangs, crashes or is killed."""

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self.script = WORKER_SCRIPT
        self.proc = subprocess.Popen(
            [sys.executable, self.script, str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # pypdf's warnings are noise here; the library never prints
            close_fds=True,
        )
        self.buffer = b""
        # selectors, not select.select: that one fails on descriptors above 1024, which a
        # long-running host process can easily have.
        self.selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, header: dict[str, Any], data: bytes) -> None:
        head = json.dumps({**header, "size": len(data)}).encode("utf-8")
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(_LENGTH.pack(len(head)) + head)
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise _WorkerGone from exc

    def _fill(self, size: int, deadline: float) -> bool:
        """Read until ``size`` bytes are buffered; False when the deadline passes first."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while len(self.buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not self.selector.select(remaining):
                return False
            chunk = os.read(fd, max(65536, size - len(self.buffer)))
            if not chunk:
                raise _WorkerGone
            self.buffer += chunk
        return True

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The next frame, or None if it did not arrive before ``deadline``."""
        if not self._fill(_LENGTH.size, deadline):
            return None
        size = _LENGTH.unpack(self.buffer[: _LENGTH.size])[0]
        if not self._fill(_LENGTH.size + size, deadline):
            return None
        payload = self.buffer[_LENGTH.size : _LENGTH.size + size]
        self.buffer = self.buffer[_LENGTH.size + size :]
        return json.loads(payload)

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()
        self.selector.close()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def exit_note(self) -> str:
        """How the process ended, e.g. " (killed by SIGKILL)"; called once its pipe closed."""
        try:
            code = self.proc.wait(timeout=2)  # the pipe closes a moment before the exit is seen
        except subprocess.TimeoutExpired:
            return ""
        if code < 0:
            import signal

            try:
                return f" (killed by {signal.Signals(-code).name})"
            except ValueError:
                return f" (killed by signal {-code})"
        return f" (exit code {code})"


_worker: _Worker | None = None
_lock = threading.Lock()

#: How long a new worker may take to import pypdf; generous, a busy machine starts slowly,
#: and start-up time must not eat into a PDF's own budget.
STARTUP_TIMEOUT_S = 60.0


def _get_worker(memory_mb: int) -> _Worker:
    global _worker
    if _worker is not None and (
        not _worker.alive() or _worker.memory_mb != memory_mb or _worker.script != WORKER_SCRIPT
    ):
        _worker.kill()
        _worker = None
    if _worker is None:
        worker = _Worker(memory_mb)
        try:
            frame = worker.receive(time.monotonic() + STARTUP_TIMEOUT_S)
        except _WorkerGone:
            frame = None
        if frame is None or frame.get("t") != "ready":
            note = worker.exit_note() if not worker.alive() else ""
            worker.kill()
            raise LoaderError(f"The PDF reader process did not start{note}.")
        _worker = worker
    return _worker


def _drop_worker() -> None:
    global _worker
    if _worker is not None:
        _worker.kill()
        _worker = None


def shutdown() -> None:
    """Stop the PDF worker process now (it also stops by itself when this process exits)."""
    with _lock:
        _drop_worker()


atexit.register(shutdown)


@dataclass
class _Extraction:
    page_count: int = 0
    texts: dict[int, str] = field(default_factory=dict)  # 1-based page → raw text
    failed: dict[int, str] = field(default_factory=dict)  # 1-based page → why
    encrypted: bool = False


def _fail_message(kind: str, message: str, options: LoadOptions) -> str:
    if kind == "password":
        return NEEDS_PASSWORD
    if kind == "wrong_password":
        return WRONG_PASSWORD
    if kind == "memory":
        return f"The PDF needs more than the {options.pdf_memory_mb} MB memory budget to open."
    if kind == "dependency":
        return (
            f"The PDF needs an optional package to decrypt ({message}); "
            "install it with: pip install 'pypdf[crypto]'."
        )
    return f"The PDF is damaged or truncated ({message})."


def _page_error(message: str, options: LoadOptions) -> str:
    if message == "memory":
        return f"needs more than the {options.pdf_memory_mb} MB memory budget"
    return message


def extract_pages(data: bytes, options: LoadOptions) -> _Extraction:
    """Run pypdf over ``data`` in the worker, page by page, within the options' budget.

    Raises ``LoaderError`` when the file cannot be opened at all (damaged, encrypted without
    the right password, over budget while opening).
    """
    result = _Extraction()
    file_deadline = 0.0
    clock_started = False
    next_page = 0  # 0-based index to ask the worker for
    opened = False  # by the current worker
    ever_opened = False
    with _lock:
        while True:
            worker = _get_worker(options.pdf_memory_mb)
            if not clock_started:
                # Start the file's clock once a worker is ready, not while one starts up.
                file_deadline = time.monotonic() + options.pdf_timeout_s
                clock_started = True
            try:
                worker.send(
                    {
                        "password": options.password,
                        "start_page": next_page,
                        "cpu_s": options.pdf_timeout_s + 5,
                    },
                    data,
                )
            except _WorkerGone:
                _drop_worker()
                raise LoaderError("The PDF reader process could not be started.") from None
            reason = ""
            hung = False
            while True:
                # A page gets its own budget so one hanging page does not use up the file's.
                deadline = min(file_deadline, time.monotonic() + options.pdf_page_timeout_s)
                try:
                    frame = worker.receive(deadline)
                except _WorkerGone:
                    reason = "the PDF reader crashed" + worker.exit_note()
                    frame = None
                if frame is None:
                    if not reason:
                        hung = True
                        timed_out = time.monotonic() >= file_deadline
                        budget = options.pdf_timeout_s if timed_out else options.pdf_page_timeout_s
                        reason = f"took longer than {budget:g} s"
                    _drop_worker()  # kill it: it is stuck, or dead already
                    break
                kind = frame["t"]
                if kind == "fail":
                    raise LoaderError(_fail_message(frame["kind"], frame["message"], options))
                if kind == "open":
                    opened = ever_opened = True
                    result.page_count = int(frame["pages"])
                    result.encrypted = bool(frame["encrypted"])
                elif kind == "page":
                    number = int(frame["n"])
                    if "error" in frame:
                        result.failed[number] = _page_error(frame["error"], options)
                    else:
                        result.texts[number] = frame["text"]
                    next_page = number
                elif kind == "done":
                    return result
            # The worker hung or died.
            if not opened and ever_opened:
                # Reopening after a bad page failed: keep the pages read so far.
                if time.monotonic() >= file_deadline:
                    reason = BUDGET_SPENT
                for number in range(next_page + 1, result.page_count + 1):
                    result.failed[number] = reason
                return result
            if not opened:
                if hung:
                    raise LoaderError(
                        f"Gave up on the PDF: opening it {reason} "
                        "(a looping cross-reference table?)."
                    )
                raise LoaderError(f"The PDF cannot be opened: {reason}.")
            stuck_page = next_page + 1  # the page the worker was on
            result.failed[stuck_page] = reason
            next_page = stuck_page
            if time.monotonic() >= file_deadline:
                for number in range(stuck_page + 1, result.page_count + 1):
                    result.failed[number] = BUDGET_SPENT
                return result
            if next_page >= result.page_count:
                return result
            opened = False  # the restarted worker opens the file again


def _sniff(data: bytes) -> None:
    """Reject what is plainly not a PDF with a message that says what it is."""
    head = data[:1024]
    if b"%PDF-" in head:
        return
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        raise LoaderError("Not a PDF: the file is an HTML page saved with a .pdf name.")
    if data.lstrip()[:1] == b"<":
        raise LoaderError("Not a PDF: the file looks like XML or HTML.")
    raise LoaderError("Not a PDF: the file has no PDF header.")


def load(data: bytes, source: str, options: LoadOptions) -> Document:
    """Load a PDF: cleaned text of every page, with page ranges into the joined text.

    ``meta`` records ``page_count``, ``empty_pages`` (no text: scanned or blank) and
    ``failed_pages`` (``{page: reason}`` for pages that raised, hung or crashed the reader).
    """
    _sniff(data)
    extraction = extract_pages(data, options)
    numbers = range(1, extraction.page_count + 1)
    texts = [clean_pdf_text(extraction.texts.get(n, "")).strip() for n in numbers]
    failed = {n: extraction.failed[n] for n in sorted(extraction.failed)}
    if failed and len(failed) == extraction.page_count:
        number, why = next(iter(failed.items()))
        raise LoaderError(f"No page of the PDF could be read (page {number}: {why}).")
    text, pages = join_pages(texts)
    empty_pages = [n for n, t in zip(numbers, texts, strict=True) if not t and n not in failed]
    return build_document(
        text,
        source,
        data,
        fmt="pdf",
        pages=pages,
        page_count=extraction.page_count,
        empty_pages=empty_pages,
        failed_pages=failed,
        encrypted=extraction.encrypted,
    )
