"""Small frozen dataclasses passed between the stages: loaders, windows, reader, spans, answers."""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field
from typing import Literal

FileState = Literal["ok", "empty", "skipped", "failed"]


@dataclass(frozen=True)
class Page:
    """A page of a document as a half-open character range into ``Document.text``."""

    number: int  # 1-based, as people count pages
    start: int
    end: int


@dataclass(frozen=True)
class Section:
    """A heading and where its section starts in ``Document.text``."""

    title: str
    start: int


@dataclass(frozen=True)
class Region:
    """A half-open character range of ``Document.text`` that is not running body text.

    ``role`` is ``"contents"`` (a table of contents), ``"index"`` (a book's index) or
    ``"footnotes"`` (footnote bodies, moved to the end of their page). The text stays in the
    document; retrieval and reading may skip a role.
    """

    start: int
    end: int
    role: str


@dataclass(frozen=True)
class Document:
    """Extracted text of one source, with the page and section boundaries needed to cite it.

    >>> doc = Document.from_text("Paris is the capital of France.", source="note")
    >>> doc.text[0:5]
    'Paris'
    """

    text: str
    source: str
    pages: tuple[Page, ...] = ()
    sections: tuple[Section, ...] = ()
    regions: tuple[Region, ...] = ()  # sorted, non-overlapping; filled by the PDF loader
    sha256: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_text(cls, text: str, source: str = "<text>", **meta) -> Document:
        """Wrap a string as a one-page document."""
        return cls(
            text=text,
            source=source,
            pages=(Page(1, 0, len(text)),),
            sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            meta=dict(meta),
        )

    def page_at(self, char: int) -> int | None:
        """The 1-based page number holding character ``char``, or None without page data."""
        if not self.pages:
            return None
        starts = [p.start for p in self.pages]
        i = max(bisect.bisect_right(starts, char) - 1, 0)
        return self.pages[i].number

    def section_at(self, char: int) -> str | None:
        """The title of the section holding character ``char``, if the loader found headings."""
        if not self.sections:
            return None
        starts = [s.start for s in self.sections]
        i = bisect.bisect_right(starts, char) - 1
        return self.sections[i].title if i >= 0 else None

    def role_at(self, char: int) -> str | None:
        """The role of the region holding character ``char`` (``"contents"``, ``"index"``,
        ``"footnotes"``), or None in body text.

        >>> doc = Document("Contents 1. Body.", "x", regions=(Region(0, 10, "contents"),))
        >>> doc.role_at(3), doc.role_at(12)
        ('contents', None)
        """
        if not self.regions:
            return None
        starts = [r.start for r in self.regions]
        i = bisect.bisect_right(starts, char) - 1
        if i >= 0 and char < self.regions[i].end:
            return self.regions[i].role
        return None


@dataclass(frozen=True)
class FileStatus:
    """What happened to one path while loading: ok, empty, skipped or failed (with why)."""

    path: str
    state: FileState
    reason: str = ""


@dataclass(frozen=True)
class Answer:
    """One answer span. Always ``answer.document.text[answer.start:answer.end] == answer.text``."""

    text: str
    score: float  # probability over the candidate spans of every window read (see README)
    start: int
    end: int
    page: int | None
    source: str
    context: str
    document: Document = field(repr=False)
    # What ranks answers: start_logit + end_logit, less its window's no-answer score when
    # ranked by null margin (the default), plus the retrieval boost when fused, log-summed
    # over the places that give this answer.
    logit: float = 0.0
    section: str | None = None

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "score": self.score,
            "source": self.source,
            "page": self.page,
            "start": self.start,
            "end": self.end,
            "context": self.context,
            "section": self.section,
            "logit": self.logit,
        }


@dataclass(frozen=True)
class WindowRef:
    """The character range of ``documents[doc_index].text`` that one window read."""

    doc_index: int
    start: int
    end: int


@dataclass(frozen=True)
class Prediction:
    """Everything the reader concluded for one question over a set of documents.

    ``answers`` are best first (empty when no span qualifies). ``null_score_diff`` is the
    best no-answer score minus the best span score, in raw logits (SQuAD 2.0 convention: the
    question is predicted unanswerable when it exceeds the threshold); None when no window
    was read. ``windows_read`` lists every window the reader actually scored.
    """

    answers: tuple[Answer, ...]
    null_score_diff: float | None
    windows_read: tuple[WindowRef, ...]
