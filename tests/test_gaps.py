"""Behaviours no test pinned before issue 21 (part 2): each test here fails on a copy of the
code broken the way its docstring names.

Retrieval and fusion, the max-context rule on retrieved chunks, exact offsets, `rank_by`,
no-answer decisions under fusion, per-file atomic commits of the index, the index's errors,
and the options of `docqa ask` that no test used (`--json`'s ``section`` and ``logit``,
``--no-answer-threshold``, ``--max-answer-len``, ``--password``, Ctrl-C).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PHRASE, filler, invoke_cli
from filelock import FileLock
from pdfgen import encrypt_pdf, make_pdf
from planted import PlantedModel, planted_loader

import docqa
import docqa.index.ingest
import docqa.reader
from docqa import DocQA, Document
from docqa.errors import IndexCorruptError
from docqa.index import Index
from docqa.index.store import DB_NAME, LOCK_NAME, Store
from docqa.retrieve import make_chunks
from docqa.windowing import chunk_length, tokenize_text

# Small windows, so that a short text has several chunks and edges to test: 45 context
# tokens per chunk (64 less a 16-token question and BERT's 3 special tokens), 16 shared.
SMALL = {"max_seq_len": 64, "doc_stride": 16, "max_question_len": 16}


def phrase_token(tokenizer, text: str, phrase: str, occurrence: int = 0) -> int:
    """The index of the first token of the ``occurrence``-th ``phrase`` in ``text``."""
    tok = tokenize_text(tokenizer, text)
    at = -1
    for _ in range(occurrence + 1):
        at = text.index(phrase, at + 1)
    return int(np.flatnonzero(tok.starts == at)[0])


def chunk_bounds(tokenizer, text: str, max_seq_len: int, doc_stride: int, max_question_len: int):
    """``[(token_start, token_end)]`` of the chunks `DocQA` cuts ``text`` into."""
    n = chunk_length(max_seq_len, max_question_len, 3)
    return [
        (c.token_start, c.token_end)
        for c in make_chunks(tokenize_text(tokenizer, text), 0, n, doc_stride)
    ]


# --- max-context on retrieved chunks --------------------------------------------------------


def edge_text(tokenizer) -> str:
    """A text whose PHRASE starts 3 tokens before chunk 0 ends and lies whole in chunk 1;
    only chunk 0 holds "autumn flight", so the retriever ranks it first."""
    prefix = "Autumn flight notes."
    n_prefix = len(tokenize_text(tokenizer, prefix))
    end0 = chunk_length(64, 16, 3)
    text = f"{prefix} {filler(end0 - 3 - n_prefix)} {PHRASE} {filler(150, 3)}"
    first = phrase_token(tokenizer, text, PHRASE)
    (_, e0), (s1, e1) = chunk_bounds(tokenizer, text, **SMALL)[:2]
    n_phrase = len(tokenizer(PHRASE, add_special_tokens=False)["input_ids"])
    assert first == e0 - 3 and s1 <= first and first + n_phrase <= e1, "phrase at the edge"
    assert n_prefix < s1, "the prefix is in chunk 0 only"
    return text


@pytest.mark.parametrize("max_context", [True, False])
@pytest.mark.parametrize("route", ["index", "memory"])
def test_a_phrase_at_a_retrieved_chunks_edge_comes_back_whole(
    plant, tokenizer, tmp_path, route, max_context
):
    """Issue 21: with the max-context rule switched off in `DocQA._read_chunks` (the path of
    every default `ask`), the half of the phrase cut by chunk 0's edge came back, and no
    test noticed. Chunk 0 is retrieved first, so under fusion that half outranks the whole
    phrase of chunk 1 unless the rule masks it; without the rule, a span touching the edge
    where a window cuts the text cannot be picked (`aggregate.cut_edge_masks`)."""
    # partial=True: the reader also peaks on the phrase cut at chunk 0's last token.
    plant({PHRASE: 10.0}, partial=True)
    text = edge_text(tokenizer)
    question = "Which violet kestrel takes the autumn flight?"
    if route == "index":
        path = tmp_path / "birds.txt"
        path.write_text(text)
        qa = DocQA(index=tmp_path / "ix", dense=False, max_context=max_context, **SMALL)
        answers = qa.ask(question, path, top_k=3)
    else:
        qa = DocQA(index=False, dense=False, chunks=3, max_context=max_context, **SMALL)
        answers = qa.ask(question, Document.from_text(text), top_k=3)
    start = text.index(PHRASE)
    assert (answers[0].text, answers[0].start, answers[0].end) == (
        PHRASE,
        start,
        start + len(PHRASE),
    )
    assert all(a.text != "violet kestrel" for a in answers), "the cut half is never an answer"


# --- the default fusion weight --------------------------------------------------------------


def owl_and_heron(tokenizer) -> str:
    """Two planted phrases, each inside one chunk only (128-token windows); the heron's chunk
    shares more words with the question than the owl's."""
    text = (
        f"{filler(30)} The barn owl hunts at night. {filler(160, 1)} "
        f"Herons wade in marshes; the grey heron waits. {filler(100, 2)}"
    )
    bounds = chunk_bounds(tokenizer, text, 128, 16, 16)
    for phrase in ("barn owl", "grey heron"):
        first = phrase_token(tokenizer, text, phrase)
        assert sum(s <= first and first + 2 <= e for s, e in bounds) == 1, phrase
    return text


