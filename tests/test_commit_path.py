"""The index's commit path (issue 21, mutation testing): the rows a file leaves in the index
when its text is stored in parts, when tokenizing it is interrupted and carried on, and the
store's helpers that write and read those rows. In process and fast: the tests of a large file
in a killed process (tests/test_ingest.py, tests/test_bounded.py) take minutes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import filler

import docqa.index.ingest
from docqa.index import ChunkScheme, Index
from docqa.index.store import (
    pack_tokens,
    read_block,
    read_vectors,
    text_range,
    tokens_from_blocks,
    write_vectors,
)
from docqa.retrieve import make_chunks
from docqa.windowing import TokenizedText, tokenize_text

#: Every column of a stored chunk but its id (ids differ between two indexes).
CHUNKS = (
    "SELECT position, token_start, token_end, char_start, char_end, terms FROM chunks "
    "ORDER BY position"
)


def long_text(lines: int = 24) -> str:
    """A text of several chunks, each line different (so that chunks differ in terms too)."""
    return " ".join(f"{filler(12, i)} Line{i} alpha{i % 7}." for i in range(lines))


class Stop(Exception):
    """Raised by a progress callback to interrupt an update between two committed parts."""


def build(folder, text: str, scheme, part_chars: int, monkeypatch, stop_after: int = 0):
    """An index of one file of ``text`` stored in parts of ``part_chars`` characters; with
    ``stop_after``, the update is interrupted once that many parts are committed."""
    monkeypatch.setattr(docqa.index.ingest, "PART_CHARS", part_chars)
    source = folder / "docs" / "long.txt"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(text)
    index = Index(folder / "ix")

    def pieces(done, total, what):
        assert what == "chunks of " + str(source)
        if stop_after and done >= stop_after:
            raise Stop

    if stop_after:
        with pytest.raises(Stop):
            index.update([source], scheme, pieces=pieces)
    else:
        index.update([source], scheme, pieces=pieces)
    return index, source


def rows(index: Index, sql: str, *args) -> list[tuple]:
    return index.connect().execute(sql, args).fetchall()


def stored_tokens(index: Index, scheme) -> TokenizedText:
    """The document's tokens as the index holds them, all parts joined."""
    db = index.connect()
    parts = rows(index, "SELECT part, char_start FROM texts ORDER BY part")
    (doc_id,) = rows(index, "SELECT id FROM documents")[0]
    blocks = [read_block(db, doc_id, scheme.key, part) for part, _ in parts]
    return tokens_from_blocks(blocks, [start for _, start in parts])


def test_a_document_stored_in_parts_gets_the_chunks_and_tokens_of_one_pass(
    tmp_path, scheme, monkeypatch
):
    """Regression (commit path): a document stored in text parts (each tokenized and committed
    on its own, the last chunk of a part carried into the next) has the tokens, chunks and BM25
    terms of the whole text tokenized and chunked at once, with parts smaller than a chunk too."""
    text = long_text()
    whole = tokenize_text(scheme.require_tokenizer(), text)
    expected = make_chunks(whole, 0, scheme.chunk_len, scheme.stride)
    assert len(expected) >= 4
    one, _ = build(tmp_path / "one", text, scheme, 1 << 22, monkeypatch)
    reference = rows(one, CHUNKS)
    assert [r[:5] for r in reference] == [
        (i, c.token_start, c.token_end, c.start, c.end) for i, c in enumerate(expected)
    ]
    assert all(r[5] for r in reference)  # every chunk has terms
    for part_chars in (120, 400, 700):
        index, _ = build(tmp_path / f"p{part_chars}", text, scheme, part_chars, monkeypatch)
        with index:
            parts = rows(index, "SELECT part, char_start, text FROM texts ORDER BY part")
            assert len(parts) > 2
            assert [p for p, _, _ in parts] == list(range(len(parts)))
            assert "".join(t for _, _, t in parts) == text
            assert rows(index, "SELECT chars, parts FROM documents") == [(len(text), len(parts))]
            # One tokens row per part, each starting where the tokens before it end.
            counts = rows(index, "SELECT part, token_start, n FROM tokens ORDER BY part")
            assert [c[0] for c in counts] == list(range(len(parts)))
            assert [c[1] for c in counts] == list(np.cumsum([0] + [c[2] for c in counts[:-1]]))
            got = stored_tokens(index, scheme)
            for name in ("ids", "starts", "ends", "word_start", "word_end"):
                assert getattr(got, name).tolist() == getattr(whole, name).tolist(), name
            assert rows(index, CHUNKS) == reference
            assert rows(index, "SELECT COUNT(DISTINCT doc_id) FROM chunks") == [(1,)]
    one.close()


