"""PDF (``.pdf``) through pypdf, parsed in a worker process under a time and memory budget.

Why a worker: pypdf still has open reports of hangs on cyclic cross-reference tables, of
decompression bombs, and of exceptions outside its own hierarchy. In a separate process with an
address-space limit (``RLIMIT_AS``) and a deadline, such a file costs itself only: the run goes
on, and the person is told what happened. The worker streams one frame per page, so a page that
hangs or crashes the worker costs that page; the worker is restarted after it.

Page texts are cleaned (``clean_pdf_text``) one page at a time, then page furniture found
across all pages is taken out (``layout.clean_layout``: running heads, page numbers, footnote
markers; contents, index and footnote text keep a role), and the pages are joined by a blank
line, so page boundaries are computed on the text that answers point into. The PDF's outline
(bookmarks), when it has one, gives the sections.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import re
import selectors
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docqa.errors import LoaderError
from docqa.loaders._base import LoadOptions, build_document
from docqa.loaders.clean import clean_pdf_text
from docqa.loaders.layout import Layout, clean_layout
from docqa.types import Document, Page, Region, Section

SUFFIXES = (".pdf",)

#: Between pages; the blank line keeps the last word of one page apart from the next page's first.
PAGE_SEPARATOR = "\n\n"

#: Outline items kept at most (the worker sends no more either).
MAX_OUTLINE_ITEMS = 5000

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
        except OSError as exc:  # BrokenPipeError included
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


class _Slot:
    """Where one worker process lives between files: started on first use, replaced when it
    hung, crashed or runs another script."""

    def __init__(self) -> None:
        self.worker: _Worker | None = None

    def get(self, memory_mb: int) -> _Worker:
        worker = self.worker
        if worker is not None and (
            not worker.alive() or worker.memory_mb != memory_mb or worker.script != WORKER_SCRIPT
        ):
            self.drop()
        if self.worker is None:
            worker = _Worker(memory_mb)
            try:
                frame = worker.receive(time.monotonic() + STARTUP_TIMEOUT_S)
            except _WorkerGone:
                frame = None
            if frame is None or frame.get("t") != "ready":
                note = worker.exit_note() if not worker.alive() else ""
                worker.kill()
                raise LoaderError(f"The PDF reader process did not start{note}.")
            self.worker = worker
        return self.worker

    def drop(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker = None


#: The worker every PDF of this process starts on, one file at a time (``_lock``).
_shared = _Slot()
_lock = threading.Lock()

#: How long a new worker may take to import pypdf; generous, a busy machine starts slowly,
#: and start-up time must not eat into a PDF's own budget.
STARTUP_TIMEOUT_S = 60.0

#: A PDF with at least this many pages is read by two workers at once, half its pages each,
#: on a machine with more than one core: a long manual then takes half the time, and does not
#: leave the other cores idle at the end of a folder.
SPLIT_MIN_PAGES = 64


def shutdown() -> None:
    """Stop the PDF worker process now (it also stops by itself when this process exits)."""
    with _lock:
        _shared.drop()


atexit.register(shutdown)


@dataclass
class _Extraction:
    page_count: int = 0
    texts: dict[int, str] = field(default_factory=dict)  # 1-based page → raw text
    failed: dict[int, str] = field(default_factory=dict)  # 1-based page → why
    encrypted: bool = False
    outline: list[tuple[str, int, int]] = field(default_factory=list)  # title, page index, depth


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

    The worker is first asked for the page count and outline only; a PDF of at least
    `SPLIT_MIN_PAGES` pages then has its second half read by a second worker at once.
    Raises ``LoaderError`` when the file cannot be opened at all (damaged, encrypted without
    the right password, over budget while opening).
    """
    with _lock:
        opened = _extract(_shared, data, options, 0, 0, outline=True)
        count = opened.page_count
        if count < SPLIT_MIN_PAGES or (os.cpu_count() or 1) < 2 or not options.split_pdfs:
            pages = _extract(_shared, data, options, 0, None)
        else:
            half = count // 2
            with ThreadPoolExecutor(1, thread_name_prefix="docqa-pdf") as pool:
                tail = pool.submit(_extract_apart, data, options, half)
                pages = _extract(_shared, data, options, 0, half)
                rest = tail.result()
            pages.texts.update(rest.texts)
            pages.failed.update(rest.failed)
    pages.page_count = pages.page_count or count
    pages.encrypted, pages.outline = opened.encrypted, opened.outline
    return pages


def _extract_apart(data: bytes, options: LoadOptions, start: int) -> _Extraction:
    """`_extract` from page index ``start`` to the end, in a worker of its own."""
    slot = _Slot()
    try:
        return _extract(slot, data, options, start, None)
    finally:
        slot.drop()


