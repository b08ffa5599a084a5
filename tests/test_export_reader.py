"""scripts/export_reader.py: how the bundled reader's weights are written (its model card)."""

from __future__ import annotations

import pytest
import torch
from conftest import build_tiny_model, load_script
from safetensors.torch import load_file

export_reader = load_script("export_reader")


def weights(folder):
    return {k: v.float() for k, v in load_file(folder / "model.safetensors").items()}


def test_average_with_writes_the_weighted_mean_of_both_readers_in_fp16(tmp_path):
    a = build_tiny_model(tmp_path / "a", seed=0)
    b = build_tiny_model(tmp_path / "b", seed=1)
    export_reader.export(a, tmp_path / "out", average_with=b, weight=0.25)
    out, wa, wb = weights(tmp_path / "out"), weights(a), weights(b)
    assert (
        load_file(tmp_path / "out" / "model.safetensors")["qa_outputs.weight"].dtype
        == torch.float16
    )
    assert out.keys() == wa.keys()
    for name in ("qa_outputs.weight", "bert.embeddings.word_embeddings.weight"):
        expected = 0.25 * wa[name] + 0.75 * wb[name]
        assert torch.allclose(out[name], expected, atol=2e-3)
        assert not torch.allclose(out[name], wa[name], atol=2e-3)
    assert (tmp_path / "out" / "tokenizer.json").exists()


def test_readers_of_different_shapes_are_not_averaged(tmp_path):
    a = build_tiny_model(tmp_path / "a")
    other = export_reader.load(a)
    other.qa_outputs = torch.nn.Linear(other.config.hidden_size, 3)
    with pytest.raises(SystemExit, match="one architecture"):
        export_reader.average(export_reader.load(a), other, 0.5)
