"""The baseline: transformers 4.57's ``pipeline("question-answering")``, run in its own venv.

Started by ``benchmarks/speed.py`` with the baseline virtualenv's Python (transformers 4.57.6,
the last release with the pipeline). It imports nothing from docqa. It reads a job (JSON)
and writes results (JSON):

    python pipeline_worker.py JOB.json OUT.json

Each item is asked with the pipeline's own preprocessing, forward pass and postprocessing.
Two things are changed, both only to compare like with like:

* ``get_answer`` is replaced by one that never matches, so the pipeline does not merge
  candidates with the same text (adding up their scores); its first answer is then its best
  single candidate: its own span selection (product of per-window softmaxes, CLS masked,
  ``max_answer_len``) and its own word alignment, before the merge that can reorder it.
* windows are counted by wrapping ``preprocess``, which yields one feature per window.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakRSS:
    """Highest resident memory seen while a block runs (sampled every 20 ms)."""

    def __init__(self):
        self.peak = rss_mb()
        self._stop = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def main(job_path: str, out_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    import torch

    torch.set_num_threads(job["threads"])
    import transformers
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    t0 = time.perf_counter()
    # fp32 whatever the saved dtype (the pipeline would keep an fp16 checkpoint in fp16 on
    # the CPU; docqa loads fp32): the same model on both sides.
    pipe = pipeline(
        "question-answering",
        model=job["model"],
        tokenizer=job["model"],
        device="cpu",
        dtype=torch.float32,
    )
    load_seconds = time.perf_counter() - t0
    pipe.get_answer = lambda answers, target: None  # no merging of same-text candidates

    windows = [0]
    preprocess = pipe.preprocess

    def counting_preprocess(*args, **kwargs):
        for feature in preprocess(*args, **kwargs):
            windows[0] += 1
            yield feature

    pipe.preprocess = counting_preprocess
    options = {
        "max_seq_len": job["max_seq_len"],
        "doc_stride": job["doc_stride"],
        "max_answer_len": job["max_answer_len"],
        "top_k": 1,
    }
    fingerprint = None
    if job.get("warmup"):
        w = job["warmup"]
        pipe(question=w["question"], context=w["context"], **options)
        fingerprint = logits_fingerprint(pipe, w["question"], w["context"])
    results = []
    rss_before = rss_mb()
    with PeakRSS() as peak:
        for item in job["items"]:
            windows[0] = 0
            t, cpu = time.perf_counter(), time.process_time()
            answer = pipe(question=item["question"], context=item["context"], **options)
            seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - cpu
            results.append(
                {
                    "id": item["id"],
                    "start": answer["start"],
                    "end": answer["end"],
                    "text": answer["answer"],
                    "seconds": seconds,
                    "cpu_seconds": cpu_seconds,
                    "windows": windows[0],
                }
            )
    payload = {
        "tool": "pipeline",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "attn_implementation": getattr(pipe.model.config, "_attn_implementation", None),
        "load_seconds": load_seconds,
        "rss_before_read_mb": rss_before,
        "peak_read_rss_mb": peak.peak,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "fingerprint": fingerprint,
        "results": results,
    }
    Path(out_path).write_text(json.dumps(payload))


def logits_fingerprint(pipe, question: str, context: str) -> list[float]:
    """The start logits of the first window, from the pipeline's own tokenization and model:
    the harness checks that both tools loaded the same weights."""
    import torch

    enc = pipe.tokenizer(
        question, context, truncation="only_second", max_length=384, return_tensors="pt"
    )
    with torch.inference_mode():
        out = pipe.model(**enc)
    return [round(float(x), 5) for x in out.start_logits[0, :16]]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
