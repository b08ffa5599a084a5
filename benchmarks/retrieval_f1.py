"""Document-level EM/F1 by retrieval depth: how many windows should the reader read?

Each sampled SQuAD dev question is asked of its whole article (``--level document``) with
``DocQA.predict(question, [article], chunks=N)`` for every depth N, for BM25-only and fused
retrieval, and with the retriever's score added to the reader's span score at several weights
(``retriever_weight``, the linear fusion of cdQA and BERTserini); and once reading every window
(``chunks=None``, the exhaustive mode). Reader logits are cached per window, so a window read
at several depths costs one forward pass.

Questions are sampled evenly from every article (``--per-article``), not the first N of the
file: those would all come from its first article.

    python benchmarks/retrieval_f1.py --model docqa/models/docqa-mini --per-article 20
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docqa import DocQA  # noqa: E402
from docqa.evaluate import gold_in_windows  # noqa: E402
from docqa.metrics import squad_evaluate  # noqa: E402
from docqa.squad import build_examples, read_squad  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1-part.json"


def cache_logits(reader) -> dict:
    """Wrap ``reader.logits`` so each distinct window is run through the model once."""
    original = reader.logits
    cache: dict[bytes, tuple] = {}

    def logits(windows):
        keys = [w.input_ids.tobytes() for w in windows]
        todo = [i for i, k in enumerate(keys) if k not in cache]
        for j, start, end in original([windows[i] for i in todo]):
            cache[keys[todo[j]]] = (start, end)
        for i, k in enumerate(keys):
            yield (i, *cache[k])

    reader.logits = logits
    return cache


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--per-article", type=int, default=20)
    p.add_argument("--depths", default="1,3,5,10,20")
    p.add_argument("--weights", default="0,1,2,4", help="retriever_weight values")
    p.add_argument("--rankers", default="fused,bm25", help="fused (BM25+dense), bm25")
    p.add_argument(
        "--exhaustive",
        choices=("windows", "chunks", "none"),
        default="windows",
        help="windows: DocQA's exhaustive mode (question-dependent windows); chunks: every "
        "retrievable window (shares the cached logits: much cheaper); none",
    )
    p.add_argument("--out", type=Path, help="write the report here after every article")
    p.add_argument("--precision", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    depths = [int(x) for x in args.depths.split(",")]
    weights = [float(x) for x in args.weights.split(",")]
    rankers = args.rankers.split(",")
    rng = random.Random(args.seed)
    groups = build_examples(read_squad(args.data), "document")
    sample = []
    for g in groups:
        picked = sorted(
            rng.sample(range(len(g.questions)), min(args.per_article, len(g.questions)))
        )
        sample.append((g, picked))

    readers = {
        (ranker, w): DocQA(
            model=args.model,
            device="cpu",
            precision=args.precision,
            dense=ranker == "fused",
            retriever_weight=w,
        )
        for ranker in rankers
        for w in weights
    }
    first = next(iter(readers.values()))
    first.warm_up()
    cache = cache_logits(first.reader)
    shared: dict[str, DocQA] = {}
    for (ranker, _), qa in readers.items():
        qa.reader = first.reader  # one model, one logits cache
        # The weight changes only how scores combine, not the ranking: one retriever (and one
        # dense encoding of each article) per ranker.
        owner = shared.setdefault(ranker, qa)
        qa._retrievers = owner._retrievers
        qa._cache = owner._cache
        qa._encoder = owner.encoder

    settings = [(r, w, n) for r in rankers for w in weights for n in depths]
    if args.exhaustive != "none":
        settings.append(("all", 0.0, None if args.exhaustive == "windows" else 10**9))
    predictions = {s: {} for s in settings}
    recalled = {s: 0 for s in settings}
    answers: dict[str, tuple[str, ...]] = {}
    started = time.perf_counter()
    done = 0

    def report() -> dict:
        return {
            "model": first.model_name,
            "questions": done,
            "precision": first.reader.precision,
            "exhaustive": args.exhaustive,
            "seconds": round(time.perf_counter() - started),
            "rows": summary(settings, predictions, answers, recalled, done),
        }

    for g, picked in sample:
        docs = (g.document,)
        for i in picked:
            q, gold = g.questions[i], g.gold_spans[i]
            answers[q.id] = q.answers
            for s in settings:
                ranker, w, n = s
                qa = readers[(rankers[0], 0.0)] if ranker == "all" else readers[(ranker, w)]
                pred = qa.predict(q.question, docs, chunks=n)
                predictions[s][q.id] = pred.answers[0].text if pred.answers else ""
                recalled[s] += gold_in_windows(gold, pred.windows_read, 0)
            done += 1
        print(
            f"{g.document.source}: {done} questions, {time.perf_counter() - started:.0f} s, "
            f"{len(cache)} windows read",
            file=sys.stderr,
            flush=True,
        )
        if args.out:
            args.out.write_text(json.dumps(report()))
    final = report()
    if args.json:
        print(json.dumps(final))
        return
    print(
        f"{final['model']}  {done} questions ({args.per_article}/article), "
        f"precision {final['precision']}, {final['seconds']} s, exhaustive={args.exhaustive}"
    )
    print(f"{'ranker':8}{'weight':>8}{'windows':>9}{'EM':>8}{'F1':>8}{'recall':>9}")
    for r in final["rows"]:
        print(
            f"{r['ranker']:8}{r['retriever_weight']:>8g}{r['windows']!s:>9}"
            f"{r['exact']:>8.2f}{r['f1']:>8.2f}{r['window_recall']:>9.2f}"
        )


def summary(settings, predictions, answers, recalled, done) -> list[dict]:
    rows = []
    for s in settings:
        scores = squad_evaluate(predictions[s], {k: answers[k] for k in predictions[s]})
        ranker, w, n = s
        rows.append(
            {
                "ranker": ranker,
                "retriever_weight": w,
                "windows": "all" if n is None or n >= 10**9 else n,
                "exact": round(float(scores["exact"]), 2),
                "f1": round(float(scores["f1"]), 2),
                "window_recall": round(100 * recalled[s] / max(done, 1), 2),
            }
        )
    return rows


if __name__ == "__main__":
    main()
