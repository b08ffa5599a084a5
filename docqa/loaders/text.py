"""Plain text (``.txt``): decoded carefully, control characters removed, one page."""

from __future__ import annotations

from docqa.loaders._base import LoadOptions, build_document
from docqa.loaders._encoding import decode_text
from docqa.loaders.clean import clean_text
from docqa.types import Document

SUFFIXES = (".txt",)


def load(data: bytes, source: str, options: LoadOptions) -> Document:
    """Load a plain-text file; binary data named ``.txt`` raises ``FileSkipped``."""
    text, encoding = decode_text(data)
    return build_document(clean_text(text), source, data, fmt="text", encoding=encoding)
