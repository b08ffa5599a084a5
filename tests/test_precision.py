"""Precision modes: each loads, answers, and does what it says to the model (no timings here)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import docqa.modelio
import docqa.reader
from docqa import DocQA, Document, InputError
from docqa.cli import app
from docqa.modelio import pick_precision
from docqa.reader import Reader, apply_precision

PHRASE = "blue heron"
TEXT = (
    "The marsh is quiet at dawn. A blue heron stands in the reeds near the old mill. "
    "Its nest is in the tall alder by the river, and it hunts frogs and small fish. "
) * 12


def answers_are_real_spans(answers, doc: Document) -> None:
    assert answers
    for a in answers:
        assert a.text and a.text == doc.text[a.start : a.end]
        assert 0.0 < a.score <= 1.0


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8", "auto"])
def test_every_precision_loads_and_answers(tiny_model, precision):
    qa = DocQA(model=str(tiny_model), device="cpu", precision=precision)
    doc = Document.from_text(TEXT, source="marsh")
    answers = qa.ask("Where is the nest?", doc, top_k=3)
    answers_are_real_spans(answers, doc)
    assert qa.reader.precision in ("fp32", "bf16", "int8")
    if precision != "auto":
        assert qa.reader.precision == precision


def test_fp32_gives_the_bare_models_logits(tiny_model):
    """fp32 changes nothing: same logits as the model straight from ``from_pretrained``."""
    from transformers import AutoModelForQuestionAnswering

    qa = DocQA(model=str(tiny_model), device="cpu", precision="fp32")
    doc = Document.from_text(TEXT)
    text = qa.tokenized(doc)
    from docqa.windowing import make_windows, tokenize_question

    q = tokenize_question(qa.reader.tokenizer, "Where is the nest?", 64)
    windows = make_windows(qa.template, q, text, 0, 384, 128)
    bare = AutoModelForQuestionAnswering.from_pretrained(str(tiny_model)).eval()
    for i, start, end in qa.reader.logits(windows):
        w = windows[i]
        with torch.inference_mode():
            out = bare(
                input_ids=torch.from_numpy(w.input_ids)[None],
                token_type_ids=torch.from_numpy(w.token_type_ids)[None],
            )
        torch.testing.assert_close(torch.from_numpy(start), out.start_logits[0])
        torch.testing.assert_close(torch.from_numpy(end), out.end_logits[0])


def test_int8_quantizes_the_encoder_but_not_the_answer_head(tiny_model):
    reader = Reader(str(tiny_model), device="cpu", precision="int8")
    reader.warm_up()
    model = reader._model
    for layer in model.bert.encoder.layer:
        for dense in (layer.attention.self.query, layer.intermediate.dense, layer.output.dense):
            assert "quantized" in type(dense).__module__
    assert type(model.qa_outputs) is torch.nn.Linear
    assert model.qa_outputs.weight.dtype == torch.float32


def test_int8_through_torchao_where_torch_has_no_dynamic_quantization(tiny_model, monkeypatch):
    pytest.importorskip("torchao")
    monkeypatch.setattr(docqa.reader, "_torch_quantize_dynamic", lambda: None)
    qa = DocQA(model=str(tiny_model), device="cpu", precision="int8", index=False)
    doc = Document.from_text(TEXT)
    answers_are_real_spans(qa.ask("Where is the nest?", doc), doc)
    model = qa.reader._model
    for layer in model.bert.encoder.layer:
        assert type(layer.intermediate.dense.weight) is not torch.nn.Parameter
    assert type(model.qa_outputs.weight) is torch.nn.Parameter


def test_int8_without_any_int8_backend_says_what_to_install(tiny_model, monkeypatch):
    monkeypatch.setattr(docqa.reader, "_torch_quantize_dynamic", lambda: None)
    monkeypatch.setattr(docqa.reader, "_has_torchao", lambda: False)
    reader = Reader(str(tiny_model), device="cpu", precision="int8")
    with pytest.raises(InputError, match="torchao"):
        reader.warm_up()


def test_bf16_on_cpu_is_autocast_with_linear_weights_cast_once(tiny_model):
    """bf16 Linear weights, fp32 layer norms and embeddings, under autocast: the same logits
    as autocast over the fp32 model, which rounds the weights to bf16 on every call."""
    from transformers import AutoModelForQuestionAnswering

    reader = Reader(str(tiny_model), device="cpu", precision="bf16")
    reader.warm_up()
    model = reader._model
    assert model.bert.encoder.layer[0].intermediate.dense.weight.dtype == torch.bfloat16
    assert model.bert.embeddings.word_embeddings.weight.dtype == torch.float32
    assert model.bert.encoder.layer[0].output.LayerNorm.weight.dtype == torch.float32
    with reader._autocast():
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16

    qa = DocQA(model=str(tiny_model), device="cpu", precision="bf16")
    doc = Document.from_text(TEXT)
    from docqa.windowing import make_windows, tokenize_question

    q = tokenize_question(qa.reader.tokenizer, "Where is the nest?", 64)
    windows = make_windows(qa.template, q, qa.tokenized(doc), 0, 128, 32)
    fp32 = AutoModelForQuestionAnswering.from_pretrained(str(tiny_model)).eval()
    for w in windows:
        [(_, start, end)] = list(qa.reader.logits([w]))
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = fp32(
                input_ids=torch.from_numpy(w.input_ids)[None],
                token_type_ids=torch.from_numpy(w.token_type_ids)[None],
            )
        assert (torch.from_numpy(start) == out.start_logits[0].float()).all()
        assert (torch.from_numpy(end) == out.end_logits[0].float()).all()


def test_bf16_and_fp16_on_a_gpu_cast_the_weights():
    model = torch.nn.Linear(4, 2)
    assert apply_precision(model, "fp16", "meta").weight.dtype == torch.float16
    assert apply_precision(torch.nn.Linear(4, 2), "bf16", "meta").weight.dtype == torch.bfloat16
    on_cpu = apply_precision(
        torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.LayerNorm(2)), "bf16", "cpu"
    )
    assert on_cpu[0].weight.dtype == torch.bfloat16 and on_cpu[1].weight.dtype == torch.float32


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ({"avx512_vnni": True, "avx512_bf16": True}, "bf16"),
        ({"amx_int8": True, "amx_bf16": True}, "bf16"),
        ({"avx512_vnni": True}, "fp32"),
        ({}, "fp32"),
    ],
)
def test_auto_on_cpu_is_bf16_where_the_cpu_has_bf16_dot_products(monkeypatch, features, expected):
    none = dict.fromkeys(("avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni", "amx_int8"), False)
    monkeypatch.setattr(docqa.modelio, "cpu_features", lambda: {**none, **features})
    assert pick_precision("auto", "cpu") == expected


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bf16"), (False, "fp16")])
def test_auto_on_a_gpu_is_half_precision(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert pick_precision("auto", "cuda") == expected
    assert pick_precision("fp32", "cuda") == "fp32"


def test_auto_on_mps_is_fp32_and_int8_is_cpu_only():
    assert pick_precision("auto", "mps") == "fp32"
    for device in ("mps", "cuda"):
        with pytest.raises(InputError, match="int8"):
            pick_precision("int8", device)


@pytest.mark.parametrize("bad", ["fp64", "half", "", "INT8"])
def test_unknown_precision_fails_when_built(bad):
    with pytest.raises(InputError, match="precision"):
        DocQA(precision=bad)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8", "auto"])
def test_planted_answer_is_found_at_every_precision(plant, precision):
    plant({PHRASE: 10.0})
    doc = Document.from_text(TEXT, source="marsh")
    [a] = DocQA(device="cpu", precision=precision).ask("What stands in the reeds?", doc)
    assert a.text == PHRASE


def test_cli_takes_precision_and_refuses_unknown_ones(plant, tmp_path):
    model = plant({PHRASE: 10.0})
    path = tmp_path / "marsh.txt"
    path.write_text(TEXT)
    runner = CliRunner()
    result = runner.invoke(app, ["ask", "What stands?", str(path), "--precision", "bf16", "--json"])
    assert result.exit_code == 0, result.output
    assert PHRASE in result.stdout
    assert len(model.loads) == 1
    result = runner.invoke(app, ["ask", "What stands?", str(path), "--precision", "fp64"])
    assert result.exit_code == 2
    assert "precision" in result.output


def test_int8_reads_one_window_per_forward_so_answers_do_not_depend_on_the_batch(tiny_model):
    """Dynamic int8 scales activations per input tensor: a batch would couple windows."""
    from docqa.windowing import make_windows, tokenize_question

    qa = DocQA(model=str(tiny_model), device="cpu", precision="int8", batch_size=16)
    doc = Document.from_text(TEXT)
    q = tokenize_question(qa.reader.tokenizer, "Where is the nest?", 64)
    windows = make_windows(qa.template, q, qa.tokenized(doc), 0, 128, 32)
    assert len(windows) > 2
    together = {i: (s, e) for i, s, e in qa.reader.logits(windows)}
    for i, w in enumerate(windows):
        [(_, s, e)] = list(qa.reader.logits([w]))
        assert (s == together[i][0]).all() and (e == together[i][1]).all()


def mapped(path) -> bool:
    """Whether this process still has ``path`` memory-mapped (Linux)."""
    with open("/proc/self/maps") as maps:
        return any(line.rstrip().endswith(str(path)) for line in maps)


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/maps"), reason="Linux only")
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_a_cast_model_lets_go_of_the_fp32_file(tiny_model, tmp_path, precision):
    # Regression: the fp32 embeddings kept the memory map of the whole weights file, and with
    # it every fp32 Linear weight already replaced: bf16 used more memory than fp32.
    import gc
    import shutil

    folder = tmp_path / "model"  # a path no other test has mapped
    shutil.copytree(tiny_model, folder)
    model, _ = docqa.reader.load_model(str(folder), "cpu")
    weights = (folder / "model.safetensors").resolve()
    if not mapped(weights):
        pytest.skip("this transformers version does not memory-map the weights")
    model = apply_precision(model, precision, "cpu")
    gc.collect()
    assert not mapped(weights)
    x = torch.ones(1, 8, dtype=torch.long)
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.inference_mode(), bf16:
        assert model(input_ids=x).start_logits.shape == (1, 8)
