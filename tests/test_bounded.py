"""Safe by default (issue 15, items 6 and 7): memory bounded by a budget, not by file size, and
no file makes ``ask`` hang.

Fast tests pin the pieces: piecewise tokenization equals one pass, documents stored in parts give
the chunks and answers of one part, a killed build keeps its finished parts and vectors, the
HTML reader is linear and reads pages as BeautifulSoup's tree walk did, the file size limit.
Two slow tests run the CLI in a subprocess on the files of the issue (a 200 MB ``.txt``, a
50 MB one-line HTML page) and measure the peak memory of the process and its children.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PHRASE, ROOT, filler
from pdfgen import make_pdf
from typer.testing import CliRunner

import docqa.index
import docqa.windowing
from docqa import DocQA
from docqa.cli import app
from docqa.index import SCHEMA_VERSION, Index
from docqa.loaders import LoadOptions, load_paths
from docqa.loaders import html as html_loader
from docqa.retrieve import Bm25, bm25_tokens, make_chunks
from docqa.windowing import fast_backend, piece_bounds, tokenize_text

GB = 1 << 30


# --- generated text -----------------------------------------------------------------------

# Words of every kind a tokenizer treats specially: accents (composed and combining), CJK,
# punctuation runs, apostrophes, digits, astral characters, curly quotes.
TRICKY = [
    "the", "of", "heron", "valve", "pressure", "résumé", "naïve", "cafe\u0301", "Straße",
    "東京", "数据库", "don't", "U.S.A.", "...", "—", "«quoted»", "“curly”", "3.14159",
    "x86_64", "e-mail", "🙂", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "İstanbul", "ΑΘΗΝΑ", "hyphen-\nated", "tab\there",
]  # fmt: skip
SPACES = [" ", " ", " ", " ", "\n", "  ", "\n\n", "\t", " \n \t  "]


def tricky_text(n_chars: int, seed: int = 0) -> str:
    """About ``n_chars`` of words and spaces of every kind, with the hard cases (a long run
    of whitespace, a long run of ideographs without a space) planted every few kilobytes."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < n_chars:
        r = rng.random()
        if r < 0.002:
            piece = rng.choice([" " * rng.randint(100, 3000), "\n" * 600 + "\t" * 300])
        elif r < 0.003:
            piece = "".join(chr(0x4E00 + rng.randrange(2000)) for _ in range(rng.randint(50, 1500)))
        else:
            piece = rng.choice(TRICKY) + rng.choice(SPACES)
        out.append(piece)
        size += len(piece)
    return "".join(out)


def one_pass(tokenizer, text: str):
    """The reference: the whole text through the tokenizer at once, words grouped in Python."""
    enc = fast_backend(tokenizer).encode(text, add_special_tokens=False)
    starts = np.array([s for s, _ in enc.offsets], dtype=np.int64)
    ends = np.array([e for _, e in enc.offsets], dtype=np.int64)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, w in enumerate(enc.word_ids):
        first.setdefault(w, i)
        last[w] = i
    word_start = np.array([starts[first[w]] for w in enc.word_ids], dtype=np.int64)
    word_end = np.array([ends[last[w]] for w in enc.word_ids], dtype=np.int64)
    return np.array(enc.ids), starts, ends, word_start, word_end


def assert_same_tokens(got, expected) -> None:
    names = ("ids", "starts", "ends", "word_start", "word_end")
    for name, want in zip(names, expected, strict=True):
        have = getattr(got, name)
        assert len(have) == len(want), name
        bad = np.flatnonzero(have != want)
        assert not len(bad), f"{name} differs first at token {bad[0]} of {len(want)}"


# --- 6: tokenized in bounded pieces, same tokens and offsets as one pass -----------------


def test_tokenizing_in_pieces_gives_the_tokens_and_offsets_of_one_pass(tokenizer, monkeypatch):
    """A multi-MB text with accents, CJK, punctuation and long whitespace runs: the piecewise
    tokenization (default pieces, and tiny pieces that put a cut near every hard case) equals
    one pass over the whole text, token for token and offset for offset."""
    text = tricky_text(1_600_000)
    expected = one_pass(tokenizer, text)
    assert_same_tokens(tokenize_text(tokenizer, text), expected)
    assert len(piece_bounds(text, docqa.windowing.PIECE_CHARS)) > 20
    monkeypatch.setattr(docqa.windowing, "PIECE_CHARS", 997)
    assert_same_tokens(tokenize_text(tokenizer, text), expected)