@pytest.mark.parametrize("part_chars", [120, 700])
def test_an_interrupted_tokenization_carries_on_to_the_chunks_of_one_clean_run(
    tmp_path, scheme, monkeypatch, part_chars
):
    """Regression (commit path, `_carry_into`): an update stopped after any committed part
    keeps those parts; the next update tokenizes only the parts left (reading the text back
    from the index) and ends with the same tokens and chunks as a run never stopped."""
    text = long_text()
    clean, _ = build(tmp_path / "clean", text, scheme, part_chars, monkeypatch)
    with clean:
        reference = rows(clean, CHUNKS)
        n_parts = rows(clean, "SELECT parts FROM documents")[0][0]
        tokens = rows(clean, "SELECT part, token_start, n, data FROM tokens ORDER BY part")
        generation = clean.generation()
    assert n_parts > 2
    assert generation == n_parts + 1  # one bump per part, one at the end of the update
    tokenized: list[str] = []
    told: list[tuple] = []
    real_tokenize = docqa.index.ingest.tokenize_text

    def counting(tokenizer, piece):
        tokenized.append(piece)
        return real_tokenize(tokenizer, piece)

    for stop_after in range(1, n_parts):
        folder = tmp_path / f"stop{stop_after}"
        index, source = build(folder, text, scheme, part_chars, monkeypatch, stop_after)
        with index:
            assert len(rows(index, "SELECT part FROM tokens")) == stop_after
            kept = rows(index, CHUNKS)
            assert kept == reference[: len(kept)]  # what was committed is already final
            tokenized.clear()
            monkeypatch.setattr(docqa.index.ingest, "tokenize_text", counting)
            told.clear()
            r = index.update([source], scheme, pieces=lambda *a: told.append(a))
            monkeypatch.setattr(docqa.index.ingest, "tokenize_text", real_tokenize)
            # The parts left are told as the first run told them.
            label = f"chunks of {source}"
            assert told == [(p, n_parts, label) for p in range(stop_after + 1, n_parts + 1)]
            assert (r.parsed, r.reused, r.tokenized) == (0, 1, 1)
            assert len(tokenized) == n_parts - stop_after  # only the parts left
            assert rows(index, CHUNKS) == reference, stop_after
            got = rows(index, "SELECT part, token_start, n, data FROM tokens ORDER BY part")
            assert got == tokens, stop_after
            # One bump per part, before and after the stop, and one at the end.
            assert index.generation() == generation
            # Nothing left to do: a third update tokenizes nothing and changes nothing.
            r = index.update([source], scheme)
            assert (r.parsed, r.tokenized) == (0, 0)
            assert index.generation() == generation


def test_text_range_reads_any_range_across_parts(tmp_path, scheme, monkeypatch):
    """Regression (commit path, `text_range`): characters [lo, hi) of a document stored in
    parts are those of its text, for ranges inside one part, across parts, at part bounds and
    at the ends."""
    text = long_text(10)
    index, _ = build(tmp_path, text, scheme, 90, monkeypatch)
    with index:
        db = index.connect()
        (doc_id,) = rows(index, "SELECT id FROM documents")[0]
        starts = [s for (s,) in rows(index, "SELECT char_start FROM texts ORDER BY part")]
        assert len(starts) > 3
        edges = sorted({0, 1, len(text) - 1, len(text), *starts, *(s + 1 for s in starts)})
        edges += [s - 1 for s in starts[1:]]
        for lo in edges:
            for hi in edges:
                if lo <= hi:
                    assert text_range(db, doc_id, lo, hi) == text[lo:hi], (lo, hi)
        assert text_range(db, doc_id, 0, len(text) + 50) == text


