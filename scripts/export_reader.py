"""Copy a trained reader into the package as fp16 safetensors: ``docqa/models/docqa-mini/``.

    python scripts/export_reader.py runs/mini-doc docqa/models/docqa-mini

fp16 halves the size (MiniLM-L6: 90 MB → 45 MB) and loses nothing that matters: docqa loads
the weights back as float32 (`Reader` passes ``dtype=torch.float32``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer


def export(src: Path, dst: Path) -> None:
    model = AutoModelForQuestionAnswering.from_pretrained(
        src, dtype=torch.float32, trust_remote_code=False
    )
    tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=False)
    dst.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(dst, safe_serialization=True)
    tokenizer.save_pretrained(dst)
    size = sum(f.stat().st_size for f in dst.iterdir() if f.is_file())
    print(f"{dst}: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    export(Path(sys.argv[1]), Path(sys.argv[2]))