def test_pieces_are_cut_where_whitespace_starts_and_cover_the_text() -> None:
    text = tricky_text(300_000, seed=3)
    bounds = piece_bounds(text, 1000)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert max(e - s for s, e in bounds) <= 1000
    for s, _ in bounds[1:]:
        cut_in_space = text[s] in " \t\n\r"
        # Inside a run of whitespace or after an ideograph only where no run starts nearby.
        assert cut_in_space or "\u4e00" <= text[s - 1] <= "\u9fff", repr(text[s - 5 : s + 5])
        if cut_in_space and text[s - 1] not in " \t\n\r":
            continue
        near = text[max(0, s - 500) : s]
        assert not re.search(r"\S[ \t\n\r]", near) or text[s - 1] in " \t\n\r", s


def test_byte_level_bpe_tokens_are_the_same_in_pieces(monkeypatch):
    """A byte-level BPE tokenizer (GPT-2, RoBERTa) folds a space into the word after it: the
    cuts keep each space with its word."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    corpus = [tricky_text(20_000, seed=s) for s in range(3)]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=600, show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer)
    # Runs without a space shorter than a piece's slack: a longer one is cut inside, where
    # only a tokenizer that splits around every ideograph (BERT) gives the same tokens.
    text = re.sub(r"[ \t\n]{200,}|[\u4e00-\u9fff]{200,}", " \n ", tricky_text(400_000, seed=7))
    expected = one_pass(tokenizer, text)
    monkeypatch.setattr(docqa.windowing, "PIECE_CHARS", 1500)
    assert_same_tokens(tokenize_text(tokenizer, text), expected)


# --- documents stored in parts ------------------------------------------------------------


class Killed(BaseException):
    """Stands for a kill: nothing after it runs, what was committed stays."""


def big_document_text(n_words: int = 6000) -> str:
    """A text whose phrase sits across what becomes a part boundary with small parts."""
    return f"{filler(n_words // 2)} Each autumn the {PHRASE} to Africa. {filler(n_words // 2, 3)}"


def test_a_document_in_parts_has_the_windows_and_tokens_of_one_part(tmp_path, scheme, monkeypatch):
    """Stored in many small parts, a document is tokenized part by part (each part committed
    on its own) into exactly the chunks, BM25 terms and tokens of one pass, and reads back
    whole: text, token ranges across part boundaries, search hits."""
    text = big_document_text()
    path = tmp_path / "docs" / "big.txt"
    path.parent.mkdir()
    path.write_text(text)
    with Index(tmp_path / "whole") as index:
        index.update([path], scheme)
        db = index.connect()
        whole = db.execute(
            "SELECT position, token_start, token_end, char_start, char_end, terms FROM chunks "
            "ORDER BY position"
        ).fetchall()
        [doc_id] = index.update([path], scheme).doc_ids
        whole_tokens = index.tokenized(doc_id, scheme)
    monkeypatch.setattr(docqa.index.ingest, "PART_CHARS", 1500)
    calls = []
    real = docqa.index.ingest.tokenize_text

    def counting(tokenizer, piece):
        calls.append(len(piece))
        return real(tokenizer, piece)

    monkeypatch.setattr(docqa.index.ingest, "tokenize_text", counting)
    seen = []
    with Index(tmp_path / "parts") as index:
        report = index.update([path], scheme, pieces=lambda *a: seen.append(a))
        db = index.connect()
        parts = db.execute("SELECT COUNT(*) FROM texts").fetchone()[0]
        assert parts == len(calls) > 10 and max(calls) <= 1500
        assert seen[-1] == (parts, parts, f"chunks of {path}")
        assert (
            db.execute(
                "SELECT position, token_start, token_end, char_start, char_end, terms "
                "FROM chunks ORDER BY position"
            ).fetchall()
            == whole
        )
        [doc_id] = report.doc_ids
        assert index.document(doc_id).text == text
        tokens = index.tokenized(doc_id, scheme)
        for name in ("ids", "starts", "ends", "word_start", "word_end"):
            assert np.array_equal(getattr(tokens, name), getattr(whole_tokens, name)), name
        # A range read across part boundaries is the same slice of the whole.
        lo, hi = len(tokens) // 3, 2 * len(tokens) // 3
        for cached in (1 << 16, 0):  # parts cached whole, or only the range read
            monkeypatch.setattr(docqa.index.search, "CACHED_PART_TOKENS", cached)
            index._tokens_cache.clear()
            middle = index.tokens(doc_id, scheme, lo, hi)
            for name in ("ids", "starts", "ends", "word_start", "word_end"):
                assert np.array_equal(getattr(middle, name), getattr(whole_tokens, name)[lo:hi])
        [hit] = index.search("kestrel autumn", report.doc_ids, scheme, k=1)
        assert PHRASE in text[hit.start : hit.end]


def test_indexing_a_large_file_shows_its_parts_on_a_terminal(tmp_path, monkeypatch):
    """Issue 15, item 7: slow work inside one file shows progress on a terminal."""
    import io

    from rich.console import Console

    import docqa.cli

    screen = io.StringIO()
    monkeypatch.setattr(docqa.cli, "err", Console(file=screen, force_terminal=True, width=120))
    monkeypatch.setattr(docqa.index.ingest, "PART_CHARS", 3000)
    real = docqa.index.ingest.tokenize_text

    def slow(tokenizer, piece):
        time.sleep(0.15)  # long enough for the bar to be drawn between parts
        return real(tokenizer, piece)

    monkeypatch.setattr(docqa.index.ingest, "tokenize_text", slow)
    (tmp_path / "big.txt").write_text(big_document_text(3000))
    args = ["index", "--no-dense", "--index", str(tmp_path / "ix"), str(tmp_path / "big.txt")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert re.search(r"Indexing chunks of \S*big\.txt .* \d+/\d+", screen.getvalue())


def test_answers_from_a_document_in_parts_point_into_its_whole_text(tmp_path, plant, monkeypatch):
    """Answers carry offsets into the whole file's text, ``Answer.document.text[a.start:a.end]
    == a.text``, and reading them loads only the tokens around the chunks read."""
    plant({PHRASE: 10.0})
    monkeypatch.setattr(docqa.index.ingest, "PART_CHARS", 2000)
    text = big_document_text(8000)
    (tmp_path / "big.txt").write_text(text)
    read = []
    real = Index.tokens

    def tokens(self, doc_id, scheme, lo=0, hi=None):
        found = real(self, doc_id, scheme, lo, hi)
        read.append(len(found))
        return found

    monkeypatch.setattr(Index, "tokens", tokens)
    qa = DocQA(index=tmp_path / "ix", dense=False, chunks=3)
    [answer] = qa.ask("Where does the kestrel migrate?", tmp_path / "big.txt")
    assert answer.text == PHRASE
    assert answer.start == text.index(PHRASE)
    assert answer.document.text[answer.start : answer.end] == answer.text
    assert answer.document.text == text
    assert read and max(read) < 2000, "only the tokens near the chunks read"


def test_a_killed_tokenization_keeps_its_finished_parts_and_the_next_run_carries_on(
    tmp_path, scheme, monkeypatch
):
    """Regression (issue 15, item 7): a large file was tokenized and committed in one
    transaction, so a kill lost all of it. Now each part is committed as it is done; the next
    run parses nothing and tokenizes only the parts left, into the chunks of one pass."""
    text = big_document_text()
    path = tmp_path / "big.txt"
    path.write_text(text)
    with Index(tmp_path / "reference") as index:
        index.update([path], scheme)
        reference = index.connect().execute("SELECT * FROM chunks ORDER BY id").fetchall()
    monkeypatch.setattr(docqa.index.ingest, "PART_CHARS", 1500)
    real = docqa.index.ingest.tokenize_text
    calls = []
    killed = []

    def dies_on_the_fifth_part(tokenizer, piece):
        calls.append(piece)
        if len(calls) == 5 and not killed:
            killed.append(piece)
            raise Killed  # as good as a kill for what has been committed
        return real(tokenizer, piece)

    monkeypatch.setattr(docqa.index.ingest, "tokenize_text", dies_on_the_fifth_part)
    with Index(tmp_path / "ix") as index:
        with pytest.raises(Killed):
            index.update([path], scheme)
        db = index.connect()
        assert db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 4
        kept = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        assert kept > 0
        parts = db.execute("SELECT COUNT(*) FROM texts").fetchone()[0]
        calls.clear()
        report = index.update([path], scheme)
        assert report.parsed == 0 and len(calls) == parts - 4
        rows = db.execute("SELECT * FROM chunks ORDER BY id").fetchall()
    assert [r[2:] for r in rows] == [r[2:] for r in reference]


class FakeEncoder:
    """Stands in for the sentence encoder: one vector per window, counted; fails on demand."""

    name = "fake-encoder"

    def __init__(self, fail_after: int | None = None):
        self.batches = 0
        self.fail_after = fail_after

    def encode_chunks(self, text, ranges):
        if self.fail_after is not None and self.batches == self.fail_after:
            raise Killed
        self.batches += 1
        assert len(text) == max(e for _, e in ranges)  # only the batch's text is read
        vectors = np.ones((len(ranges), 384), dtype=np.float32)
        return vectors, np.arange(len(ranges))


def test_vectors_are_committed_in_batches_with_progress(tmp_path, scheme, monkeypatch):
    """Regression (issue 15, item 7: 13 minutes of vectors for one file were lost in one
    transaction): vectors are committed a batch of chunks at a time, with progress, and a kill
    loses only the batch in flight."""
    monkeypatch.setattr(docqa.index.ingest, "VECTOR_BATCH", 8)
    # A batch holds whole blocks of chunks (their pieces are cut together): blocks of 4 here.
    monkeypatch.setattr(docqa.index.ingest, "PIECE_BLOCK", 4)
    path = tmp_path / "doc.txt"
    path.write_text(big_document_text(3000))
    with Index(tmp_path / "ix") as index:
        with pytest.raises(Killed):
            index.update([path], scheme, encoder=FakeEncoder(fail_after=3))
        db = index.connect()
        chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        assert chunks > 40
        assert db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 3 * 8
        seen = []
        encoder = FakeEncoder()
        index.update([path], scheme, encoder=encoder, pieces=lambda *a: seen.append(a))
        assert db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == chunks
        batches = -(-(chunks - 24) // 8)
        assert encoder.batches == batches
        assert [d for d, _, _ in seen] == list(range(1, batches + 1))
        assert {(t, w) for _, t, w in seen} == {(batches, "vectors of doc.txt")}


# --- BM25 without a string per term -------------------------------------------------------


def test_bm25_from_term_counts_scores_as_bm25s_does() -> None:
    rng = random.Random(1)
    words = ["cat", "dog", "bird", "fish", "heron", "river", "valve", "pressure", "manual"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    token_lists = bm25_tokens(texts)
    vocab: dict[str, int] = {}
    indptr, terms, counts = [0], [], []
    for tokens in token_lists:
        ids = np.array([vocab.setdefault(t, len(vocab)) for t in tokens], dtype=np.int64)
        u, c = np.unique(ids, return_counts=True)
        terms.append(u)
        counts.append(c)
        indptr.append(indptr[-1] + len(u))
    built = Bm25.from_term_counts(
        vocab,
        np.array(indptr),
        np.concatenate(terms),
        np.concatenate(counts),
        np.array([len(t) for t in token_lists]),
    )
    reference = Bm25(token_lists)
    for query in ("cat heron", "battery manual river", "dog", "zebra"):
        q = bm25_tokens([query])[0]
        assert np.array_equal(built.scores(q), reference.scores(q))
    assert np.array_equal(Bm25.from_state(built.to_state()).scores(["cat"]), built.scores(["cat"]))


def test_bm25_terms_are_those_of_bm25s_own_pattern() -> None:
    """`bm25_tokens` finds words with ``\\w\\w+`` (faster) rather than bm25s's
    ``\\b\\w\\w+\\b``: the same words."""
    import bm25s
    import Stemmer

    from docqa.retrieve import STOPWORDS

    texts = [tricky_text(3000, seed=s) for s in range(20)] + ["x86_64 a b, don't", ""]
    cleaned = [t.replace("_", " ") for t in texts]
    stemmer = Stemmer.Stemmer("english")
    reference = bm25s.tokenize(
        cleaned, stopwords=STOPWORDS, stemmer=stemmer, return_ids=False, show_progress=False
    )
    assert bm25_tokens(texts) == [list(t) for t in reference]


def test_window_terms_are_bm25_tokens() -> None:
    """The index's own term extraction for chunks gives `bm25_tokens`' terms."""
    texts = [tricky_text(5000, seed=s) for s in range(30)]
    texts += ["", "x86_64 a b, don't The THE the", "İstanbul ΣΑΣ ς Straße"]
    assert docqa.index.ingest._chunk_terms(texts) == [" ".join(t) for t in bm25_tokens(texts)]


def test_the_index_builds_bm25_from_stored_terms_as_before(tmp_path, scheme) -> None:
    """The index's BM25 (built window block by window block) ranks as ``Bm25`` over every
    window's terms did."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(4):
        (folder / f"d{i}.txt").write_text(f"{filler(300, i)} heron {i} valve {filler(50, i)}")
    with Index(tmp_path / "ix") as index:
        report = index.update([folder], scheme)
        db = index.connect()
        rows = db.execute("SELECT terms FROM chunks ORDER BY id").fetchall()
        reference = Bm25([t.split() for (t,) in rows])
        built = index._corpus(scheme, None).retriever.bm25
        for query in ("heron valve", "three four", "nothing"):
            q = bm25_tokens([query])[0]
            assert np.array_equal(built.scores(q), reference.scores(q))
        assert len(report.doc_ids) == 4