@pytest.mark.parametrize("route", ["index", "memory"])
def test_the_default_retriever_weight_fuses_retrieval_into_the_ranking(
    plant, tokenizer, tmp_path, route
):
    """Issue 21: `RETRIEVER_WEIGHT` set to 0 went unnoticed (the only fusion test passed a
    weight explicitly, and the bundled documents fit inside the default depth). The reader
    alone prefers the barn owl; with the default weight the retriever's choice, the heron's
    window, wins."""
    plant({"grey heron": 5.0, "barn owl": 5.5})
    text = owl_and_heron(tokenizer)
    question = "Which heron waits in marshes at night?"
    settings = {"max_seq_len": 128, "doc_stride": 16, "max_question_len": 16, "dense": False}
    if route == "index":
        path = tmp_path / "birds.txt"
        path.write_text(text)
        settings["index"] = tmp_path / "ix"
        source = path
    else:
        settings.update(index=False, chunks=3)  # of 4 chunks
        source = Document.from_text(text)
    reader_only = DocQA(retriever_weight=0, **settings).ask(question, source, top_k=2)
    assert [a.text for a in reader_only] == ["barn owl", "grey heron"]
    assert reader_only[0].logit == pytest.approx(11.0)
    fused = DocQA(**settings).ask(question, source, top_k=2)  # the default weight
    assert fused[0].text == "grey heron"
    assert fused[0].logit > 11.0, "the heron's raw 10 gained the retrieval boost"
    start = text.index("grey heron")
    assert (fused[0].start, fused[0].end) == (start, start + len("grey heron"))


# --- exact offsets ----------------------------------------------------------------------------

TWICE = f"Zoë’s café log 😀 — The {PHRASE} in spring. Later the {PHRASE} in autumn, said Zoë."


def test_offsets_are_those_of_the_occurrence_the_reader_chose(plant):
    """Issue 21: ``text == document.text[start:end]`` holds by construction, so offset
    tests proved little; a span re-found by its text (``str.find``) gave the first of two
    equal phrases. The reader peaks on the second one here, after characters outside the
    Basic Multilingual Plane."""
    # Start peaks only where "in autumn" follows; end peaks on both occurrences.
    plant({f"{PHRASE} in autumn": (10.0, 0.0), PHRASE: (0.0, 10.0)})
    qa = DocQA(chunks=None, index=False, dense=False)
    [a] = qa.ask("When does it migrate?", Document.from_text(TWICE))
    assert (a.start, a.end) == (78, 111)
    # The first occurrence, pooled with it (the same answer), adds next to nothing.
    assert a.text == PHRASE and a.logit == pytest.approx(20.0, abs=1e-3)
    assert a.context.startswith("Zoë’s café log")


def test_offsets_of_wordpieces_are_exact_characters(tokenizer):
    """Each token's character range and its whole word's range as exact positions, not only
    a slice found in the text: after a character outside the BMP, across accents the
    tokenizer strips, and inside a word cut into three WordPieces."""
    tok = tokenize_text(tokenizer, "😀 Zoë’s unaffable café")
    got = list(zip(tok.starts, tok.ends, tok.word_start, tok.word_end, strict=True))
    assert [tuple(int(x) for x in row) for row in got] == [
        (0, 1, 0, 1),  # 😀, [UNK]
        (2, 5, 2, 5),  # Zoë
        (5, 6, 5, 6),  # ’
        (6, 7, 6, 7),  # s
        (8, 11, 8, 17),  # una, of unaffable
        (11, 14, 8, 17),  # ##ffa
        (14, 17, 8, 17),  # ##ble
        (18, 22, 18, 22),  # café
    ]


# --- rank_by="null_margin" ------------------------------------------------------------------