def _extract(
    slot: _Slot,
    data: bytes,
    options: LoadOptions,
    start: int,
    stop: int | None,
    outline: bool = False,
) -> _Extraction:
    """Pages ``[start, stop)`` (0-based; ``stop`` None: to the end) read by ``slot``'s worker,
    restarted after a page that hangs or crashes it; with ``outline``, the outline too."""
    result = _Extraction()
    file_deadline = 0.0
    clock_started = False
    next_page = start  # 0-based index to ask the worker for
    opened = False  # by the current worker
    ever_opened = False
    # The outline is asked for once, with the first request; one that hangs or crashes the
    # worker is given up (the pages are read again without it), never charged to a page.
    want_outline = outline
    awaiting_outline = False

    def end() -> int:
        return result.page_count if stop is None else min(stop, result.page_count)

    while True:
        worker = slot.get(options.pdf_memory_mb)
        if not clock_started:
            # Start the file's clock once a worker is ready, not while one starts up.
            file_deadline = time.monotonic() + options.pdf_timeout_s
            clock_started = True
        try:
            worker.send(
                {
                    "password": options.password,
                    "start_page": next_page,
                    "end_page": stop,
                    "cpu_s": options.pdf_timeout_s + 5,
                    "outline": want_outline,
                },
                data,
            )
        except _WorkerGone:
            slot.drop()
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
                slot.drop()  # kill it: it is stuck, or dead already
                break
            kind = frame["t"]
            if kind == "fail":
                raise LoaderError(_fail_message(frame["kind"], frame["message"], options))
            if kind == "open":
                opened = ever_opened = True
                result.page_count = int(frame["pages"])
                result.encrypted = bool(frame["encrypted"])
                awaiting_outline = want_outline
            elif kind == "outline":
                awaiting_outline = want_outline = False
                result.outline = _outline_items(frame.get("items"), result.page_count)
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
        if awaiting_outline:
            awaiting_outline = want_outline = opened = False
            continue
        if not opened and ever_opened:
            # Reopening after a bad page failed: keep the pages read so far.
            if time.monotonic() >= file_deadline:
                reason = BUDGET_SPENT
            for number in range(next_page + 1, end() + 1):
                result.failed[number] = reason
            return result
        if not opened:
            if hung:
                raise LoaderError(
                    f"Gave up on the PDF: opening it {reason} (a looping cross-reference table?)."
                )
            raise LoaderError(f"The PDF cannot be opened: {reason}.")
        stuck_page = next_page + 1  # the page the worker was on
        result.failed[stuck_page] = reason
        next_page = stuck_page
        if time.monotonic() >= file_deadline:
            for number in range(stuck_page + 1, end() + 1):
                result.failed[number] = BUDGET_SPENT
            return result
        if next_page >= end():
            return result
        opened = False  # the restarted worker opens the file again


def _outline_items(items: Any, page_count: int) -> list[tuple[str, int, int]]:
    """The worker's outline items, checked: a title, a page of this PDF, a depth."""
    checked: list[tuple[str, int, int]] = []
    if not isinstance(items, list):
        return checked
    for item in items[:MAX_OUTLINE_ITEMS]:
        if (
            isinstance(item, list)
            and len(item) == 3
            and isinstance(item[0], str)
            and item[0].strip()
            and all(isinstance(x, int) and not isinstance(x, bool) for x in item[1:])
            and 0 <= item[1] < page_count
        ):
            checked.append((item[0].strip(), item[1], item[2]))
    return checked


# Curly quotes and underscores (which some fonts extract as spaces) compare as plain ones.
_QUOTES = str.maketrans("‘’“”_", "''\"\" ")


def _normal(text: str) -> str:
    return " ".join(text.translate(_QUOTES).split()).casefold()