# --- the file size limit ------------------------------------------------------------------


def test_a_file_over_max_file_mb_is_skipped_unread_with_the_reason(tmp_path, monkeypatch):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "small.txt").write_text("Small file about herons. " + filler(50))
    (folder / "large.txt").write_text("Large file. " + filler(300_000))  # about 1.4 MB
    read = []
    real = Path.read_bytes

    def read_bytes(self):
        read.append(self.name)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result = load_paths([folder], options=LoadOptions(max_file_mb=1))
    states = {Path(s.path).name: (s.state, s.reason) for s in result.statuses}
    assert states["small.txt"] == ("ok", "")
    state, reason = states["large.txt"]
    assert state == "skipped" and "over the 1 MB limit" in reason and "--max-file-mb" in reason
    assert read == ["small.txt"], "the large file was not read"
    assert LoadOptions().max_file_mb == 512


def test_max_file_mb_on_the_command_line_and_a_larger_limit_later(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "small.txt").write_text("Small file about herons. " + filler(50))
    (folder / "large.txt").write_text("Large file about valves. " + filler(300_000))
    runner = CliRunner()
    ix = str(tmp_path / "ix")
    base = ["--no-dense", "--index", ix, "--json"]
    result = runner.invoke(app, ["index", *base, "--max-file-mb", "1", str(folder)])
    assert result.exit_code == 0, result.output
    files = {Path(f["path"]).name: f for f in json.loads(result.stdout)["files"]}
    assert files["large.txt"]["state"] == "skipped"
    assert "1 MB limit" in files["large.txt"]["reason"]
    result = runner.invoke(app, ["search", *base, "--max-file-mb", "1", "valves", str(folder)])
    assert result.exit_code == 0, result.output
    assert "large.txt" not in {Path(h["source"]).name for h in json.loads(result.stdout)["hits"]}
    # Under the default limit the same file is read: a skip for size is not remembered.
    result = runner.invoke(app, ["search", *base, "valves", str(folder)])
    hits = json.loads(result.stdout)["hits"]
    assert Path(hits[0]["source"]).name == "large.txt"


