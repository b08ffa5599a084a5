"""Speed, agreement and equivalence: docqa against transformers 4.57's QA pipeline, same run.

    python benchmarks/speed.py              # full run: bert-base and bert-large, ~20 min on 2 cores
    python benchmarks/speed.py --smoke      # a minute: bert-base, a few windows
    python benchmarks/speed.py --reader docqa/models/docqa-mini   # + EM/F1 of a trained reader

What it does, every part in its own subprocess (so peak memory is per configuration):

1. Creates ``benchmarks/.venv-baseline`` with torch 2.13.0 and transformers 4.57.6 (the last
   release with ``pipeline("question-answering")``) if it is not there yet.
2. Builds randomly initialised ``BertForQuestionAnswering`` models with the real bert-base and
   bert-large shapes and the real uncased vocabulary (``../shared/tokenizers``): the compute is
   that of the real checkpoints. Both tools load the same folder.
3. Speed: one question over text from ``../shared/corpus/manuals`` (loaded with
   ``docqa.load``), cut to a size per architecture; the pipeline and docqa at each precision
   read every window (max_seq_len 384, doc_stride 128, same thread count).
4. Agreement: SQuAD dev questions asked of their paragraphs at each precision; how often the
   top answer (character start and end) equals fp32's.
5. Equivalence: contexts that fit in one window (SQuAD paragraphs, and accented, CJK, emoji,
   mixed-script texts), max_answer_len 15: docqa fp32's top answer against the pipeline's best
   single candidate (see ``pipeline_worker.py`` for how it is taken before the merge).
6. With ``--reader PATH`` (a trained reader; skipped when absent): EM/F1 of each precision.

Results: a table on stdout, and JSON in ``benchmarks/out/speed-latest.json``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VOCAB = SHARED / "tokenizers" / "bert-base-uncased"
MANUAL = SHARED / "corpus" / "manuals" / "R-intro.pdf"
SQUAD_DEV = SHARED / "data" / "squad" / "dev-v1.1-part.json"
OUT = ROOT / "benchmarks" / "out"
BASELINE_VENV = ROOT / "benchmarks" / ".venv-baseline"
BASELINE_PINS = {"torch": "2.13.0", "transformers": "4.57.6"}
READERS = (ROOT / "docqa" / "models" / "docqa-mini", ROOT / "runs" / "mini-doc")

ARCHS = {
    "bert-base": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
    "bert-large": {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
    },
}
PRECISIONS = ("fp32", "bf16", "int8")
QUESTION = "How do I read a data frame from a file?"
WARMUP = {
    "question": "What is R?",
    "context": "R is a system for statistical computation and graphics. It provides a "
    "programming language, high level graphics and interfaces to other languages.",
}
SEQ = {"max_seq_len": 384, "doc_stride": 128}


# --- the baseline's virtualenv -----------------------------------------------------------


def ensure_baseline(venv: Path) -> Path:
    """The baseline venv's Python, creating the venv with pinned versions if needed."""
    python = venv / "bin" / "python"
    probe = (
        "import torch, transformers; "
        "print(torch.__version__.split('+')[0], transformers.__version__)"
    )
    want = f"{BASELINE_PINS['torch']} {BASELINE_PINS['transformers']}"
    if python.exists():
        got = subprocess.run([python, "-c", probe], capture_output=True, text=True)
        if got.returncode == 0 and got.stdout.strip() == want:
            return python
    log(
        f"creating {venv} (torch {BASELINE_PINS['torch']}, transformers "
        f"{BASELINE_PINS['transformers']})"
    )
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
    pins = [f"{k}=={v}" for k, v in BASELINE_PINS.items()]
    subprocess.run([python, "-m", "pip", "install", "-q", *pins], check=True)
    return python


# --- models and texts --------------------------------------------------------------------


def build_model(arch: str, folder: Path, seed: int = 0) -> Path:
    """A randomly initialised QA model with ``arch``'s shape and the real uncased vocabulary."""
    marker = folder / "benchmark-arch.json"
    spec = {"arch": arch, "seed": seed, **ARCHS[arch]}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return folder
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    log(f"building {arch} (random weights) in {folder}")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, max_position_embeddings=512, **ARCHS[arch])
    BertForQuestionAnswering(config).eval().save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copyfile(VOCAB / name, folder / name)
    marker.write_text(json.dumps(spec))
    return folder


