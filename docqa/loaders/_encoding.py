"""Bytes → str for text formats: BOM, then strict UTF-8, then a detector; never silent mojibake."""

from __future__ import annotations

import codecs
import re

from docqa.loaders._base import FileSkipped

# Longest BOMs first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Control characters (Unicode category Cc) other than the whitespace ones, and U+FFFD.
_NOT_TEXT = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")
#: Bytes looked at to recognise BOM-less UTF-16 (the pattern shows at once in real text).
_SNIFF_BYTES = 1 << 20


def _binary_ratio(text: str) -> float:
    """Share of characters that no text file holds: controls other than whitespace, U+FFFD."""
    if not text:
        return 0.0
    # A regular expression rather than a Python loop over every character, which cost more
    # than all the rest of loading a large file.
    return len(_NOT_TEXT.findall(text)) / len(text)


def _utf16_without_bom(data: bytes) -> str | None:
    """Recognise BOM-less UTF-16 by its zero high bytes (strict UTF-8 would accept it)."""
    if len(data) < 4 or len(data) % 2:
        return None
    sample = data[:_SNIFF_BYTES]
    even, odd = sample[0::2], sample[1::2]
    even_zero, odd_zero = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_zero > 0.3 and even_zero < 0.05:
        encoding = "utf-16-le"
    elif even_zero > 0.3 and odd_zero < 0.05:
        encoding = "utf-16-be"
    else:
        return None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    return text if _binary_ratio(text) < 0.05 else None


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode a text file's bytes; return ``(text, encoding)``.

    Raises ``FileSkipped`` for binary data (a PNG renamed ``.txt``), so a folder run reports it
    as skipped rather than feeding garbage to the reader.

    >>> decode_text("▶hello".encode())
    ('▶hello', 'utf-8')
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise FileSkipped(
                    f"The file starts with a {encoding} byte-order mark but is not valid "
                    f"{encoding} ({exc.reason} at byte {exc.start})."
                ) from None

    text = _utf16_without_bom(data)
    if text is not None:
        encoding = "utf-16-le" if data[1] == 0 else "utf-16-be"
        return text, encoding

    # Strict UTF-8 before any detector: detectors misjudge short texts such as "▶hello".
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        if _binary_ratio(text) > 0.3:
            raise FileSkipped("The file looks binary, not text.")
        return text, "utf-8"

    if data.count(0) > len(data) // 100:
        # Legacy 8-bit encodings never contain NUL in real text; many NULs mean a binary file.
        raise FileSkipped("The file looks binary, not text.")

    text, encoding = _detect(data)
    if _binary_ratio(text) > 0.05:
        raise FileSkipped("The file looks binary, not text.")
    return text, encoding


def _detect(data: bytes) -> tuple[str, str]:
    """Legacy 8-bit text: charset-normalizer's ranking, with ties going to cp1252.

    On short texts the detector cannot tell cp1252 from cp1250 or cp1257 (the same bytes read
    "crème" or "crčme" with equal "chaos"), and it breaks the tie arbitrarily. cp1252 is by far
    the most common legacy encoding, so it wins whenever it is about as plausible as the best
    match; a clearly better match (real Polish in cp1250) still wins.
    """
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise FileSkipped("The file looks binary, not text (no text encoding fits it).")
    best = min(m.chaos for m in matches)
    for match in matches:
        if match.chaos <= best + 0.02 and "cp1252" in match.could_be_from_charset:
            return data.decode("cp1252"), "cp1252"
    chosen = min(matches, key=lambda m: m.chaos)
    return str(chosen), chosen.encoding
