"""Model folders and checkpoints are input from strangers: docqa runs no code from them.

Issue 15 ("Safe by default"), items 1, 2, 3 and 8:

1. A model folder that ships its own code (``auto_map`` in config.json) is refused with one
   sentence, exit 3, for ``ask``, ``search --model``, ``eval`` and ``train --base``; the custom
   module (which writes a marker file when imported) is never imported and transformers'
   "Do you wish to run the custom code? [y/N]" prompt never appears, even with "y" waiting on
   stdin (before the fix, that answer ran the module).
2. Weights load from safetensors only; a folder with only a pickle ``pytorch_model.bin`` is
   refused unless ``--allow-pickle`` is given, and then it is read as plain tensors: a damaged
   or malicious ``.bin`` gives one line, exit 3, and runs nothing.
3. ``docqa train`` resumes with ``torch.load(weights_only=True)``: a planted
   ``checkpoint/state.pt`` runs nothing and gives one sentence, exit 2.
8. ``--max-seq-len`` beyond the model's position embeddings is refused when the model loads,
   one sentence, exit 2 (it was a torch IndexError traceback in the first forward pass).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import VOCAB, build_tiny_model
from typer.testing import CliRunner

from docqa.cli import app
from docqa.errors import InputError, ModelLoadError

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "squad-v1.1-tiny.json"
TEXT = (
    "The violet kestrel migrates southward in autumn. It nests on cliffs above the sea and "
    "feeds on insects, small birds and the occasional mouse caught in the dunes at dawn. "
) * 3


@pytest.fixture(scope="module")
def good_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("good-model"))


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "MARKER"


def custom_code_model(folder: Path, base: Path, marker: Path, model_type: str) -> Path:
    """``base`` plus a module that writes ``marker`` when imported, named by ``auto_map``."""
    shutil.copytree(base, folder)
    (folder / "custom_qa.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('custom code ran')\n"
        "from transformers import BertConfig, BertForQuestionAnswering, BertTokenizerFast\n"
        "class EvilConfig(BertConfig):\n"
        f"    model_type = {model_type!r}\n"
        "class EvilQA(BertForQuestionAnswering):\n"
        "    config_class = EvilConfig\n"
        "class EvilTokenizer(BertTokenizerFast):\n"
        "    pass\n"
    )
    code = {
        "AutoConfig": "custom_qa.EvilConfig",
        "AutoModel": "custom_qa.EvilQA",
        "AutoModelForQuestionAnswering": "custom_qa.EvilQA",
        "AutoTokenizer": [None, "custom_qa.EvilTokenizer"],
    }
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type=model_type, auto_map=code)
    (folder / "config.json").write_text(json.dumps(config))
    tok = json.loads((folder / "tokenizer_config.json").read_text())
    tok["auto_map"] = {"AutoTokenizer": [None, "custom_qa.EvilTokenizer"]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok))
    return folder


@pytest.fixture(params=["docqa-evil", "bert"])
def code_model(request, tmp_path, good_model, marker) -> Path:
    """A custom architecture, and a known one that still names its own code."""
    return custom_code_model(tmp_path / "code-model", good_model, marker, request.param)


def pickle_model(folder: Path, base: Path, extra=None) -> Path:
    """``base`` with its weights as a pickle ``pytorch_model.bin`` only."""
    import torch
    from safetensors.torch import load_file

    shutil.copytree(base, folder)
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    if extra is not None:
        state["extra"] = extra
    torch.save(state, folder / "pytorch_model.bin")
    return folder


class Planted:
    """Unpickling this opens (creates) the marker file: what a malicious pickle would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def short_model(folder: Path, positions: int = 64) -> Path:
    """A tiny BERT QA model whose position embeddings cover only ``positions`` tokens."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=positions,
        hidden_dropout_prob=0.0,
    )
    BertForQuestionAnswering(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(VOCAB)).save_pretrained(folder)
    return folder


def run(*args, stdin: str = "y\ny\ny\n"):
    """The CLI with "y" waiting on stdin, as a user who answers a [y/N] prompt would."""
    result = CliRunner().invoke(app, [str(a) for a in args], input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {result.exception!r}") from result.exception
    return result


def one_sentence(result, code: int, *words: str) -> str:
    """Exit ``code``; nothing on stdout (no prompt); one error line on stderr naming ``words``."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stdout == "", result.stdout  # transformers' [y/N] prompt went to stdout
    assert "Traceback" not in result.stderr
    assert "[y/N]" not in result.stderr
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert message.startswith("error:") and message.count("error:") == 1, result.stderr
    assert message.count(". ") == 0, message  # one sentence
    for w in words:
        assert w in message, message
    return message