def _title_at(text: str, title: str, start: int) -> tuple[int, int] | None:
    """Where the line (or two) of ``text`` holding ``title`` begins and ends, searching lines
    from ``start`` (a line start); None when no line holds it.

    A heading line may carry the section number the outline leaves out ("1.1 Legalese" for
    "Legalese"), an outline title may carry a number the page sets on its own line ("I Gnuplot"
    for "Part I" then "Gnuplot"), a long title may wrap onto the next line, and a run-in
    heading starts its paragraph ("Column The column(x) function ...").
    """
    wanted = _normal(title)
    if not wanted:
        return None
    run_in = re.compile(re.escape(title) + r" (?=[A-Z])")
    lines = text[start:].split("\n")
    offset = start
    for index, line in enumerate(lines):
        begin = offset + len(line) - len(line.lstrip())
        found = _normal(line)
        # A heading, not a paragraph: at most a section number longer than the title.
        if (
            found
            and len(found) <= len(wanted) + 16
            and (
                found == wanted
                or found.endswith(" " + wanted)
                or (len(found) >= 3 and wanted.endswith(" " + found))
            )
        ):
            return begin, offset + len(line)
        if index + 1 < len(lines):
            # The title wraps: its end is the whole next line, its start is on this one.
            after = _normal(lines[index + 1])
            joined = _normal(line + " " + lines[index + 1])
            if (
                after
                and len(after) < len(wanted)
                and wanted.endswith(" " + after)
                and len(joined) <= len(wanted) + 16
                and (joined == wanted or joined.endswith(" " + wanted))
            ):
                return begin, offset + len(line) + 1 + len(lines[index + 1])
        if run_in.match(line.lstrip()):
            return begin, offset + len(line)
        offset += len(line) + 1
    return None


def outline_sections(
    outline: list[tuple[str, int, int]], texts: tuple[str, ...] | list[str], pages: tuple[Page, ...]
) -> tuple[Section, ...]:
    """Sections from outline items: each starts where its title begins a line of its page
    (searched after the previous item on the same page), else at the page's start.

    >>> pages = (Page(1, 0, 14), Page(2, 16, 37))
    >>> outline_sections([("Intro", 0, 0), ("Usage", 1, 0)],
    ...                  ["1 Intro\\nHello.", "Some text.\\n2 Usage\\nRun."], pages)
    (Section(title='Intro', start=0), Section(title='Usage', start=27))
    """
    sections: list[Section] = []
    cursor: dict[int, int] = {}
    for title, index, _depth in outline:
        if index >= len(texts):
            continue
        found = _title_at(texts[index], title, cursor.get(index, 0))
        if found is None:
            at = cursor.get(index, 0)
        else:
            at = found[0]
            cursor[index] = min(found[1] + 1, len(texts[index]))
        sections.append(Section(title, pages[index].start + at))
    sections.sort(key=lambda section: section.start)  # stable: outline order within a place
    return tuple(sections)


def layout_regions(layout: Layout, pages: tuple[Page, ...]) -> tuple[Region, ...]:
    """The layout's role ranges as ``Region``s of the joined text; neighbours with the same
    role and only whitespace between them (a contents list over several pages) become one."""
    regions: list[Region] = []
    for span in layout.roles:
        start = pages[span.page].start + span.start
        end = pages[span.page].start + span.end
        if (
            regions
            and regions[-1].role == span.role
            and regions[-1].end + len(PAGE_SEPARATOR) >= start
        ):
            regions[-1] = Region(regions[-1].start, end, span.role)
        else:
            regions.append(Region(start, end, span.role))
    return tuple(regions)


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

    ``meta`` records ``page_count``, ``empty_pages`` (no text: scanned or blank),
    ``failed_pages`` (``{page: reason}`` for pages that raised, hung or crashed the reader) and
    ``layout`` (the page furniture removed: ``Layout.summary``). ``sections`` come from the
    PDF's outline, ``regions`` mark contents, index and footnote text.
    """
    _sniff(data)
    return document_from_extraction(extract_pages(data, options), data, source)


def document_from_extraction(extraction: _Extraction, data: bytes, source: str) -> Document:
    """The ``Document`` of an extracted PDF (``load`` without the extraction; tests reuse one
    extraction of a large manual)."""
    numbers = range(1, extraction.page_count + 1)
    texts = [clean_pdf_text(extraction.texts.get(n, "")).strip() for n in numbers]
    failed = {n: extraction.failed[n] for n in sorted(extraction.failed)}
    if failed and len(failed) == extraction.page_count:
        number, why = next(iter(failed.items()))
        raise LoaderError(f"No page of the PDF could be read (page {number}: {why}).")
    # Furniture is found across pages, so on all of them at once, before they are joined:
    # offsets and page ranges are then exact over the text without it.
    layout = clean_layout(texts)
    text, pages = join_pages(list(layout.texts))
    empty_pages = [n for n, t in zip(numbers, texts, strict=True) if not t and n not in failed]
    document = build_document(
        text,
        source,
        data,
        fmt="pdf",
        pages=pages,
        sections=outline_sections(extraction.outline, layout.texts, pages),
        page_count=extraction.page_count,
        empty_pages=empty_pages,
        failed_pages=failed,
        encrypted=extraction.encrypted,
        layout=layout.summary(),
    )
    return dataclasses.replace(document, regions=layout_regions(layout, pages))