def test_vectors_are_written_as_float16_and_read_back_in_batches(tmp_path, scheme, monkeypatch):
    """Regression (commit path, `write_vectors`/`read_vectors`): each chunk's piece vectors come
    back with their shape and float16 values, per encoder, for ids beyond one query's batch of
    variables, and chunks without vectors (or of another encoder) are left out."""
    index, _ = build(tmp_path, long_text(), scheme, 1 << 22, monkeypatch)
    with index:
        db = index.connect()
        ids = [i for (i,) in rows(index, "SELECT id FROM chunks ORDER BY id")]
        assert len(ids) >= 4
        rng = np.random.default_rng(0)
        vectors = {ids[0]: rng.normal(size=(3, 8)), ids[1]: rng.normal(size=(1, 8))}
        vectors[ids[2]] = np.zeros((0, 8))
        with docqa.index.store.transaction(db):
            write_vectors(db, "enc-a", list(vectors.items()))
            write_vectors(db, "enc-b", [(ids[3], np.ones((2, 4)))])
        stored = rows(index, "SELECT chunk_id, encoder, n, length(data) FROM vectors")
        assert sorted(stored) == [
            (ids[0], "enc-a", 3, 48),  # float16: 2 bytes a value
            (ids[1], "enc-a", 1, 16),
            (ids[2], "enc-a", 0, 0),
            (ids[3], "enc-b", 2, 16),
        ]
        # The ids asked for after 1000 that are not chunks: the real ones fall in a later batch.
        asked = [*range(10**6, 10**6 + 1000), *ids]
        found = read_vectors(db, "enc-a", asked)
        assert sorted(found) == sorted(vectors)
        for chunk_id, v in vectors.items():
            assert found[chunk_id].dtype == np.float16
            assert found[chunk_id].shape == ((3, 8), (1, 8), (0, 0))[ids.index(chunk_id)]
            if len(v):
                assert found[chunk_id].tolist() == v.astype(np.float16).tolist()
        assert read_vectors(db, "enc-b", ids)[ids[3]].tolist() == [[1.0] * 4] * 2
        assert read_vectors(db, "enc-c", ids) == {}


def test_tokens_from_blocks_joins_parts_with_absolute_offsets_and_slices_columns():
    """Regression (commit path, `pack_tokens`/`tokens_from_blocks`): packed parts come back as
    int64 tokens whose offsets (not ids) are shifted by their part's start, joined in order, and
    ``lo``/``hi`` slice the joined columns."""
    a = TokenizedText(*(np.array(c) for c in ([5, 6], [0, 3], [2, 5], [0, 3], [2, 5])))
    b = TokenizedText(
        *(np.array(c) for c in ([7, 8, 9], [1, 4, 6], [3, 5, 8], [1, 4, 6], [3, 5, 8]))
    )

    def block(t: TokenizedText) -> np.ndarray:
        return np.frombuffer(pack_tokens(t), dtype="<i4").reshape(5, len(t))

    joined = tokens_from_blocks([block(a), block(b)], [100, 200])
    assert joined.ids.dtype == np.int64
    assert joined.ids.tolist() == [5, 6, 7, 8, 9]
    assert joined.starts.tolist() == [100, 103, 201, 204, 206]
    assert joined.ends.tolist() == [102, 105, 203, 205, 208]
    assert joined.word_start.tolist() == [100, 103, 201, 204, 206]
    assert joined.word_end.tolist() == [102, 105, 203, 205, 208]
    middle = tokens_from_blocks([block(a), block(b)], [100, 200], 1, 4)
    assert middle.ids.tolist() == [6, 7, 8] and middle.starts.tolist() == [103, 201, 204]
    one = tokens_from_blocks([block(b)], [10], 1)
    assert one.ids.tolist() == [8, 9] and one.ends.tolist() == [15, 18]
    with pytest.raises(ValueError):
        tokens_from_blocks([block(a)], [0, 1])  # a start for each block, no more