@pytest.fixture
def note(tmp_path) -> Path:
    path = tmp_path / "note.txt"
    path.write_text(TEXT)
    return path


# --- 1. no code from a model folder -----------------------------------------------------------


def test_ask_refuses_a_model_that_ships_code(code_model, note, marker, tmp_path):
    result = run(
        "ask", "Where does it nest?", note, "--model", code_model, "--json", "--no-dense",
        "--index", tmp_path / "index",
    )  # fmt: skip
    assert not marker.exists()  # checked first: the code must not have run
    one_sentence(result, 3, "docqa does not run code shipped with a model", "auto_map")


def test_search_model_refuses_a_model_that_ships_code(code_model, note, marker, tmp_path):
    result = run(
        "search", "kestrel", note, "--model", code_model, "--json", "--no-dense",
        "--index", tmp_path / "index",
    )  # fmt: skip
    assert not marker.exists()  # checked first: the code must not have run
    one_sentence(result, 3, "docqa does not run code shipped with a model", "auto_map")


def test_eval_refuses_a_model_that_ships_code(code_model, marker):
    result = run(
        "eval", V1, "--model", code_model, "--json", "--no-dense", "--level", "paragraph",
        "--limit", "1",
    )  # fmt: skip
    assert not marker.exists()  # checked first: the code must not have run
    one_sentence(result, 3, "docqa does not run code shipped with a model", "auto_map")


def test_train_refuses_a_base_that_ships_code(code_model, marker, tmp_path):
    result = run(
        "train", V1, "--base", code_model, "--out", tmp_path / "out", "--max-seq-len", "128",
        "--doc-stride", "32",
    )  # fmt: skip
    assert not marker.exists()  # checked first: the code must not have run
    one_sentence(result, 3, "docqa does not run code shipped with a model", "auto_map")


def test_sentence_encoder_refuses_a_folder_that_ships_code(code_model, marker):
    from docqa.retrieve import DenseEncoder

    with pytest.raises(ModelLoadError, match="does not run code shipped with a model"):
        DenseEncoder(path=code_model).warm_up()
    assert not marker.exists()


def test_code_only_in_tokenizer_config_is_refused(tmp_path, good_model, marker):
    folder = custom_code_model(tmp_path / "m", good_model, marker, "bert")
    config = json.loads((folder / "config.json").read_text())
    del config["auto_map"]
    (folder / "config.json").write_text(json.dumps(config))
    result = run("search", "kestrel", tmp_path, "--model", folder, "--no-dense",
                 "--index", tmp_path / "index")  # fmt: skip
    assert not marker.exists()  # checked first: the code must not have run
    one_sentence(result, 3, "does not run code", "tokenizer_config.json")


