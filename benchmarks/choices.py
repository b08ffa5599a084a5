"""The measurements behind the Reader's defaults: batch size, how to run bf16 and int8, compile.

    python benchmarks/choices.py --arch bert-large --chars 9000

Reads the same windows (one question over manual text, max_seq_len 384, doc_stride 128)
with each variant, after one warm-up batch, and prints windows/s and how far the logits and
the top span of each window move from fp32. Each variant loads its own copy of the model.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from speed import ARCHS, OUT, QUESTION, SEQ, build_model, log, manual_text

VARIANTS = {
    # label: (precision, batch size, how)
    "fp32 batch 1": ("fp32", 1, None),
    "fp32 batch 4": ("fp32", 4, None),
    "fp32 batch 16": ("fp32", 16, None),
    "bf16 autocast batch 1": ("bf16", 1, None),
    "bf16 autocast batch 4": ("bf16", 4, None),
    "bf16 autocast batch 16": ("bf16", 16, None),
    "bf16 weights batch 4": ("fp32", 4, "bf16-weights"),
    "int8 torch.ao per-channel batch 1": ("int8", 1, None),
    "int8 torch.ao per-channel batch 4": ("int8", 4, None),
    "int8 torch.ao per-channel batch 16": ("int8", 16, None),
    "int8 torchao batch 4": ("int8", 4, "torchao"),
    "fp32 compiled batch 4": ("fp32", 4, "compile"),
    "bf16 autocast compiled batch 4": ("bf16", 4, "compile"),
}


def top_span(start: np.ndarray, end: np.ndarray, lo: int, hi: int, max_len: int = 30):
    from docqa.spans import best_spans

    [s] = best_spans(start[lo:hi], end[lo:hi], max_len, 1)
    return s.start, s.end


def run_variant(model_dir: Path, windows, precision: str, batch: int, how: str | None):
    import contextlib

    import torch

    import docqa.reader
    from docqa.reader import Reader

    patch = contextlib.nullcontext()
    if how == "torchao":
        patch = _patched(docqa.reader, "_torch_quantize_dynamic", lambda: None)
    with patch:
        reader = Reader(str(model_dir), device="cpu", batch_size=batch, precision=precision)
        reader.warm_up()
    if how == "bf16-weights":
        reader._model = reader._model.to(torch.bfloat16)
    compile_seconds = 0.0
    if how == "compile":
        reader._model = torch.compile(reader._model, dynamic=True)
    t = time.perf_counter()
    list(reader.logits(windows[:batch]))  # warm-up (and compilation)
    if how == "compile":
        compile_seconds = time.perf_counter() - t
    t, cpu = time.perf_counter(), time.process_time()
    out = {i: (s, e) for i, s, e in reader.logits(windows)}
    seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - cpu
    del reader
    gc.collect()
    return out, seconds, cpu_seconds, compile_seconds


class _patched:
    def __init__(self, obj, name, value):
        self.obj, self.name, self.value = obj, name, value

    def __enter__(self):
        self.old = getattr(self.obj, self.name)
        setattr(self.obj, self.name, self.value)

    def __exit__(self, *exc):
        setattr(self.obj, self.name, self.old)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="bert-large", choices=sorted(ARCHS))
    parser.add_argument("--chars", type=int, default=9000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from docqa import DocQA, Document
    from docqa.reader import quiet_torchao
    from docqa.windowing import make_windows, tokenize_question

    with quiet_torchao():
        model_dir = build_model(args.arch, OUT / "models" / f"{args.arch}-random")
    qa = DocQA(model=str(model_dir), precision="fp32")
    qa.warm_up()
    doc = Document.from_text(manual_text(args.chars))
    q = tokenize_question(qa.reader.tokenizer, QUESTION, 64)
    windows = make_windows(qa.template, q, qa.tokenized(doc), 0, **SEQ)
    del qa
    log(f"{args.arch}: {len(windows)} windows, {torch.get_num_threads()} threads")
    results = []
    reference = None
    for label in args.variants.split(","):
        precision, batch, how = VARIANTS[label]
        out, seconds, cpu_seconds, compile_seconds = run_variant(
            model_dir, windows, precision, batch, how
        )
        if reference is None:
            reference = out
        diffs, same = [], 0
        for i, w in enumerate(windows):
            lo, hi = w.context_offset, w.context_offset + (w.token_end - w.token_start)
            (s, e), (rs, re_) = out[i], reference[i]
            diffs.append(float(np.max(np.abs(s[lo:hi] - rs[lo:hi]))))
            same += top_span(s, e, lo, hi) == top_span(rs, re_, lo, hi)
        row = {
            "variant": label,
            "windows_per_s": len(windows) / seconds,
            "seconds": seconds,
            "cpu_seconds_per_window": cpu_seconds / len(windows),
            "load_average_1min": os.getloadavg()[0],
            "compile_seconds": compile_seconds,
            "max_logit_diff": max(diffs),
            "same_top_span_per_window": same / len(windows),
        }
        results.append(row)
        print(
            f"{label:38s} {row['windows_per_s']:6.3f} w/s "
            f"{row['cpu_seconds_per_window']:6.2f} cpu-s/w  max|Δlogit| {row['max_logit_diff']:.3f}"
            f"  same top span {100 * row['same_top_span_per_window']:5.1f}%"
            + (f"  compile {compile_seconds:.0f}s" if compile_seconds else ""),
            flush=True,
        )
    (OUT / f"choices-{args.arch}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