# --- HTML: linear time, same text as the tree walk ----------------------------------------


def test_html_with_unclosed_tags_nesting_deep_reads_in_linear_time() -> None:
    """Regression (issue 15, item 7): every text asked for its ancestors (``find_parent``),
    quadratic in the nesting depth; a page of unclosed ``<p>`` and ``<div>`` (common in real
    HTML) nests as deep as it is long, and a 50 MB one-line page never finished."""
    body = "".join(f"<p>para {i} <b>bold</b> text<div>block {i}" for i in range(15_000))
    data = f"<html><body><h1>Title</h1>{body}</body></html>".encode()
    # No wall-clock bound here: the loader's own time budget (`LoadOptions.html_timeout_s`)
    # is the generous timeout; a quadratic walk runs past it and raises instead of loading.
    doc = html_loader.load(data, "deep.html", LoadOptions())
    lines = doc.text.split("\n")
    assert lines[:3] == ["Title", "para 0 bold text", "block 0"]
    assert lines[-1] == "block 14999" and len(lines) == 1 + 2 * 15_000
    assert [(s.title, s.start) for s in doc.sections] == [("Title", 0)]


def test_html_time_budget() -> None:
    """Past its time budget a page is given up with a reason (a status, not a hang)."""
    page = "<p>" + "<b>x</b> " * 300_000
    with pytest.raises(Exception, match="longer than"):
        html_loader.extract(page, timeout_s=0.0)