def test_unknown_model_type_is_refused_in_one_sentence(tmp_path, good_model, note):
    folder = tmp_path / "m"
    shutil.copytree(good_model, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "no-such-architecture"
    (folder / "config.json").write_text(json.dumps(config))
    result = run("ask", "Where?", note, "--model", folder, "--no-dense",
                 "--index", tmp_path / "index")  # fmt: skip
    one_sentence(result, 3, "does not run code shipped with a model", "no-such-architecture")


@pytest.mark.parametrize("where", ["reader", "tokenizer", "train", "encoder"])
def test_transformers_itself_is_told_not_to_run_code(where, code_model, marker, monkeypatch):
    """Belt and braces: with docqa's own folder check switched off, every ``from_pretrained``
    still passes ``trust_remote_code=False``, so nothing is imported and nothing prompts."""
    import sys

    import docqa.reader

    monkeypatch.setattr(docqa.reader, "check_model_folder", lambda *a, **k: None)
    monkeypatch.setattr(sys, "stdin", _Answers("y\n" * 5))
    if where == "reader":
        call = lambda: docqa.reader.load_model(str(code_model), "cpu")  # noqa: E731
    elif where == "tokenizer":
        from docqa.index import load_tokenizer

        call = lambda: load_tokenizer(str(code_model))  # noqa: E731
    elif where == "train":
        from docqa.train import TrainConfig, train

        config = TrainConfig(
            str(V1), str(code_model), str(code_model.parent / "out"), max_seq_len=128,
            doc_stride=32, limit=1,
        )  # fmt: skip
        call = lambda: train(config)  # noqa: E731
    else:
        from docqa.retrieve import DenseEncoder

        call = DenseEncoder(path=code_model).warm_up
    # A known architecture ("bert") loads without its code; a custom one cannot load at all.
    with contextlib.suppress(ModelLoadError, InputError):
        call()
    assert not marker.exists()
    assert sys.stdin.asked == 0


class _Answers:
    """A stdin that answers "y" and counts how often it was read."""

    def __init__(self, text: str):
        self.lines = text.splitlines(keepends=True)
        self.asked = 0

    def readline(self, *args):
        self.asked += 1
        return self.lines.pop(0) if self.lines else ""

    def isatty(self):
        return False

    def fileno(self):
        raise OSError("not a real file")


# --- 2. safetensors only by default -----------------------------------------------------------


def test_pickle_only_model_is_refused_by_default(tmp_path, good_model, note):
    folder = pickle_model(tmp_path / "bin", good_model)
    result = run("ask", "Where does it nest?", note, "--model", folder, "--json", "--no-dense",
                 "--index", tmp_path / "index")  # fmt: skip
    one_sentence(result, 3, "safetensors", "--allow-pickle", "pytorch_model.bin")


def test_pickle_only_model_loads_as_tensors_with_allow_pickle(tmp_path, good_model, note):
    folder = pickle_model(tmp_path / "bin", good_model)
    result = run("ask", "Where does it nest?", note, "--model", folder, "--json", "--no-dense",
                 "--allow-pickle", "--index", tmp_path / "index")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["answers"]


def test_api_allow_pickle(tmp_path, good_model):
    from docqa import DocQA

    folder = pickle_model(tmp_path / "bin", good_model)
    with pytest.raises(ModelLoadError, match="safetensors"):
        DocQA(model=str(folder), device="cpu").warm_up()
    DocQA(model=str(folder), device="cpu", allow_pickle=True).warm_up()


def test_named_pickle_weights_file_is_refused(tmp_path, good_model):
    """transformers loads config.json's ``transformers_weights`` file even when told to use
    safetensors only; docqa refuses a pickle named there."""
    from docqa.reader import load_model

    folder = pickle_model(tmp_path / "bin", good_model)
    shutil.copy(folder / "pytorch_model.bin", folder / "adapter_model.bin")
    shutil.copy(good_model / "model.safetensors", folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    config["transformers_weights"] = "adapter_model.bin"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"adapter_model\.bin"):
        load_model(str(folder), "cpu")


@pytest.mark.parametrize("kind", ["garbage", "malicious"])
def test_bad_pickle_with_allow_pickle_is_one_line(kind, tmp_path, good_model, note, marker):
    if kind == "garbage":
        folder = pickle_model(tmp_path / "bin", good_model)
        (folder / "pytorch_model.bin").write_bytes(bytes(range(256)) * 16)
    else:
        folder = pickle_model(tmp_path / "bin", good_model, extra=Planted(marker))
        assert not marker.exists()
    result = run("ask", "Where does it nest?", note, "--model", folder, "--json", "--no-dense",
                 "--allow-pickle", "--index", tmp_path / "index")  # fmt: skip
    assert not marker.exists()  # checked first: the code must not have run
    message = one_sentence(result, 3, "cannot be read as plain tensors")
    assert "weights_only" not in message and "torch.load" not in message


def test_train_base_with_only_pickle_weights(tmp_path, good_model):
    folder = pickle_model(tmp_path / "bin", good_model)
    args = ("train", V1, "--base", folder, "--out", tmp_path / "out", "--max-seq-len", "128",
            "--doc-stride", "32", "--save-every", "1000", "--batch-size", "8")  # fmt: skip
    one_sentence(run(*args), 3, "safetensors", "--allow-pickle")
    result = run(*args, "--allow-pickle")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "model.safetensors").exists()


