"""Page furniture in the text of a PDF: running heads and feet, page numbers, footnotes, and
contents and index pages.

Pure functions over the page texts of one PDF (after ``clean_pdf_text``, before the pages are
joined), so that the loader can join the cleaned pages and keep ``Document`` offsets exact.

What counts as furniture is decided on evidence from several pages, never from one line alone:

- A *page number* is a number at the top or bottom edge of a page (alone, ``- 33 -``,
  ``Page 33``, roman ``xii``, or at the start or end of a line) that keeps a constant distance
  to the page's position on at least two nearby pages: printed numbers advance with the pages,
  a number in the body does not.
- A *running head or foot* is an edge line whose digit-normalised form (``Chapter 1: Foo 33`` and
  ``Chapter 1: Foo 35`` are one pattern) recurs at the same edge of many pages: on at least
  ``MIN_PAGES`` pages and on ``PARITY_SHARE`` of the pages of one parity (books alternate left
  and right heads), or on ``MIN_PAGES`` pages close together (a chapter's head recurs only
  within the chapter). A head also keeps its place among the edge lines, its numbers stay the
  same or advance with the pages, and the text beyond it changes from page to page: lines of a
  table that differ only in their numbers, a phrase that recurs wherever the text flows, and
  pages that repeat one text are not furniture. A line holding a page number is also a head
  when the document's recurring heads carry their page numbers at that place (a one-page
  chapter's head is then recognised by its number). Only lines stacked at the very edge are
  removed: the first line that is not furniture stops the search, so a body line is never
  taken from between two; and a page is never emptied of all its lines by heads alone.
- *Footnotes*: lines at the bottom starting ``N text`` with consecutive numbers, where the first
  ``N`` is found glued to a word in the page's body (``implemented.39``, ``uses40``), once, and
  the word with its digits is not a name used elsewhere in the document (``log2``). Markers
  found so are removed and the footnote lines become their own paragraph at the end of the
  page, with the role ``footnotes`` (kept: they can still answer).
- *Contents* and *index* pages: most lines are entries (dot leaders, ``term, 12, 34``, or a title
  ending in a page number) and the page has strong signs (leaders, comma lists, a "Contents" or
  "Index" heading, or it continues such a page). The text is kept; only the role is recorded.

Every removal is recorded. A document without furniture comes back unchanged, text for text.

>>> words = ["Unpack", "Charge", "Clean", "Store"]
>>> pages = [f"Widget Manual {n}\\n{w} the widget." for n, w in enumerate(words, 1)]
>>> clean_layout(pages).texts
('Unpack the widget.', 'Charge the widget.', 'Clean the widget.', 'Store the widget.')
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import Counter, defaultdict
from dataclasses import dataclass

#: A pattern must recur on at least this many pages to be furniture.
MIN_PAGES = 3
#: ... and on this share of the pages of one parity, unless its pages are close together.
#: A fifth leaves a wide margin both ways: a running head is on nearly every page of its side,
#: while body lines that happen to open or close pages ("Syntax:", "Example:") do so on few.
PARITY_SHARE = 0.2
#: Occurrences at most this many pages apart form a run (2: alternating left/right heads).
RUN_GAP = 2
#: A head's number that changes is its page number on at least this share of its pages.
RUN_SHARE = 0.8
#: A head stands at the same place among its edge lines on at least this share of its pages.
RANK_SHARE = 0.8
#: Lines examined at each edge of a page.
EDGE_LINES = 3
#: A page number is confirmed by this many other pages within ``NUMBER_WINDOW`` pages.
NUMBER_SUPPORT = 2
NUMBER_WINDOW = 6
#: A running head is short; a longer line is never taken for one.
MAX_HEAD_CHARS = 120
#: Footnotes are searched for among the last lines of a page.
FOOTNOTE_LINES = 20

_DIGITS = re.compile(r"\d+")
_LETTER = re.compile(r"[^\W\d_]")
_ROMAN = re.compile(r"^m{0,3}(cm|cd|d?c{0,3})(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$")
_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100, "d": 500, "m": 1000}
# "33", "- 33 -", "Page 33", "page 33 of 120", "xii": the whole line is a page number.
_NUMBER_LINE = re.compile(
    r"^(?:page\s+)?[-–—]?\s*(\d{1,4}|[ivxlcdm]{1,7})\s*[-–—]?(?:\s*(?:of|/)\s*\d{1,4})?$",
    re.IGNORECASE,
)
_LEADING_NUMBER = re.compile(r"^(\d{1,4})\s+(?=\S)")
_TRAILING_NUMBER = re.compile(r"(?<=\S)\s+(\d{1,4})$")
_FOOTNOTE_START = re.compile(r"^(\d{1,3})\s+(?=[^\d\s])")
# A footnote marker glued to a word of two letters or more (``uses40``) or to punctuation right
# after a word (``implemented.39``, ``“quoted”2``), and followed by a space, punctuation or
# the end of the line, never by more word characters.
_MARKER_AFTER_WORD = re.compile(r"(?<!\w)[^\W\d_]{2,}(\d{1,3})(?!\w)")
_MARKER_AFTER_PUNCT = re.compile(r"[^\W\d_]{2}[.,;:!?)\]’”'\"]{1,2}(\d{1,3})(?!\w)")

# Contents and index entries.
_LEADER_ENTRY = re.compile(r"(?:\.\s?){4,}\s*(?:[\divxlcdm]+(?:\s*[,–-]\s*\d+)*)?$")
_COMMA_ENTRY = re.compile(
    r"^[^\d\s].*?,\s*\d{1,4}(?:[–-]\d{1,4})?(?:,\s*\d{1,4}(?:[–-]\d{1,4})?)*$"
)
_TITLE_ENTRY = re.compile(r"^[^\W\d_].*[^\W\d_][)’”\"?]?\s+(\d{1,4})$")
_CONTENTS_HEADING = re.compile(r"^(?:table\s+of\s+)?contents$", re.IGNORECASE)
_INDEX_HEADING = re.compile(r"^(?:\S+\s+){0,5}index$", re.IGNORECASE)
#: A page is a contents or index page when entries are this share of its lines ...
ENTRY_SHARE = 0.5
#: ... and at least this many.
MIN_ENTRIES = 5

Role = str  # "contents" | "index" | "footnotes"


@dataclass(frozen=True)
class Removal:
    """One piece of furniture taken out of a page's text.

    ``line`` is the 0-based line of the page's input text (split on ``"\\n"``); ``kind`` is
    ``"running_head"``, ``"page_number"`` or ``"marker"``; ``text`` is what was removed (the whole
    line, or a marker's digits, at ``column`` of that line); ``pattern`` is the digit-normalised
    form that made a line furniture.
    """

    page: int  # 0-based index into the page list
    line: int
    kind: str
    text: str
    pattern: str = ""
    column: int = 0


@dataclass(frozen=True)
class RoleSpan:
    """A half-open character range of one cleaned page text with a role."""

    page: int
    start: int
    end: int
    role: Role


@dataclass(frozen=True)
class Layout:
    """The cleaned page texts, what was removed from them, and the role of non-body ranges."""

    texts: tuple[str, ...]
    removed: tuple[Removal, ...] = ()
    roles: tuple[RoleSpan, ...] = ()
    footnotes_moved: int = 0

    @property
    def running_heads(self) -> tuple[str, ...]:
        """Distinct patterns of the lines removed as running heads or feet, in order of pages."""
        seen: dict[str, None] = {}
        for removal in self.removed:
            if removal.kind == "running_head":
                seen.setdefault(removal.pattern, None)
        return tuple(seen)

    def summary(self, max_patterns: int = 40) -> dict:
        """A small JSON-ready record for ``Document.meta``: distinct patterns and counts."""
        heads = self.running_heads
        counts: dict[str, int] = defaultdict(int)
        for removal in self.removed:
            counts[removal.kind] += 1
        summary = {
            "running_heads": list(heads[:max_patterns]),
            "removed_lines": counts["running_head"] + counts["page_number"],
            "page_numbers": counts["page_number"],
            "footnotes_moved": self.footnotes_moved,
            "markers_detached": counts["marker"],
            "contents_pages": sorted({r.page + 1 for r in self.roles if r.role == "contents"}),
            "index_pages": sorted({r.page + 1 for r in self.roles if r.role == "index"}),
        }
        if len(heads) > max_patterns:
            summary["running_heads_more"] = len(heads) - max_patterns
        return summary


def line_pattern(line: str) -> str:
    """The form lines are compared in: whitespace collapsed, lower case, digit runs as ``#``.

    >>> line_pattern("Chapter 1:  Creating R packages 33")
    'chapter #: creating r packages #'
    """
    return _DIGITS.sub("#", " ".join(line.split()).lower())


def _roman_value(token: str) -> int | None:
    token = token.lower()
    if not token or not _ROMAN.match(token):
        return None
    total = 0
    for a, b in zip(token, token[1:] + " ", strict=True):
        value = _ROMAN_VALUES[a]
        total += -value if b != " " and _ROMAN_VALUES[b] > value else value
    return total


@dataclass(frozen=True)
class _Candidate:
    """A number at a page edge that may be the printed page number."""

    page: int
    line: int
    edge: str  # "top" | "bottom"
    form: str  # "alone" | "lead" | "trail"
    roman: bool
    value: int


def _edge_lines(lines: list[str]) -> tuple[list[int], list[int]]:
    """Indices of the first and of the last ``EDGE_LINES`` non-empty lines, outermost first."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    return filled[:EDGE_LINES], filled[::-1][:EDGE_LINES]


def _number_candidate(page: int, index: int, line: str, edge: str) -> _Candidate | None:
    stripped = line.strip()
    match = _NUMBER_LINE.match(stripped)
    if match:
        token = match.group(1)
        if token.isdigit():
            return _Candidate(page, index, edge, "alone", False, int(token))
        value = _roman_value(token)
        if value is not None:
            return _Candidate(page, index, edge, "alone", True, value)
        return None
    if len(stripped) > MAX_HEAD_CHARS or not _LETTER.search(stripped):
        return None
    # The number on the outer side of the page first: a footer's number usually ends it.
    for form, regex in (("trail", _TRAILING_NUMBER), ("lead", _LEADING_NUMBER)):
        found = regex.search(stripped)
        if found:
            return _Candidate(page, index, edge, form, False, int(found.group(1)))
    return None


def _page_numbers(pages: list[list[str]]) -> dict[tuple[int, str], _Candidate]:
    """The confirmed page number at each (page, edge): a number whose distance to the page's
    position is shared by ``NUMBER_SUPPORT`` other pages within ``NUMBER_WINDOW`` pages."""
    candidates: list[_Candidate] = []
    for page, lines in enumerate(pages):
        tops, bottoms = _edge_lines(lines)
        for edge, indices in (("top", tops), ("bottom", bottoms)):
            for index in indices:
                found = _number_candidate(page, index, lines[index], edge)
                if found:
                    candidates.append(found)
    by_offset: dict[tuple[bool, int], list[int]] = defaultdict(list)
    for c in candidates:
        pages_at = by_offset[(c.roman, c.value - c.page)]
        if not pages_at or pages_at[-1] != c.page:
            pages_at.append(c.page)
    confirmed: dict[tuple[int, str], _Candidate] = {}
    for c in candidates:
        pages_at = by_offset[(c.roman, c.value - c.page)]
        lo = bisect.bisect_left(pages_at, c.page - NUMBER_WINDOW)
        hi = bisect.bisect_right(pages_at, c.page + NUMBER_WINDOW)
        if hi - lo - 1 < NUMBER_SUPPORT:
            continue
        key = (c.page, c.edge)
        # One printed number per edge: the outermost. "1" then "1 Introduction" on a chapter's
        # first page share the offset, and only the first is the page number.
        if key not in confirmed:
            confirmed[key] = c
    return confirmed


def _numbers_behave(occurrences: list[tuple[int, tuple[int, ...]]]) -> bool:
    """Whether each number of a recurring pattern behaves as a head's numbers do.

    A head's number is the same on every page ("gnuplot 5.4", "Chapter 2"), advances with the
    page (its page number), or changes seldom and only upwards (a chapter number in a head
    without the chapter's title). Lines of a table or a list that differ only in their numbers
    are not heads.
    """
    slots = len(occurrences[0][1])
    for slot in range(slots):
        values = [numbers[slot] for _, numbers in occurrences]
        if len(set(values)) == 1:
            continue
        offsets: dict[int, int] = defaultdict(int)
        for (page, _), value in zip(occurrences, values, strict=True):
            offsets[value - page] += 1
        if max(offsets.values()) >= RUN_SHARE * len(values):
            continue
        rising = all(a <= b for a, b in itertools.pairwise(values))
        if rising and len(set(values)) * 3 <= len(values):
            continue
        return False
    return True


def _recurring_patterns(pages: list[list[str]]) -> set[tuple[str, str]]:
    """(edge, pattern) pairs that recur on enough pages to be running heads or feet."""
    where: dict[tuple[str, str], list[tuple[int, tuple[int, ...]]]] = defaultdict(list)
    # What lies beyond the edge lines, as printed (the next line inward, or the whole page when
    # it has no more lines): (edge, pattern) → one per page.
    inner: dict[tuple[str, str], list[str]] = defaultdict(list)
    # Where the line stands among the edge lines, page-number lines not counted.
    ranks: dict[tuple[str, str], list[int]] = defaultdict(list)
    for page, lines in enumerate(pages):
        filled = [i for i, line in enumerate(lines) if line.strip()]
        if len(filled) > EDGE_LINES:
            beyond = {
                "top": " ".join(lines[filled[EDGE_LINES]].split()),
                "bottom": " ".join(lines[filled[-EDGE_LINES - 1]].split()),
            }
        else:
            whole = " ".join(" ".join(lines).split())
            beyond = {"top": whole, "bottom": whole}
        tops, bottoms = _edge_lines(lines)
        for edge, indices in (("top", tops), ("bottom", bottoms)):
            seen: set[str] = set()
            rank = 0
            for i in indices:
                pattern = line_pattern(lines[i])
                if pattern not in seen:
                    seen.add(pattern)
                    numbers = tuple(int(d) for d in _DIGITS.findall(lines[i]))
                    where[(edge, pattern)].append((page, numbers))
                    inner[(edge, pattern)].append(beyond[edge])
                    ranks[(edge, pattern)].append(rank)
                if not _NUMBER_LINE.match(lines[i].strip()):
                    rank += 1
    count = len(pages)
    parity_pages = ((count + 1) // 2, count // 2)
    found: set[tuple[str, str]] = set()
    for key, occurrences in where.items():
        pattern = key[1]
        at = [page for page, _ in occurrences]
        if len(at) < MIN_PAGES or len(pattern) > MAX_HEAD_CHARS or not _LETTER.search(pattern):
            continue
        by_parity = (sum(1 for p in at if p % 2 == 0), sum(1 for p in at if p % 2 == 1))
        share = max(c / n for c, n in zip(by_parity, parity_pages, strict=True) if n)
        run = best = 1
        for a, b in itertools.pairwise(at):
            run = run + 1 if b - a <= RUN_GAP else 1
            best = max(best, run)
        if not (share >= PARITY_SHARE or best >= MIN_PAGES) or not _numbers_behave(occurrences):
            continue
        # Pages that repeat a whole block of text (a form, a boilerplate page) repeat it beyond
        # the edge lines too; a head is followed by text that changes from page to page.
        repeats = Counter(inner[key]).most_common(1)[0][1]
        if repeats >= max(MIN_PAGES, len(at) / 2):
            continue
        # A head keeps its place at the edge: a line of running text that recurs (a refrain,
        # a repeated phrase) lands at whatever place the text flow puts it.
        if Counter(ranks[key]).most_common(1)[0][1] < RANK_SHARE * len(at):
            continue
        found.add(key)
    return found


def _furniture(pages: list[list[str]]) -> list[Removal]:
    """Lines to remove: page numbers and running heads, stacked at the edges of each page."""
    numbers = _page_numbers(pages)
    recurring = _recurring_patterns(pages)
    # Where the document's recurring heads carry the page number (edge and side): on how many
    # pages. Only recurring heads count: footnotes 2, 3, 4 on three pages in a row also keep
    # a constant distance to the page position.
    glued: dict[tuple[str, str], int] = defaultdict(int)
    for c in numbers.values():
        if c.form != "alone" and (c.edge, line_pattern(pages[c.page][c.line])) in recurring:
            glued[(c.edge, c.form)] += 1
    removals: list[Removal] = []
    for page, lines in enumerate(pages):
        tops, bottoms = _edge_lines(lines)
        taken: set[int] = set()
        found: list[Removal] = []
        for edge, indices in (("top", tops), ("bottom", bottoms)):
            number = numbers.get((page, edge))
            for index in indices:
                if index in taken:
                    break
                line = lines[index]
                pattern = line_pattern(line)
                if number is not None and number.line == index and number.form == "alone":
                    found.append(Removal(page, index, "page_number", line, pattern))
                elif (edge, pattern) in recurring or (
                    # A head seen on one page only (a short chapter's) still carries the page
                    # number where the document's recurring heads carry theirs.
                    number is not None
                    and number.line == index
                    and glued[(edge, number.form)] >= MIN_PAGES
                ):
                    found.append(Removal(page, index, "running_head", line, pattern))
                else:
                    break
                taken.add(index)
        if taken and len(taken) == sum(1 for line in lines if line.strip()):
            # Every line of the page would go: on so short a page, lines are as much body as
            # furniture (pages of a form that differ only in their numbers); only its page
            # number goes.
            found = [r for r in found if r.kind == "page_number"]
        removals.extend(found)
    return removals


def _glued_names(page_texts: list[str]) -> set[str]:
    """Words with digits glued on that occur more than once in the document (``log2``,
    ``utf8``): names, not a word with its footnote marker, which is printed once."""
    seen: set[str] = set()
    repeated: set[str] = set()
    for text in page_texts:
        for match in _MARKER_AFTER_WORD.finditer(text):
            token = match.group(0)
            if token in seen:
                repeated.add(token)
            seen.add(token)
    return repeated


def _marker_candidates(
    body: list[str], number: int, names: set[str]
) -> list[tuple[int, int, bool]]:
    """(line, column, after punctuation) of each place ``number`` is glued on as a marker."""
    found: list[tuple[int, int, bool]] = []
    wanted = str(number)
    for index, line in enumerate(body):
        if wanted not in line:
            continue
        for regex, after_punct in ((_MARKER_AFTER_WORD, False), (_MARKER_AFTER_PUNCT, True)):
            for match in regex.finditer(line):
                if match.group(1) == wanted and match.group(0) not in names:
                    found.append((index, match.start(1), after_punct))
    return found


def _footnotes(lines: list[str], names: set[str]) -> tuple[int, int, list[tuple[int, int]]] | None:
    """Where the footnote area of a page starts, how many footnotes it holds, and the markers
    to remove ((line, column)); None without footnotes. ``lines`` are the page's lines with
    furniture removed. Later footnotes need not have a marker found (pypdf sometimes sets a
    marker apart from its word, "lost 2."), but their numbers must follow on."""
    tail = [i for i, line in enumerate(lines) if line.strip()][-FOOTNOTE_LINES:]
    for position, start in enumerate(tail):
        match = _FOOTNOTE_START.match(lines[start].strip())
        if not match:
            continue
        numbers = [int(match.group(1))]
        for index in tail[position + 1 :]:
            nxt = _FOOTNOTE_START.match(lines[index].strip())
            if nxt and int(nxt.group(1)) == numbers[-1] + 1:
                numbers.append(numbers[-1] + 1)
        body = lines[:start]
        markers: list[tuple[int, int]] = []
        for number in numbers:
            places = _marker_candidates(body, number, names)
            if len(places) > 1:
                # Code is full of names like log10 or x2; a marker after punctuation is surer.
                places = [p for p in places if p[2]]
            if len(places) == 1:
                markers.append(places[0][:2])
            elif number == numbers[0]:
                break  # the first footnote's marker is the evidence: without it, no footnotes
        else:
            return start, len(numbers), markers
    return None


def _entry_kind(line: str) -> str | None:
    if _LEADER_ENTRY.search(line):
        return "leader"
    if _COMMA_ENTRY.match(line):
        return "comma"
    if _TITLE_ENTRY.match(line):
        return "title"
    return None


def _entry_numbers(line: str) -> int | None:
    found = _DIGITS.findall(line[-12:])
    return int(found[-1]) if found else None


def _roles(texts: list[str]) -> list[RoleSpan]:
    """Contents and index pages of the cleaned texts, as character ranges of those texts."""
    classified: list[tuple[int, str, int, int]] = []  # page, role, first line, last line
    previous_role: str | None = None
    previous_page = -2
    for page, text in enumerate(texts):
        lines = [line.strip() for line in text.split("\n")]
        filled = [i for i, line in enumerate(lines) if len(line) > 2]  # "A", "B": index groups
        kinds = {i: _entry_kind(lines[i]) for i in filled}
        entries = [i for i in filled if kinds[i]]
        strong = sum(1 for i in entries if kinds[i] in ("leader", "comma"))
        heading_role = None
        for i in filled[:3]:
            if _CONTENTS_HEADING.match(lines[i]):
                heading_role = "contents"
            elif _INDEX_HEADING.match(lines[i]):
                heading_role = "index"
        continues = previous_page == page - 1 and previous_role is not None
        # A list's last page may hold only a few entries; the page before vouches for it.
        if (
            len(entries) < (2 if continues else MIN_ENTRIES)
            or len(entries) < ENTRY_SHARE * len(filled)
            or not (strong >= 3 or heading_role or continues)
        ):
            continue
        role = heading_role or _guess_role(lines, entries, page, len(texts))
        if heading_role is None and continues:
            role = previous_role
        first = min(entries)
        if heading_role:
            first = min(first, next(i for i in filled[:3] if _heading(lines[i])))
        classified.append((page, role, first, max(entries)))
        previous_role, previous_page = role, page
    spans: list[RoleSpan] = []
    pages_with = {(page, role) for page, role, _, _ in classified}
    for page, role, first, last in classified:
        lines = texts[page].split("\n")
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line) + 1)
        start = 0 if (page - 1, role) in pages_with else starts[first]
        end = (
            len(texts[page]) if (page + 1, role) in pages_with else starts[last] + len(lines[last])
        )
        spans.append(RoleSpan(page, start, end, role))
    return spans