def _tree_walk_reference(data: bytes):
    """The loader as it was, over BeautifulSoup's tree: the reference for the streaming one."""
    from bs4 import BeautifulSoup, NavigableString, Tag
    from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

    from docqa.loaders.clean import clean_text
    from docqa.types import Section

    soup = BeautifulSoup(data, "html.parser")
    out = html_loader._TextWriter()
    sections, heading, stack = [], None, [soup]
    while stack:
        node = stack.pop()
        if node is None:
            out.separate("\n")
        elif isinstance(node, NavigableString):
            if isinstance(node, (Comment, Declaration, Doctype, ProcessingInstruction)):
                continue
            if node.find_parent("pre") is not None:
                start = out.write(str(node), verbatim=True)
            else:
                start = out.write(re.sub(r"\s+", " ", str(node)))
            if heading is not None and start is not None:
                sections.append(Section(heading, start))
                heading = None
        elif isinstance(node, Tag):
            name = node.name.lower()
            style = str(node.get("style", "")).replace(" ", "").lower()
            if name in html_loader._INVISIBLE or node.has_attr("hidden") or "display:none" in style:
                continue
            if name in html_loader._HEADINGS:
                heading = re.sub(r"\s+", " ", node.get_text()).strip() or None
            if name in html_loader._BLOCKS:
                out.separate("\n")
                stack.append(None)
            elif name in ("td", "th") and node.find_previous_sibling(("td", "th")) is not None:
                out.separate("\t")
            stack.extend(reversed(node.contents))
    text = out.text()
    cleaned = clean_text(text)
    if cleaned != text:
        sections = html_loader._relocate(cleaned, tuple(sections))
    return cleaned, tuple(sections), soup.original_encoding


