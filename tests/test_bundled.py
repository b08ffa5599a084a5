"""The bundled reader answers real questions about sample_docs/ offline (issue 4).

These use the real trained weights in docqa/models/docqa-mini, so they check answer quality
end to end: a broken model export, tokenizer, default-model resolution or offset mapping
gives a wrong answer text here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docqa import DocQA
from docqa.cli import app
from docqa.reader import BUNDLED, resolve_model

SAMPLE_DOCS = Path(__file__).resolve().parents[1] / "sample_docs"

KNOWN = [
    ("How long is the warranty?", "two years", "aurora-manual"),
    ("Where is Halcyon Instruments based?", "Bergen, Norway", "faq.html"),
    ("How much does the outdoor sensor weigh?", "640 grams", "aurora-manual"),
    ("Who founded Halcyon Instruments?", "Ingrid Solberg and Tomas Lind", "faq.html"),
    ("What was added in version 3.2.0?", "hail detection", "release-notes.txt"),
]


@pytest.fixture(scope="module")
def qa() -> DocQA:
    return DocQA(index=False, dense=False)


def test_default_model_is_the_bundled_reader(monkeypatch) -> None:
    monkeypatch.delenv("DOCQA_MODEL", raising=False)
    assert resolve_model(None) == str(BUNDLED)
    assert (BUNDLED / "model.safetensors").stat().st_size < 50_000_000


@pytest.mark.parametrize(("question", "expected", "source"), KNOWN)
def test_bundled_reader_answers_sample_docs(qa, question, expected, source) -> None:
    answer = qa.ask(question, SAMPLE_DOCS)[0]
    assert answer.text == expected
    assert source in answer.source
    assert answer.document.text[answer.start : answer.end] == answer.text


def test_bundled_reader_reads_the_whole_manual_for_the_battery(qa) -> None:
    answer = qa.ask("How long does the battery last?", SAMPLE_DOCS, exhaustive=True)[0]
    assert answer.text == "14 months"


def test_cli_answers_offline_with_no_model_option(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("DOCQA_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DOCQA_INDEX", str(tmp_path / "index"))
    result = CliRunner().invoke(
        app, ["ask", "How long is the warranty?", str(SAMPLE_DOCS), "--json", "--no-dense"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["answers"][0]["text"] == "two years"


# Three loads started at once in a fresh interpreter, as `ask` over an index starts them (the
# reader and the sentence encoder in the background, the index's tokenizer meanwhile).
# transformers imports its classes lazily; without `modelio.LOADING` about half of such
# starts failed with "cannot import name 'AutoTokenizer' from 'transformers'".
CONCURRENT_LOADS = r"""
import threading
from docqa import DocQA
from docqa.retrieve import DenseEncoder
from docqa.windowing import load_tokenizer

qa = DocQA()
start = threading.Barrier(3)
errors = []

def run(load):
    start.wait()
    try:
        load()
    except Exception as exc:
        errors.append(repr(exc))

loads = (qa.warm_up, lambda: load_tokenizer(None), DenseEncoder().warm_up)
threads = [threading.Thread(target=run, args=(load,)) for load in loads]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(errors or "loaded")
"""


def test_models_load_from_several_threads_at_once() -> None:
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", CONCURRENT_LOADS],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert done.stdout.strip().splitlines()[-1:] == ["loaded"], done.stdout + done.stderr