class WindowNulls(PlantedModel):
    """A `PlantedModel` whose [CLS] logit is ``value`` in every window whose context holds
    one of ``nulls``' phrases (the reader's "no answer here"), and ``cls`` elsewhere."""

    def __init__(self, tokenizer, phrases, nulls: dict[str, float], **options):
        super().__init__(tokenizer, phrases, **options)
        self.nulls = [
            (np.asarray(tokenizer(p, add_special_tokens=False)["input_ids"]), v)
            for p, v in nulls.items()
        ]

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        out = super().forward(input_ids, attention_mask, token_type_ids)
        ids = input_ids.cpu().numpy()
        for row in range(ids.shape[0]):
            n = len(ids[row])
            for phrase, value in self.nulls:
                m = len(phrase)
                if any((ids[row, i : i + m] == phrase).all() for i in range(n - m + 1)):
                    out.start_logits[row, 0] = out.end_logits[row, 0] = value
        return out


def test_rank_by_null_margin_judges_each_span_against_its_own_window(monkeypatch, tokenizer):
    """Issue 21: nothing exercised ``rank_by="null_margin"``. The owl scores higher in raw
    logits, but its window's [CLS] score says "no answer here"; by margin the heron wins."""
    model = WindowNulls(tokenizer, {"barn owl": 7.0, "grey heron": 5.0}, {"doubtful": 6.0})
    monkeypatch.setattr(docqa.reader, "load_model", planted_loader(model, tokenizer))
    docs = [
        Document.from_text(f"{filler(20)} The barn owl hunts, doubtful. {filler(20)}", "a"),
        Document.from_text(f"{filler(20, 3)} The grey heron waits. {filler(20, 5)}", "b"),
    ]

    def ranked(rank_by: str):
        qa = DocQA(chunks=None, index=False, dense=False, rank_by=rank_by)
        answers = qa.ask("Which bird?", docs, top_k=2)
        return [(a.text, a.source, round(a.logit, 4)) for a in answers]

    assert ranked("logit") == [("barn owl", "a", 14.0), ("grey heron", "b", 10.0)]
    # Margins: owl 14 - 12, heron 10 - 0.
    assert ranked("null_margin") == [("grey heron", "b", 10.0), ("barn owl", "a", 2.0)]


# --- no-answer under fusion -----------------------------------------------------------------


def test_the_no_answer_decision_under_fusion_uses_raw_reader_logits(plant):
    """Issue 21: the no-answer threshold is compared with raw reader logits even when the
    ranking is fused with retrieval (`DocQA._read`); deciding on the boosted score would
    answer a question the reader judged unanswerable."""
    plant({PHRASE: 10.0}, cls=11.0)  # null 22 beats the phrase's raw 20 by 2
    parts = [filler(40, i) for i in range(8)]
    parts[5] = f"{filler(10)} The {PHRASE} in autumn. {filler(10)}"
    doc = Document.from_text(" ".join(parts))
    question = "Where does the violet kestrel go?"
    settings = {"index": False, "dense": False, "chunks": 3, **SMALL}
    fused = DocQA(**settings).predict(question, [doc], top_k=1, chunks=3)
    assert fused.answers[0].text == PHRASE
    # Ranked by null margin (the default): 20 - 22, plus the retrieval boost.
    assert fused.answers[0].logit > -2.0, "the ranking is fused"
    assert fused.null_score_diff == pytest.approx(2.0), "the raw difference, not 2 - boost"
    assert DocQA(no_answer_threshold=0.0, **settings).ask(question, doc) == []
    [a] = DocQA(no_answer_threshold=2.5, **settings).ask(question, doc)
    assert a.text == PHRASE


# --- per-file atomic commits ----------------------------------------------------------------


def half_written(folder: Path, scheme) -> list[str]:
    """Files rows without their document's chunks, and documents no file holds."""
    with sqlite3.connect(folder / DB_NAME) as db:
        orphans = db.execute(
            "SELECT f.path FROM files f WHERE f.doc_id IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM chunks w WHERE w.doc_id = f.doc_id AND w.scheme = ?)",
            (scheme.key,),
        ).fetchall()
        lost = db.execute(
            "SELECT d.id FROM documents d WHERE NOT EXISTS "
            "(SELECT 1 FROM files f WHERE f.doc_id = d.id)"
        ).fetchall()
    return [f"file {r[0]} without chunks" for r in orphans] + [
        f"document {r[0]} without a file" for r in lost
    ]


