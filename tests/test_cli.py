"""The `docqa ask` command: JSON schema, offsets and pages, exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PHRASE, filler, invoke_cli
from pdfgen import make_pdf

from docqa import load

ANSWER_KEYS = {"text", "score", "source", "page", "start", "end", "context"}
SAMPLE_DOCS = Path(__file__).resolve().parents[1] / "sample_docs"


def run(*args: str, env: dict | None = None):
    if args[0] == "ask" and "--help" not in args:
        # BM25 only: loading the dense encoder and encoding every window costs 5-15 s per
        # test on CPU, and retrieval is not what these tests are about (its own tests are).
        args = (*args, "--no-dense")
    return invoke_cli(args, env=env)


def one_error(result) -> str:
    """The single error message on stderr, whitespace collapsed (rich wraps long lines)."""
    message = " ".join(result.stderr.split())
    assert message.startswith("error:"), result.stderr
    assert message.count("error:") == 1
    assert result.stdout == ""
    return message


def check_answers_against_files(payload: dict) -> None:
    """Every answer's offsets point into the file's own text; PDFs carry their page."""
    for a in payload["answers"]:
        assert set(a) >= ANSWER_KEYS
        doc = load(a["source"])
        assert doc.text[a["start"] : a["end"]] == a["text"]
        assert 0 < a["score"] <= 1
        assert a["page"] == doc.page_at(a["start"])
        if a["source"].endswith(".pdf"):
            assert isinstance(a["page"], int) and a["page"] >= 1


@pytest.fixture
def library(tmp_path) -> Path:
    """A folder: a 5-page PDF with the phrase on page 4, a text file, an unsupported file."""
    pages = [filler(120, n) for n in range(5)]
    pages[3] = f"{filler(40)} The {PHRASE} in autumn. {filler(40, 3)}"
    make_pdf(tmp_path / "birds.pdf", pages)
    (tmp_path / "notes.txt").write_text(f"{filler(100)} The grey heron waits. {filler(20)}")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return tmp_path


@pytest.fixture
def note(tmp_path) -> Path:
    """One readable text file: nothing for the CLI to report before a model error."""
    path = tmp_path / "note.txt"
    path.write_text(f"{filler(50)} The {PHRASE}. {filler(50)}")
    return path


# --- answers ------------------------------------------------------------------------------


def test_json_schema_offsets_and_pages(plant, library):
    plant({PHRASE: 10.0, "grey heron": 6.0})
    result = run("ask", "Where does the kestrel go?", str(library), "--json", "--top-k", "2")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["question"] == "Where does the kestrel go?"
    assert len(payload["answers"]) == 2
    best, second = payload["answers"]
    assert " ".join(best["text"].split()) == PHRASE
    assert best["source"] == str(library / "birds.pdf") and best["page"] == 4
    assert PHRASE in " ".join(best["context"].split())
    assert second["text"] == "grey heron" and second["source"].endswith("notes.txt")
    assert best["score"] > second["score"]
    check_answers_against_files(payload)


def test_human_output_shows_answer_score_and_file_page(plant, library):
    plant({PHRASE: 10.0})
    result = run("ask", "Where does the kestrel go?", str(library))
    assert result.exit_code == 0, result.stderr
    shown = "".join(result.stdout.split())  # rich wraps and folds at the console width
    assert "violetkestrelmigratessouthward" in shown and "score" in shown
    assert f"{library / 'birds.pdf'}:4" in shown


def test_tiny_model_over_sample_docs(tiny_model):
    """The acceptance command, with a real (tiny, random) model folder."""
    result = run(
        "ask",
        "How long does the battery last?",
        str(SAMPLE_DOCS),
        "--model",
        str(tiny_model),
        "--json",
        "--top-k",
        "5",
        "--device",
        "cpu",
        "--max-seq-len",
        "128",
        "--doc-stride",
        "32",
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert 1 <= len(payload["answers"]) <= 5
    check_answers_against_files(payload)


def test_long_question_warns_and_answers(plant, library):
    plant({PHRASE: 10.0})
    result = run("ask", "why " * 200, str(library), "--json")
    assert result.exit_code == 0, result.stderr
    assert "warning:" in result.stderr
    assert json.loads(result.stdout)["answers"]


# --- exit code 2: input ---------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_question_exits_2(plant, library, question):
    model = plant({PHRASE: 10.0})
    result = run("ask", question, str(library))
    assert result.exit_code == 2
    assert "question" in one_error(result).lower()
    assert model.loads == [], "no model is loaded for a question that cannot be asked"


def test_missing_path_exits_2(plant, tmp_path):
    model = plant({PHRASE: 10.0})
    missing = tmp_path / "missing"
    result = run("ask", "Where?", str(missing))
    assert result.exit_code == 2
    assert str(missing) in one_error(result)
    assert model.loads == [], "input errors come before the (slow, fallible) model load"


def test_empty_folder_exits_2(plant, tmp_path):
    model = plant({PHRASE: 10.0})
    (tmp_path / "empty").mkdir()
    result = run("ask", "Where?", str(tmp_path / "empty"))
    assert result.exit_code == 2
    assert "empty" in one_error(result)
    assert model.loads == []


def test_missing_path_exits_2_even_when_the_model_cannot_load(tmp_path):
    """Regression: `ask` loaded the model before looking at the paths, so with the default
    model not cached, `docqa ask "…" missing/` exited 3 instead of 2."""
    env = {"HF_HUB_OFFLINE": "1", "DOCQA_MODEL": str(tmp_path / "no-model")}
    result = run("ask", "Where?", str(tmp_path / "missing"), env=env)
    assert result.exit_code == 2
    assert "No such file" in one_error(result)


def test_folder_without_readable_documents_exits_2(plant, tmp_path):
    plant({PHRASE: 10.0})
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "b.txt").write_text("   \n")
    result = run("ask", "Where?", str(tmp_path))
    assert result.exit_code == 2
    assert "error:" in result.stderr


def test_bad_setting_exits_2(plant, library):
    plant({PHRASE: 10.0})
    result = run("ask", "Where?", str(library), "--doc-stride", "400")
    assert result.exit_code == 2
    assert "doc_stride" in one_error(result)


# --- exit code 3: the model ---------------------------------------------------------------


def test_model_path_that_does_not_exist_exits_3(note):
    result = run("ask", "Where?", str(note), "--model", "/nonexistent")
    assert result.exit_code == 3
    message = one_error(result)
    assert "/nonexistent" in message
    assert "--model" in message, "the sentence says how to fix it"


def test_model_folder_without_config_exits_3(note, tmp_path):
    (tmp_path / "not-a-model").mkdir()
    result = run("ask", "Where?", str(note), "--model", str(tmp_path / "not-a-model"))
    assert result.exit_code == 3
    assert "config.json" in one_error(result)


def test_model_not_cached_offline_exits_3_with_how_to_fix(note):
    env = {"HF_HUB_OFFLINE": "1", "DOCQA_MODEL": None}
    result = run("ask", "Where?", str(note), "--model", "nobody/no-such-reader", env=env)
    assert result.exit_code == 3
    message = one_error(result)
    assert "nobody/no-such-reader" in message
    assert "--model PATH" in message and "connected machine" in message


def test_model_from_environment_variable(note, tmp_path):
    env = {"DOCQA_MODEL": str(tmp_path / "nowhere"), "HF_HUB_OFFLINE": "1"}
    result = run("ask", "Where?", str(note), env=env)
    assert result.exit_code == 3
    assert "nowhere" in one_error(result)


# --- exit code 4: --strict ------------------------------------------------------------------


def test_strict_exits_4_when_a_file_fails(plant, library):
    plant({PHRASE: 10.0})
    (library / "broken.pdf").write_bytes(b"%PDF-1.4\n% this is not really a PDF\n")
    lenient = run("ask", "Where?", str(library), "--json")
    assert lenient.exit_code == 0, lenient.stderr
    payload = json.loads(lenient.stdout)
    assert payload["answers"]
    states = {Path(f["path"]).name: f["state"] for f in payload["files"]}
    assert states["broken.pdf"] == "failed"
    strict = run("ask", "Where?", str(library), "--json", "--strict")
    assert strict.exit_code == 4
    assert json.loads(strict.stdout)["answers"], "answers are still printed"
    assert "broken.pdf" in strict.stderr


def test_strict_with_every_file_fine_exits_0(plant, library):
    plant({PHRASE: 10.0})
    assert run("ask", "Where?", str(library / "birds.pdf"), "--strict").exit_code == 0


# --- entry points -------------------------------------------------------------------------


def test_python_dash_m_docqa_help():
    proc = subprocess.run(
        [sys.executable, "-m", "docqa", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ask" in proc.stdout and "Exit codes" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_ask_help_lists_options():
    result = run("ask", "--help")
    assert result.exit_code == 0
    for option in ("--model", "--top-k", "--json", "--device", "--strict"):
        assert option in result.stdout
