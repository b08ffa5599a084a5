"""The persistent index (issue 7): incremental updates, crashes, concurrency, damage, search."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PHRASE, ROOT, VOCAB, filler
from pdfgen import make_pdf
from typer.testing import CliRunner

import docqa.index
import docqa.loaders.pdf
import docqa.reader
from docqa import DocQA
from docqa.cli import app
from docqa.errors import IndexBusyError, IndexCorruptError, InputError
from docqa.index import SCHEMA_VERSION, Index, tokenizer_fingerprint


@pytest.fixture
def library(tmp_path) -> Path:
    """Three documents on different subjects; the PDF has the battery facts on page 2."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "birds.md").write_text(
        f"# Birds\n\n{filler(80)}\n\nEach autumn the {PHRASE} to Africa.\n\n{filler(80, 2)}\n"
    )
    (folder / "garden.txt").write_text(
        "Tomatoes need full sun and regular watering. Prune the side shoots weekly. "
        + filler(150, 4)
    )
    make_pdf(
        folder / "sensor.pdf",
        [
            "Aurora weather station. " + filler(60),
            "The outdoor sensor runs on two AA lithium batteries, which last fourteen months.",
            "Warranty: two years. " + filler(40, 1),
        ],
    )
    (folder / "notes.bin").write_bytes(b"\x00\x01 binary")
    return folder


class Counts:
    """Counts PDF parses and tokenizations done by the index in this process."""

    def __init__(self, monkeypatch):
        self.pdf = 0
        self.tokenize = 0
        real_extract = docqa.loaders.pdf.extract_pages
        real_tokenize = docqa.index.ingest.tokenize_text

        def extract(*args, **kwargs):
            self.pdf += 1
            return real_extract(*args, **kwargs)

        def tokenize(*args, **kwargs):
            self.tokenize += 1
            return real_tokenize(*args, **kwargs)

        monkeypatch.setattr(docqa.loaders.pdf, "extract_pages", extract)
        monkeypatch.setattr(docqa.index.ingest, "tokenize_text", tokenize)


def test_reindexing_an_unchanged_folder_parses_and_tokenizes_nothing(
    tmp_path, library, scheme, monkeypatch
):
    counts = Counts(monkeypatch)
    with Index(tmp_path / "ix") as index:
        first = index.update([library], scheme)
        assert (first.parsed, counts.pdf, counts.tokenize) == (3, 1, 3)
        assert {s.state for s in first.statuses} == {"ok", "skipped"}
        again = index.update([library], scheme)
    assert (again.parsed, again.tokenized, again.removed) == (0, 0, 0)
    assert again.reused == 3
    assert (counts.pdf, counts.tokenize) == (1, 3), "no PDF parsing, no tokenization"
    assert [s.path for s in again.statuses] == [s.path for s in first.statuses]
    # A new process (fresh connection, fresh caches) sees the same.
    with Index(tmp_path / "ix") as index:
        assert index.update([library], scheme).parsed == 0
    assert (counts.pdf, counts.tokenize) == (1, 3)


def test_changed_touched_deleted_and_renamed_files(tmp_path, library, scheme, monkeypatch):
    counts = Counts(monkeypatch)
    with Index(tmp_path / "ix") as index:
        index.update([library], scheme)
        garden = library / "garden.txt"
        # Changed: parsed again, the old text is gone from search.
        garden.write_text("Roses need pruning in late winter. " + filler(150, 4))
        r = index.update([library], scheme)
        assert (r.parsed, r.tokenized) == (1, 1)
        hits = index.search("roses pruning winter", r.doc_ids, scheme, k=1)
        assert hits[0].path.endswith("garden.txt") and "Roses" in hits[0].snippet
        assert not index.search("tomatoes", r.doc_ids, scheme, k=1)[0].snippet.count("Tomato")
        # Touched (new modification time, same bytes): hashed, not parsed.
        os.utime(library / "sensor.pdf", (time.time() + 10, time.time() + 10))
        r = index.update([library], scheme)
        assert (r.parsed, counts.pdf) == (0, 1)
        # Renamed: its content is known, so it is neither parsed nor tokenized again.
        tokenized_before = counts.tokenize
        (library / "birds.md").rename(library / "kestrels.md")
        r = index.update([library], scheme)
        assert (r.parsed, r.removed, counts.tokenize) == (0, 1, tokenized_before)
        paths = {Path(f.path).name for f in index.files()}
        assert paths == {"kestrels.md", "garden.txt", "sensor.pdf"}
        [hit] = index.search("kestrel autumn", r.doc_ids, scheme, k=1)
        assert hit.path.endswith("kestrels.md")
        # Deleted: dropped, with its document and chunks.
        (library / "garden.txt").unlink()
        r = index.update([library], scheme)
        assert r.removed == 1 and len(r.doc_ids) == 2
        db = index.connect()
        assert db.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == 2
        orphans = db.execute(
            "SELECT COUNT(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)"
        ).fetchone()[0]
        assert orphans == 0


