"""HTML (``.html``, ``.htm``): the visible text, block elements on their own lines.

The page is decoded as BeautifulSoup decodes it (``UnicodeDammit``: byte-order mark, a declared
``<meta charset>``, then detection) and read by the standard library's streaming
``html.parser``, the parser BeautifulSoup itself uses here, but without building a tree: text
is written out as the parser meets it, with the open elements on a stack. A tree of a large
one-line page costs many times the page in memory, and walking it asked every text for its
ancestors, which took far too long on pages whose unclosed tags nest very deep; the stack
keeps memory to the text and time linear (the bounds kept: README, Bad input, checked by
``tests/test_bounded.py``). Elements nest as BeautifulSoup nests them (an end tag closes the
latest open element of its name, unclosed ones included), so the text is the same as a walk
of its tree.
``get_text()`` is not used: it glues adjacent blocks together (``<p>a</p><p>b</p>`` → ``"ab"``)
and would keep script and style text.
"""

from __future__ import annotations

import html
import re
import time
import warnings
from html.parser import HTMLParser

from bs4.dammit import EntitySubstitution, UnicodeDammit

from docqa.errors import LoaderError
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
# Elements that never hold content (BeautifulSoup's list): closed as soon as they open.
_VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "menuitem",
    "meta", "param", "source", "track", "wbr", "basefont", "bgsound", "command", "frame",
    "image", "isindex", "nextid", "spacer",
})
# fmt: on
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_CELLS = frozenset({"td", "th"})  # a row's cells share its line, separated by tabs
# Strings BeautifulSoup gives their own type, which a heading's get_text() leaves out.
_NOT_IN_TITLES = frozenset({"script", "style", "template", "rt", "rp"})
_SPACES = re.compile(r"\s+")
#: A heading's title is cut at this many characters: an unclosed <h1> holds the whole rest of
#: the page, and its title must not.
MAX_TITLE_CHARS = 1000
#: Characters fed to the parser at a time; the time budget is checked between blocks.
_BLOCK_CHARS = 1 << 20


_DECIMAL = re.compile(r"([0-9]+)(.*)", re.S)
_HEX = re.compile(r"([0-9a-fA-F]+)(.*)", re.S)


def _numeric_reference(number: int) -> str:
    resolve = getattr(UnicodeDammit, "numeric_character_reference", None)
    if resolve is not None:
        return resolve(number)[0]
    return html.unescape(f"&#{number};") or "\ufffd"  # beautifulsoup4 before 4.13


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


class _Heading:
    """An ``<h1>``–``<h6>``: its title as collected so far and where its section starts."""

    __slots__ = ("chars", "parts", "start", "title")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.chars = 0
        self.start: int | None = None
        self.title: str | None = None

    def add(self, data: str) -> None:
        if self.chars < MAX_TITLE_CHARS:
            self.parts.append(data[: MAX_TITLE_CHARS - self.chars])
            self.chars += len(self.parts[-1])


