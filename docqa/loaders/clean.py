"""Text clean-up applied before a ``Document`` is built, so every offset refers to the clean text.

Two levels:

- ``clean_text`` for every format: line ends unified, NUL and other control characters removed
  (they break tokenizers and JSON output, and never carry meaning in prose).
- ``clean_pdf_text`` adds the repairs that PDF extraction needs: spacing diacritics that TeX
  fonts place *before* the letter (``Br¨oker`` → ``Bröker``), ligature code points
  (``ﬁ`` → ``fi``), and words hyphenated across line ends.

Both run on a page at a time before pages are joined, so page boundaries are computed on the
normalised text and answer offsets and page numbers agree.
"""

from __future__ import annotations

import re
import unicodedata

# Spacing (non-combining) accents → the combining mark they stand for. ASCII ` ^ ~ are left
# alone: in manuals they are code far more often than accents (``~/.gnuplot``, ``x^2``).
SPACING_DIACRITICS = {
    "\u00a8": "\u0308",  # ¨ diaeresis
    "\u00b4": "\u0301",  # ´ acute
    "\u02ca": "\u0301",  # ˊ modifier acute
    "\u02cb": "\u0300",  # ˋ modifier grave
    "\u02c6": "\u0302",  # ˆ circumflex
    "\u02dc": "\u0303",  # ˜ small tilde
    "\u00b8": "\u0327",  # ¸ cedilla
    "\u02c7": "\u030c",  # ˇ caron
    "\u02d8": "\u0306",  # ˘ breve
    "\u02da": "\u030a",  # ˚ ring above
    "\u02dd": "\u030b",  # ˝ double acute
    "\u00af": "\u0304",  # ¯ macron
    "\u02c9": "\u0304",  # ˉ modifier macron
    "\u02d9": "\u0307",  # ˙ dot above
    "\u02db": "\u0328",  # ˛ ogonek
}

#: Latin ligatures of the Alphabetic Presentation Forms block (U+FB00–U+FB06).
LIGATURES = {
    "\ufb00": "ff",
    "\ufb01": "fi",
    "\ufb02": "fl",
    "\ufb03": "ffi",
    "\ufb04": "ffl",
    "\ufb05": "st",
    "\ufb06": "st",
}

_DIACRITIC_BEFORE_LETTER = re.compile("([" + "".join(SPACING_DIACRITICS) + r"])([^\W\d_])")
_LIGATURE = re.compile("[" + "".join(LIGATURES) + "]")
# A line-end hyphen between two lower-case letters splits one word ("func-\ntion"); before an
# upper-case letter or a digit it is a real hyphen ("S-\nPlus", "978-\n0521"): keep it, drop
# only the line break. A soft hyphen (U+00AD) at a line end is always a split word.
_LINE_END_HYPHEN = re.compile(r"(?<=\w)-[ \t]*\n[ \t]*(?=\w)")
_SOFT_HYPHEN_BREAK = re.compile(r"\u00ad[ \t]*\n[ \t]*")
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\u00ad\ufeff\ufffe\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Unify line ends and drop control characters; keeps tabs and newlines.

    >>> clean_text("a\\x00b\\r\\nc\\fd")
    'ab\\nc\\nd'
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\f", "\n").replace("\v", "\n")
    return _CONTROLS.sub("", text)


def _compose(match: re.Match[str]) -> str:
    accent, letter = match.group(1), match.group(2)
    return unicodedata.normalize("NFC", letter + SPACING_DIACRITICS[accent])


def _join_split_word(match: re.Match[str]) -> str:
    before = match.string[match.start() - 1]
    after = match.string[match.end()]
    return "" if before.islower() and after.islower() else "-"


def clean_pdf_text(text: str) -> str:
    """Repair PDF extraction artefacts, then apply ``clean_text``.

    >>> clean_pdf_text("Hans-Bernhard Br¨oker, ﬁle func-\\ntion, S-\\nPlus")
    'Hans-Bernhard Bröker, file function, S-Plus'
    """
    text = _SOFT_HYPHEN_BREAK.sub("", text)
    text = _LIGATURE.sub(lambda m: LIGATURES[m.group(0)], text)
    text = _DIACRITIC_BEFORE_LETTER.sub(_compose, text)
    text = _LINE_END_HYPHEN.sub(_join_split_word, text)
    return clean_text(text)
