"""Issue 16, item 4: the CLI stands on the public API only; `docqa ask` updates the index once
per question; `docqa index --vectors`; phase timings in ``--json``; the progress bar's rate and
time left; `DocQA.search` and `DocQA.index` need no reader model."""

from __future__ import annotations

import ast
import io
import json
import re
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PHRASE, filler
from rich.console import Console
from typer.testing import CliRunner

import docqa
import docqa.api
import docqa.cli
import docqa.reader
import docqa.retrieve
from docqa import DocQA, Index, InputError
from docqa.cli import app, progress_bar

CLI = Path(docqa.cli.__file__)
#: Modules the CLI may import names from: the package's public surface and its errors.
ALLOWED_MODULES = {"docqa", "docqa.errors"}
#: The index's internals, whatever module they would come from.
INTERNAL_NAMES = {"ChunkScheme", "DenseEncoder", "load_tokenizer", "tokenizer_fingerprint"}


def private_imports(source: str) -> list[str]:
    """Every import in ``source`` that reaches past docqa's public surface, as ``line: what``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                found.append(f"{node.lineno}: relative import from {module or '.'}")
                continue
            if module != "docqa" and not module.startswith("docqa."):
                continue
            if module not in ALLOWED_MODULES:
                found.append(f"{node.lineno}: from {module}")
            for alias in node.names:
                if alias.name.startswith("_") or alias.name in INTERNAL_NAMES:
                    found.append(f"{node.lineno}: {alias.name} from {module}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("docqa.") and alias.name not in ALLOWED_MODULES:
                    found.append(f"{node.lineno}: import {alias.name}")
    return found


def test_cli_imports_only_public_names():
    """Issue 16, item 4: cli.py imported `Index`, `ChunkScheme`, `DenseEncoder`,
    `_dense_available` and loader internals from submodules."""
    assert private_imports(CLI.read_text()) == []


def test_the_import_check_catches_what_cli_py_imported_before():
    """The check above fails on the imports cli.py had before issue 16 (copied here)."""
    before = """
from docqa.api import DEFAULT_CHUNKS
from docqa.errors import DocQAError, InputError, ModelLoadError

def ask():
    from docqa.api import DocQA
    from docqa.loaders import LoadResult, load_paths
    from docqa.loaders.walk import walk

def index_command():
    from docqa.index import Index, ChunkScheme
    from docqa.loaders import LoadOptions, LoadResult

def _encoder(dense):
    from docqa.api import _dense_available
    from docqa.retrieve import DenseEncoder
