"""Markdown (``.md``, ``.markdown``): the text as written, headings recorded as sections.

The text is kept verbatim (not rendered) so offsets point at what the author wrote.
langchain-text-splitters decides which lines are headings (it knows about code fences, where a
``# comment`` is not a heading); this module then finds those lines in the text to record where
each section starts.
"""

from __future__ import annotations

import re

from langchain_text_splitters import MarkdownHeaderTextSplitter

from docqa.loaders._base import LoadOptions, build_document
from docqa.loaders._encoding import decode_text
from docqa.loaders.clean import clean_text
from docqa.types import Document, Section

SUFFIXES = (".md", ".markdown")

_LEVELS = [("#" * n, f"h{n}") for n in range(1, 7)]
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def _heading_lines(text: str) -> list[tuple[int, str]]:
    """(level, stripped line) of each heading, in order, as the splitter sees them."""
    splitter = MarkdownHeaderTextSplitter(_LEVELS, strip_headers=False)
    found: list[tuple[int, str]] = []
    for chunk in splitter.split_text(text):
        # A chunk starts with its heading line, or with several when the sections between
        # them are empty ("# Title" directly followed by "## Setup").
        for line in chunk.page_content.split("\n"):
            match = _HEADING.match(line)
            if not match:
                break
            found.append((len(match.group(1)), line.strip()))
    return found


def find_sections(text: str) -> tuple[Section, ...]:
    """Sections of a Markdown text: each heading's title and the offset of its line.

    >>> find_sections("Intro\\n# Setup\\nPlug it in.\\n")
    (Section(title='Setup', start=6),)
    """
    wanted = _heading_lines(text)
    sections: list[Section] = []
    offset, in_fence, i = 0, False, 0
    for line in text.splitlines(keepends=True):
        if i == len(wanted):
            break
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.strip() == wanted[i][1]:
            match = _HEADING.match(line.rstrip("\n"))
            # CommonMark allows closing hashes: "## Setup ##" is titled "Setup".
            title = re.sub(r"[ \t]+#+$", "", (match.group(2) or "") if match else "").strip()
            sections.append(Section(title=title, start=offset))
            i += 1
        offset += len(line)
    return tuple(sections)


def load(data: bytes, source: str, options: LoadOptions) -> Document:
    """Load a Markdown file verbatim, with its headings as ``Document.sections``."""
    text, encoding = decode_text(data)
    text = clean_text(text)
    return build_document(
        text, source, data, fmt="markdown", sections=find_sections(text), encoding=encoding
    )
