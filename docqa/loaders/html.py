"""HTML (``.html``, ``.htm``): the visible text, block elements on their own lines.

BeautifulSoup parses (it copes with the broken markup of real exports and honours a declared
``<meta charset>``); this module walks the tree itself because ``get_text()`` glues adjacent
blocks together (``<p>a</p><p>b</p>`` → ``"ab"``) and would keep script and style text.
"""

from __future__ import annotations

import re
import warnings

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

from docqa.loaders._base import LoadOptions, build_document
from docqa.loaders.clean import clean_text
from docqa.types import Document, Section

SUFFIXES = (".html", ".htm")

# Never shown to a reader of the page.
_INVISIBLE = frozenset(
    {"script", "style", "noscript", "template", "head", "title", "meta", "link", "svg", "math"}
)
# Elements that start a new line; cells are handled apart (tabs within a row).
# fmt: off
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "body", "br", "caption", "dd", "details",
    "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2",
    "h3", "h4", "h5", "h6", "header", "hr", "html", "legend", "li", "main", "nav", "ol", "p",
    "pre", "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
})
# fmt: on
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_CELLS = ("td", "th")  # a row's cells share its line, separated by tabs
_NOT_TEXT = (Comment, Declaration, Doctype, ProcessingInstruction)
_BREAK = object()  # the end of a block element, in the walk stack
_SPACES = re.compile(r"\s+")


def _hidden(tag: Tag) -> bool:
    style = str(tag.get("style", "")).replace(" ", "").lower()
    return tag.has_attr("hidden") or "display:none" in style


class _TextWriter:
    """Joins text pieces with the strongest separator asked for between them.

    Separators are held back until the next visible text, so the output never starts or ends
    with one and a block boundary next to spaces gives one newline, not " \n ".
    """

    _RANK = {"": 0, " ": 1, "\t": 2, "\n": 3}  # noqa: RUF012

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.sep = ""

    def separate(self, sep: str) -> None:
        if self._RANK[sep] > self._RANK[self.sep]:
            self.sep = sep

    def write(self, piece: str, *, verbatim: bool = False) -> int | None:
        """Append ``piece``; return where its first visible character landed (None if blank)."""
        trailing = False
        if not verbatim:
            if piece[:1] == " ":
                self.separate(" ")
            trailing = piece.endswith(" ")
            piece = piece.strip(" ")
        if not piece:
            return None
        if self.sep and self.parts:
            self.parts.append(self.sep)
            self.length += len(self.sep)
        self.sep = " " if trailing else ""
        start = self.length
        self.parts.append(piece)
        self.length += len(piece)
        return start

    def text(self) -> str:
        return "".join(self.parts)


def extract(soup: BeautifulSoup) -> tuple[str, tuple[Section, ...]]:
    """Visible text of a parsed page and its ``<h1>``–``<h6>`` headings as sections."""
    out = _TextWriter()
    sections: list[Section] = []
    heading: str | None = None  # title of a heading whose first text is not yet written
    # An explicit stack rather than recursion: exported pages can nest deeper than Python's
    # recursion limit.
    stack: list[object] = [soup]
    while stack:
        node = stack.pop()
        if node is _BREAK:
            out.separate("\n")
        elif isinstance(node, NavigableString):
            if isinstance(node, _NOT_TEXT):
                continue
            if node.find_parent("pre") is not None:
                start = out.write(str(node), verbatim=True)
            else:
                start = out.write(_SPACES.sub(" ", str(node)))
            if heading is not None and start is not None:
                sections.append(Section(title=heading, start=start))
                heading = None
        elif isinstance(node, Tag):
            name = node.name.lower()
            if name in _INVISIBLE or _hidden(node):
                continue
            if name in _HEADINGS:
                heading = _SPACES.sub(" ", node.get_text()).strip() or None
            if name in _BLOCKS:
                out.separate("\n")
                stack.append(_BREAK)
            elif name in _CELLS and node.find_previous_sibling(_CELLS) is not None:
                out.separate("\t")
            stack.extend(reversed(node.contents))
    return out.text(), tuple(sections)


def load(data: bytes, source: str, options: LoadOptions) -> Document:
    """Load an HTML page: visible text only, no script or style, blocks on separate lines."""
    with warnings.catch_warnings():
        # BeautifulSoup warns (on stderr) about markup that looks like a URL or XML; the library
        # never prints, and the page is read as HTML either way.
        warnings.simplefilter("ignore")
        soup = BeautifulSoup(data, "html.parser")
    text, sections = extract(soup)
    cleaned = clean_text(text)
    if cleaned != text:
        # Removing control characters would shift the heading offsets; they are rare in HTML,
        # so recompute by finding each title again rather than tracking every removal.
        sections = _relocate(cleaned, sections)
    return build_document(
        cleaned,
        source,
        data,
        fmt="html",
        sections=sections,
        encoding=soup.original_encoding or "utf-8",
    )


def _relocate(text: str, sections: tuple[Section, ...]) -> tuple[Section, ...]:
    found: list[Section] = []
    cursor = 0
    for section in sections:
        at = text.find(section.title, cursor)
        if at >= 0:
            found.append(Section(section.title, at))
            cursor = at + len(section.title)
    return tuple(found)
