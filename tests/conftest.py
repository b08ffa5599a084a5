"""Shared fixtures: tiny models built at test time from the real uncased vocabulary."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import hypothesis
import pytest

# Mutation testing (scripts/mutation.py) compares runs, and CI (.ci/run) must not fail by the
# chance of a draw: there every property test draws the same examples each time
# (HYPOTHESIS_PROFILE=derandomized); elsewhere they vary as usual.
hypothesis.settings.register_profile("derandomized", derandomize=True)
if os.environ.get("HYPOTHESIS_PROFILE"):
    hypothesis.settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])

# `DocQA.ask` on paths indexes them; tests must never write to the user's cache directory.
os.environ["DOCQA_INDEX"] = tempfile.mkdtemp(prefix="docqa-test-index-")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VOCAB = SHARED / "tokenizers" / "bert-base-uncased"
MANUALS = SHARED / "corpus" / "manuals"
SQUAD = SHARED / "data" / "squad"


def load_script(name: str):
    """``scripts/NAME.py`` as a module (scripts are not a package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT QA model with the real vocabulary, saved to disk."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertForQuestionAnswering(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(VOCAB)).save_pretrained(folder)
    return folder


#: A phrase planted in generated text for questions to find (no filler word is in it).
PHRASE = "violet kestrel migrates southward"
FILLER = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def filler(n: int, offset: int = 0) -> str:
    """``n`` words of neutral text (no planted phrase, nothing a question asks about)."""
    return " ".join(FILLER[(offset + i) % len(FILLER)] for i in range(n))


@pytest.fixture(scope="module")
def scheme():
    """Small windows (96 tokens, stride 24) of the real uncased vocabulary, for index tests."""
    from transformers import AutoTokenizer

    from docqa.index import ChunkScheme

    return ChunkScheme.for_tokenizer(
        AutoTokenizer.from_pretrained(str(VOCAB)), max_seq_len=96, doc_stride=24
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Path of a tiny random BERT QA model folder, loaded through ``from_pretrained``."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(VOCAB))


@pytest.fixture
def plant(monkeypatch, tokenizer):
    """Install a `PlantedModel` as the reader: ``model = plant({"blue heron": 10.0})``.

    Every later ``load_model`` call (``DocQA``, the CLI) gets that model and the real
    tokenizer; the names it was asked for are in ``model.loads``.
    """
    from planted import PlantedModel, planted_loader

    import docqa.reader

    def install(phrases, **options):
        model = PlantedModel(tokenizer, phrases, **options)
        model.loads = []
        monkeypatch.setattr(
            docqa.reader, "load_model", planted_loader(model, tokenizer, model.loads)
        )
        return model

    return install


def invoke_cli(args, env: dict | None = None):
    """`docqa ARGS` in-process; never a traceback or an uncaught exception."""
    from typer.testing import CliRunner

    from docqa.cli import app

    result = CliRunner().invoke(app, list(args), env=env)
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {result.exception!r}") from result.exception
    return result


class RealServer:
    """uvicorn serving ``app`` on 127.0.0.1 on a free port (the system picks it: no race with
    another test), in a thread, started and stopped by a ``with`` block.

    >>> with RealServer(app) as server:  # doctest: +SKIP
    ...     httpx.get(server.url + "/healthz")
    """

    def __init__(self, app):
        import threading

        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        import time

        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)
