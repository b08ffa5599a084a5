"""Time to first answer over real folders, cold and warm, against the extraction floor.

Every case runs in a fresh process (so peak memory is the case's own) for two checkouts in the
same run: the current one and a baseline commit (``--baseline REF``, checked out as a git
worktree under ``benchmarks/out/``), both with the same Python environment, machine, files and
questions. Ratios are taken against the *extraction floor*, measured in the same run: the time
pypdf alone needs to extract the same manuals on the same number of cores.

Cases (issue 16's targets):

* ``manuals``: the three manuals of ``../shared/corpus/manuals/``, default settings, empty
  index. ``first`` is the first answer (model load, ingest, reading), ``warm`` a second
  question; ``first - warm`` is what ingest adds.
* ``small``: 5,000 generated small text files, first answer from an empty index; then
  ``reindex``: the same folder indexed again unchanged (files parsed, seconds per 1,000 files).
* ``big``: a 200 MB text file and a 50 MB one-line HTML file beside a good PDF: the question's
  answer is in the PDF; peak memory of the process tree.

A case that runs past ``--timeout`` or whose process tree passes ``--kill-rss-mb`` is stopped
and reported as such (the baseline needs both on the big files).

    python benchmarks/ingest.py                       # baseline: the commit before HEAD's change
    python benchmarks/ingest.py --baseline 40caa5e --cases manuals,small --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
SHARED = ROOT.parent / "shared"
MANUALS = SHARED / "corpus" / "manuals"
GOOD_PDF = ROOT / "sample_docs" / "aurora-manual.pdf"

VOCABULARY = (
    "the of and to in is was for on that with as by at from his her an which are "
    "harbor lantern keeper river stone valley market bridge winter summer north south "
    "engine signal copper garden tower island village station letter council record"
)
QUESTIONS = {
    "manuals": ("How do I set the range of the x axis?", "How do I install R packages?"),
    "small": ("What colour is the lantern of Harbor 4417?", "Who keeps the lantern of Harbor 12?"),
    "big": ("How long is the warranty?", "What does the warranty cover?"),
}

# Runs in the case's own process, with the checkout first on sys.path. Uses only the public
# API that both the baseline and the current docqa have.
DRIVER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from docqa import DocQA
index, questions, paths = sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
qa = DocQA(index=index)
times, answers = [], []
for q in questions:
    t = time.perf_counter()
    found = qa.ask(q, paths)
    times.append(time.perf_counter() - t)
    answers.append([found[0].text, found[0].source] if found else None)
print("RESULT " + json.dumps({"times": times, "answers": answers}))
"""

REINDEX = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from docqa import DocQA
qa = DocQA(index=sys.argv[2])
t = time.perf_counter()
report = qa.index(sys.argv[3:])
print("RESULT " + json.dumps({"seconds": time.perf_counter() - t, "parsed": report.parsed,
                              "files": len(report.statuses)}))
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the floor ---------------------------------------------------------------------------------


def _extract(task: tuple[str, int, int]) -> int:
    from pypdf import PdfReader

    path, first, last = task
    reader = PdfReader(path)
    return sum(len(reader.pages[i].extract_text() or "") for i in range(first, last))


def extraction_floor(files: list[Path], workers: int, pages_per_task: int = 16) -> dict:
    """Seconds pypdf alone takes to extract ``files`` on ``workers`` processes."""
    from pypdf import PdfReader

    tasks = []
    pages = 0
    for f in files:
        n = len(PdfReader(str(f)).pages)
        pages += n
        tasks += [(str(f), i, min(n, i + pages_per_task)) for i in range(0, n, pages_per_task)]
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        chars = sum(pool.map(_extract, tasks))
    return {"seconds": time.perf_counter() - started, "pages": pages, "chars": chars}


# -- generated folders -------------------------------------------------------------------------


def _words(n: int, seed: int):
    import numpy as np

    vocab = np.array(VOCABULARY.split())
    return vocab[np.random.default_rng(seed).integers(0, len(vocab), n)]