def manual_text(chars: int) -> str:
    """``chars`` characters of real manual text (pypdf via docqa.load), cut at a space."""
    from docqa import load

    text = load(MANUAL).text
    start = len(text) // 5  # past the title pages and the table of contents
    piece = text[start : start + chars]
    cut = piece.rfind(" ")
    return piece[:cut] if cut > chars // 2 else piece


def squad_paragraph_items(n_questions: int, seed: int) -> list[dict]:
    """Every question of randomly chosen SQuAD dev paragraphs, until ``n_questions``."""
    from docqa.squad import read_squad

    paragraphs = [
        (a, p, text)
        for a, article in enumerate(read_squad(SQUAD_DEV))
        for p, text in enumerate(article.paragraphs)
    ]
    questions: dict[tuple[int, int], list] = {}
    for a, article in enumerate(read_squad(SQUAD_DEV)):
        for q in article.questions:
            questions.setdefault((a, q.paragraph_index), []).append(q)
    random.Random(seed).shuffle(paragraphs)
    items: list[dict] = []
    for a, p, text in paragraphs:
        for q in questions.get((a, p), []):
            items.append(
                {"id": q.id, "question": q.question, "context": text, "answers": q.answers}
            )
        if len(items) >= n_questions:
            break
    return items


def single_window_items(n: int, seed: int, tokenizer_folder: Path, per_text: int = 3) -> list[dict]:
    """``n`` SQuAD paragraphs (each with its first question) that fit one 384-token window,
    then the multilingual texts of ``texts.py``, each with ``per_text`` questions."""
    sys.path.insert(0, str(Path(__file__).parent))
    from texts import special_items
    from transformers import AutoTokenizer

    from docqa.windowing import pair_template, tokenize_question, tokenize_text

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder), trust_remote_code=False)
    template = pair_template(tokenizer)

    def fits(question: str, context: str) -> bool:
        q = tokenize_question(tokenizer, question, 64)
        return len(q) + len(tokenize_text(tokenizer, context)) + template.n_special <= 384

    items = []
    for item in squad_paragraph_items(10 * n, seed):
        if item["context"] in {i["context"] for i in items}:
            continue
        if fits(item["question"], item["context"]):
            items.append({**item, "kind": "squad"})
        if len(items) == n:
            break
    special = [i for i in special_items() if int(i["id"].rsplit("/", 1)[1]) < per_text]
    assert all(fits(i["question"], i["context"]) for i in special), "a text needs two windows"
    return items + special


# --- workers -----------------------------------------------------------------------------


def run_job(python: Path, script: Path, job: dict, name: str) -> dict:
    """Run one worker in its own process; its JSON result."""
    jobs = OUT / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    job_path, out_path = jobs / f"{name}.job.json", jobs / f"{name}.out.json"
    job_path.write_text(json.dumps(job))
    out_path.unlink(missing_ok=True)
    threads = str(job["threads"])
    env = {
        **os.environ,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }
    args = [str(python), str(script)]
    if script == Path(__file__).resolve():
        args.append("--worker")
    t = time.perf_counter()
    done = subprocess.run([*args, str(job_path), str(out_path)], env=env, cwd=ROOT)
    if done.returncode != 0 or not out_path.exists():
        raise SystemExit(f"worker {name} failed (exit {done.returncode}); job in {job_path}")
    result = json.loads(out_path.read_text())
    result["wall_seconds"] = time.perf_counter() - t
    return result


