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


class FileSkipped(LoaderError):
    """The file is not something docqa reads (unsupported type, binary, missing extra).

    A subclass of ``LoaderError`` so that ``load()`` callers need catch only one type, while
    ``load_paths`` can report it as ``skipped`` rather than ``failed``.
    """


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