# --- 3. checkpoints resume without unpickling objects ------------------------------------------


def test_planted_checkpoint_state_does_not_run(tmp_path, good_model, marker):
    import torch

    out = tmp_path / "out"
    shutil.copytree(good_model, out / "checkpoint")
    torch.save({"optimizer": Planted(marker), "scheduler": {}, "step": 1},
               out / "checkpoint" / "state.pt")  # fmt: skip
    assert not marker.exists()
    result = run(
        "train", V1, "--base", good_model, "--out", out, "--max-seq-len", "128",
        "--doc-stride", "32",
    )  # fmt: skip
    assert not marker.exists()  # checked first: the code must not have run
    one_sentence(result, 2, "checkpoint", "cannot be loaded safely", "delete it")


def test_damaged_checkpoint_state_is_one_sentence(tmp_path, good_model):
    out = tmp_path / "out"
    shutil.copytree(good_model, out / "checkpoint")
    (out / "checkpoint" / "state.pt").write_bytes(b"not a checkpoint at all")
    result = run(
        "train", V1, "--base", good_model, "--out", out, "--max-seq-len", "128",
        "--doc-stride", "32",
    )  # fmt: skip
    one_sentence(result, 2, "cannot be loaded safely")


def test_saved_checkpoint_state_loads_with_weights_only(tmp_path, good_model):
    """What docqa writes, docqa can read back without unpickling objects."""
    import torch

    from docqa.train import TrainConfig, train

    class Stop(Exception):
        pass

    def stop(p):  # called before the step's checkpoint is written
        if p.step == 2:
            raise Stop

    config = TrainConfig(str(V1), str(good_model), str(tmp_path / "out"), max_seq_len=128,
                         doc_stride=32, batch_size=4, save_every=1)  # fmt: skip
    with pytest.raises(Stop):
        train(config, progress=stop)
    state = torch.load(tmp_path / "out" / "checkpoint" / "state.pt", weights_only=True)
    assert state["step"] == 1 and state["optimizer"]["state"]


# --- 8. windows longer than the model's position embeddings ------------------------------------


@pytest.fixture(scope="module")
def short(tmp_path_factory) -> Path:
    return short_model(tmp_path_factory.mktemp("short-model"), positions=64)


def test_ask_refuses_windows_longer_than_the_model_reads(short, note, tmp_path):
    result = run(
        "ask", "Where does it nest?", note, "--model", short, "--no-dense", "--max-seq-len",
        "128", "--doc-stride", "16", "--index", tmp_path / "index",
    )  # fmt: skip
    one_sentence(result, 2, "max_seq_len 128", "64", "--max-seq-len 64")


def test_eval_refuses_windows_longer_than_the_model_reads(short):
    result = run(
        "eval", V1, "--model", short, "--no-dense", "--max-seq-len", "128", "--doc-stride",
        "16", "--level", "paragraph", "--limit", "2",
    )  # fmt: skip
    one_sentence(result, 2, "max_seq_len 128", "max_position_embeddings")


def test_train_refuses_windows_longer_than_the_base_reads(short, tmp_path):
    result = run(
        "train", V1, "--base", short, "--out", tmp_path / "out", "--max-seq-len", "128",
        "--doc-stride", "32",
    )  # fmt: skip
    one_sentence(result, 2, "max_seq_len 128", "max_position_embeddings")
    assert not (tmp_path / "out" / "checkpoint").exists()


def test_api_refuses_at_warm_up_and_accepts_what_fits(short):
    from docqa import DocQA

    with pytest.raises(InputError, match="max_position_embeddings"):
        DocQA(model=str(short), device="cpu", max_seq_len=128, doc_stride=16).warm_up()
    DocQA(
        model=str(short), device="cpu", max_seq_len=64, doc_stride=8, max_question_len=16
    ).warm_up()


def test_max_positions_of_offset_models():
    """RoBERTa-style models leave the first pad_token_id + 1 positions unused."""
    from transformers import BertConfig, DebertaV2Config, RobertaConfig

    from docqa.modelio import max_positions

    assert max_positions(BertConfig(max_position_embeddings=512)) == 512
    assert max_positions(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    assert max_positions(DebertaV2Config(position_biased_input=False)) is None