def test_text_range_reads_only_the_parts_it_spans(tmp_path, scheme, monkeypatch):
    """Regression (commit path, `text_range`): a range is read from the parts it overlaps only,
    one query each (a vector batch of a very large file must not read every part before it)."""
    text = long_text(10)
    index, _ = build(tmp_path, text, scheme, 90, monkeypatch)
    with index:
        db = index.connect()
        (doc_id,) = rows(index, "SELECT id FROM documents")[0]
        starts = [s for (s,) in rows(index, "SELECT char_start FROM texts ORDER BY part")]
        spans = list(zip(starts, [*starts[1:], len(text)], strict=True))
        queries: list[str] = []
        db.set_trace_callback(queries.append)
        try:
            for lo, hi in [
                (0, 5),
                (starts[1], starts[2]),  # one whole part: not the one that starts at hi
                (starts[2], starts[2] + 1),  # not the one that ends at lo
                (starts[1] - 3, starts[3] + 2),
                (starts[-1] - 1, len(text)),
                (starts[-1], len(text)),  # the last part only: not the one before it
                (starts[-1] + 1, starts[-1] + 3),
            ]:
                queries.clear()
                assert text_range(db, doc_id, lo, hi) == text[lo:hi]
                read = sum("substr(" in q.lower() for q in queries)
                assert read == sum(s < hi and e > lo for s, e in spans), (lo, hi)
        finally:
            db.set_trace_callback(None)


def test_vectors_of_many_chunks_are_read_with_one_query_per_batch(tmp_path, scheme, monkeypatch):
    """Regression (commit path, `read_vectors`): ids are asked for in batches of at most
    `store.SQL_VARIABLES` (SQLite's limit on variables), one query per batch, and every batch
    is read, the last one too."""
    from docqa.index.store import SQL_VARIABLES

    index, _ = build(tmp_path, long_text(), scheme, 1 << 22, monkeypatch)
    with index:
        db = index.connect()
        (last,) = rows(index, "SELECT MAX(id) FROM chunks")[0]
        with docqa.index.store.transaction(db):
            write_vectors(db, "enc", [(last, np.ones((1, 2)))])
        asked = [*range(10**6, 10**6 + 2 * SQL_VARIABLES + 5), last]
        queries: list[str] = []
        db.set_trace_callback(queries.append)
        try:
            found = read_vectors(db, "enc", asked)
        finally:
            db.set_trace_callback(None)
        assert list(found) == [last] and found[last].tolist() == [[1.0, 1.0]]
        assert sum("from vectors" in q.lower() for q in queries) == 3


def test_update_counts_what_each_file_took(tmp_path, scheme, monkeypatch):
    """Regression (commit path, `_apply`): the report counts parsed, reused, tokenized files and
    pages for what each file took, and nothing for a file that could not be read; that file is
    reported failed, not stored, and an update that wrote nothing else leaves the generation."""
    import errno

    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("a.txt", "b.txt"):
        (folder / name).write_text(f"{name} says {filler(30)}")
    with Index(tmp_path / "ix") as index:
        r = index.update([folder], scheme)
        assert (r.parsed, r.reused, r.tokenized, r.pages, r.removed) == (2, 0, 2, 2, 0)
        generation = index.generation()
        bad = folder / "c.txt"
        bad.write_text("unreadable")
        real = docqa.index.ingest.sha256_file

        def sha256_file(path):
            if path == str(bad):
                raise OSError(errno.EIO, "Input/output error")
            return real(path)

        monkeypatch.setattr(docqa.index.ingest, "sha256_file", sha256_file)
        r = index.update([folder], scheme)
        assert (r.parsed, r.reused, r.tokenized, r.pages, r.removed) == (0, 2, 0, 0, 0)
        reason = "Cannot read the file: Input/output error."
        assert [(f.path, f.key, f.state, f.reason, f.doc_id) for f in r.files][-1] == (
            str(bad),
            str(bad),
            "failed",
            reason,
            None,
        )
        assert r.statuses[-1] == docqa.index.ingest.FileStatus(str(bad), "failed", reason)
        a = str(folder / "a.txt")
        doc_a = r.files[0].doc_id
        assert (r.files[0].path, r.files[0].key, r.files[0].state, r.files[0].reason) == (
            a,
            a,
            "ok",
            "",
        )
        assert [f.path for f in index.files()] == [a, str(folder / "b.txt")]
        assert index.generation() == generation
        # A copy of a known file: its document is reused, not parsed, and counted as reused.
        (folder / "d.txt").write_bytes((folder / "a.txt").read_bytes())
        r = index.update([folder], scheme)
        assert (r.parsed, r.reused, r.tokenized, r.pages) == (0, 3, 0, 0)
        assert [(f.path, f.state, f.doc_id) for f in r.files][-1] == (
            str(folder / "d.txt"),
            "ok",
            doc_a,
        )
        assert rows(index, "SELECT COUNT(*) FROM documents") == [(2,)]