"""
    found = private_imports(before)
    for what in (
        "from docqa.api",
        "from docqa.loaders.walk",
        "from docqa.index",
        "ChunkScheme from docqa.index",
        "_dense_available from docqa.api",
        "DenseEncoder from docqa.retrieve",
    ):
        assert any(f.endswith(what) for f in found), (what, found)
    assert not any("docqa.errors" in f for f in found)
    assert private_imports("from docqa import Index, DocQA\nfrom . import cli") == [
        "2: relative import from ."
    ]


def test_public_names_the_cli_uses_are_exported():
    for name in ("DocQA", "Index", "Hit", "UpdateReport", "DEFAULT_CHUNKS", "check_paths"):
        assert name in docqa.__all__ and getattr(docqa, name) is not None
    assert Index is __import__("docqa.index", fromlist=["Index"]).Index


# --- `docqa ask`: one update of the index per question ------------------------------------


@pytest.fixture
def library(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "birds.txt").write_text(f"{filler(80)} Each autumn the {PHRASE}. {filler(80, 2)}")
    (folder / "notes.txt").write_text(f"{filler(60, 1)} The grey heron waits. {filler(40)}")
    return folder


#: ``--json`` timings of bringing the index up to date: the whole, and each phase of ingest.
INGEST_TIMINGS = {"index", "index_update"} | {
    f"index_{phase}" for phase in ("walk", "plan", "parse", "tokenize", "vectors", "finish")
}


@pytest.fixture
def updates(monkeypatch) -> list:
    """The paths of every `Index.update` call made in this process."""
    calls = []
    real = Index.update

    def counting(self, paths, *args, **kwargs):
        calls.append(list(paths))
        return real(self, calls[-1], *args, **kwargs)

    monkeypatch.setattr(Index, "update", counting)
    return calls


def test_ask_updates_the_index_once_per_question(plant, library, tmp_path, updates):
    """Issue 16, item 4: `docqa ask` updated the index twice per question (`qa.index` for the
    progress bar, then again inside `ask_paths`)."""
    plant({PHRASE: 10.0})
    question = ["ask", "Where does the kestrel go?", str(library), "--index", str(tmp_path / "ix")]
    for n in (1, 2):
        result = CliRunner().invoke(app, [*question, "--no-dense", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["answers"][0]["text"] == PHRASE
        assert len(updates) == n


def test_ask_many_updates_the_index_once_per_question(plant, library, tmp_path, updates):
    """`DocQA.ask_many` over paths indexed them first and then once more per question."""
    plant({PHRASE: 10.0})
    qa = DocQA(index=tmp_path / "ix", dense=False)
    answers = qa.ask_many(["Where does the kestrel go?"] * 3, library)
    assert [a[0].text for a in answers] == [PHRASE] * 3
    assert len(updates) == 3


def test_ask_json_reports_timings_and_statuses_once(plant, library, tmp_path):
    plant({PHRASE: 10.0})
    (library / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    args = ["ask", "Where does the kestrel go?", str(library), "--index", str(tmp_path / "ix")]
    result = CliRunner().invoke(app, [*args, "--no-dense", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    timings = payload["timings"]
    assert set(timings) == {"load_model", "answer", "total", *INGEST_TIMINGS}
    assert all(isinstance(v, float) and v >= 0 for v in timings.values())
    assert timings["total"] >= timings["load_model"] + timings["index"] + timings["answer"] - 0.01
    assert timings["index_parse"] <= timings["index_update"]
    names = {Path(f["path"]).name for f in payload["files"]}
    assert names == {"birds.txt", "notes.txt", "image.png"}
    # The skipped file is reported once, on stderr, before the answer.
    assert result.stderr.count("image.png") == 1


def test_ask_with_no_readable_file_shows_statuses_then_one_error(plant, tmp_path):
    plant({PHRASE: 10.0})
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "b.txt").write_text("   \n")
    args = ["ask", "Where?", str(tmp_path), "--index", str(tmp_path / "ix"), "--no-dense"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "a.png" in result.stderr and "b.txt" in result.stderr
    assert result.stderr.count("error:") == 1 and result.stdout == ""


# --- `docqa search` and `DocQA.search`: no reader model --------------------------------------


@pytest.fixture
def no_reader(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the reader model must not be loaded")

    monkeypatch.setattr(docqa.reader.Reader, "warm_up", refuse)
    monkeypatch.setattr(docqa.reader, "load_model", refuse)


def test_docqa_search_and_index_never_load_the_reader(tiny_model, library, tmp_path, no_reader):
    """`DocQA.scheme` went through ``reader.tokenizer``, which loads the whole model: the
    CLI's search and index could not use `DocQA` without loading a reader they never use."""
    qa = DocQA(model=str(tiny_model), index=tmp_path / "ix", dense=False)
    assert qa.index([library]).parsed == 2
    hits, report = qa.search("kestrel autumn", [library], k=2)
    assert hits[0].path == str(library / "birds.txt")
    assert PHRASE in hits[0].text[hits[0].start : hits[0].end]
    assert report.parsed == 0 and len(report.doc_ids) == 2
    hits, _ = qa.search("heron", library, k=1)  # one path, not in a list, works too
    assert [h.path for h in hits] == [str(library / "notes.txt")]


def test_scheme_from_the_tokenizer_alone_equals_the_loaded_readers(tiny_model, tmp_path):
    """Indexing before the reader loads cuts the windows the reader then reads: nothing is
    tokenized twice."""
    qa = DocQA(model=str(tiny_model), index=tmp_path / "ix", dense=False, device="cpu")
    before = qa.scheme
    qa.warm_up()
    assert qa.scheme == before


def test_search_input_errors(tiny_model, library, tmp_path):
    qa = DocQA(model=str(tiny_model), index=tmp_path / "ix", dense=False)
    with pytest.raises(InputError, match="query is empty"):
        qa.search("  ", [library])
    with pytest.raises(InputError, match="not Documents"):
        qa.search("kestrel", [docqa.Document.from_text("a kestrel")])
    with pytest.raises(InputError, match="No such file"):
        qa.search("kestrel", [tmp_path / "missing"])