def test_a_failure_inside_a_files_commit_leaves_no_half_written_file(tmp_path, scheme, monkeypatch):
    """Issue 21: the kill test almost always killed during the loader's sleep, so a file's
    chunks committed in a second transaction after its ``files`` row went unnoticed. Here
    the second file fails after its document and ``files`` rows are written, while its
    tokens and chunks are being stored: nothing of it may remain, the first file stays
    whole, and the next update completes the second."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(f"The grey heron waits. {filler(120)}")
    (docs / "b.txt").write_text(f"The {PHRASE} in autumn. {filler(120, 4)}")
    real = docqa.index.ingest.pack_tokens
    calls = []

    def pack_then_fail(tokens):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected failure")
        return real(tokens)

    monkeypatch.setattr(docqa.index.ingest, "pack_tokens", pack_then_fail)
    folder = tmp_path / "ix"
    with Index(folder) as index, pytest.raises(RuntimeError, match="injected"):
        index.update([docs], scheme, workers=1)
    assert len(calls) == 2
    assert half_written(folder, scheme) == []
    with Index(folder) as index:
        [kept] = index.files()
        assert kept.state == "ok"
    monkeypatch.setattr(docqa.index.ingest, "pack_tokens", real)
    with Index(folder) as index:
        report = index.update([docs], scheme, workers=1)
        assert (report.parsed, report.reused) == (1, 1)
        assert half_written(folder, scheme) == []
        assert sorted(Path(f.path).name for f in index.files()) == ["a.txt", "b.txt"]
        [hit] = index.search("violet kestrel", report.doc_ids, scheme, k=1)
        assert hit.path.endswith("b.txt")


# --- index errors -----------------------------------------------------------------------------


def invoke(*args: str):
    """`docqa` in-process; never a traceback or an uncaught exception."""
    return invoke_cli(args)


def one_error(result) -> str:
    message = " ".join(result.stderr.split())
    assert message.startswith("error:") and message.count("error:") == 1, result.stderr
    return message


@pytest.fixture
def note(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "note.txt").write_text(f"{filler(30)} The {PHRASE} in autumn. {filler(30)}")
    return folder


def test_an_index_of_another_schema_version_is_a_clear_error_until_rebuilt(tmp_path, note, scheme):
    """Issue 21: a schema mismatch (an index written by a newer docqa) was not tested: it
    must be one sentence saying to rebuild (exit 2), not a query failing on a column."""
    folder = tmp_path / "ix"
    with Index(folder) as index:
        index.update([note], scheme)
    with sqlite3.connect(folder / DB_NAME) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(IndexCorruptError, match=r"another docqa version \(schema 99\)"):
        Index(folder).connect()
    result = invoke("index", "--no-dense", "--index", str(folder), str(note))
    assert result.exit_code == 2
    message = one_error(result)
    assert "another docqa version" in message and "--rebuild" in message
    result = invoke("index", "--no-dense", "--rebuild", "--index", str(folder), str(note))
    assert result.exit_code == 0, result.stderr
    assert "1 parsed" in " ".join(result.stdout.split())


def test_a_locked_index_exits_2_with_the_busy_message(tmp_path, note, monkeypatch, plant):
    """Issue 21: `IndexBusyError` through the CLI (the library's error is pinned by
    test_index.py's `test_second_indexer_fails_with_a_clear_message_or_waits`): another
    process's write lock means exit 2 and one sentence, for `index` and for `ask`."""
    plant({PHRASE: 10.0})
    folder = tmp_path / "ix"
    Index(folder).connect()
    # Wait a moment for the lock, not the minute an update normally waits.
    real = Store.write_lock
    monkeypatch.setattr(
        Store,
        "write_lock",
        lambda self, timeout=None: real(self, 0.2 if timeout is None else timeout),
    )
    with FileLock(str(folder / LOCK_NAME)):
        for command in (["index"], ["ask", "Where?"]):
            result = invoke(*command, "--no-dense", "--index", str(folder), str(note))
            assert result.exit_code == 2, result.stderr
            assert "Another docqa process is updating the index" in one_error(result)
    result = invoke("ask", "Where?", "--no-dense", "--index", str(folder), str(note))
    assert result.exit_code == 0, result.stderr


def test_a_damaged_bm25_cache_is_rebuilt(tmp_path, note, scheme):
    """Issue 21: the stored BM25 matrix is only a cache (`Searcher._bm25`): damaged, it is
    built again from the chunks' terms (the same ranking) and stored again."""
    folder = tmp_path / "ix"
    with Index(folder) as index:
        report = index.update([note], scheme)
        before = index.search("violet kestrel", report.doc_ids, scheme, k=2)
    with sqlite3.connect(folder / DB_NAME) as db:
        assert db.execute("UPDATE bm25 SET state = ?", (b"\x00not an npz" * 8,)).rowcount == 1
    with Index(folder) as index:
        after = index.search("violet kestrel", report.doc_ids, scheme, k=2)
    assert [(h.start, h.end, h.score) for h in after] == [(h.start, h.end, h.score) for h in before]
    with sqlite3.connect(folder / DB_NAME) as db:
        [state] = db.execute("SELECT state FROM bm25").fetchone()
    assert state[:2] == b"PK", "the rebuilt matrix is stored again"


# --- options of `docqa ask` -------------------------------------------------------------------


def ask(tmp_path, *args: str):
    return invoke("ask", *args, "--no-dense", "--index", str(tmp_path / "ix"))


def test_json_answers_carry_section_logit_and_exact_offsets(plant, tmp_path):
    """Issue 21: ``section`` and ``logit`` in ``docqa ask --json`` were in no test."""
    plant({PHRASE: 10.0})
    path = tmp_path / "birds.md"
    path.write_text(
        f"# Birds\n\n{filler(20)}\n\n## Migration\n\nEach autumn the {PHRASE} to Africa.\n"
    )
    result = ask(tmp_path, "Where does the kestrel go?", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    [answer] = json.loads(result.stdout)["answers"]
    assert answer["text"] == PHRASE
    assert (answer["start"], answer["end"]) == (138, 171)
    assert answer["section"] == "Migration"
    assert answer["logit"] == pytest.approx(20.0)


def test_ask_no_answer_threshold(plant, tmp_path, note):
    """``--no-answer-threshold`` reaches the reader: [CLS] at 30 beats the span's 20 by 10."""
    plant({PHRASE: 10.0}, cls=15.0)
    result = ask(tmp_path, "Where?", str(note), "--json", "--no-answer-threshold", "5")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["answers"] == []
    result = ask(tmp_path, "Where?", str(note), "--no-answer-threshold", "5")
    assert "No answer found." in result.stdout
    result = ask(tmp_path, "Where?", str(note), "--json", "--no-answer-threshold", "11")
    assert [a["text"] for a in json.loads(result.stdout)["answers"]] == [PHRASE]


def test_ask_max_answer_len(plant, tmp_path, note):
    """``--max-answer-len`` reaches the reader: PHRASE is 6 tokens; "in autumn" is 2."""
    plant({PHRASE: 10.0, "in autumn": 4.0}, baseline=-10.0)
    result = ask(tmp_path, "Where?", str(note), "--json")
    assert [a["text"] for a in json.loads(result.stdout)["answers"]] == [PHRASE]
    result = ask(tmp_path, "Where?", str(note), "--json", "--max-answer-len", "5")
    assert result.exit_code == 0, result.stderr
    assert [a["text"] for a in json.loads(result.stdout)["answers"]] == ["in autumn"]


def test_ask_password_opens_an_encrypted_pdf(plant, tmp_path):
    """``--password`` on `ask` (only `index --password` was tested): without it the only
    file fails and nothing can answer (exit 2); with it the answer comes from page 2."""
    plant({PHRASE: 10.0})
    plain = make_pdf(tmp_path / "plain.pdf", [filler(60), f"The {PHRASE} in autumn."])
    docs = tmp_path / "docs"
    docs.mkdir()
    encrypt_pdf(plain, docs / "locked.pdf", user_password="s3cret")
    result = ask(tmp_path, "Where?", str(docs), "--json")
    assert result.exit_code == 2
    assert "password" in one_error(result)
    result = ask(tmp_path, "Where?", str(docs), "--json", "--password", "s3cret")
    assert result.exit_code == 0, result.stderr
    [answer] = json.loads(result.stdout)["answers"]
    assert " ".join(answer["text"].split()) == PHRASE and answer["page"] == 2


def test_ctrl_c_during_ask_exits_130(plant, tmp_path, note, monkeypatch):
    """Ctrl-C while answering: "Interrupted." and exit 130, no traceback."""
    plant({PHRASE: 10.0})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(DocQA, "ask_paths", interrupted)
    result = ask(tmp_path, "Where?", str(note))
    assert result.exit_code == 130
    assert one_error(result) == "error: Interrupted."


def test_window_nulls_double_sets_cls_only_where_its_phrase_is(tokenizer):
    """The test double above: [CLS] is raised in the window holding the marker only."""
    model = WindowNulls(tokenizer, {}, {"doubtful": 6.0})
    batch = tokenizer(["Which?", "Which?"], ["a doubtful owl", "a grey heron"], padding=True)
    out = model(torch.tensor(batch["input_ids"]), torch.tensor(batch["attention_mask"]))
    assert out.start_logits[:, 0].tolist() == [6.0, 0.0]