# fmt: off
TAGS = [
    "p", "div", "span", "b", "td", "th", "tr", "table", "h1", "h2", "pre", "script", "style",
    "br", "hr", "img", "li", "ul", "title", "head", "svg", "rt", "rp", "template", "a",
    "section", "noscript", "caption",
]
# fmt: on
BITS = [
    "alpha",
    "beta gamma",
    " ",
    "  ",
    "\n",
    "\t",
    "\xa0",
    "&amp;",
    "&#150;",
    "&#x41;",
    "&nbsp;",
    "&foo;",
    "&#0;",
    "&#99999999;",
    "&lt;",
    "a < b",
    "&",
    "&#",
    "café",
    "東京",
    "\r\n",
]  # fmt: skip


def random_page(rng: random.Random) -> bytes:
    out = []
    for _ in range(rng.randint(1, 60)):
        r = rng.random()
        if r < 0.35:
            attrs = "".join(
                a
                for a, p in ((" hidden", 0.1), (" style='display: none'", 0.1), (" id=x", 0.1))
                if rng.random() < p
            )
            close = "/" if rng.random() < 0.1 else ""
            out.append(f"<{rng.choice(TAGS)}{attrs}{close}>")
        elif r < 0.6:
            out.append(f"</{rng.choice(TAGS)}>")
        elif r < 0.63:
            out.append(rng.choice(["<!-- c -->", "<![CDATA[cd]]>", "<!DOCTYPE html>", "<?pi?>"]))
        else:
            out.append(rng.choice(BITS))
    return "".join(out).encode(rng.choice(["utf-8", "utf-8", "cp1252"]), "replace")


def test_html_text_and_headings_are_those_of_the_tree_walk() -> None:
    """The streaming reader gives the text, headings and encoding that walking
    BeautifulSoup's tree gave, on random tag soup: unclosed and stray tags, hidden and
    invisible elements, cells, ``<pre>``, entities, comments, CDATA, legacy encodings."""
    rng = random.Random(0)
    for _ in range(600):
        data = random_page(rng)
        text, sections, encoding = _tree_walk_reference(data)
        doc = html_loader.load(data, "page.html", LoadOptions())
        assert doc.text == text, data
        assert doc.sections == sections, data
        assert doc.meta["encoding"] == (encoding or "utf-8"), data


# --- schema 1 indexes are migrated --------------------------------------------------------


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL, pages TEXT NOT NULL, sections TEXT NOT NULL, meta TEXT NOT NULL);
CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT, state TEXT NOT NULL, reason TEXT NOT NULL,
    doc_id INTEGER REFERENCES documents(id) ON DELETE SET NULL, indexed_at REAL NOT NULL);
CREATE TABLE tokens (doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    scheme TEXT NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (doc_id, scheme));
CREATE TABLE windows (id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE, scheme TEXT NOT NULL,
    position INTEGER NOT NULL, token_start INTEGER NOT NULL, token_end INTEGER NOT NULL,
    char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, terms TEXT NOT NULL);
