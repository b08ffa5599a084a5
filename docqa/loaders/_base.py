"""What every format module shares: load options, the "skip this file" signal, Document building."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from docqa.errors import LoaderError
from docqa.types import Document, Page, Section


@dataclass(frozen=True)
class LoadOptions:
    """Settings that reach the format loaders.

    The PDF budget exists because pypdf can loop on cyclic cross-reference tables or inflate a
    decompression bomb; one such file must not stall or kill a run over a whole folder.
    """

    password: str | None = None
    #: Wall-clock budget for one PDF, all pages together.
    pdf_timeout_s: float = 120.0
    #: Budget for opening a PDF or reading one page; a page over it is reported and skipped.
    pdf_page_timeout_s: float = 30.0
    #: Address-space limit of the worker process (virtual memory, so generous).
    pdf_memory_mb: int = 2048
    #: Files larger than this are skipped unread (``--max-file-mb``; None: no limit): memory
    #: and time stay bounded by a budget rather than by whatever lands in a folder.
    max_file_mb: float | None = 512.0
    #: Wall-clock budget for reading one HTML page.
    html_timeout_s: float = 120.0
    #: A long PDF may be read by two worker processes at once (`SPLIT_MIN_PAGES`); False
    #: keeps each PDF to one, for a caller that holds one CPU (a Ray build actor).
    split_pdfs: bool = True


class FileSkipped(LoaderError):
    """The file is not something docqa reads (unsupported type, binary, missing extra).

    A subclass of ``LoaderError`` so that ``load()`` callers need catch only one type, while
    ``load_paths`` can report it as ``skipped`` rather than ``failed``.
    """


_LIMIT_NAMED = "(--max-file-mb)."


def too_large(size: int, options: LoadOptions) -> str | None:
    """Why a file of ``size`` bytes is not read under ``options`` (None: it is read)."""
    limit = options.max_file_mb
    if limit is None or size <= limit * 1024 * 1024:
        return None
    return (
        f"The file is {size / 1024 / 1024:,.0f} MB, over the {limit:g} MB limit for one file "
        f"{_LIMIT_NAMED}"
    )


def is_too_large(reason: str) -> bool:
    """Whether a status reason is `too_large`'s (the index does not remember such a skip:
    under a larger limit the file is read)."""
    return reason.endswith(_LIMIT_NAMED)


class FileEmpty(LoaderError):
    """The file was read but holds no text (raised only where a loader knows why)."""


#: A format loader: file bytes and the source name in, a Document out; raises LoaderError.
Loader = Callable[[bytes, str, LoadOptions], Document]


def build_document(
    text: str,
    source: str,
    data: bytes,
    *,
    fmt: str,
    pages: Sequence[Page] | None = None,
    sections: Sequence[Section] = (),
    **meta: object,
) -> Document:
    """Wrap extracted text as a ``Document``; formats without pages count as one page."""
    if pages is None:
        pages = (Page(1, 0, len(text)),)
    return Document(
        text=text,
        source=source,
        pages=tuple(pages),
        sections=tuple(sections),
        sha256=hashlib.sha256(data).hexdigest(),
        meta={"format": fmt, **meta},
    )
