"""What the PDF layout cleanup costs against extraction, on the shared manuals (issue 17).

For each manual, in one process: pypdf's extraction of every page (what the PDF loader does
in its worker, outline excluded), then `docqa.loaders.layout.clean_layout` over those page
texts, and the outline read on its own; best of ``--repeat`` runs each. Prints each as a share
of the extraction time (target: cleanup ≤ 10 %).

    python benchmarks/layout_cost.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docqa.loaders.clean import clean_pdf_text  # noqa: E402
from docqa.loaders.layout import clean_layout  # noqa: E402

MANUALS = ROOT.parent / "shared" / "corpus" / "manuals"


def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    from pypdf import PdfReader

    rows = []
    for path in sorted(MANUALS.glob("*.pdf")):

        def extract(path=path):
            reader = PdfReader(str(path))
            return [clean_pdf_text(page.extract_text() or "").strip() for page in reader.pages]

        def outline(path=path):
            return PdfReader(str(path)).outline

        extract_s, pages = best(extract, opts.repeat)
        clean_s, _ = best(lambda pages=pages: clean_layout(pages), opts.repeat)
        outline_s, _ = best(outline, opts.repeat)
        rows.append(
            {
                "file": path.name,
                "pages": len(pages),
                "extract_s": round(extract_s, 3),
                "cleanup_s": round(clean_s, 3),
                "outline_s": round(outline_s, 3),
                "cleanup_share": round(clean_s / extract_s, 4),
                "outline_share": round(outline_s / extract_s, 4),
            }
        )
    if opts.json:
        print(json.dumps(rows))
        return
    print("| manual | pages | extraction s | cleanup s (share) | outline s (share) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['file']} | {r['pages']} | {r['extract_s']:.2f} | {r['cleanup_s']:.3f} "
            f"({100 * r['cleanup_share']:.1f} %) | {r['outline_s']:.2f} "
            f"({100 * r['outline_share']:.1f} %) |"
        )


if __name__ == "__main__":
    main()