def test_search_json_reports_timings(tiny_model, library, tmp_path, no_reader):
    args = ["search", "kestrel", str(library), "--index", str(tmp_path / "ix")]
    result = CliRunner().invoke(app, [*args, "--model", str(tiny_model), "--no-dense", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["hits"][0]["source"] == str(library / "birds.txt")
    assert set(payload["timings"]) == {"search", "total", *INGEST_TIMINGS}


# --- `docqa index`: --vectors, timings, --rebuild ------------------------------------------


class FakeEncoder:
    """Stands in for the sentence encoder: one vector per chunk, counted."""

    name = "fake-encoder"
    chunks = 0

    def encode_chunks(self, text, ranges):
        FakeEncoder.chunks += len(ranges)
        return np.ones((len(ranges), 8), dtype=np.float32), np.arange(len(ranges))


@pytest.fixture
def fake_encoder(monkeypatch):
    monkeypatch.setattr(docqa.api, "_dense_available", lambda: True)
    monkeypatch.setattr(docqa.retrieve, "DenseEncoder", FakeEncoder)
    FakeEncoder.chunks = 0
    return FakeEncoder


def counts(ix: Path) -> tuple[int, int]:
    """(chunks, chunks with a vector) in the index in ``ix``."""
    with sqlite3.connect(ix / "index.sqlite3") as db:
        chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        vectors = db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
    db.close()
    return chunks, vectors


def index_args(library: Path, ix: Path, model: Path) -> list[str]:
    small = ["--max-seq-len", "96", "--doc-stride", "24"]
    return ["index", str(library), "--index", str(ix), "--model", str(model), *small, "--json"]


def test_index_stores_vectors_only_with_vectors(tiny_model, library, tmp_path, fake_encoder):
    """Issue 16, item 1: indexing computed a vector for every chunk up front; now only
    ``--vectors`` does (otherwise a question's candidates get theirs when first needed)."""
    plain, full = tmp_path / "plain", tmp_path / "full"
    result = CliRunner().invoke(app, index_args(library, plain, tiny_model))
    assert result.exit_code == 0, result.output
    chunks, vectors = counts(plain)
    assert chunks > 4 and vectors == 0
    assert fake_encoder.chunks == 0
    assert json.loads(result.stdout)["vectors"] is False
    result = CliRunner().invoke(app, [*index_args(library, full, tiny_model), "--vectors"])
    assert result.exit_code == 0, result.output
    assert counts(full) == (chunks, chunks)
    assert fake_encoder.chunks == chunks


def test_index_json_reports_timings(tiny_model, library, tmp_path):
    result = CliRunner().invoke(app, [*index_args(library, tmp_path / "ix", tiny_model)])
    assert result.exit_code == 0, result.output
    timings = json.loads(result.stdout)["timings"]
    assert set(timings) == {"total", *INGEST_TIMINGS}
    assert all(isinstance(v, float) and v >= 0 for v in timings.values())
    assert timings["index_update"] <= timings["index"] <= timings["total"]


def one_sentence(result) -> str:
    message = " ".join(result.stderr.split())
    assert message.startswith("error:") and message.count("error:") == 1, result.stderr
    assert message.count(". ") == 0 and message.endswith("."), message
    assert result.stdout == "" and "Traceback" not in result.output
    return message


def test_vectors_with_no_dense_is_an_input_error(tiny_model, library, tmp_path, fake_encoder):
    args = [*index_args(library, tmp_path / "ix", tiny_model), "--vectors", "--no-dense"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--no-dense" in one_sentence(result)
    assert not (tmp_path / "ix").exists(), "refused before anything was indexed"


def test_vectors_without_the_encoder_package_is_an_input_error(
    tiny_model, library, tmp_path, monkeypatch
):
    monkeypatch.setattr(docqa.api, "_dense_available", lambda: False)
    result = CliRunner().invoke(
        app, [*index_args(library, tmp_path / "ix", tiny_model), "--vectors"]
    )
    assert result.exit_code == 2
    assert "pip install" in one_sentence(result)
    with pytest.raises(InputError, match="dense retrieval"):
        DocQA(dense=False, index=tmp_path / "ix").index([library], vectors=True)


def test_docqa_index_rebuild_parses_again(tiny_model, library, tmp_path):
    qa = DocQA(model=str(tiny_model), index=tmp_path / "ix", dense=False)
    assert qa.index([library]).parsed == 2
    assert qa.index([library]).parsed == 0
    assert qa.index([library], rebuild=True).parsed == 2
    assert qa.index_directory == tmp_path / "ix"


def test_index_help_explains_vectors():
    # Wide enough that no help line is wrapped inside the table's borders.
    result = CliRunner().invoke(app, ["index", "--help"], env={"COLUMNS": "1000"})
    shown = " ".join(result.stdout.split())
    assert "--vectors" in shown and "when first needed" in shown


# --- the progress bar: files done/total, files/s, time left ---------------------------------


def test_progress_bar_shows_files_rate_and_time_left(monkeypatch):
    monkeypatch.setattr(docqa.cli, "err", Console(file=io.StringIO(), force_terminal=True))

    def rows(bar) -> list[str]:
        screen = Console(file=io.StringIO(), width=160, color_system=None)
        screen.print(bar.progress.get_renderable())
        return [" ".join(r.split()) for r in screen.file.getvalue().splitlines() if r.strip()]

    with progress_bar("Indexing", unit="files") as bar:
        bar.files(1, 4, "a.txt")
        time.sleep(0.3)
        bar.files(2, 4, "b.txt")
        bar.pieces(1, 5, "windows of c.txt")
        files, pieces = rows(bar)
        assert re.search(r"^Indexing .*2/4 \d+\.\d files/s \d:\d\d:\d\d \d:\d\d:\d\d$", files)
        assert re.search(r"^Indexing windows of c\.txt .*1/5", pieces)
        bar.files(3, 4, "c.txt")
        assert len(rows(bar)) == 1, "a finished file's pieces leave the screen"
