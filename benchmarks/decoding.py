"""Choose decoding defaults by document-level measurement: the max-context rule, ranking,
pooling the places that give the same answer, and (``--weights``) the retriever's share.

The model runs once per window; every decoding variant re-uses the same logits, so the
comparison costs one evaluation, and differences come from decoding alone. SQuAD articles by
default; ``--questions`` scores a JSONL file of questions over ``--docs`` the way
``docqa eval --docs`` does (index, retrieval, reader).

    python benchmarks/decoding.py --model docqa/models/docqa-mini --limit 300
    python benchmarks/decoding.py --model docqa/models/docqa-mini \
        --questions benchmarks/data/manualqa-shared.jsonl --docs ../shared/corpus/manuals \
        --split dev --precision auto
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from itertools import product

from docqa.api import DEFAULT_CHUNKS, RETRIEVER_WEIGHT, Decoding, DocQA
from docqa.evaluate import evaluate, evaluate_docs

DEV = "../shared/data/squad/dev-v1.1-part.json"


class CachedLogits:
    """Wraps a Reader: the same window (same input ids) is scored by the model only once."""

    def __init__(self, reader):
        self.reader = reader
        self.cache: dict[bytes, tuple] = {}

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def logits(self, windows):
        missing = [i for i, w in enumerate(windows) if w.input_ids.tobytes() not in self.cache]
        for j, start, end in self.reader.logits([windows[i] for i in missing]):
            self.cache[windows[missing[j]].input_ids.tobytes()] = (start, end)
        for i, w in enumerate(windows):
            yield (i, *self.cache[w.input_ids.tobytes()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default=DEV)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--per-article", type=int, default=None, help="first N of each article")
    parser.add_argument("--level", default="document")
    parser.add_argument("--max-seq-len", type=int, default=384)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument(
        "--chunks", type=int, default=None, help="read the N best retrieved chunks (ask's 10)"
    )
    parser.add_argument("--questions", help="a JSONL questions file, asked of --docs instead")
    parser.add_argument("--docs", nargs="+", default=[], help="files or folders (--questions)")
    parser.add_argument("--split", default=None, help="only the questions of this split")
    parser.add_argument(
        "--weights",
        nargs="+",
        type=float,
        default=[RETRIEVER_WEIGHT],
        help="retriever weights to compare (when reading retrieved chunks)",
    )
    parser.add_argument(
        "--default-decoding", action="store_true", help="vary only --weights, at Decoding()"
    )
    args = parser.parse_args()

    shared = None
    rows = []
    with tempfile.TemporaryDirectory(prefix="docqa-decoding-") as index:
        d = Decoding()
        choices = [[True, False], ["logit", "null_margin"], [True, False]]
        if args.default_decoding:
            choices = [[d.max_context], [d.rank_by], [d.pool_answers]]
        variants = product(*choices, args.weights)
        for max_context, rank_by, pool_answers, weight in variants:
            qa = DocQA(
                model=args.model,
                max_context=max_context,
                rank_by=rank_by,
                pool_answers=pool_answers,
                retriever_weight=weight,
                max_seq_len=args.max_seq_len,
                precision=args.precision,
                index=index,
            )
            shared = shared or CachedLogits(qa.reader)
            qa.reader = shared
            started = time.monotonic()
            if args.questions:
                chunks = args.chunks or DEFAULT_CHUNKS
                report = evaluate_docs(
                    args.questions, qa, args.docs, chunks, args.split, args.limit
                )
            else:
                chunks = args.chunks
                report = evaluate(
                    args.data,
                    qa,
                    level=args.level,
                    limit=args.limit,
                    per_article=args.per_article,
                    chunks=chunks,
                )
            rows.append(
                {
                    "max_context": max_context,
                    "rank_by": rank_by,
                    "pool_answers": pool_answers,
                    "retriever_weight": weight,
                    "chunks": chunks,
                    "exact": round(report.exact, 2),
                    "f1": round(report.f1, 2),
                    "total": report.total,
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