def small_folder(folder: Path, count: int = 5000) -> Path:
    if (folder / f"note-{count - 1:05d}.txt").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    words = _words(count * 120, 1)
    for i in range(count):
        body = " ".join(words[i * 120 : (i + 1) * 120])
        fact = f"The lantern of Harbor {i} is green and is kept by Ada Keeper {i}. "
        (folder / f"note-{i:05d}.txt").write_text(fact + body + ".\n")
    return folder


def big_folder(folder: Path, text_mb: int = 200, html_mb: int = 50) -> Path:
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "big.txt"
    if not text.exists() or text.stat().st_size < text_mb << 20:
        with text.open("w") as f:
            written, seed = 0, 0
            while written < text_mb << 20:
                block = " ".join(_words(200_000, seed)) + ".\n"
                f.write(block)
                written += len(block)
                seed += 1
    html = folder / "one-line.html"
    if not html.exists() or html.stat().st_size < html_mb << 20:
        with html.open("w") as f:
            f.write("<html><body>")
            written, seed = 0, 100
            while written < html_mb << 20:
                block = "".join(f"<span>{w}</span> " for w in _words(100_000, seed))
                f.write(block)
                written += len(block)
                seed += 1
            f.write("</body></html>")  # no newline anywhere: one line
    if not (folder / GOOD_PDF.name).exists():
        shutil.copyfile(GOOD_PDF, folder / GOOD_PDF.name)
    return folder


# -- running a case ----------------------------------------------------------------------------


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (Linux /proc), in KiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE") // 1024
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack += children.get(p, [])
    return total


