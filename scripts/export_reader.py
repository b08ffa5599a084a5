"""Copy a trained reader into the package as fp16 safetensors: ``docqa/models/docqa-mini/``.

    python scripts/export_reader.py runs/mini-doc docqa/models/docqa-mini
    python scripts/export_reader.py runs/mini-ref docqa/models/docqa-mini --average-with OLD

fp16 halves the size (MiniLM-L6: 90 MB → 45 MB) and loses nothing that matters: docqa loads
the weights back as float32 (`Reader` passes ``dtype=torch.float32``).

``--average-with OLD`` exports ``weight`` times the trained reader's weights plus the rest
times OLD's, parameter by parameter (OLD: the reader the training started from). A stage
fine-tuned on a new kind of text moves away from what the earlier stages learned; the average
of the two keeps much of both (weight-space ensembles: Wortsman et al. 2022, "Robust
fine-tuning of zero-shot models", WiSE-FT). Both must share one architecture.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer


def load(src: Path):
    return AutoModelForQuestionAnswering.from_pretrained(
        src, dtype=torch.float32, trust_remote_code=False
    )


def average(model, other, weight: float):
    """``model`` with every parameter replaced by ``weight * model + (1 - weight) * other``."""
    theirs = other.state_dict()
    mine = model.state_dict()
    if mine.keys() != theirs.keys() or any(mine[k].shape != theirs[k].shape for k in mine):
        raise SystemExit("the two readers do not share one architecture")
    model.load_state_dict({k: weight * mine[k] + (1 - weight) * theirs[k] for k in mine})
    return model


def export(src: Path, dst: Path, average_with: Path | None = None, weight: float = 0.5) -> None:
    model = load(src)
    if average_with is not None:
        model = average(model, load(average_with), weight)
    tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=False)
    dst.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(dst, safe_serialization=True)
    tokenizer.save_pretrained(dst)
    size = sum(f.stat().st_size for f in dst.iterdir() if f.is_file())
    print(f"{dst}: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Export a trained reader as fp16 safetensors.")
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--average-with", type=Path, help="a reader of the same architecture")
    parser.add_argument("--weight", type=float, default=0.5, help="the trained reader's share")
    args = parser.parse_args()
    export(args.src, args.dst, args.average_with, args.weight)
