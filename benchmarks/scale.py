"""Beyond one machine (issue 20): throughput of the Ray/Lance path against the local one, and
whether it gives the same answers.

Throughput (default): the three shared manuals, each copied ``--copies`` times (a build
spreads whole files over its workers, and three files of 52, 113 and 311 pages cannot keep two
workers equally busy), built into a Lance corpus by 1 and by 2 Ray workers, beside the local
index of the same files (its parse pool on every core), all in this run; then the manual
questions (``--repeat`` times each) answered by a Ray batch with 1 and 2 reader actors,
beside the local path asking them one at a time (a Ray actor of one CPU runs torch on one
thread; the local path on every core). Ratios: 2 workers / 1 worker (the target is ≥ 1.7× on
2 cores), and each path against the local one.

Agreement (``--agreement``): the same questions through both paths, their answers compared
(same text after SQuAD normalisation) and scored: SQuAD dev-part at document level (each
question asked of its own article, ``--per-article`` questions each) and the manual questions
(``--split``). The local path is shown twice: as shipped (BM25 fused with dense vectors) and
with BM25 alone, which is what a corpus ranks by.

    python benchmarks/scale.py                       # throughput
    python benchmarks/scale.py --agreement --json    # answers, both paths
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
MANUALS = SHARED / "corpus" / "manuals"
SQUAD = SHARED / "data" / "squad" / "dev-v1.1-part.json"
MANUAL_QUESTIONS = ROOT / "benchmarks" / "data" / "manualqa-shared.jsonl"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(func):
    started = time.perf_counter()
    value = func()
    return value, time.perf_counter() - started


def throughput(args, tmp: Path) -> dict:
    import ray

    from docqa import DocQA
    from docqa.evaluate import read_questions
    from docqa.scale import LanceCorpus, batch_answers, build_corpus

    questions = [q.question for q in read_questions(MANUAL_QUESTIONS, args.split)]
    # Repeated, so that the readers' start (a model load per actor) is a small part of a run.
    questions = questions[: args.questions] * args.repeat
    folder = tmp / "manuals"
    folder.mkdir()
    for copy in range(args.copies):
        for pdf in sorted(MANUALS.glob("*.pdf")):
            shutil.copyfile(pdf, folder / f"{pdf.stem}-{copy}.pdf")
    log(f"local index of the manuals ({args.copies} copies)")
    local = DocQA(index=tmp / "index", dense=False)
    report, local_build = timed(lambda: local.index([folder]))
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    runs = {"local": {"build_s": local_build}}
    pages = 0
    for workers in (1, 2):
        log(f"Ray build, {workers} worker(s)")
        uri = str(tmp / f"corpus-{workers}")
        _, seconds = timed(lambda uri=uri, w=workers: build_corpus(uri, [folder], workers=w))
        runs[f"ray-{workers}"] = {"build_s": seconds}
        corpus = LanceCorpus(uri)
        pages = sum(len(corpus.document(d).pages) for d in corpus.doc_ids())
    if args.build_only:
        ray.shutdown()
        for run in runs.values():
            run["pages_per_s"] = round(pages / run["build_s"], 2)
        return {
            "copies": args.copies,
            "pages": pages,
            "runs": runs,
            "scaling_2_over_1": {
                "build": round(runs["ray-1"]["build_s"] / runs["ray-2"]["build_s"], 2)
            },
        }
    log(f"local questions ({len(questions)})")
    local.warm_up()
    ids = report.doc_ids
    _, runs["local"]["ask_s"] = timed(
        lambda: [local.ask_indexed(q, ids, chunks=args.chunks) for q in questions]
    )
    for workers in (1, 2):
        log(f"Ray batch, {workers} reader(s)")
        _, seconds = timed(
            lambda w=workers: batch_answers(
                str(tmp / "corpus-2"), questions, chunks=args.chunks, workers=w
            )
        )
        runs[f"ray-{workers}"]["ask_s"] = seconds
    ray.shutdown()
    for run in runs.values():
        run["pages_per_s"] = round(pages / run["build_s"], 2)
        run["questions_per_s"] = round(len(questions) / run["ask_s"], 3)
    return {
        "copies": args.copies,
        "pages": pages,
        "questions": len(questions),
        "runs": runs,
        "scaling_2_over_1": {
            "build": round(runs["ray-1"]["build_s"] / runs["ray-2"]["build_s"], 2),
            "batch": round(runs["ray-1"]["ask_s"] / runs["ray-2"]["ask_s"], 2),
        },
    }


#: Each corpus path and the local path it should agree with.
PAIRS = {"corpus-bm25": "local-bm25", "corpus-vectors": "local-vectors"}


def agreement(args, tmp: Path) -> dict:
    from docqa import DocQA
    from docqa.evaluate import read_questions
    from docqa.metrics import normalize_answer, question_scores
    from docqa.scale import LanceCorpus, build_corpus
    from docqa.squad import join_article, per_article, read_squad

    # SQuAD articles as text files, one per article, asked one article at a time.
    articles = per_article(read_squad(SQUAD), args.per_article)
    folder = tmp / "articles"
    folder.mkdir()
    asked = []  # (path, question, answers)
    for i, article in enumerate(articles):
        path = folder / f"article-{i:04d}.txt"
        path.write_text(join_article(article)[0], encoding="utf-8")
        asked += [(path, q.question, q.answers) for q in article.questions if q.answers]
    manual = [
        (MANUALS / q.file if q.file else MANUALS, q.question, q.answers)
        for q in read_questions(MANUAL_QUESTIONS, args.split)
    ]
    results = {}
    for name, questions, sources in (
        ("squad-document", asked, [folder]),
        ("manuals", manual, [MANUALS]),
    ):
        log(f"{name}: building the corpus (with vectors) and the local indexes")
        uri = str(tmp / f"corpus-{name}")
        build_corpus(uri, sources, vectors=True)
        corpus = LanceCorpus(uri)
        by_path = {Path(corpus.document(d).source): d for d in corpus.doc_ids()}
        paths = {
            # As shipped: vectors made on demand for each question's candidates.
            "local": DocQA(index=tmp / f"ix-{name}"),
            # Every chunk's vectors made at indexing (docqa index --vectors), as a corpus has.
            "local-vectors": DocQA(index=tmp / f"ix-{name}-vectors"),
            "local-bm25": DocQA(index=tmp / f"ix-{name}-bm25", dense=False),
            "corpus-bm25": DocQA(corpus=uri, dense=False),
            "corpus-vectors": DocQA(corpus=uri),
        }
        # Every file in before the first question: BM25's statistics are the whole set's.
        for key, qa in paths.items():
            if not key.startswith("corpus"):
                qa.index(sources, vectors=key == "local-vectors")
        answers: dict[str, list[str]] = {key: [] for key in paths}
        scores: dict[str, list[tuple[int, float]]] = {key: [] for key in paths}
        for n, (source, question, gold) in enumerate(questions, 1):
            for key, qa in paths.items():
                if not key.startswith("corpus"):
                    found = qa.ask(question, source, chunks=args.chunks)
                elif source.is_dir():
                    found = qa.ask(question, chunks=args.chunks)
                else:
                    doc_ids = [by_path[source.resolve()]]
                    found = list(qa.ask_indexed(question, doc_ids, chunks=args.chunks).answers)
                answers[key].append(found[0].text if found else "")
                scores[key].append(question_scores(answers[key][-1], gold))
            if n % 25 == 0:
                log(f"{name}: {n}/{len(questions)}")
        agree = {
            f"{corpus_key} = {local_key}": round(
                100
                * sum(
                    normalize_answer(a) == normalize_answer(b)
                    for a, b in zip(answers[corpus_key], answers[local_key], strict=True)
                )
                / len(questions),
                2,
            )
            for corpus_key in PAIRS
            for local_key in ("local", "local-vectors", "local-bm25")
        }
        results[name] = {
            "questions": len(questions),
            "agreement": agree,
            "exact": {
                key: round(100 * sum(e for e, _ in s) / len(s), 2) for key, s in scores.items()
            },
            "f1": {key: round(100 * sum(f for _, f in s) / len(s), 2) for key, s in scores.items()},
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agreement", action="store_true", help="compare answers instead")
    parser.add_argument("--questions", type=int, default=58, help="manual questions timed")
    parser.add_argument("--copies", type=int, default=4, help="copies of each manual built")
    parser.add_argument("--repeat", type=int, default=2, help="times each question is asked")
    parser.add_argument("--split", default="dev", help="manual questions' split")
    parser.add_argument("--per-article", type=int, default=13)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--build-only", action="store_true", help="throughput of the build only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory(prefix="docqa-scale-") as tmp:
        measured = (agreement if args.agreement else throughput)(args, Path(tmp))
    result = {
        "benchmark": "scale-agreement" if args.agreement else "scale-throughput",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        **measured,
    }
    print(json.dumps(result, indent=1) if args.json else report(result))


def report(result: dict) -> str:
    if result["benchmark"] == "scale-agreement":
        lines = ["| questions | path | EM | F1 |", "|---|---|---|---|"]
        agreed = ["| questions | same answers | % |", "|---|---|---|"]
        for name, r in result.items():
            if not isinstance(r, dict) or "exact" not in r:
                continue
            for key in r["exact"]:
                lines.append(
                    f"| {name} ({r['questions']}) | {key} | {r['exact'][key]} | {r['f1'][key]} |"
                )
            for pair, share in r["agreement"].items():
                agreed.append(f"| {name} | {pair} | {share} |")
        return "\n".join([*lines, "", *agreed])
    lines = [
        f"{result['pages']} pages, {result.get('questions', 0)} questions",
        "| path | build s | pages/s | batch s | questions/s |",
        "|---|---|---|---|---|",
    ]
    for key, run in result["runs"].items():
        batch = f"{run['ask_s']:.1f} | {run['questions_per_s']}" if "ask_s" in run else "— | —"
        lines.append(f"| {key} | {run['build_s']:.1f} | {run['pages_per_s']} | {batch} |")
    s = result["scaling_2_over_1"]
    lines.append(f"2 workers / 1 worker: build {s['build']}x, batch {s.get('batch', '—')}x")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