def docqa_worker(job_path: str, out_path: str) -> None:
    """Ask every item with docqa at one precision; the same JSON shape as the pipeline's."""
    sys.path.insert(0, str(Path(__file__).parent))
    from pipeline_worker import PeakRSS, rss_mb

    job = json.loads(Path(job_path).read_text())
    import torch

    torch.set_num_threads(job["threads"])
    import docqa
    from docqa import DocQA, Document
    from docqa.windowing import make_windows, tokenize_question

    settings = {
        "model": job["model"],
        "device": "cpu",
        "precision": job["precision"],
        "max_answer_len": job["max_answer_len"],
        **SEQ,
    }
    if job.get("batch_size"):
        settings["batch_size"] = job["batch_size"]
    accepted = inspect.signature(DocQA).parameters
    # Exhaustive reading: every window, as the pipeline does (no retrieval, no index). Older
    # checkouts (timed as baselines) called the reading depth ``windows``.
    if "retrieval" in accepted:
        settings["chunks"] = None
    elif "windows" in accepted:
        settings["windows"] = None
    if "index" in accepted:
        settings["index"] = False
    qa = DocQA(**settings)
    t0 = time.perf_counter()
    qa.warm_up()
    load_seconds = time.perf_counter() - t0

    windows = [0]
    logits = qa.reader.logits

    def counting_logits(ws):
        for row in logits(ws):
            windows[0] += 1
            yield row

    qa.reader.logits = counting_logits
    warm = Document.from_text(WARMUP["context"], source="warmup")
    qa.ask(WARMUP["question"], warm)
    q_ids = tokenize_question(qa.reader.tokenizer, WARMUP["question"], 64)
    [window] = make_windows(qa.template, q_ids, qa.tokenized(warm), 0, **SEQ)
    [(_, start_logits, _)] = list(logits([window]))
    fingerprint = [round(float(x), 5) for x in start_logits[:16]]

    # Questions about the same context go through ask_many together: one tokenization.
    groups: dict[str, list[dict]] = {}
    for item in job["items"]:
        groups.setdefault(item["context"], []).append(item)
    results = []
    rss_before = rss_mb()
    with PeakRSS() as peak:
        for n, (context, items) in enumerate(groups.items()):
            doc = Document.from_text(context, source=f"context-{n}")
            windows[0] = 0
            t, cpu = time.perf_counter(), time.process_time()
            answers = qa.ask_many([i["question"] for i in items], doc)
            seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - cpu
            for item, found in zip(items, answers, strict=True):
                top = found[0] if found else None
                results.append(
                    {
                        "id": item["id"],
                        "start": top.start if top else 0,
                        "end": top.end if top else 0,
                        "text": top.text if top else "",
                        "seconds": seconds / len(items),
                        "cpu_seconds": cpu_seconds / len(items),
                        "windows": windows[0] / len(items),
                    }
                )
    payload = {
        "tool": "docqa",
        "precision": qa.reader.precision,
        "batch_size": qa.reader.batch_size,
        "docqa_file": docqa.__file__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "attn_implementation": getattr(
            getattr(qa.reader._model, "config", None), "_attn_implementation", None
        ),
        "load_seconds": load_seconds,
        "rss_before_read_mb": rss_before,
        "peak_read_rss_mb": peak.peak,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "fingerprint": fingerprint,
        "results": results,
    }
    Path(out_path).write_text(json.dumps(payload))


# --- the run -----------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Runner:
    def __init__(self, args, baseline_python: Path):
        self.args = args
        self.baseline = baseline_python
        self.here = Path(__file__).resolve()
        self.pipeline_script = self.here.parent / "pipeline_worker.py"

    def job(self, model: Path, items: list[dict], **extra) -> dict:
        return {
            "model": str(model),
            "threads": self.args.threads,
            "max_answer_len": 15,
            "warmup": WARMUP,
            "items": items,
            **SEQ,
            **extra,
        }

    def pipeline(self, name: str, model: Path, items: list[dict]) -> dict:
        log(f"{name}: pipeline (transformers {BASELINE_PINS['transformers']})")
        return run_job(self.baseline, self.pipeline_script, self.job(model, items), name)

    def docqa(self, name: str, model: Path, items: list[dict], precision: str, **extra) -> dict:
        log(f"{name}: docqa {precision}")
        job = self.job(model, items, precision=precision, **extra)
        return run_job(Path(sys.executable), self.here, job, name)