def test_a_file_given_by_name_that_disappears_is_dropped(tmp_path, scheme):
    path = tmp_path / "one.txt"
    path.write_text("lonely words " + filler(20))
    with Index(tmp_path / "ix") as index:
        index.update([path], scheme)
        path.unlink()
        r = index.update([path], scheme)
        assert r.removed == 1 and r.statuses[0].state == "failed"
        assert index.files() == []


def test_search_ranking_on_a_known_passage(tmp_path, library, scheme):
    with Index(tmp_path / "ix") as index:
        r = index.update([library], scheme)
        [best, *_] = index.search("Which batteries does the outdoor sensor use?", r.doc_ids, scheme)
        assert best.path.endswith("sensor.pdf") and best.page == 2
        assert "lithium batteries" in best.snippet
        assert best.text[best.snippet_start : best.snippet_end] == best.snippet
        [bird] = index.search("where do kestrels migrate in autumn", r.doc_ids, scheme, k=1)
        assert bird.path.endswith("birds.md") and PHRASE in bird.snippet
        # Only the documents asked about can come back.
        garden = [f.doc_id for f in r.files if f.path.endswith("garden.txt")]
        hits = index.search("lithium batteries", garden, scheme, k=3)
        assert hits and {h.path for h in hits} == {str(library / "garden.txt")}


# --- crashes, concurrency, damage ----------------------------------------------------------

SLOW_INDEXER = """
import sys, time
from transformers import AutoTokenizer
import docqa.loaders as loaders
from docqa.loaders._base import build_document
from docqa.index import Index, ChunkScheme

def slow(data, source, options):
    time.sleep(0.15)
    return build_document(data.decode(), source, data, fmt="text")

loaders.register([".slow"], slow)
scheme = ChunkScheme.for_tokenizer(AutoTokenizer.from_pretrained(sys.argv[3]), 96, 24)
with Index(sys.argv[1]) as index:
    print("started", flush=True)
    index.update([sys.argv[2]], scheme)
"""


def register_slow(monkeypatch):
    import docqa.loaders as loaders
    from docqa.loaders._base import build_document

    def fast(data, source, options):
        return build_document(data.decode(), source, data, fmt="text")

    monkeypatch.setitem(loaders.REGISTRY, ".slow", fast)


def test_killed_build_leaves_a_usable_index_that_the_next_run_completes(
    tmp_path, scheme, monkeypatch
):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        (folder / f"f{i:02}.slow").write_text(f"file {i} talks about topic{i}. " + filler(50, i))
    db_path = tmp_path / "ix" / "index.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_INDEXER, str(tmp_path / "ix"), str(folder), str(VOCAB)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        done = 0
        while time.monotonic() < deadline and done < 3:
            time.sleep(0.2)
            if db_path.exists():
                with sqlite3.connect(db_path, timeout=5) as db:
                    try:
                        done = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
                    except sqlite3.OperationalError:
                        continue  # the file exists before the child has created its tables
        assert done >= 3, "the child indexed files"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    register_slow(monkeypatch)
    with Index(tmp_path / "ix", lock_timeout=5) as index:
        kept = len(index.files())
        assert 3 <= kept < 40
        # Every file the crash left in the index is whole: document and chunks.
        db = index.connect()
        whole = db.execute(
            "SELECT COUNT(*) FROM files f WHERE EXISTS "
            "(SELECT 1 FROM chunks w WHERE w.doc_id = f.doc_id)"
        ).fetchone()[0]
        assert whole == kept
        r = index.update([folder], scheme)
        assert r.parsed == 40 - kept and len(r.doc_ids) == 40
        [hit] = index.search("topic37", r.doc_ids, scheme, k=1)
        assert hit.path.endswith("f37.slow")


