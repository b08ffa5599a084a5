"""From per-window token spans to ranked answers with character offsets in the documents.

Pure functions. Every window contributes its best spans as `Candidate`s whose offsets point
into the original ``Document.text`` (widened to whole words); candidates from all windows of
all documents are then merged and ranked together by logit (raw, or less the window's
no-answer score: ``rank_by``), and the places that give the same answer are pooled into one
(`pool_same_answers`).

The displayed score is ``exp(logit) / sum(exp(logit) over every candidate)``: the softmax of
span scores over the whole candidate set (the best ``top_n`` spans of every window read),
summed over the places that give the answer. It is comparable across windows and files, sums
to at most 1 over the answers shown, and orders answers exactly as their logits do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from docqa.metrics import normalize_answer
from docqa.spans import best_spans
from docqa.types import Document
from docqa.windowing import TokenizedText, Window


@dataclass(frozen=True)
class Candidate:
    """A span in document ``doc_index`` as a character range, with its raw scores."""

    doc_index: int
    start: int
    end: int
    logit: float  # start_logit + end_logit
    null_logit: float  # the window's [CLS] score, for no-answer decisions


def window_candidates(
    window: Window,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    text: TokenizedText,
    cls_index: int,
    max_answer_len: int,
    top_n: int,
    allowed_starts: np.ndarray | None = None,
    allowed_ends: np.ndarray | None = None,
) -> list[Candidate]:
    """The best spans of one window as character-level candidates, widened to whole words.

    ``allowed_starts`` and ``allowed_ends`` mask the window's context tokens that may start
    and end an answer (`best_spans`); None allows all of them.
    """
    lo = window.context_offset
    n = window.token_end - window.token_start
    spans = best_spans(
        start_logits[lo : lo + n],
        end_logits[lo : lo + n],
        max_answer_len,
        top_n,
        allowed_starts,
        allowed_ends,
    )
    null = float(start_logits[cls_index] + end_logits[cls_index])
    return [
        Candidate(
            doc_index=window.doc_index,
            start=int(text.word_start[window.token_start + s.start]),
            end=int(text.word_end[window.token_start + s.end]),
            logit=s.score,
            null_logit=null,
        )
        for s in spans
    ]


def cut_edge_masks(window: Window, text: TokenizedText) -> tuple[np.ndarray, np.ndarray]:
    """Which of ``window``'s tokens may start and end an answer, given where it cuts the
    document (tokens lie beyond an edge): none in the word at a cut edge, since what the
    reader saw there may be half a phrase and the window across the edge reads it whole.
    Without the max-context rule, nothing else keeps the cut half from standing for the
    whole. Masks go into `best_spans`, so a barred span takes no place among the window's
    best.

    >>> ends = np.array([3, 7, 11, 15, 19, 23])  # six three-letter words
    >>> text = TokenizedText(ends, ends - 3, ends, ends - 3, ends)
    >>> ids = np.zeros(7, dtype=np.int64)
    >>> starts, ends = cut_edge_masks(Window(0, ids, ids, 1, 1, 5), text)
    >>> starts.tolist(), ends.tolist()
    ([False, True, True, True], [True, True, True, False])
    >>> [m.tolist() for m in cut_edge_masks(Window(0, ids, ids, 1, 0, 4), text)]
    [[True, True, True, True], [True, True, True, False]]
    """
    first, last = window.token_start, window.token_end
    starts = np.ones(last - first, dtype=bool)
    ends = np.ones(last - first, dtype=bool)
    if first == last:
        return starts, ends
    if first > 0:
        starts = text.word_start[first:last] > text.word_start[first]
    if last < len(text):
        ends = text.word_end[first:last] < text.word_end[last - 1]
    return starts, ends


#: A line that holds nothing but a number: a page number (or a list number) on its own line.
_NUMBER_LINE = re.compile(r"[ \t]*\(?[0-9]+\)?[ \t]*")
#: A cross-reference to a page and nothing else: ``p. 91``, ``pp. 12-14``, ``page 7``.
_PAGE_REFERENCE = re.compile(r"(?:pp?\.|pages?)\s*[0-9]+(?:\s*[-–]\s*[0-9]+)?", re.IGNORECASE)
#: A footnote marker glued to the end of a word after its punctuation: ``implemented.39``.
_TRAILING_MARKER = re.compile(r"[A-Za-z]{2}[.,;:)]([0-9]{1,3})$")
#: A span that starts with such a marker (matched from the span's start, looking back).
_LEADING_MARKER = re.compile(r"(?<=[A-Za-z][.,;:)])[0-9]{1,3}(?![0-9])")
#: A sentence's end at a line's end, then a line labelled with a number (a footnote body's
#: ``3 paste(...)``, a list item's ``3. A vector``).
_NUMBERED_LINE = re.compile(r"[.!?][ \t]*\n[ \t]*(?P<label>[0-9]{1,3})\.?[ \t]+\S")


def answer_defect(text: str, start: int, end: int, breaks: Sequence[int] = ()) -> str | None:
    r"""Why ``text[start:end]`` is not an answer a person would accept, or None if it may be.

    These are the non-answers found on real PDF manuals (issue 17): a span that runs across a
    page boundary or the edge of a region (``breaks``, sorted character offsets: a page's
    last line and the next page's running head are not one phrase); a span with no letter or
    digit; a span holding a number alone on its line (a page number); a span that starts with
    a number glued to the word before it (a footnote marker: the ``39`` of ``implemented.39``);
    a span that is only a cross-reference to a page (``p. 91``: "see p. 91" points to the
    answer, it is not one); a span that runs on past a sentence's end at a line's end into
    the number that labels the next line (``x.\n3`` or ``x.\n3 paste`` of "x.\n3 paste(...)
    joins": a footnote body left in the text, a numbered item).

    >>> text = "Install it.39 Then run R.\n66\nChapter 9"
    >>> for s, e in [(0, 10), (11, 13), (26, 28), (19, 28), (10, 11), (26, 38)]:
    ...     print(repr(text[s:e]), answer_defect(text, s, e, breaks=[26]))
    'Install it' None
    '39' footnote marker
    '66' page number
    'run R.\n66' crosses a page or region boundary
    '.' no words
    '66\nChapter 9' page number
    >>> answer_defect("as shown (see p. 91).", 14, 19)
    'page reference'
    >>> answer_defect("of x.\n3 paste(...) joins", 3, 7), answer_defect("of x.\n3 paste", 3, 13)
    ('numbered line', 'numbered line')
    """
    if any(start < b < end for b in breaks):
        return "crosses a page or region boundary"
    span = text[start:end]
    if not any(ch.isalnum() for ch in span):
        return "no words"
    first = text.rfind("\n", 0, start) + 1
    last = text.find("\n", end)
    lines = text[first : len(text) if last == -1 else last].split("\n")
    if any(line.strip() and _NUMBER_LINE.fullmatch(line) for line in lines):
        return "page number"
    if _LEADING_MARKER.match(text[max(0, start - 3) : end], min(start, 3)):
        return "footnote marker"
    if _PAGE_REFERENCE.fullmatch(span.strip()):
        return "page reference"
    # Bounded look past the end: the label's line must go on after it.
    for match in _NUMBERED_LINE.finditer(text[start : min(len(text), end + 16)]):
        if match.start("label") < end - start:
            return "numbered line"
    return None


#: A whitespace-separated token that is code, not prose: an identifier chain, maybe called
#: (``R.version$year``, ``make.names()``, ``demo("scoping")``, ``~/.inputrc``), holding a
#: sign that prose words do not (``_CODE_SIGN``). Brackets elsewhere (``debts).[1]``) and
#: hyphens alone (``x-axis``) are prose.
_IDENTIFIER = re.compile(r"[\w.$:~/\\@#=-]+(?:\([^()]*\))?")
_CODE_SIGN = re.compile(r"[$_=()/\\@#~]|\w[.:]\w")
#: What ends a sentence or clause after a token rather than belonging to it.
_CLAUSE_END = ".,;:!?"
_CLOSERS = {"(": ")", "[": "]", "{": "}", '"': '"', "'": "'", "‘": "’", "“": "”"}
_OPENERS = {close: open_ for open_, close in _CLOSERS.items()}


def _unpaired(span: str, char: str, pair: str) -> bool:
    """Whether ``char`` (a bracket or quote whose partner is ``pair``) has none in ``span``."""
    if char == pair:  # a straight quote pairs with itself
        return span.count(char) % 2 == 1
    return span.count(char) > span.count(pair)


def _is_code(token: str) -> bool:
    """Whether a whitespace-separated token is code (``_IDENTIFIER``), once the clause
    punctuation after it and the quotes or brackets around it are set aside."""
    core, before = token, None
    while core and core != before:
        before, core = core, core.rstrip(_CLAUSE_END)
        if core[-1:] in _OPENERS and _unpaired(core, core[-1], _OPENERS[core[-1]]):
            core = core[:-1]
        elif core[:1] in _CLOSERS and _unpaired(core, core[0], _CLOSERS[core[0]]):
            core = core[1:]
        elif len(core) > 1 and core[0] in _CLOSERS and core[-1] == _CLOSERS[core[0]]:
            core = core[1:-1]
    return bool(_IDENTIFIER.fullmatch(core) and _CODE_SIGN.search(core))


def whole_code_token(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` widened to the whole whitespace-separated token it starts or ends in,
    when that token is code (``_IDENTIFIER``): an identifier or a call is one answer, never a
    piece of it. Prose is left as read (``x-axis``, ``1990–91``, ``Beyoncé's``, ``debts).[1]``).

    What widening adds loses the clause punctuation after the token and the brackets or
    quotes that the answer leaves unpaired.

    >>> text = 'Use R.version$year, or demo("scoping"). See make.names().'
    >>> for s, e in [(13, 18), (23, 27), (44, 54), (4, 5), (4, 18)]:
    ...     a, b = whole_code_token(text, s, e)
    ...     print(repr(text[s:e]), '->', repr(text[a:b]))
    '$year' -> 'R.version$year'
    'demo' -> 'demo("scoping")'
    'make.names' -> 'make.names()'
    'R' -> 'R.version$year'
    'R.version$year' -> 'R.version$year'
    >>> whole_code_token("the x-axis range", 4, 5), whole_code_token("on debts).[1] and", 3, 8)
    ((4, 5), (3, 8))
    >>> text = 'the "ne" operator (see p. 91)'
    >>> [text[a:b] for a, b in (whole_code_token(text, 5, 7), whole_code_token(text, 23, 28))]
    ['ne', 'p. 91']
    >>> text = "(see fit.log) and plot.new."
    >>> [text[a:b] for a, b in (whole_code_token(text, 5, 8), whole_code_token(text, 18, 22))]
    ['fit.log', 'plot.new']
    """
    lo = start
    while lo > 0 and not text[lo - 1].isspace():
        lo -= 1
    hi = end
    while hi < len(text) and not text[hi].isspace():
        hi += 1
    first_end = next((i for i in range(lo, hi) if text[i].isspace()), hi)
    last_start = next((i + 1 for i in range(hi - 1, lo - 1, -1) if text[i].isspace()), lo)
    s = lo if lo < start and _is_code(text[lo:first_end]) else start
    e = hi if hi > end and _is_code(text[last_start:hi]) else end
    while e > end and (
        text[e - 1] in _CLAUSE_END
        or (text[e - 1] in _OPENERS and _unpaired(text[s:e], text[e - 1], _OPENERS[text[e - 1]]))
    ):
        e -= 1
    while s < start and (text[s] in _CLOSERS and _unpaired(text[s:e], text[s], _CLOSERS[text[s]])):
        s += 1
    if s < start and e > end and text[s] in _CLOSERS and text[e - 1] == _CLOSERS[text[s]]:
        s, e = s + 1, e - 1  # the quotes or brackets around the token are not part of it
    return s, e


#: Words that name what kind of thing a piece of code is, and articles: in an answer beside
#: one piece of code (``the function unclass()``), they repeat what the question asked for.
_KIND_WORDS = frozenset(
    {
        *("function", "command", "option", "argument", "variable", "package", "operator"),
        *("keyword", "method", "parameter", "the", "a", "an"),
    }
)


def code_without_kind_words(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` cut to its one piece of code (`whole_code_token`'s code) when every
    other word in it only names the code's kind (``_KIND_WORDS``): ``function unclass()``
    and ``qr() function`` answer ``unclass()`` and ``qr()``. Anything else is left as read.

    >>> text = "use the function unclass(), or the qr() function; the R function"
    >>> for s, e in [(4, 26), (35, 48), (50, 64), (8, 16), (8, 27), (35, 49)]:
    ...     a, b = code_without_kind_words(text, s, e)
    ...     print(repr(text[s:e]), '->', repr(text[a:b]))
    'the function unclass()' -> 'unclass()'
    'qr() function' -> 'qr()'
    'the R function' -> 'the R function'
    'function' -> 'function'
    'function unclass(),' -> 'unclass()'
    'qr() function;' -> 'qr()'
    """
    words = list(re.finditer(r"\S+", text[start:end]))
    code = [w for w in words if _is_code(w.group())]
    others = [w.group().strip(_CLAUSE_END).lower() for w in words if w not in code]
    if len(code) != 1 or not others or not all(w in _KIND_WORDS for w in others):
        return start, end
    token = code[0].group().rstrip(_CLAUSE_END)
    return start + code[0].start(), start + code[0].start() + len(token)


def without_marker(text: str, start: int, end: int) -> int:
    """The end of ``text[start:end]`` without a footnote marker glued to its last word.

    >>> text = "It was implemented.39 Later"
    >>> text[7:without_marker(text, 7, 21)]
    'implemented.'
    """
    found = _TRAILING_MARKER.search(text, start, end)
    return found.start(1) if found else end


def starts_outside(
    allowed: np.ndarray | None, token_starts: np.ndarray, spans: Sequence[tuple[int, int]]
) -> np.ndarray | None:
    """``allowed`` (a window's mask of the tokens that may start an answer, or None for all)
    without the tokens whose first character (``token_starts``) lies in one of ``spans``
    (regions of a skipped role: a table of contents, an index).

    >>> starts_outside(None, np.array([0, 5, 10, 15]), [(5, 11)]).tolist()
    [True, False, False, True]
    >>> starts_outside(np.array([False, True, True, True]), np.array([0, 5, 10, 15]), []).tolist()
    [False, True, True, True]
    """
    if not spans:
        return allowed
    inside = np.zeros(len(token_starts), dtype=bool)
    for lo, hi in spans:
        inside |= (token_starts >= lo) & (token_starts < hi)
    return ~inside if allowed is None else allowed & ~inside


def answer_breaks(doc: Document) -> list[int]:
    """Where an answer may not run across (`answer_defect`'s ``breaks``): the starts of the
    document's pages but the first, and the edges of its regions (a table of contents, moved
    footnotes), sorted."""
    edges = {page.start for page in doc.pages[1:]}
    edges.update(edge for r in doc.regions for edge in (r.start, r.end))
    return sorted(edges)


def sane_candidates(candidates: Iterable[Candidate], text: str, breaks: Sequence[int]) -> list:
    """``candidates`` without what no person would accept as an answer (`answer_defect`),
    each widened to whole code tokens (`whole_code_token`), cut to its code where the rest
    only names the code's kind (`code_without_kind_words`) and cut before a footnote marker
    glued to its last word (`without_marker`)."""
    kept = []
    for c in candidates:
        start, end = code_without_kind_words(text, *whole_code_token(text, c.start, c.end))
        end = without_marker(text, start, end)
        if answer_defect(text, start, end, breaks) is None:
            kept.append(c if (start, end) == (c.start, c.end) else replace(c, start=start, end=end))
    return kept


def retrieval_boosts(scores: Sequence[float], weight: float) -> list[float] | None:
    """What each chunk read adds to its spans' logits: ``weight`` times its retrieval score
    scaled to [0, 1] over the chunks read (linear fusion of retriever and reader, as cdQA and
    BERTserini do). None when nothing is added: no weight, one chunk, or all scores equal.

    >>> retrieval_boosts([2.0, 4.0, 3.0], 4.0)
    [0.0, 4.0, 2.0]
    >>> retrieval_boosts([1.0, 1.0], 4.0) is None, retrieval_boosts([1.0, 2.0], 0.0) is None
    (True, True)
    """
    if not weight or len(scores) < 2:
        return None
    lo, hi = min(scores), max(scores)
    if hi <= lo:
        return None
    return [weight * (s - lo) / (hi - lo) for s in scores]


def rank_candidates(
    candidates: Sequence[Candidate],
    null_logits: Sequence[float],
    boosts: Sequence[float] | None = None,
    rank_by: str = "logit",
    no_answer_threshold: float | None = None,
    texts: Sequence[str] | None = None,
) -> tuple[list[Candidate], float | None]:
    """The candidates of every window read, merged and ranked: ``(ranked, null_score_diff)``.

    ``boosts`` (one per candidate: its chunk's `retrieval_boosts`) are added to the logits
    that rank, but the no-answer decision stays in raw reader logits: ``null_score_diff`` is
    computed before them. ``rank_by="null_margin"`` ranks each span by its margin over its own
    window's no-answer score (Alberti et al. 2019's Natural Questions baseline): a window the
    reader thinks holds no answer cannot lend a high raw logit to its best span. With
    ``no_answer_threshold`` set and the best no-answer score ahead of the best span by more
    than it, the question is judged unanswerable: ``ranked`` is empty. With ``texts`` (each
    document's text, by ``doc_index``), the places that give the same answer are pooled into
    one (`pool_same_answers`).

    >>> a, b = Candidate(0, 0, 4, 5.0, 1.0), Candidate(0, 9, 12, 4.0, -2.0)
    >>> [c.start for c in rank_candidates([a, b], [1.0, -2.0])[0]]
    [0, 9]
    >>> [c.start for c in rank_candidates([a, b], [1.0, -2.0], rank_by="null_margin")[0]]
    [9, 0]
    >>> rank_candidates([a, b], [9.0], no_answer_threshold=3.0)
    ([], 4.0)
    """
    diff = null_score_diff(merge_duplicates(candidates), list(null_logits))
    ranked = list(candidates)
    if boosts is not None:
        ranked = [replace(c, logit=c.logit + b) for c, b in zip(ranked, boosts, strict=True)]
    if rank_by == "null_margin":
        ranked = [replace(c, logit=c.logit - c.null_logit) for c in ranked]
    if no_answer_threshold is not None and diff is not None and diff > no_answer_threshold:
        return [], diff
    ranked = merge_duplicates(ranked)
    return (ranked if texts is None else pool_same_answers(ranked, texts)), diff


def best_first(c: Candidate) -> tuple:
    """The order answers are ranked in: best logit first, ties by place."""
    return (-c.logit, c.doc_index, c.start, c.end)


def merge_duplicates(candidates: Iterable[Candidate]) -> list[Candidate]:
    """One candidate per (document, start, end), keeping the best logit, best first.

    Neighbouring windows overlap, and word widening maps several token spans to one
    character span: both would otherwise show the same answer twice.
    """
    best: dict[tuple[int, int, int], Candidate] = {}
    for c in candidates:
        key = (c.doc_index, c.start, c.end)
        if key not in best or c.logit > best[key].logit:
            best[key] = c
    return sorted(best.values(), key=best_first)


def pool_same_answers(candidates: Sequence[Candidate], texts: Sequence[str]) -> list[Candidate]:
    """One candidate per answer: the places whose text is the same answer (SQuAD-normalised,
    `normalize_answer`) become their best-scored place, with the log of their summed
    ``exp(logit)`` as its logit, best first.

    ``candidates`` must come from `merge_duplicates` (one per place, best first). A manual
    states its facts more than once (the description, an example, the summary), and each place
    the reader reads adds evidence for what it says: the answer's probability is the sum over
    its places, as in evidence aggregation for open-domain QA (Wang et al. 2018, "strength"
    re-ranking; Clark and Gardner 2018 sum the probability of every occurrence in training).
    Two places that say the same thing count once each, never twice for one place.

    >>> text = "use pict2e here; the pict2e terminal, or gnuplot, or pict2e."
    >>> cs = [Candidate(0, 41, 48, 2.0, 0.0), Candidate(0, 4, 10, 1.5, 0.0),
    ...       Candidate(0, 53, 59, 1.2, 0.0)]
    >>> [(text[c.start:c.end], round(c.logit, 2)) for c in pool_same_answers(cs, [text])]
    [('pict2e', 2.05), ('gnuplot', 2.0)]
    """
    groups: dict[tuple[int, str] | str, list[Candidate]] = {}
    for c in candidates:
        said = texts[c.doc_index][c.start : c.end]
        # An answer of articles alone normalises to nothing: it is only itself.
        key = normalize_answer(said) or (c.doc_index, said)
        groups.setdefault(key, []).append(c)
    pooled = [
        replace(group[0], logit=float(np.logaddexp.reduce([c.logit for c in group])))
        for group in groups.values()
    ]
    return sorted(pooled, key=best_first)


def top_answers(candidates: list[Candidate], top_k: int) -> list[tuple[Candidate, float]]:
    """The ``top_k`` best distinct candidates with their probability over all candidates.

    ``candidates`` must come from `merge_duplicates` (unique, best first). An answer that
    overlaps a better one in the same document is skipped, so top-k shows k different places
    rather than "Paris" and "Paris, France".

    >>> cs = [Candidate(0, 0, 5, 2.0, 0.0), Candidate(0, 0, 12, 1.0, 0.0),
    ...       Candidate(1, 3, 4, 0.0, 0.0)]
    >>> [(c.doc_index, c.start, c.end) for c, _ in top_answers(cs, 2)]
    [(0, 0, 5), (1, 3, 4)]
    """
    if not candidates:
        return []
    logits = np.array([c.logit for c in candidates])
    log_z = float(np.logaddexp.reduce(logits))
    chosen: list[Candidate] = []
    for c in candidates:
        if len(chosen) == top_k:
            break
        if any(o.doc_index == c.doc_index and o.start < c.end and c.start < o.end for o in chosen):
            continue
        chosen.append(c)
    return [(c, math.exp(c.logit - log_z)) for c in chosen]


def null_score_diff(candidates: list[Candidate], null_logits: list[float]) -> float | None:
    """Best no-answer score minus best span score (SQuAD 2.0 convention, raw logits).

    The no-answer score is the lowest [CLS] score over the windows read, the window most
    sure it holds an answer (as in Google's ``run_squad.py``).
    """
    if not null_logits:
        return None
    best = candidates[0].logit if candidates else -math.inf
    return min(null_logits) - best


def context_line(text: str, start: int, end: int, width: int = 90) -> str:
    """Up to ``width`` characters either side of the answer, cut at spaces, on one line."""
    left = max(0, start - width)
    right = min(len(text), end + width)
    if left > 0:
        space = text.find(" ", left, start)
        left = space + 1 if space != -1 else left
    if right < len(text):
        space = text.rfind(" ", end, right)
        right = space if space != -1 else right
    snippet = re.sub(r"\s+", " ", text[left:right]).strip()
    return ("…" if left > 0 else "") + snippet + ("…" if right < len(text) else "")