def speed_rows(runner: Runner, arch: str, model: Path, chars: int, precisions) -> list[dict]:
    text = manual_text(chars)
    items = [{"id": "manual", "question": QUESTION, "context": text}]
    # Interleaved repeats, each tool's median run kept: a slow moment of the machine then
    # costs both tools alike instead of whichever happened to run during it.
    tries: dict[str, list[dict]] = {}
    for _ in range(runner.args.repeat):
        tries.setdefault("pipeline", []).append(
            runner.pipeline(f"speed-{arch}-pipeline", model, items)
        )
        for p in precisions:
            tries.setdefault(p, []).append(
                runner.docqa(
                    f"speed-{arch}-{p}", model, items, p, batch_size=runner.args.batch_size
                )
            )
    runs = {name: _median_run(found) for name, found in tries.items()}
    base = runs["pipeline"]
    b = base["results"][0]
    fp32 = runs.get("fp32", {}).get("results", [None])[0]
    rows = []
    for name, run in runs.items():
        r = run["results"][0]
        rows.append(
            {
                "arch": arch,
                "tool": "pipeline 4.57" if name == "pipeline" else "docqa",
                "precision": "fp32" if name == "pipeline" else run["precision"],
                "chars": len(text),
                "windows": r["windows"],
                "seconds_per_question": r["seconds"],
                "windows_per_s": r["windows"] / r["seconds"],
                "ratio_vs_pipeline": b["seconds"] / r["seconds"] * r["windows"] / b["windows"],
                # CPU time (all threads) per window: steadier than wall time on a shared machine
                "cpu_seconds_per_window": r["cpu_seconds"] / r["windows"],
                "ratio_vs_pipeline_cpu": b["cpu_seconds"]
                / r["cpu_seconds"]
                * r["windows"]
                / b["windows"],
                "load_average_1min": os.getloadavg()[0],
                "peak_rss_mb": run["peak_rss_mb"],
                "peak_read_rss_mb": run["peak_read_rss_mb"],
                "load_seconds": run["load_seconds"],
                "answer": [r["start"], r["end"]],
                "same_answer_as_pipeline": (r["start"], r["end"]) == (b["start"], b["end"]),
                "same_answer_as_fp32": fp32 is not None
                and (r["start"], r["end"]) == (fp32["start"], fp32["end"]),
                "fingerprint": run["fingerprint"],
                "attn_implementation": run.get("attn_implementation"),
                "all_seconds": [t["results"][0]["seconds"] for t in tries[name]],
            }
        )
    return rows