HOLD_LOCK = """
import sys, time
from docqa.index import Index
index = Index(sys.argv[1])
index.connect()
with index._write_lock():
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold_lock(folder: Path, seconds: float) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder), str(seconds)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "locked"
    return child


def test_second_indexer_fails_with_a_clear_message_or_waits(tmp_path, library, scheme):
    folder = tmp_path / "ix"
    Index(folder).connect()
    child = hold_lock(folder, 60)
    try:
        with pytest.raises(IndexBusyError, match="Another docqa process is updating"):
            Index(folder, lock_timeout=0.5).update([library], scheme)
        # Readers are never blocked by the writer.
        assert Index(folder).files() == []
    finally:
        child.kill()
        child.wait()
    # The lock dies with its process: no stale lock after a crash.
    assert Index(folder, lock_timeout=2).update([library], scheme).parsed == 3
    # A writer that finishes soon is waited for.
    child = hold_lock(folder, 1.0)
    try:
        assert Index(folder, lock_timeout=30).update([library], scheme).parsed == 0
    finally:
        child.wait()


def test_two_concurrent_cli_indexers_both_succeed(tmp_path, library):
    env = {**os.environ, "DOCQA_INDEX": str(tmp_path / "ix")}
    cmd = [sys.executable, "-m", "docqa", "index", "--no-dense", "--json", str(library)]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    reports = [json.loads(out) for out, _ in outputs]
    assert sorted(r["parsed"] for r in reports) == [0, 3], "one parsed, the other waited"


def test_corrupted_index_file_gives_one_clear_message_and_rebuild_works(tmp_path, library):
    folder = tmp_path / "ix"
    folder.mkdir()
    (folder / "index.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexCorruptError, match="--rebuild"):
        Index(folder).connect()
    runner = CliRunner()
    result = runner.invoke(app, ["index", "--no-dense", "--index", str(folder), str(library)])
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert message.startswith("error:") and "--rebuild" in message
    assert "Traceback" not in result.stderr + result.stdout
    result = runner.invoke(
        app, ["index", "--no-dense", "--rebuild", "--index", str(folder), str(library)]
    )
    assert result.exit_code == 0, result.stderr
    assert "3 parsed" in " ".join(result.stdout.split())


def test_index_location_that_is_a_file_is_an_input_error(tmp_path):
    spot = tmp_path / "file"
    spot.write_text("x")
    with pytest.raises(docqa.errors.InputError, match="is a file"):
        Index(spot).connect()


# --- no reader model; retrieval + planted reader end to end ----------------------------------


def test_search_needs_no_reader_model(tmp_path, library, monkeypatch):
    def no_reader(*args, **kwargs):
        raise AssertionError("search must not load a reader model")

    monkeypatch.setattr(docqa.reader, "load_model", no_reader)
    monkeypatch.setattr(docqa.reader, "BUNDLED", tmp_path / "no-bundled-reader")
    monkeypatch.delenv("DOCQA_MODEL", raising=False)
    result = CliRunner().invoke(
        app,
        [
            "search",
            "lithium batteries sensor",
            str(library),
            "--index",
            str(tmp_path / "ix"),
            "--json",
            "-k",
            "2",
            "--no-dense",
        ],
    )
    assert result.exit_code == 0, result.stderr
    hits = json.loads(result.stdout)["hits"]
    assert hits[0]["source"].endswith("sensor.pdf") and hits[0]["page"] == 2
    human = CliRunner().invoke(
        app, ["search", "kestrel", str(library), "--index", str(tmp_path / "ix"), "--no-dense"]
    )
    assert human.exit_code == 0 and "birds.md" in human.stdout


def test_fallback_tokenizer_cuts_the_same_windows_as_bert_uncased(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setattr(docqa.reader, "BUNDLED", tmp_path / "no-bundled-reader")
    monkeypatch.delenv("DOCQA_MODEL", raising=False)
    monkeypatch.setattr(docqa.reader, "LARGE", str(tmp_path / "not-cached"))
    fallback = docqa.index.load_tokenizer(None)
    bert = AutoTokenizer.from_pretrained(str(VOCAB))
    assert tokenizer_fingerprint(fallback) == tokenizer_fingerprint(bert)


def test_ask_retrieves_from_the_index_and_the_second_question_tokenizes_nothing(
    plant, tmp_path, monkeypatch
):
    plant({PHRASE: 10.0})
    counts = Counts(monkeypatch)
    parts = [filler(120, i) for i in range(30)]
    parts[21] = f"{filler(30)} Each autumn the {PHRASE} to Africa. {filler(30, 2)}"
    path = tmp_path / "birds.txt"
    path.write_text("\n\n".join(parts))
    qa = DocQA(
        max_seq_len=96,
        doc_stride=24,
        max_question_len=16,
        dense=False,
        index=tmp_path / "ix",
        chunks=2,
    )
    prediction, report = qa.ask_paths("Where does the kestrel migrate in autumn?", [path], 1, 2)
    assert report.parsed == 1 and counts.tokenize == 1
    assert prediction.answers[0].text == PHRASE
    assert prediction.answers[0].source == str(path)
    assert len(prediction.windows_read) == 2
    text = path.read_text()
    assert prediction.answers[0].start == text.index(PHRASE)
    # Another DocQA (a new process, in effect): nothing parsed or tokenized again.
    qa2 = DocQA(
        max_seq_len=96, doc_stride=24, max_question_len=16, dense=False, index=tmp_path / "ix"
    )
    [a] = qa2.ask("Which bird migrates each autumn?", path)
    assert a.text == PHRASE and counts.tokenize == 1
    # --exhaustive reads every window of the stored tokens.
    every, _ = qa2.ask_paths("Which bird migrates?", [path], 1, None)
    assert len(every.windows_read) > 10 and every.answers[0].text == PHRASE
    assert counts.tokenize == 1


def test_cli_ask_with_chunks_and_exhaustive(plant, tmp_path):
    """--chunks N and --exhaustive both find the phrase; --windows, the old name of --chunks,
    still works and says so on stderr."""
    plant({PHRASE: 10.0})
    path = tmp_path / "birds.txt"
    path.write_text(f"{filler(400)}\n\nEach autumn the {PHRASE} to Africa.\n\n{filler(400, 3)}")
    base = [
        "ask",
        "Where does the kestrel go?",
        str(path),
        "--index",
        str(tmp_path / "ix"),
        "--json",
        "--max-seq-len",
        "96",
        "--doc-stride",
        "24",
        "--no-dense",
    ]
    for extra in (["--chunks", "1"], ["--exhaustive"], ["--windows", "1"]):
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 0, result.stderr
        [answer] = json.loads(result.stdout)["answers"]
        assert answer["text"] == PHRASE
        assert ("--windows is now --chunks" in result.stderr) == ("--windows" in extra)


def test_pdfs_parsed_in_two_worker_processes_match_serial_parsing(tmp_path, scheme, monkeypatch):
    folder = tmp_path / "pdfs"
    folder.mkdir()
    for n in range(3):
        make_pdf(folder / f"m{n}.pdf", [f"Manual {n} page {p}. " + filler(80, p) for p in range(3)])
    monkeypatch.setattr(docqa.index.ingest, "PARALLEL_MIN_BYTES", 0)
    with Index(tmp_path / "parallel") as index:
        r = index.update([folder], scheme)
        parallel = [index.document(d).text for d in r.doc_ids]
        assert r.parsed == 3 and r.pages == 9
    monkeypatch.setattr(docqa.index.ingest, "PARALLEL_MIN_FILES", 10**6)
    with Index(tmp_path / "serial") as index:
        r = index.update([folder], scheme)
        assert [index.document(d).text for d in r.doc_ids] == parallel


class PoolStarted(Exception):
    """Raised in place of starting a process pool: how many workers it would have had."""


def test_files_are_parsed_on_every_core_unless_workers_says_otherwise(
    tmp_path, scheme, monkeypatch
):
    """Issue 16, item 2: parsing used at most two worker processes whatever the machine; now
    one per core (``os.cpu_count()``) by default, ``workers`` to choose, and ``workers=1``
    parses in this process without starting a pool."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(6):
        (folder / f"d{n}.txt").write_text(f"Document {n}. " + filler(40, n))

    def no_pool(workers, **kwargs):
        raise PoolStarted(workers)

    monkeypatch.setattr(docqa.index.ingest, "ProcessPoolExecutor", no_pool)
    monkeypatch.setattr(docqa.index.ingest, "PARALLEL_MIN_BYTES", 0)
    with Index(tmp_path / "one") as index:
        report = index.update([folder], scheme, workers=1)
        assert report.parsed == 6 and len(report.doc_ids) == 6
        with pytest.raises(InputError, match="workers"):
            index.update([folder], scheme, workers=0)
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    with Index(tmp_path / "default") as index, pytest.raises(PoolStarted) as started:
        index.update([folder], scheme)
    assert started.value.args == (5,)
    with Index(tmp_path / "three") as index, pytest.raises(PoolStarted) as started:
        index.update([folder], scheme, workers=3)
    assert started.value.args == (3,)


