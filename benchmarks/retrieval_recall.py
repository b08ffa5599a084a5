"""Window recall of the retrieval stage on SQuAD, with no reader model at all.

For each question, rank the windows (chunks) and check whether a gold answer lies entirely
inside one of the top k. Two settings:

* document: each question searches only its own article's windows (``docqa eval --level
  document`` with ``--windows k``);
* corpus: all articles in one index, the question's article not given.

    python benchmarks/retrieval_recall.py ../shared/data/squad/dev-v1.1-part.json
    python benchmarks/retrieval_recall.py DATA --dense --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docqa.retrieve import (  # noqa: E402
    Bm25,
    DenseEncoder,
    Retriever,
    bm25_tokens,
    chunk_length,
    make_chunks,
)
from docqa.squad import build_examples, read_squad  # noqa: E402
from docqa.windowing import tokenize_text  # noqa: E402

DEPTHS = (1, 3, 5, 10, 20)
DEFAULT_TOKENIZER = ROOT.parent / "shared" / "tokenizers" / "bert-base-uncased"


def hit(gold, chunks) -> bool:
    return any(c.start <= s and e <= c.end for s, e in gold for c in chunks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("--tokenizer", default=str(DEFAULT_TOKENIZER))
    p.add_argument("--max-seq-len", type=int, default=384)
    p.add_argument("--max-question-len", type=int, default=64)
    p.add_argument("--stride", type=int, default=128, help="tokens of overlap")
    p.add_argument("--dense", action="store_true", help="fuse BM25 with MiniLM pieces (RRF)")
    p.add_argument("--dense-weight", type=float, default=1.0)
    p.add_argument("--limit", type=int, default=None, help="first N questions")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    chunk_len = chunk_length(args.max_seq_len, args.max_question_len, 3)
    groups = build_examples(read_squad(args.data), "document", args.limit)
    encoder = DenseEncoder() if args.dense else None

    started = time.perf_counter()
    all_chunks, all_texts, all_tokens, doc_of = [], [], [], []
    per_doc = []
    for d, g in enumerate(groups):
        text = tokenize_text(tok, g.document.text)
        chunks = make_chunks(text, d, chunk_len, args.stride)
        texts = [g.document.text[c.start : c.end] for c in chunks]
        per_doc.append((len(all_chunks), len(chunks)))
        all_chunks += chunks
        all_texts += texts
        doc_of += [d] * len(chunks)
    all_tokens = bm25_tokens(all_texts)
    vectors = owners = None
    if encoder is not None:
        vectors, owners = encoder.encode_passages(all_texts)
    index_s = time.perf_counter() - started

    corpus = Retriever(Bm25(all_tokens), vectors, owners, encoder, args.dense_weight)
    hits_doc = dict.fromkeys(DEPTHS, 0)
    hits_all = dict.fromkeys(DEPTHS, 0)
    answerable = 0
    started = time.perf_counter()
    for d, g in enumerate(groups):
        lo, n = per_doc[d]
        sub_vec = sub_own = None
        if vectors is not None:
            keep = (owners >= lo) & (owners < lo + n)
            sub_vec, sub_own = vectors[keep], owners[keep] - lo
        local = Retriever(
            Bm25(all_tokens[lo : lo + n]), sub_vec, sub_own, encoder, args.dense_weight
        )
        for q, gold in zip(g.questions, g.gold_spans, strict=True):
            if not gold:
                continue
            answerable += 1
            ranked = [i for i, _ in local.rank(q.question, max(DEPTHS))]
            ranked_all = [i for i, _ in corpus.rank(q.question, max(DEPTHS))]
            for k in DEPTHS:
                hits_doc[k] += hit(gold, [all_chunks[lo + i] for i in ranked[:k]])
                hits_all[k] += hit(gold, [all_chunks[i] for i in ranked_all[:k] if doc_of[i] == d])
    search_s = time.perf_counter() - started
    report = {
        "questions": answerable,
        "windows": len(all_chunks),
        "chunk_tokens": chunk_len,
        "overlap": args.stride,
        "dense": args.dense,
        "document_recall": {k: round(100 * hits_doc[k] / answerable, 2) for k in DEPTHS},
        "corpus_recall": {k: round(100 * hits_all[k] / answerable, 2) for k in DEPTHS},
        "index_seconds": round(index_s, 1),
        "ms_per_question": round(1000 * search_s / answerable / 2, 2),
    }
    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key:18} {value}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
