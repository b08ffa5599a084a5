"""Window recall of the retrieval stage on SQuAD, with no reader model at all.

For each answerable question, rank the windows (question-independent chunks, exactly the
windows the reader reads) and check whether a gold answer lies entirely inside one of the
top k. Two settings, both from the issue:

* document: each question searches only its own article's windows (what ``docqa eval
  --level document --chunks k`` does);
* corpus: all articles in one index, the question's article not given.

Rankers compared, on the same windows: BM25 (bm25s, stemmed, stop words), dense (MiniLM
pieces), and their reciprocal-rank fusion (the library's `docqa.retrieve.fuse`) at several
dense weights. Dense vectors are cached in ``--cache`` so reruns cost seconds.

    python benchmarks/retrieval_recall.py ../shared/data/squad/dev-v1.1-part.json
    python benchmarks/retrieval_recall.py DATA --dense --cache /tmp/recall-cache.npz --json
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
    RRF_K,
    Bm25,
    DenseEncoder,
    bm25_tokens,
    candidates,
    chunk_length,
    fuse,
    fuse_candidates,
    make_chunks,
    max_by_owner,
    ranks,
)
from docqa.squad import build_examples, read_squad  # noqa: E402
from docqa.windowing import tokenize_text  # noqa: E402

DEPTHS = (1, 3, 5, 10, 20)
DEFAULT_TOKENIZER = ROOT.parent / "shared" / "tokenizers" / "bert-base-uncased"


def recall_at(ranked: np.ndarray, good: np.ndarray) -> dict[int, bool]:
    """Whether any of the first k ranked windows is a good one, for each depth k."""
    hits = good[ranked[: max(DEPTHS)]]
    return {k: bool(hits[:k].any()) for k in DEPTHS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("--tokenizer", default=str(DEFAULT_TOKENIZER))
    p.add_argument("--max-seq-len", type=int, default=384)
    p.add_argument("--max-question-len", type=int, default=64)
    p.add_argument("--stride", type=int, default=128, help="tokens of overlap")
    p.add_argument("--dense", action="store_true", help="also rank with MiniLM pieces and fuse")
    p.add_argument("--weights", default="0.5,0.75,1", help="dense weights for RRF fusion")
    p.add_argument("--rrf-k", type=int, default=RRF_K, help="reciprocal-rank-fusion constant")
    p.add_argument(
        "--candidates",
        default="",
        help="also fuse only among BM25's best M windows (vectors on demand), for each M: "
        "e.g. 20,50,100",
    )
    p.add_argument("--cache", type=Path, help="npz file for dense vectors (read or written)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--limit", type=int, default=None, help="first N questions")
    p.add_argument(
        "--articles",
        default="::",
        help="score only questions of these articles, a slice: 0::2 even, 1::2 odd (all "
        "articles stay in the corpus setting's index)",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.tokenizer, trust_remote_code=False)
    chunk_len = chunk_length(args.max_seq_len, args.max_question_len, 3)
    groups = build_examples(read_squad(args.data), "document", args.limit)

    started = time.perf_counter()
    chunks, texts, doc_of = [], [], []
    spans = []  # per doc: (first chunk, number of chunks)
    for d, g in enumerate(groups):
        doc_chunks = make_chunks(tokenize_text(tok, g.document.text), d, chunk_len, args.stride)
        spans.append((len(chunks), len(doc_chunks)))
        chunks += doc_chunks
        texts += [g.document.text[c.start : c.end] for c in doc_chunks]
        doc_of += [d] * len(doc_chunks)
    doc_of = np.asarray(doc_of)
    starts = np.asarray([c.start for c in chunks])
    ends = np.asarray([c.end for c in chunks])
    terms = bm25_tokens(texts)
    questions = [
        (d, q, gold)
        for d, g in enumerate(groups)
        for q, gold in zip(g.questions, g.gold_spans, strict=True)
        if gold
    ]
    tokenize_s = time.perf_counter() - started

    vectors = owners = qvecs = None
    dense_s = 0.0
    if args.dense:
        started = time.perf_counter()
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        if args.cache and args.cache.exists():
            z = np.load(args.cache)
            vectors, owners, qvecs = z["vectors"], z["owners"], z["questions"]
            assert len(qvecs) == len(questions), "cache from another data file or --limit"
        else:
            enc = DenseEncoder()
            blocks, owner_blocks = [], []
            for d, g in enumerate(groups):
                lo, n = spans[d]
                v, o = enc.encode_chunks(
                    g.document.text, [(c.start, c.end) for c in chunks[lo : lo + n]]
                )
                blocks.append(v)
                owner_blocks.append(o + lo)
            vectors, owners = np.concatenate(blocks), np.concatenate(owner_blocks)
            qvecs = enc.encode([q.question for _, q, _ in questions])
            if args.cache:
                np.savez(args.cache, vectors=vectors, owners=owners, questions=qvecs)
        dense_s = time.perf_counter() - started

    corpus_bm25 = Bm25(terms)
    local_bm25 = [Bm25(terms[lo : lo + n]) for lo, n in spans]
    weights = [float(w) for w in args.weights.split(",")] if args.dense else []
    depths = [int(m) for m in args.candidates.split(",") if m] if args.dense else []
    rankers = ["bm25"] + (["dense"] + [f"rrf(w={w:g})" for w in weights] if args.dense else [])
    rankers += [f"rrf(w={w:g})@{m}" for m in depths for w in weights]
    hits = {(s, r): dict.fromkeys(DEPTHS, 0) for s in ("document", "corpus") for r in rankers}

    started = time.perf_counter()
    chosen = set(
        range(len(groups))[slice(*(int(x) if x else None for x in args.articles.split(":")))]
    )
    scored = 0
    for qi, (d, q, gold) in enumerate(questions):
        if d not in chosen:
            continue
        scored += 1
        good = np.zeros(len(chunks), dtype=bool)
        for s, e in gold:
            good |= (doc_of == d) & (starts <= s) & (e <= ends)
        qterms = bm25_tokens([q.question])[0]
        lo, n = spans[d]
        lex_all = corpus_bm25.scores(qterms)
        lex_doc = local_bm25[d].scores(qterms)
        dense_all = None
        if args.dense:
            dense_all = max_by_owner(vectors @ qvecs[qi], owners, len(chunks))
        for setting in ("document", "corpus"):
            if setting == "document":
                lex, dense, g_ = lex_doc, dense_all, good[lo : lo + n]
                if dense is not None:
                    dense = dense[lo : lo + n]
            else:
                lex, dense, g_ = lex_all, dense_all, good
            scores = {"bm25": lex}
            if dense is not None:
                scores["dense"] = dense
                for w in weights:
                    scores[f"rrf(w={w:g})"] = fuse(lex, dense, None, w, args.rrf_k)
                for m in depths:
                    best = candidates(lex, m)
                    for w in weights:
                        fused = fuse_candidates(lex, dense, best, w, args.rrf_k)
                        # The windows beyond the candidates follow in BM25 order, as a
                        # question reading more windows than there are candidates gets them.
                        after = -1.0 - ranks(lex) / len(lex)
                        scores[f"rrf(w={w:g})@{m}"] = np.where(np.isneginf(fused), after, fused)
            for r, sc in scores.items():
                for k, ok in recall_at(np.argsort(-sc, kind="stable"), g_).items():
                    hits[(setting, r)][k] += ok
    search_s = time.perf_counter() - started

    n = scored
    report = {
        "articles": args.articles,
        "questions": n,
        "windows": len(chunks),
        "chunk_tokens": chunk_len,
        "overlap": args.stride,
        "recall": {
            f"{s}/{r}": {k: round(100 * v / n, 2) for k, v in h.items()}
            for (s, r), h in hits.items()
        },
        "tokenize_seconds": round(tokenize_s, 1),
        "dense_seconds": round(dense_s, 1),
        "pieces": 0 if vectors is None else len(vectors),
        "search_seconds": round(search_s, 1),
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{n} questions, {len(chunks)} windows of {chunk_len} tokens ({args.stride} overlap)")
    print(f"{'setting/ranker':28}" + "".join(f"{'@' + str(k):>8}" for k in DEPTHS))
    for name, row in report["recall"].items():
        print(f"{name:28}" + "".join(f"{row[k]:8.2f}" for k in DEPTHS))
    print(f"tokenize {tokenize_s:.1f} s, dense {dense_s:.1f} s, search {search_s:.1f} s")


if __name__ == "__main__":
    main()