def _heading(line: str) -> bool:
    return bool(_CONTENTS_HEADING.match(line) or _INDEX_HEADING.match(line))


def _guess_role(lines: list[str], entries: list[int], page: int, page_count: int) -> str:
    """Contents list pages in order; an index lists terms in alphabetical order."""
    numbers = [n for n in (_entry_numbers(lines[i]) for i in entries) if n is not None]
    ordered = sum(1 for a, b in itertools.pairwise(numbers) if a <= b)
    terms = [lines[i].split(",")[0].split(" .")[0].lower() for i in entries]
    sorted_terms = sum(1 for a, b in itertools.pairwise(terms) if a <= b)
    if ordered > sorted_terms:
        return "contents"
    if sorted_terms > ordered:
        return "index"
    return "contents" if page < page_count / 2 else "index"


def clean_layout(page_texts: list[str]) -> Layout:
    """Remove page furniture from the page texts of one PDF; record what and where.

    Returns the cleaned texts (stripped), each removal, the moved footnotes and the character
    ranges of contents, index and footnote text in the cleaned texts. A page without furniture
    keeps its text exactly.

    >>> layout = clean_layout(["1\\nUnpack it.", "2\\nCharge it.", "3\\nClean it."])
    >>> layout.texts, [r.kind for r in layout.removed]
    (('Unpack it.', 'Charge it.', 'Clean it.'), ['page_number', 'page_number', 'page_number'])
    """
    pages = [text.split("\n") for text in page_texts]
    removals = _furniture(pages)
    by_page: dict[int, set[int]] = defaultdict(set)
    for removal in removals:
        by_page[removal.page].add(removal.line)
    names = _glued_names(page_texts)
    texts: list[str] = []
    roles: list[RoleSpan] = []
    footnotes_moved = 0
    for page, lines in enumerate(pages):
        gone = by_page.get(page, set())
        kept = [(i, line) for i, line in enumerate(lines) if i not in gone]
        notes = _footnotes([line for _, line in kept], names)
        if notes is None:
            texts.append("\n".join(line for _, line in kept).strip() if gone else page_texts[page])
            continue
        start, count, markers = notes
        body = [line for _, line in kept[:start]]
        for line_index, column in sorted(markers, reverse=True):
            line = body[line_index]
            digits = _DIGITS.match(line, column)
            assert digits is not None
            removals.append(
                Removal(page, kept[line_index][0], "marker", digits.group(0), column=column)
            )
            body[line_index] = line[:column] + line[digits.end() :]
        footnote_text = "\n".join(line for _, line in kept[start:]).strip()
        body_text = "\n".join(body).strip()
        footnotes_moved += count
        text = f"{body_text}\n\n{footnote_text}" if body_text else footnote_text
        roles.append(RoleSpan(page, len(text) - len(footnote_text), len(text), "footnotes"))
        texts.append(text)
    notes_at = {r.page: r.start for r in roles}
    for span in _roles(texts):
        # Footnotes keep their own role; a contents or index range stops where they begin.
        end = min(span.end, notes_at.get(span.page, span.end))
        if end > span.start:
            roles.append(RoleSpan(span.page, span.start, end, span.role))
    roles.sort(key=lambda r: (r.page, r.start))
    removals.sort(key=lambda r: (r.page, r.line, r.column))
    return Layout(tuple(texts), tuple(removals), tuple(roles), footnotes_moved)