class _Element:
    """An open element on the stack and what its end must undo."""

    __slots__ = ("block", "cells_seen", "heading", "invisible", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.block = False  # a visible block: its end starts a new line
        self.invisible = False
        self.heading: _Heading | None = None
        self.cells_seen = False  # a td/th child has opened (the next one is a later cell)


class _Extractor(HTMLParser):
    """Visible text and headings of a page, written as the parser meets them."""

    def __init__(self) -> None:
        # Character references are resolved as BeautifulSoup resolves them (below).
        super().__init__(convert_charrefs=False)
        self.out = _TextWriter()
        self.root = _Element("[document]")
        self.stack: list[_Element] = []
        self.open_count: dict[str, int] = {}
        self.invisible = 0  # open elements that hide their content
        self.pre = 0  # open <pre> elements: text inside is kept verbatim
        self.untitled = 0  # open elements whose strings stay out of heading titles
        self.headings: list[_Heading] = []  # open visible headings, collecting their titles
        self.pending: _Heading | None = None  # the heading whose section starts at the next text
        self.started: list[_Heading] = []  # headings whose section has started, in order

    # -- elements -------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs) -> None:
        element = self._open(tag, attrs)
        if tag in _VOID:
            self._close(element)
        else:
            self.stack.append(element)
            self.open_count[tag] = self.open_count.get(tag, 0) + 1

    def handle_startendtag(self, tag: str, attrs) -> None:
        self._close(self._open(tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or not self.open_count.get(tag):
            return  # nothing open to close: ignored, as BeautifulSoup ignores it
        while True:
            element = self.stack.pop()
            self.open_count[element.name] -= 1
            self._close(element)
            if element.name == tag:
                return

    def _open(self, name: str, attrs) -> _Element:
        element = _Element(name)
        parent = self.stack[-1] if self.stack else self.root
        later_cell = False
        if name in _CELLS:
            later_cell, parent.cells_seen = parent.cells_seen, True
        values = dict(attrs)
        style = (values.get("style") or "").replace(" ", "").lower()
        if name in _INVISIBLE or "hidden" in values or "display:none" in style:
            element.invisible = True
            self.invisible += 1
        self.pre += name == "pre"
        self.untitled += name in _NOT_IN_TITLES
        if not self.invisible:
            if name in _HEADINGS:
                element.heading = self.pending = _Heading()
                self.headings.append(element.heading)
            if name in _BLOCKS:
                element.block = True
                self.out.separate("\n")
            elif later_cell:
                self.out.separate("\t")
        return element

    def _close(self, element: _Element) -> None:
        self.invisible -= element.invisible
        self.pre -= element.name == "pre"
        self.untitled -= element.name in _NOT_IN_TITLES
        if element.block:
            self.out.separate("\n")
        heading = element.heading
        if heading is not None:
            self.headings.remove(heading)
            heading.title = _SPACES.sub(" ", "".join(heading.parts)).strip() or None
            heading.parts = []
            if heading.title is None and self.pending is heading:
                self.pending = None

    # -- text -----------------------------------------------------------------------------

    def handle_data(self, data: str, *, cdata: bool = False) -> None:
        if cdata or not self.untitled:
            for heading in self.headings:
                heading.add(data)
        if self.invisible:
            return
        if self.pre:
            start = self.out.write(data, verbatim=True)
        else:
            start = self.out.write(_SPACES.sub(" ", data))
        if start is not None and self.pending is not None:
            self.pending.start = start
            self.started.append(self.pending)
            self.pending = None

    def handle_charref(self, name: str) -> None:
        # As BeautifulSoup resolves it (the HTML standard's rules: &#150; is a dash).
        base, digits = (16, name[1:]) if name[:1] in ("x", "X") else (10, name)
        match = (_HEX if base == 16 else _DECIMAL).match(digits)
        if match is None:
            self.handle_data(name)
            return
        self.handle_data(_numeric_reference(int(match.group(1), base)))
        if match.group(2):
            self.handle_data(match.group(2))

    def handle_entityref(self, name: str) -> None:
        character = EntitySubstitution.HTML_ENTITY_TO_CHARACTER.get(name)
        self.handle_data(character if character is not None else f"&{name}")

    def unknown_decl(self, data: str) -> None:
        if data.upper().startswith("CDATA["):
            self.handle_data(data[len("CDATA[") :], cdata=True)

    def finish(self) -> tuple[str, tuple[Section, ...]]:
        self.close()
        while self.stack:
            self._close(self.stack.pop())
        sections = tuple(Section(h.title, h.start) for h in self.started if h.title)
        return self.out.text(), sections


def extract(markup: str, timeout_s: float | None = None) -> tuple[str, tuple[Section, ...]]:
    """Visible text of a page and its ``<h1>``–``<h6>`` headings as sections.

    Past ``timeout_s`` seconds a `LoaderError` says so.

    >>> extract("<h1>Hi</h1><p>a<br>b</p><script>x()</script>")
    ('Hi\\na\\nb', (Section(title='Hi', start=0),))
    """
    parser = _Extractor()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    for i in range(0, len(markup), _BLOCK_CHARS):
        parser.feed(markup[i : i + _BLOCK_CHARS])
        if deadline is not None and time.monotonic() > deadline:
            raise LoaderError(f"Reading the page took longer than {timeout_s:g} s.")
    return parser.finish()


def load(data: bytes, source: str, options: LoadOptions) -> Document:
    """Load an HTML page: visible text only, no script or style, blocks on separate lines."""
    with warnings.catch_warnings():
        # The library never prints; the page is read either way.
        warnings.simplefilter("ignore")
        dammit = UnicodeDammit(data, is_html=True)
    markup = dammit.unicode_markup or ""
    encoding = dammit.original_encoding
    text, sections = extract(markup, options.html_timeout_s)
    del markup, dammit
    cleaned = clean_text(text)
    if cleaned != text:
        # Removing control characters would shift the heading offsets; they are rare in HTML,
        # so recompute by finding each title again rather than tracking every removal.
        sections = _relocate(cleaned, sections)
    return build_document(
        cleaned, source, data, fmt="html", sections=sections, encoding=encoding or "utf-8"
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
