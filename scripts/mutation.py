"""Mutation testing of docqa's core (issue 21): how many deliberately broken copies the tests catch.

Runs mutmut (``pip install mutmut``; its settings are ``[tool.mutmut]`` in pyproject.toml: the
modules it breaks and the tests that must catch them) in a git worktree of HEAD under
``benchmarks/out/``, so the checkout is never touched, and prints per module how many mutants
the tests killed. Slow (minutes per module), so not part of CI.

    python scripts/mutation.py                 # mutate, test, report
    python scripts/mutation.py --report-only   # report the last run again
    python scripts/mutation.py --only docqa.index --max-children 2   # the index's part only

A surviving mutant is either a missing test or an equivalent change (the code behaves the same):
list each with ``mutmut show NAME`` inside the worktree and say which it is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKTREE = ROOT / "benchmarks" / "out" / "mutation"
#: The mutants that count, by mutmut's names (``docqa.MODULE.x_FUNCTION__mutmut_N``, methods
#: ``docqa.MODULE.xǁCLASSǁMETHOD__mutmut_N``): mutmut breaks whole files, but of retrieve.py only
#: the retrieval fusion is in scope (issue 21); the rest of it is the sentence encoder, whose
#: tests load a model. Of the index, only its commit path is: the functions that write a file's
#: rows (and the store's helpers they write and read them with). `store.transaction` is one of
#: them but has no mutants: mutmut leaves decorated functions alone.
SCOPE = (
    "docqa.spans.*",
    "docqa.aggregate.*",
    "docqa.windowing.*",
    *(
        f"docqa.retrieve.{name}__mutmut_*"
        for name in (
            "x_max_by_owner",
            "x_ranks",
            "x_rrf",
            "x_fuse",
            "x_in_regions",
            "x_skipped_chunks",
            "x_candidates",
            "x_fuse_candidates",
            "x__order",
            "xǁRetrieverǁscores",
            "xǁRetrieverǁrank",
        )
    ),
    *(
        f"docqa.index.ingest.{name}__mutmut_*"
        for name in (
            "x__apply",
            "x__ensure_chunks",  # with its inner part_text
            "x__carry_into",
            "x__insert_document",
            "xǁ_ChunkCutterǁ__init__",
            "xǁ_ChunkCutterǁcarry_over",
            "xǁ_ChunkCutterǁadd",
            "x__collect_garbage",
            "x__drop_missing",
            "x__slice_tokens",
        )
    ),
    *(
        f"docqa.index.store.{name}__mutmut_*"
        for name in (
            "x_bump_generation",
            "x_write_vectors",
            "x_read_vectors",
            "x_pack_tokens",
            "x__unpack_block",
            "x_tokens_from_blocks",
            "x_text_range",
        )
    ),
)


def prepare() -> None:
    """A fresh worktree of HEAD, with ``shared`` beside its tests as in a normal checkout."""
    if WORKTREE.exists():
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(WORKTREE)], cwd=ROOT, check=True
        )
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(WORKTREE), "HEAD"], cwd=ROOT, check=True
    )
    # The tests read ../shared from the folder they run in; mutmut runs them from mutants/.
    (WORKTREE / "shared").symlink_to(ROOT.parent / "shared")


def report(patterns: Sequence[str]) -> dict[str, Counter]:
    """Mutants of ``patterns`` per mutated module and status (killed, survived, no tests,
    timeout, ...), in mutmut's own words for its exit codes; modules with none are left out."""
    from mutmut.stats import status_by_exit_code

    scores: dict[str, Counter] = {}
    for meta in sorted((WORKTREE / "mutants").rglob("*.py.meta")):
        module = str(meta.relative_to(WORKTREE / "mutants"))[: -len(".meta")]
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts = Counter(
            status_by_exit_code[code]
            for name, code in codes.items()
            if any(fnmatchcase(name, pattern) for pattern in patterns)
        )
        if counts:
            scores[module] = counts
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--only", default="", help="run only the SCOPE patterns that contain this text"
    )
    parser.add_argument("--max-children", type=int, default=None, help="mutmut's workers")
    opts = parser.parse_args()
    patterns = [p for p in SCOPE if opts.only in p]
    if not opts.report_only:
        prepare()
        # The same property-test examples every run (tests/conftest.py), so scores compare; and
        # no thread pools in the process mutmut forks its workers from: with the tokenizers'
        # and torch's threads running there, forked workers deadlocked (counted as timeouts).
        env = {
            **os.environ,
            "HYPOTHESIS_PROFILE": "derandomized",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1",
        }
        workers = ["--max-children", str(opts.max_children)] if opts.max_children else []
        subprocess.run(
            [sys.executable, "-m", "mutmut", "run", *workers, *patterns],
            cwd=WORKTREE,
            check=False,
            env=env,
        )
    scores = report(patterns)
    # "no tests": no selected test reaches the mutated function, so nothing could catch it;
    # "not checked": not run yet (a run stopped early), left out of "killed % of checked".
    statuses = ("killed", "timeout", "survived", "no tests", "not checked")
    print("| module | " + " | ".join(statuses) + " | total | killed % | killed % of checked |")
    print("|---|" + "---|" * (len(statuses) + 3))
    for module, counts in [*scores.items(), ("all", sum(scores.values(), Counter()))]:
        total = sum(counts.values())
        checked = total - counts["not checked"]
        cells = " | ".join(str(counts.get(name, 0)) for name in statuses)
        share = f"{100 * counts['killed'] / checked:.1f}" if checked else "-"
        killed = f"{100 * counts['killed'] / max(1, total):.1f}"
        print(f"| {module} | {cells} | {total} | {killed} | {share} |")
    results = subprocess.run(
        [sys.executable, "-m", "mutmut", "results"], cwd=WORKTREE, capture_output=True, text=True
    ).stdout.splitlines()
    survivors = [
        line
        for line in results
        if any(fnmatchcase(line.strip().split(":")[0], pattern) for pattern in patterns)
        and not line.endswith("not checked")
    ]
    print("\nSurvivors (inspect with `mutmut show NAME` in benchmarks/out/mutation):")
    print("\n".join(survivors))


if __name__ == "__main__":
    main()
