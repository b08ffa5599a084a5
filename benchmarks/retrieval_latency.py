"""Question latency with the index and retrieval vs reading every window, bert-large shapes.

Same run, same model, same precision:

1. index build throughput: ``gnuplot.pdf`` alone, then all of ``../shared/corpus/manuals/``
   (pages/s of PDF parsing, and the whole build with tokenization, BM25 and dense vectors);
2. median question latency after indexing: retrieval (``--chunks``) over gnuplot alone and over
   all three manuals, and exhaustive reading of gnuplot.

The reader is a randomly initialised BERT QA model with bert-large's shape (24 layers, 1024
hidden, 16 heads; compute identical to the real checkpoint) and the real uncased vocabulary.
Exhaustive reading of the 311-page manual takes a quarter of an hour per question on two
cores, so by default it is timed on ``--sample-windows`` of its windows and scaled to all of
them (printed as such); ``--full-exhaustive`` times whole questions.

    python benchmarks/retrieval_latency.py                  # ~10 min on 2 cores
    python benchmarks/retrieval_latency.py --questions 5 --sample-windows 24 --json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared"
VOCAB = SHARED / "tokenizers" / "bert-base-uncased"
MANUALS = SHARED / "corpus" / "manuals"
LARGE = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
}
QUESTIONS = [
    "How do I set the range of the x axis?",
    "How can I plot data from a file with columns?",
    "Which terminal produces PNG images?",
    "How do I put a title on the plot?",
    "How is a logarithmic scale set?",
    "How do I change the line width?",
    "What does the fit command do?",
]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build_large(folder: Path) -> Path:
    """bert-large-shaped QA model with random weights, saved once to ``folder``."""
    if (folder / "config.json").exists():
        return folder
    import shutil

    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    log(f"building a random bert-large QA model in {folder}")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, max_position_embeddings=512, **LARGE)
    BertForQuestionAnswering(config).eval().save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (VOCAB / name).exists():
            shutil.copyfile(VOCAB / name, folder / name)
    return folder


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="reader folder (default: random bert-large)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "docqa-bench")
    p.add_argument("--questions", type=int, default=3)
    p.add_argument("--chunks", type=int, default=20)
    p.add_argument("--precision", default="auto")
    p.add_argument("--sample-windows", type=int, default=8)
    p.add_argument("--full-exhaustive", action="store_true")
    p.add_argument("--no-dense", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    from docqa import DocQA
    from docqa.windowing import make_windows, tokenize_question

    args.cache.mkdir(parents=True, exist_ok=True)
    model = args.model or str(build_large(args.cache / "bert-large-random"))
    questions = QUESTIONS[: args.questions]
    gnuplot = MANUALS / "gnuplot.pdf"

    def reader(index_dir: Path, chunks: int | None) -> DocQA:
        return DocQA(
            model=model,
            device="cpu",
            precision=args.precision,
            chunks=chunks,
            index=index_dir,
            dense=not args.no_dense,
        )

    report: dict = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs"}
    with tempfile.TemporaryDirectory(dir=args.cache) as tmp:
        # One index: gnuplot first, then the whole folder (gnuplot is not parsed again).
        qa_one = reader(Path(tmp) / "index", args.chunks)
        log("loading the model")
        _, load_s = timed(qa_one.warm_up)
        report["model_load_s"] = round(load_s, 1)
        report["precision"] = qa_one.reader.precision

        per_window: list[float] = []
        counts: list[int] = []

        def exhaustive_sample(q: str) -> None:
            """Time reading a spread sample of the question's exhaustive windows of gnuplot."""
            doc_id = qa_one.index([gnuplot]).doc_ids[0]
            text = qa_one._open_index().tokenized(doc_id, qa_one.scheme)
            ids = tokenize_question(qa_one.reader.tokenizer, q, qa_one.max_question_len)
            windows = make_windows(qa_one.template, ids, text, 0, 384, 128)
            counts.append(len(windows))
            step = max(1, len(windows) // args.sample_windows)
            sample = windows[::step][: args.sample_windows]
            _, seconds = timed(lambda: list(qa_one.reader.logits(sample)))
            per_window.append(seconds / len(sample))
            log(f"exhaustive sample: {seconds / len(sample):.3f} s/window")

        # Each retrieval question is timed next to its comparison (an exhaustive sample, or
        # the same question over one manual), so load from other processes hits both alike.
        settings = (
            ("gnuplot", [gnuplot], [("gnuplot", [gnuplot])]),
            ("manuals", [MANUALS], [("gnuplot_in_three", [gnuplot]), ("manuals", [MANUALS])]),
        )
        for name, paths, timed_paths in settings:
            qa = qa_one
            log(f"indexing {name}")
            build, seconds = timed(lambda qa=qa, paths=paths: qa.index(paths))
            pages = build.pages
            report[f"index_{name}"] = {
                "documents": len(build.doc_ids),
                "parsed": build.parsed,
                "pages_parsed": pages,
                "seconds": round(seconds, 1),
                "parse_seconds": round(build.parse_seconds, 1),
                "pages_per_s_parsing": round(build.pages_per_s or 0, 2),
                "pages_per_s_whole_build": round(pages / seconds, 2),
            }
            again, seconds = timed(lambda qa=qa, paths=paths: qa.index(paths))
            report[f"index_{name}"]["reindex_unchanged_s"] = round(seconds, 2)
            assert again.parsed == 0 and again.tokenized == 0
            latencies: dict[str, list[float]] = {label: [] for label, _ in timed_paths}
            for _, ask_paths in timed_paths:
                qa.ask_paths("warm up", ask_paths, 1, 1)  # retriever caches, encoder load
            for q in questions:
                for label, ask_paths in timed_paths:
                    (pred, _), seconds = timed(
                        lambda q=q, a=ask_paths: qa_one.ask_paths(q, a, 1, args.chunks)
                    )
                    latencies[label].append(seconds)
                    assert len(pred.windows_read) >= min(args.chunks, 1)
                if name == "gnuplot" and not args.full_exhaustive:
                    exhaustive_sample(q)
            for label, values in latencies.items():
                report[f"retrieval_{label}"] = {
                    "windows": args.chunks,
                    "median_s": round(statistics.median(values), 2),
                    "all_s": [round(x, 2) for x in values],
                }
                log(f"{label}: median {statistics.median(values):.2f} s with retrieval")

        if args.full_exhaustive:
            values = []
            for q in questions:
                (pred, _), seconds = timed(lambda q=q: qa_one.ask_paths(q, [gnuplot], 1, None))
                values.append(seconds)
            n_windows = len(pred.windows_read)
            exhaustive = {"median_s": round(statistics.median(values), 1), "measured": "all"}
        else:
            estimates = [c * s for c, s in zip(counts, per_window, strict=True)]
            n_windows = int(statistics.median(counts))
            exhaustive = {
                "median_s": round(statistics.median(estimates), 1),
                "measured": f"{args.sample_windows} windows per question, scaled to all",
                "s_per_window": round(statistics.median(per_window), 3),
            }
        exhaustive["windows"] = n_windows
        report["exhaustive_gnuplot"] = exhaustive
    r1 = report["retrieval_gnuplot"]["median_s"]
    r1b = report["retrieval_gnuplot_in_three"]["median_s"]
    r3 = report["retrieval_manuals"]["median_s"]
    report["speedup_vs_exhaustive"] = round(exhaustive["median_s"] / r1, 1)
    report["growth_three_manuals"] = round(r3 / r1, 2)
    report["growth_three_manuals_same_phase"] = round(r3 / r1b, 2)
    if args.json:
        print(json.dumps(report))
        return
    shape = args.model or "random weights, bert-large shape"
    print(f"model: {shape}, precision {report['precision']}, {report['machine']}")
    for name in ("gnuplot", "manuals"):
        b = report[f"index_{name}"]
        print(
            f"index {name:8} {b['documents']} docs ({b['parsed']} parsed, {b['pages_parsed']} "
            f"pages) in {b['seconds']} s: parsing {b['pages_per_s_parsing']} pages/s, whole build "
            f"{b['pages_per_s_whole_build']} pages/s; unchanged re-index "
            f"{b['reindex_unchanged_s']} s"
        )
    print(f"{'setting':44}{'windows':>9}{'median s':>10}")
    print(f"{'gnuplot, index of gnuplot, retrieval':44}{args.chunks:>9}{r1:>10}")
    print(f"{'gnuplot, index of three manuals, retrieval':44}{args.chunks:>9}{r1b:>10}")
    print(f"{'three manuals, retrieval':44}{args.chunks:>9}{r3:>10}")
    print(f"{'gnuplot, exhaustive':44}{exhaustive['windows']:>9}{exhaustive['median_s']:>10}")
    print(
        f"speed-up {report['speedup_vs_exhaustive']}x ({exhaustive['measured']}); three "
        f"manuals / one: {report['growth_three_manuals']}x "
        f"({report['growth_three_manuals_same_phase']}x timed side by side)"
    )


if __name__ == "__main__":
    main()