def run_case(args: list[str], timeout: float, kill_rss_mb: int) -> dict:
    """Run ``python args`` in a new session; wall time, peak tree RSS, RESULT line, outcome."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    peak = {"kb": 0, "stopped": ""}

    def watch() -> None:
        while proc.poll() is None:
            kb = _tree_rss_kb(proc.pid)
            peak["kb"] = max(peak["kb"], kb)
            over_time = time.perf_counter() - started > timeout
            if kb > kill_rss_mb * 1024 or over_time:
                peak["stopped"] = "timeout" if over_time else f"memory > {kill_rss_mb} MB"
                os.killpg(proc.pid, signal.SIGKILL)
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate()
    watcher.join()
    wall = time.perf_counter() - started
    result = None
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
    return {
        "wall_s": wall,
        "peak_rss_mb": peak["kb"] / 1024,
        "stopped": peak["stopped"],
        "rc": proc.returncode,
        "result": result,
        "error": "" if result else stderr.strip().splitlines()[-1:] or [""],
    }


def ask_case(
    checkout: Path, index: Path, name: str, paths: list[Path], timeout: float, opts
) -> dict:
    return run_case(
        ["-c", DRIVER, str(checkout), str(index), json.dumps(QUESTIONS[name]), *map(str, paths)],
        timeout,
        opts.kill_rss_mb,
    )


def worktree(ref: str) -> Path:
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", ref],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    folder = OUT / f"baseline-{sha}"
    if not folder.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), sha],
            check=True,
            capture_output=True,
        )
    return folder


# -- report ------------------------------------------------------------------------------------


def fmt(case: dict | None, key: str = "wall_s") -> str:
    if case is None:
        return "—"
    if case["stopped"]:
        return f"stopped ({case['stopped']} at {case['wall_s']:.0f} s)"
    if case["result"] is None:
        return f"failed ({case['error'][0][:60]})"
    return f"{case[key]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="HEAD~1", help="git ref to compare against")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--cases", default="manuals,small,big")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=600.0, help="per case, seconds")
    parser.add_argument(
        "--baseline-timeout",
        type=float,
        default=None,
        help="per case for the baseline (default: --timeout); a baseline known to miss a "
        "target by far need not run to the end",
    )
    parser.add_argument("--kill-rss-mb", type=int, default=6000)
    parser.add_argument("--out", type=Path, default=OUT / "ingest-latest.json")
    opts = parser.parse_args()
    cases = opts.cases.split(",")
    OUT.mkdir(parents=True, exist_ok=True)
    import tempfile

    checkouts = {"current": ROOT}
    if not opts.no_baseline:
        checkouts = {"baseline": worktree(opts.baseline), "current": ROOT}
    manuals = sorted(MANUALS.glob("*.pdf"))
    log(f"extraction floor: pypdf on {opts.workers} process(es)")
    floor = extraction_floor(manuals, opts.workers)
    log(f"  {floor['pages']} pages in {floor['seconds']:.1f} s")
    results: dict = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "floor": floor,
        "baseline": opts.baseline if not opts.no_baseline else None,
        "runs": {},
    }
    data = OUT / "ingest-data"
    for label, checkout in checkouts.items():
        runs = results["runs"].setdefault(label, {})
        timeout = opts.timeout
        if label == "baseline" and opts.baseline_timeout:
            timeout = opts.baseline_timeout
        with tempfile.TemporaryDirectory(prefix="docqa-ingest-") as tmp:
            tmp = Path(tmp)
            if "manuals" in cases:
                log(f"{label}: manuals, cold")
                runs["manuals"] = ask_case(
                    checkout, tmp / "ix-m", "manuals", [MANUALS], timeout, opts
                )
            if "small" in cases:
                folder = small_folder(data / "small")
                log(f"{label}: 5,000 small files, cold")
                runs["small"] = ask_case(checkout, tmp / "ix-s", "small", [folder], timeout, opts)
                if runs["small"]["result"] is not None:
                    log(f"{label}: 5,000 small files, re-index unchanged")
                    runs["reindex"] = run_case(
                        ["-c", REINDEX, str(checkout), str(tmp / "ix-s"), str(folder)],
                        timeout,
                        opts.kill_rss_mb,
                    )
            if "big" in cases:
                folder = big_folder(data / "big")
                log(f"{label}: 200 MB text + 50 MB one-line HTML + a PDF, cold")
                runs["big"] = ask_case(checkout, tmp / "ix-b", "big", [folder], timeout, opts)
        opts.out.write_text(json.dumps(results, indent=1))
    print(report(results))


def report(results: dict) -> str:
    floor = results["floor"]["seconds"]
    lines = [
        f"extraction floor (pypdf, {results['machine']['cpus']} cores, "
        f"{results['floor']['pages']} pages): {floor:.1f} s",
        "",
        "| case | target | " + " | ".join(results["runs"]) + " |",
        "|---|---|" + "---|" * len(results["runs"]),
    ]

    def row(name: str, target: str, value) -> None:
        cells = [value(results["runs"][label]) for label in results["runs"]]
        lines.append(f"| {name} | {target} | " + " | ".join(cells) + " |")

    def cell(run: dict, case: str, fn) -> str:
        c = run.get(case)
        if c is None:
            return "—"
        if c["result"] is None:
            return fmt(c)
        return fn(c)

    row(
        "manuals: first answer (s, in process)",
        "≤ 20 s",
        lambda r: cell(r, "manuals", lambda c: f"{c['result']['times'][0]:.1f}"),
    )
    row(
        "manuals: first − warm, × floor",
        "≤ 1.5 ×",
        lambda r: cell(
            r,
            "manuals",
            lambda c: f"{(c['result']['times'][0] - c['result']['times'][1]) / floor:.2f} ×",
        ),
    )
    row(
        "manuals: warm question (s)",
        "≤ 1.5 s",
        lambda r: cell(r, "manuals", lambda c: f"{c['result']['times'][1]:.2f}"),
    )
    row(
        "5,000 small files: first answer (s)",
        "≤ 30 s",
        lambda r: cell(r, "small", lambda c: f"{c['result']['times'][0]:.1f}"),
    )
    row(
        "re-index unchanged: parsed, s per 1,000 files",
        "0, ≤ 0.1 s",
        lambda r: cell(
            r,
            "reindex",
            lambda c: (
                f"{c['result']['parsed']}, "
                f"{c['result']['seconds'] / c['result']['files'] * 1000:.3f} s"
            ),
        ),
    )
    row(
        "200 MB text + 50 MB HTML + PDF: answer",
        "from the PDF",
        lambda r: cell(r, "big", lambda c: str(c["result"]["answers"][0])),
    )
    row(
        "same: first answer (s), peak RSS (MB)",
        "RSS ≤ 1,500",
        lambda r: cell(
            r,
            "big",
            lambda c: f"{c['result']['times'][0]:.0f} s, {c['peak_rss_mb']:.0f} MB",
        ),
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