CREATE TABLE vectors (window_id INTEGER PRIMARY KEY REFERENCES windows(id) ON DELETE CASCADE,
    encoder TEXT NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE bm25 (scheme TEXT PRIMARY KEY, generation INTEGER NOT NULL, state BLOB NOT NULL);
"""


def test_a_version_1_index_is_migrated_without_parsing_again(tmp_path, scheme, monkeypatch):
    """An index written before texts were stored in parts opens, answers searches and is
    updated without parsing or tokenizing its files again; every later migration runs too."""
    text = f"{filler(200)} Each autumn the {PHRASE} to Africa. {filler(100)}"
    path = tmp_path / "birds.txt"
    path.write_text(text)
    folder = tmp_path / "ix"
    folder.mkdir()
    tokens = tokenize_text(scheme.tokenizer, text)
    chunks = make_chunks(tokens, 0, scheme.chunk_len, scheme.stride)
    terms = bm25_tokens([text[c.start : c.end] for c in chunks])
    st = path.stat()
    with sqlite3.connect(folder / "index.sqlite3") as db:
        db.executescript(V1_SCHEMA)
        db.execute("INSERT INTO meta VALUES ('generation', '3')")
        db.execute(
            "INSERT INTO documents VALUES (1, 'abc', ?, ?, '[]', '{}')",
            (text, json.dumps([[1, 0, len(text)]])),
        )
        db.execute(
            "INSERT INTO files VALUES (?, ?, ?, 'abc', 'ok', '', 1, 0)",
            (str(path), st.st_size, st.st_mtime_ns),
        )
        packed = np.stack(
            [tokens.ids, tokens.starts, tokens.ends, tokens.word_start, tokens.word_end]
        ).astype("<i4")
        db.execute(
            "INSERT INTO tokens VALUES (1, ?, ?, ?)", (scheme.key, len(tokens), packed.tobytes())
        )
        db.executemany(
            "INSERT INTO windows (doc_id, scheme, position, token_start, token_end, char_start, "
            "char_end, terms) VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
            [
                (scheme.key, i, c.token_start, c.token_end, c.start, c.end, " ".join(t))
                for i, (c, t) in enumerate(zip(chunks, terms, strict=True))
            ],
        )
        vector = np.ones((1, 4), dtype=np.float16).tobytes()
        db.execute("INSERT INTO vectors VALUES (1, 'enc', 1, ?)", (vector,))
        db.execute("PRAGMA user_version=1")
    db.close()
    monkeypatch.setattr(docqa.index.ingest, "tokenize_text", None)  # must not be needed
    with Index(folder) as index:
        db = index.connect()
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        # Version 4 renamed windows to chunks: the rows and the vectors' references are kept.
        assert db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == len(chunks)
        assert db.execute("SELECT chunk_id, encoder FROM vectors").fetchall() == [(1, "enc")]
        report = index.update([path], scheme)
        assert (report.parsed, report.tokenized) == (0, 0)
        assert index.document(1).text == text
        assert np.array_equal(index.tokenized(1, scheme).word_end, tokens.word_end)
        [hit] = index.search("kestrel autumn", report.doc_ids, scheme, k=1)
        assert PHRASE in hit.snippet


# --- the files of the issue, in a subprocess ----------------------------------------------


def _tree_rss(pid: int) -> int:
    """Resident memory of ``pid`` and every process under it, in bytes."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return total


def run_measured(args: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, int, float]:
    """Run ``python -m docqa ARGS``; return the result, the peak resident memory of the
    process and its children together (sampled), and the wall time."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "true"}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "docqa", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(child.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"docqa {args[0]} did not finish in {timeout:g} s: {err[-2000:]}")
    finally:
        done.set()
        sampler.join()
    result = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    return result, peak, time.perf_counter() - started


# fmt: off
ENGLISH = [
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at",
    "from", "his", "her", "it", "an", "were", "are", "which", "this", "be", "or", "has", "had",
    "not", "but", "their", "also", "its", "first", "one", "new", "two", "after", "who", "they",
    "have", "been", "other", "all", "more", "when", "there", "into", "time", "during", "year",
    "only", "would", "over", "most", "three", "city", "between", "school", "later", "world",
    "some", "under", "may", "where", "while", "about", "team", "like", "both", "river", "valve",
    "pressure", "battery", "manual", "chapter", "section", "figure", "table", "system",
    "“quoted”", "naïve", "café", "résumé",
]
# fmt: on


def english_blocks(n_blocks: int, block_bytes: int, seed: int) -> list[bytes]:
    """Distinct blocks of random English-like words and newlines, quickly (numpy)."""
    rng = np.random.default_rng(seed)
    words = np.array([w.encode() for w in ENGLISH], dtype=object)
    blocks = []
    for _ in range(n_blocks):
        n = block_bytes // 5
        chosen = words[rng.integers(0, len(words), n)]
        seps = np.where(rng.random(n) < 1 / 14, b"\n", b" ").astype(object)
        joined = np.empty(2 * n, dtype=object)
        joined[0::2], joined[1::2] = chosen, seps
        blocks.append(b"".join(joined.tolist())[:block_bytes])
    return blocks


def write_text_file(path: Path, megabytes: int) -> None:
    blocks = english_blocks(8, 1 << 20, seed=1)
    order = np.random.default_rng(2).integers(0, len(blocks), megabytes)
    with open(path, "wb") as f:
        for i in order:
            f.write(blocks[i])


def write_one_line_html(path: Path, megabytes: int) -> None:
    """A page on one line the way old sites and exports write it: paragraphs and list items
    never closed (so they nest as deep as the page is long), inline markup, tables, scripts."""
    rng = np.random.default_rng(3)
    texts = [b.replace(b"\n", b" ") for b in english_blocks(4, 1 << 16, seed=4)]
    parts = []
    for i in range(64):
        t = texts[i % len(texts)]
        at = [int(x) for x in sorted(rng.integers(0, len(t) - 600, 40))]
        para = b"".join(b"<p>%s <b>%s</b>" % (t[a : a + 300], t[a + 300 : a + 340]) for a in at)
        parts.append(
            para
            + b"<ul><li>"
            + t[:200]
            + b"<li>"
            + t[200:400]
            + b"</ul><table><tr><td>"
            + t[400:450]
            + b"<td>"
            + t[450:500]
            + b"</tr></table><script>var data = '"
            + t[500:900]
            + b"';</script>"
        )
    chunk = b"".join(parts)
    with open(path, "wb") as f:
        f.write(b"<!DOCTYPE html><html><head><title>Export</title><style>p{margin:0}</style>")
        f.write(b"</head><body><h1>Exported pages</h1>")
        written = 0
        while written < megabytes << 20:
            f.write(chunk)
            written += len(chunk)
        f.write(b"</body></html>")


def word_level_tokenizer(folder: Path) -> Path:
    """A tokenizer folder that splits at spaces and looks words up (one token per word, as
    BERT gives for these words), several times faster than BERT's: the memory measured is
    docqa's, and the test stays within its time."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])}
    for w in [*ENGLISH, "violet", "kestrel", "migrates", "southward"]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    ).save_pretrained(folder)
    return folder