def _median_run(runs: list[dict]) -> dict:
    """The run with the median seconds (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda run: run["results"][0]["seconds"])
    return ordered[(len(ordered) - 1) // 2]


def agreement(runner: Runner, label: str, model: Path, items: list[dict], precisions) -> dict:
    from docqa.metrics import question_scores

    gold = {i["id"]: i.get("answers", ()) for i in items}
    runs = {p: runner.docqa(f"agree-{label}-{p}", model, items, p) for p in precisions}
    ref = {r["id"]: (r["start"], r["end"]) for r in runs["fp32"]["results"]}
    out = {"model": label, "questions": len(items), "by_precision": {}}
    for p, run in runs.items():
        same = sum((r["start"], r["end"]) == ref[r["id"]] for r in run["results"])
        seconds = sum(r["seconds"] for r in run["results"])
        windows = sum(r["windows"] for r in run["results"])
        entry = {
            "resolved": run["precision"],
            "same_top_answer_as_fp32": same,
            "agreement": same / len(run["results"]),
            "seconds": seconds,
            "windows_per_s": windows / seconds if seconds else None,
        }
        if any(gold.values()):
            scores = [question_scores(r["text"], gold[r["id"]]) for r in run["results"]]
            entry["em"] = 100 * sum(s[0] for s in scores) / len(scores)
            entry["f1"] = 100 * sum(s[1] for s in scores) / len(scores)
        out["by_precision"][p] = entry
    return out


def equivalence(runner: Runner, label: str, model: Path, items: list[dict]) -> dict:
    base = runner.pipeline(f"equiv-{label}-pipeline", model, items)
    ours = runner.docqa(f"equiv-{label}-fp32", model, items, "fp32")
    theirs = {r["id"]: r for r in base["results"]}
    kinds = {i["id"]: i.get("kind", "squad") for i in items}
    contexts = {i["id"]: i["context"] for i in items}
    by_kind: dict[str, list[int]] = {}
    differ = []
    for r in ours["results"]:
        t = theirs[r["id"]]
        same = (r["start"], r["end"]) == (t["start"], t["end"])
        group = "squad" if kinds[r["id"]] == "squad" else "multilingual"
        by_kind.setdefault(group, [0, 0])
        by_kind[group][0] += same
        by_kind[group][1] += 1
        if not same:
            text = contexts[r["id"]]
            differ.append(
                {
                    "id": r["id"],
                    "docqa": [r["start"], r["end"], text[r["start"] : r["end"]]],
                    "pipeline": [t["start"], t["end"], text[t["start"] : t["end"]]],
                }
            )
    total = sum(v[1] for v in by_kind.values())
    same = sum(v[0] for v in by_kind.values())
    windows = {r["windows"] for r in base["results"]} | {r["windows"] for r in ours["results"]}
    return {
        "model": label,
        "contexts": total,
        "identical": same,
        "agreement": same / total,
        "by_kind": {k: {"identical": v[0], "of": v[1]} for k, v in by_kind.items()},
        "windows_per_context": sorted(windows),
        "fingerprints_match": fingerprints_match(base, ours),
        "differences": differ,
        "pipeline_seconds": sum(r["seconds"] for r in base["results"]),
        "docqa_seconds": sum(r["seconds"] for r in ours["results"]),
    }


def fingerprints_match(a: dict, b: dict, tol: float = 1e-3) -> bool:
    fa, fb = a.get("fingerprint"), b.get("fingerprint")
    return bool(fa and fb) and all(abs(x - y) <= tol for x, y in zip(fa, fb, strict=True))


def find_reader(path: str | None) -> Path | None:
    candidates = [Path(path)] if path else list(READERS)
    for c in candidates:
        if (c / "config.json").exists():
            return c
    return None


def machine() -> dict:
    import torch

    from docqa.modelio import cpu_features, pick_precision

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return {
        "cpu": torch.cpu.get_capabilities().get("cpu_name", platform.processor())
        if hasattr(torch.cpu, "get_capabilities")
        else platform.processor(),
        "cores": os.cpu_count(),
        "features": cpu_features(),
        "torch": torch.__version__,
        "auto_precision_cpu": pick_precision("auto", "cpu"),
        "docqa_commit": commit,
        "python": platform.python_version(),
    }


def markdown(report: dict) -> str:
    lines = []
    if report["speed"]:
        auto = report["machine"]["auto_precision_cpu"]
        lines += [
            f"Speed: one question over R-intro text, exhaustive reading, "
            f"{report['settings']['threads']} threads, max_seq_len 384, doc_stride 128.",
            "",
            "| model | tool | precision | windows | s/question | windows/s | × pipeline "
            "| peak RSS MB | same answer as fp32 |",
            "|---|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in report["speed"]:
            p = r["precision"] + (
                " (auto)" if r["tool"] == "docqa" and r["precision"] == auto else ""
            )
            lines.append(
                f"| {r['arch']} | {r['tool']} | {p} | {r['windows']:.0f} | "
                f"{r['seconds_per_question']:.1f} | {r['windows_per_s']:.2f} | "
                f"{r['ratio_vs_pipeline']:.2f} | {r['peak_rss_mb']:.0f} | "
                f"{'yes' if r['same_answer_as_fp32'] else 'no'} |"
            )
        lines.append("")
    for a in report["agreement"]:
        cells = []
        for p, e in a["by_precision"].items():
            cell = f"{p} {100 * e['agreement']:.1f}%"
            if "em" in e:
                cell += f" (EM {e['em']:.1f} / F1 {e['f1']:.1f})"
            cells.append(cell)
        lines.append(
            f"Agreement with fp32, {a['model']}, {a['questions']} SQuAD questions: "
            + "; ".join(cells)
        )
    for e in report["equivalence"]:
        kinds = ", ".join(f"{k} {v['identical']}/{v['of']}" for k, v in e["by_kind"].items())
        lines.append(
            f"Equivalence with the pipeline's best single candidate, {e['model']} fp32, "
            f"max_answer_len 15: {e['identical']}/{e['contexts']} identical ({kinds})"
            + ("" if e["fingerprints_match"] else "  [logit fingerprints differ!]")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="bert-base, a few windows")
    parser.add_argument("--archs", default="bert-base,bert-large")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--chars-base", type=int, default=30000, help="text for bert-base")
    parser.add_argument("--chars-large", type=int, default=12000, help="text for bert-large")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-size", type=int, default=None, help="docqa's default if unset")
    parser.add_argument("--agree", type=int, default=200, help="SQuAD questions for agreement")
    parser.add_argument(
        "--agree-archs", default="bert-base", help="random models to measure agreement on"
    )
    parser.add_argument("--equiv", type=int, default=100, help="single-window SQuAD paragraphs")
    parser.add_argument("--equiv-arch", default="bert-base")
    parser.add_argument(
        "--per-text", type=int, default=2, help="questions per multilingual text (1-3)"
    )
    parser.add_argument("--reader", default=None, help="a trained reader for EM/F1")
    parser.add_argument("--skip", default="", help="comma list of: speed,agree,equiv,reader")
    parser.add_argument("--baseline-venv", type=Path, default=BASELINE_VENV)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat", type=int, default=1, help="speed runs per tool, interleaved; median kept"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.archs, args.chars_base, args.agree, args.equiv = "bert-base", 2500, 12, 6
        args.per_text = 1
        args.agree_archs = "bert-base"
    skip = set(filter(None, args.skip.split(",")))
    archs = [a for a in args.archs.split(",") if a]
    precisions = [p for p in args.precisions.split(",") if p]
    if "fp32" not in precisions:
        precisions.insert(0, "fp32")  # the reference for agreement
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.time()
    baseline = ensure_baseline(args.baseline_venv)
    runner = Runner(args, baseline)
    from docqa.reader import quiet_torchao

    with quiet_torchao():  # transformers imports torchao (noisily) when saving a model
        models = {
            a: build_model(a, OUT / "models" / f"{a}-random")
            for a in sorted({*archs, *args.agree_archs.split(","), args.equiv_arch})
            if a
        }
    report = {
        "machine": machine(),
        "settings": {**vars(args), "baseline_venv": str(args.baseline_venv), **SEQ},
        "speed": [],
        "agreement": [],
        "equivalence": [],
    }
    if "speed" not in skip:
        for arch in archs:
            chars = args.chars_large if arch == "bert-large" else args.chars_base
            report["speed"] += speed_rows(runner, arch, models[arch], chars, precisions)
    if "agree" not in skip and args.agree:
        items = squad_paragraph_items(args.agree, args.seed)
        for arch in filter(None, args.agree_archs.split(",")):
            report["agreement"].append(agreement(runner, arch, models[arch], items, precisions))
    if "equiv" not in skip and args.equiv:
        items = single_window_items(args.equiv, args.seed + 1, VOCAB, args.per_text)
        report["equivalence"].append(
            equivalence(runner, args.equiv_arch, models[args.equiv_arch], items)
        )
    reader = find_reader(args.reader)
    if "reader" not in skip and reader is not None:
        items = squad_paragraph_items(args.agree, args.seed)
        report["agreement"].append(
            agreement(runner, f"trained {reader.name}", reader, items, precisions)
        )
        try:
            eq_items = single_window_items(args.equiv, args.seed + 1, reader, args.per_text)
            report["equivalence"].append(
                equivalence(runner, f"trained {reader.name}", reader, eq_items)
            )
        except SystemExit as exc:  # e.g. the old pipeline cannot read this tokenizer
            log(f"equivalence with the trained reader skipped: {exc}")
    elif "reader" not in skip:
        log("no trained reader found (--reader PATH): EM/F1 per precision skipped")
    report["seconds"] = time.time() - started
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (f"speed-{stamp}.json", "speed-latest.json"):
        (OUT / name).write_text(json.dumps(report, indent=1))
    text = markdown(report)
    (OUT / "speed-latest.md").write_text(text + "\n")
    print(text)
    log(f"done in {report['seconds'] / 60:.1f} min; JSON in {OUT / 'speed-latest.json'}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        docqa_worker(sys.argv[2], sys.argv[3])
    else:
        main()