def test_eval_with_windows_reports_retrieval_recall(tiny_model):
    from docqa.evaluate import evaluate

    qa = DocQA(
        model=str(tiny_model),
        device="cpu",
        max_seq_len=64,
        doc_stride=16,
        max_question_len=16,
        dense=False,
    )
    data = ROOT / "tests" / "fixtures" / "squad-v1.1-tiny.json"
    one = evaluate(data, qa, level="document", chunks=1)
    every = evaluate(data, qa, level="document")
    assert one.windows_per_question == 1 < every.windows_per_question
    assert one.window_recall is not None and one.window_recall <= every.window_recall == 100.0


def test_content_moving_between_files_in_one_update(tmp_path, scheme, monkeypatch):
    # a.txt's old text reappears in a new file while a.txt changes: the known document must
    # survive until the new file points to it.
    counts = Counts(monkeypatch)
    folder = tmp_path / "f"
    folder.mkdir()
    old = "the heron waits in the marsh " + filler(40)
    (folder / "a.txt").write_text(old)
    with Index(tmp_path / "ix") as index:
        index.update([folder], scheme)
        (folder / "a.txt").write_text("the owl hunts at night " + filler(40))
        (folder / "b.txt").write_text(old)
        r = index.update([folder], scheme)
        assert r.parsed == 1 and counts.tokenize == 2
        [hit] = index.search("heron marsh", r.doc_ids, scheme, k=1)
        assert hit.path.endswith("b.txt")
        # Swapping two files' contents parses nothing.
        (folder / "a.txt").write_text(old)
        (folder / "b.txt").write_text("the owl hunts at night " + filler(40))
        r = index.update([folder], scheme)
        assert r.parsed == 0 and counts.tokenize == 2
        [hit] = index.search("heron marsh", r.doc_ids, scheme, k=1)
        assert hit.path.endswith("a.txt")