def test_a_failed_file_is_remembered_and_one_too_large_is_not(tmp_path, scheme):
    """Regression (commit path, `_apply`): a file its loader fails on is stored as failed (not
    parsed again while unchanged); one skipped as too large is not stored, so that the next
    update under a larger --max-file-mb reads it."""
    from docqa.loaders import LoadOptions

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "broken.pdf").write_bytes(b"not a pdf at all " * 8)
    (folder / "big.txt").write_text(filler(200))
    with Index(tmp_path / "ix") as index:
        r = index.update([folder], scheme, options=LoadOptions(max_file_mb=0.0005))
        states = {os.path.basename(s.path): s.state for s in r.statuses}
        assert states["broken.pdf"] == "failed"
        assert [(os.path.basename(f.path), f.state) for f in index.files()] == [
            ("broken.pdf", "failed")
        ]
        big = str(folder / "big.txt")
        assert [(f.path, f.key, f.state, f.doc_id) for f in r.files if f.path == big] == [
            (big, big, "skipped", None)
        ]
        assert "--max-file-mb" in next(f.reason for f in r.files if f.path == big)
        # A copy of the broken file is known by its bytes: failed again, without parsing.
        (folder / "copy.pdf").write_bytes((folder / "broken.pdf").read_bytes())
        r = index.update([folder], scheme)
        assert r.parsed == 1  # big.txt only: the failed PDF and its copy are known
        assert {os.path.basename(s.path): s.state for s in r.statuses}["copy.pdf"] == "failed"
        assert [(os.path.basename(f.path), f.state) for f in index.files()] == [
            ("big.txt", "ok"),
            ("broken.pdf", "failed"),
            ("copy.pdf", "failed"),
        ]


def test_an_update_that_only_adds_vectors_rewrites_no_file_and_keeps_the_generation(
    tmp_path, scheme
):
    """Regression (commit path, `_apply`): an update of an unchanged folder that writes only
    vectors (``--vectors`` after a plain index) finds every file the same: its row is not
    rewritten, and the generation (what the BM25 cache is keyed on) does not move, since
    vectors are not part of it."""
    from docqa.retrieve import DenseEncoder

    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("a.txt", "b.txt"):
        (folder / name).write_text(f"{name} says {filler(30)}")
    with Index(tmp_path / "ix") as index:
        index.update([folder], scheme)
        generation = index.generation()
        files = rows(index, "SELECT * FROM files ORDER BY path")
        assert rows(index, "SELECT COUNT(*) FROM vectors") == [(0,)]
        r = index.update([folder], scheme, encoder=DenseEncoder())
        assert (r.parsed, r.reused, r.tokenized) == (0, 2, 0)
        assert rows(index, "SELECT COUNT(*) FROM vectors")[0][0] > 0
        assert rows(index, "SELECT * FROM files ORDER BY path") == files
        assert index.generation() == generation