def word_level_reader(folder: Path) -> Path:
    """A tiny random BERT reader over `word_level_tokenizer` (random weights: retrieval, not
    the reader, decides which file an answer comes from when one window is read)."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    word_level_tokenizer(folder)
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertForQuestionAnswering(config).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_a_200_mb_text_file_is_indexed_and_searched_within_the_memory_budget(
    tmp_path_factory,
):
    """Issue 15, item 6: a 200 MB ``.txt`` (12 GB+ and killed before) is indexed and searched,
    in one ``docqa search`` process, with peak memory (the process and its children
    together) under 1.5 GB."""
    folder = tmp_path_factory.mktemp("big-text")
    write_text_file(folder / "big.txt", 200)
    model = word_level_tokenizer(tmp_path_factory.mktemp("wordlevel"))
    ix = tmp_path_factory.mktemp("ix")
    args = ["search", "--no-dense", "--index", str(ix), "--model", str(model), "--json"]
    result, peak, seconds = run_measured([*args, "valve pressure battery", str(folder)], 900)
    assert result.returncode == 0, result.stderr[-3000:]
    hits = json.loads(result.stdout)["hits"]
    assert hits and Path(hits[0]["source"]).name == "big.txt"
    with sqlite3.connect(ix / "index.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM texts").fetchone()[0] > 40, "stored in parts"
    db.close()
    print(f"\nindex and search 200 MB: {seconds:.0f} s, peak {peak / GB:.2f} GB")
    assert peak < 1.5 * GB


@pytest.mark.slow
def test_a_50_mb_one_line_html_page_beside_a_pdf_answers_from_the_pdf_in_bounded_time(
    tmp_path_factory,
):
    """Issue 15, items 6 and 7: a 50 MB one-line HTML page (which never finished before)
    beside a good PDF: ``docqa ask`` answers from the PDF, in bounded time and memory."""
    folder = tmp_path_factory.mktemp("html-and-pdf")
    write_one_line_html(folder / "export.html", 50)
    make_pdf(folder / "birds.pdf", [f"Each autumn the {PHRASE} to Africa. " + filler(100)])
    ix = tmp_path_factory.mktemp("ix")
    reader = word_level_reader(tmp_path_factory.mktemp("reader"))
    args = ["ask", "--no-dense", "--chunks", "1", "--index", str(ix), "--model", str(reader)]
    question = "Where does the kestrel migrate in autumn?"
    result, peak, seconds = run_measured([*args, "--json", question, str(folder)], timeout=420)
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout)
    assert {f["state"] for f in payload["files"]} == {"ok"}
    assert Path(payload["answers"][0]["source"]).name == "birds.pdf"
    print(f"\nask beside a 50 MB page: {seconds:.0f} s, peak {peak / GB:.2f} GB")
    assert peak < 1.5 * GB