@pytest.fixture(scope="module")
def encoder():
    from docqa.retrieve import DenseEncoder

    return DenseEncoder()


def test_dense_vectors_in_the_index_find_a_paraphrase(tmp_path, encoder):
    """No word of the question is in any window, so BM25 ties them all; dense similarity,
    computed for them on demand (fewer chunks than candidates), finds the paraphrase."""
    from transformers import AutoTokenizer

    from docqa.index import ChunkScheme

    wide = ChunkScheme.for_tokenizer(
        AutoTokenizer.from_pretrained(str(VOCAB)),
        max_seq_len=128,
        doc_stride=24,
        max_question_len=16,
    )
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(4):
        (folder / f"f{i}.txt").write_text(filler(200, i))
    (folder / "health.txt").write_text(
        filler(150) + " Physicians recommend resting and drinking plenty of fluids when you "
        "have influenza. " + filler(150, 3)
    )
    with Index(tmp_path / "ix") as index:
        r = index.update([folder], wide)
        [hit] = index.search("what to do if I catch the flu", r.doc_ids, wide, 1, encoder)
        assert hit.path.endswith("health.txt") and "influenza" in hit.text[hit.start : hit.end]
        # BM25 alone has nothing to go on.
        [lexical] = index.search("what to do if I catch the flu", r.doc_ids, wide, 1)
        assert not lexical.path.endswith("health.txt")