def test_a_document_in_parts_is_reported_and_shows_its_progress_part_by_part(
    tmp_path, scheme, monkeypatch
):
    """Regression (commit path, `_apply` and `_ensure_chunks`): a file stored in parts counts
    as parsed and tokenized, its record names it, and chunk progress is told once per part
    when it has two parts or more (and never for a one-part file); with no progress callback
    it is indexed all the same."""
    text = long_text(8)
    source = tmp_path / "docs" / "long.txt"
    source.parent.mkdir()
    source.write_text(text)
    monkeypatch.setattr(docqa.index.ingest, "PART_CHARS", len(text) // 2 + 20)
    told: list[tuple[int, int, str]] = []
    with Index(tmp_path / "two") as index:
        r = index.update([source], scheme, pieces=lambda *call: told.append(call))
        assert rows(index, "SELECT parts FROM documents") == [(2,)]
        assert (r.parsed, r.reused, r.tokenized, r.pages) == (1, 0, 1, 1)
        [record] = r.files
        assert (record.path, record.key, record.state, record.reason) == (
            str(source),
            str(source),
            "ok",
            "",
        )
        assert record.doc_id == rows(index, "SELECT id FROM documents")[0][0]
    assert told == [(1, 2, f"chunks of {source}"), (2, 2, f"chunks of {source}")]
    with Index(tmp_path / "quiet") as index:
        r = index.update([source], scheme)
        assert r.tokenized == 1 and rows(index, "SELECT COUNT(*) FROM chunks")[0][0] > 1
    monkeypatch.setattr(docqa.index.ingest, "PART_CHARS", 1 << 22)
    told.clear()
    with Index(tmp_path / "one") as index:
        index.update([source], scheme, pieces=lambda *call: told.append(call))
        # Chunked again for other windows: an unchanged one-part file, still no progress.
        other = ChunkScheme.for_tokenizer(scheme.require_tokenizer(), 128, doc_stride=24)
        r = index.update([source], other, pieces=lambda *call: told.append(call))
        assert (r.parsed, r.tokenized) == (0, 1)
    assert told == []


def test_a_text_without_tokens_is_indexed_and_a_tokenless_first_part_shifts_nothing(
    tmp_path, scheme, monkeypatch
):
    """Regression (commit path, `_ChunkCutter.add`): a text of zero-width characters only has
    no tokens: it is indexed, with no chunk, rather than failing; and a document whose first
    part has no tokens gets the chunks (bounds, texts and terms) of its text in one part."""
    blank = tmp_path / "docs" / "blank.txt"
    blank.parent.mkdir()
    blank.write_text("\u200b\u200b\u200b \u200b\u2060 \u2060\u200b")
    with Index(tmp_path / "blank") as index:
        r = index.update([blank], scheme)
        assert [s.state for s in r.statuses] == ["ok"] and r.tokenized == 1
        assert rows(index, "SELECT COUNT(*) FROM chunks") == [(0,)]
    text = " ".join(["\u200b\u2060"] * 30) + " " + long_text(8)
    one, _ = build(tmp_path / "one", text, scheme, 1 << 22, monkeypatch)
    with one:
        reference = rows(one, CHUNKS)
    parted, _ = build(tmp_path / "parted", text, scheme, 60, monkeypatch)
    with parted:
        first = rows(parted, "SELECT text FROM texts ORDER BY part")[0][0]
        assert first.strip(" \u200b\u2060") == ""  # the first part has no tokens
        assert rows(parted, CHUNKS) == reference


def test_a_registered_loaders_metadata_is_stored_whatever_its_values(tmp_path, scheme, monkeypatch):
    """Regression (commit path, `_insert_document`): a loader registered by a user
    (`docqa.loaders.register`) may put values JSON cannot write in ``Document.meta`` (a date):
    the document is stored, such a value as its text."""
    import datetime

    import docqa.loaders
    from docqa.types import Document

    when = datetime.datetime(2026, 12, 2, 9, 30)

    def load_log(data: bytes, source: str, options) -> Document:
        return Document.from_text(data.decode(), source, format="log", written=when)

    monkeypatch.setitem(docqa.loaders.REGISTRY, ".log", load_log)
    source = tmp_path / "run.log"
    source.write_text(f"The run finished. {filler(20)}")
    with Index(tmp_path / "ix") as index:
        r = index.update([source], scheme)
        assert [s.state for s in r.statuses] == ["ok"]
        meta = index.document(r.files[0].doc_id).meta
        assert meta["format"] == "log" and meta["written"] == str(when)