def test_vectors_are_made_for_each_questions_candidates_only_and_kept(
    tmp_path, scheme, encoder, monkeypatch
):
    """Issue 16: indexing computes no vectors; a question encodes BM25's candidates that have
    none yet and stores them; no later question (another process too) encodes them again."""
    import docqa.index.search
    from docqa.retrieve import DENSE_CANDIDATES

    folder = tmp_path / "docs"
    folder.mkdir()
    words = ["heron", "marsh", "lantern", "harbor", "copper", "valley", "signal", "winter"]
    for i in range(12):
        topic = f"the {words[i % 8]} and the {words[(i + 3) % 8]}"
        (folder / f"f{i}.txt").write_text(" ".join(f"{topic} {filler(30, j)}" for j in range(4)))
    encoded: list[tuple[int, int, int]] = []
    real = docqa.index.search.piece_vectors

    def counting(enc, chunks, read):
        encoded.extend(chunks)
        return real(enc, chunks, read)

    monkeypatch.setattr(docqa.index.search, "piece_vectors", counting)

    def stored(index) -> int:
        return index.connect().execute("SELECT COUNT(*) FROM vectors").fetchone()[0]

    with Index(tmp_path / "ix") as index:
        r = index.update([folder], scheme)
        chunks = index.connect().execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        assert chunks > 2 * DENSE_CANDIDATES and stored(index) == 0
        index.rank("where is the heron of the marsh", r.doc_ids, scheme, 5, encoder)
        first = set(encoded)
        assert len(encoded) == len(first) == DENSE_CANDIDATES == stored(index)
        encoded.clear()
        index.rank("where is the heron of the marsh", r.doc_ids, scheme, 5, encoder)
        assert encoded == []
    with Index(tmp_path / "ix") as index:  # a new process: only what is stored is known
        index.rank("the copper lantern in winter", r.doc_ids, scheme, 5, encoder)
        second = set(encoded)
        assert second and not second & first
        assert stored(index) == len(first) + len(second)
        encoded.clear()
        index.rank("where is the heron of the marsh", r.doc_ids, scheme, 5, encoder)
        assert encoded == []


def test_a_file_parsed_by_an_older_loader_is_parsed_again_and_others_are_not(
    tmp_path, scheme, monkeypatch
):
    """Issue 17: the PDF loader's text changed (layout cleanup), so PDFs indexed before are
    parsed again once; text files, whose loader did not change, are not."""
    import docqa.loaders

    folder = tmp_path / "docs"
    folder.mkdir()
    make_pdf(folder / "manual.pdf", [f"Each autumn the {PHRASE} to Africa."])
    (folder / "notes.txt").write_text(filler(50))
    monkeypatch.setitem(docqa.loaders.LOADER_VERSIONS, "pdf", 0)
    with Index(tmp_path / "ix") as index:
        assert index.update([folder], scheme).parsed == 2
        assert index.update([folder], scheme).parsed == 0
        monkeypatch.setitem(docqa.loaders.LOADER_VERSIONS, "pdf", 1)
        r = index.update([folder], scheme)
        assert r.parsed == 1 and r.removed == 0
        [hit] = index.search("kestrel Africa", r.doc_ids, scheme, k=1)
        assert hit.path.endswith("manual.pdf")
        assert index.update([folder], scheme).parsed == 0
        db = index.connect()
        assert db.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == 2
        # A format with no version yet (0) gets its first: its files are parsed again too.
        monkeypatch.setitem(docqa.loaders.LOADER_VERSIONS, "text", 1)
        r = index.update([folder], scheme)
        assert r.parsed == 1 and [f.path for f in r.files if f.state == "ok"][-1].endswith(
            "notes.txt"
        )
        assert index.update([folder], scheme).parsed == 0


def test_a_version_2_index_is_migrated_and_its_pdfs_parsed_again(tmp_path, scheme):
    """An index written before loader versions were kept opens, keeps its text files and
    parses its PDFs once more (their loader changed since)."""
    import sqlite3

    folder = tmp_path / "docs"
    folder.mkdir()
    make_pdf(folder / "manual.pdf", [f"Each autumn the {PHRASE} to Africa."])
    (folder / "notes.txt").write_text(filler(50))
    with Index(tmp_path / "ix") as index:
        index.update([folder], scheme)
    with sqlite3.connect(tmp_path / "ix" / "index.sqlite3") as db:  # back to version 2
        db.execute("ALTER TABLE documents DROP COLUMN loader")
        db.execute("ALTER TABLE documents DROP COLUMN regions")
        db.execute("ALTER TABLE chunks RENAME TO windows")  # version 4 named it chunks
        db.execute("ALTER TABLE vectors RENAME COLUMN chunk_id TO window_id")
        db.execute("PRAGMA user_version=2")
    db.close()
    with Index(tmp_path / "ix") as index:
        r = index.update([folder], scheme)
        assert index.connect().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert (r.parsed, len(r.doc_ids)) == (1, 2)
