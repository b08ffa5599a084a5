"""Load on `docqa serve`: N concurrent clients asking questions for a bounded time, on
127.0.0.1 only, and the same questions through the Python API in the same run.

The server is a separate process (``python -m docqa serve``), as people run it; the clients
are asyncio tasks over one httpx connection pool in this process, each asking the next
question as soon as its last answer came back (closed loop). For each client count it prints
requests/s, p50/p95/p99 latency and errors (must be 0), once for each ``--batch-windows``
(0: every request reads its own question, the baseline; the ratio column compares each
setting's requests/s with it at the same client count). Then this process loads the same model
and asks the same questions through the Python API, one at a time: `DocQA.ask_indexed` (what
the service does per request) and `DocQA.ask` (which also checks the files for changes). The
ratio of the service's p50 at one client to the API's is the service's overhead.

    python benchmarks/serve_load.py                                   # 1, 10, 50 clients, 30 s
    python benchmarks/serve_load.py --seconds 10 --clients 2 --json  # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUESTIONS = [
    "How long is the warranty?",
    "How long does the battery last?",
    "What does the warranty not cover?",
    "How do I pair the outdoor sensor?",
    "What powers the console?",
    "How long are readings kept during a power cut?",
]


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; nan when there are no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(latencies: list[float], errors: int, seconds: float) -> dict:
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / seconds, 2) if seconds else None,
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
    }


def start_server(args, index: Path, port: int, batch_windows: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "docqa", "serve", *map(str, args.docs)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--index", str(index)]
    command += ["--batch-windows", str(batch_windows)]
    if args.model:
        command += ["--model", args.model]
    if not args.dense:
        command += ["--no-dense"]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def wait_ready(url: str, server: subprocess.Popen, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {server.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).json().get("status") == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server did not start within {timeout:.0f} s")


async def load(url: str, clients: int, seconds: float, top_k: int) -> dict:
    """``clients`` closed-loop clients for ``seconds``; latencies of answered requests."""
    import httpx

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        stop = time.perf_counter() + seconds

        async def one(worker: int) -> None:
            nonlocal errors
            i = worker
            while time.perf_counter() < stop:
                question = QUESTIONS[i % len(QUESTIONS)]
                i += 1
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/v1/ask", json={"question": question, "top_k": top_k}
                    )
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(one(w) for w in range(clients)))
        elapsed = time.perf_counter() - began
    return {"clients": clients, "seconds": round(elapsed, 2), **summary(latencies, errors, elapsed)}


def python_api(args, index: Path, seconds: float) -> dict:
    """The same questions through `DocQA` in this process, one at a time."""
    from docqa import DocQA

    qa = DocQA(model=args.model, index=index, dense=None if args.dense else False)
    report = qa.index(args.docs)
    qa.ask(QUESTIONS[0], args.docs, args.top_k)  # warm: model, caches
    results = {}
    for name in ("ask_indexed", "ask"):
        latencies: list[float] = []
        stop = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < stop:
            question = QUESTIONS[i % len(QUESTIONS)]
            i += 1
            started = time.perf_counter()
            if name == "ask":
                qa.ask(question, args.docs, args.top_k)
            else:
                qa.ask_indexed(question, report.doc_ids, args.top_k)
            latencies.append(time.perf_counter() - started)
        results[name] = summary(latencies, 0, seconds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", nargs="+", type=Path, default=[ROOT / "sample_docs"])
    parser.add_argument("--model", default=None, help="default: the bundled reader")
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 10, 50])
    parser.add_argument("--seconds", type=float, default=30.0, help="per client count")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--dense", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--batch-windows",
        nargs="+",
        type=int,
        default=[0, 100],
        help="serve with each (0: every request reads alone, the baseline)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if 1 not in args.clients:
        args.clients = [1, *args.clients]  # the overhead ratio needs the one-client run

    if not args.port:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            args.port = s.getsockname()[1]
    url = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory(prefix="docqa-serve-load-") as tmp:
        index = Path(tmp) / "index"
        runs = []
        for batch_windows in args.batch_windows:
            server = start_server(args, index, args.port, batch_windows)
            try:
                wait_ready(url, server, timeout=600)
                # One question first, not timed: the first one builds the retriever's caches.
                import httpx

                httpx.post(url + "/v1/ask", json={"question": QUESTIONS[0]}, timeout=600)
                for n in args.clients:
                    run = asyncio.run(load(url, n, args.seconds, args.top_k))
                    runs.append({"batch_windows": batch_windows, **run})
            finally:
                server.terminate()
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()
        api = python_api(args, index, args.seconds)

    one = next(r for r in runs if r["clients"] == 1 and r["batch_windows"] == 0)
    overhead = (
        one["p50_ms"] / api["ask_indexed"]["p50_ms"] if api["ask_indexed"]["p50_ms"] else None
    )
    result = {
        "benchmark": "serve_load",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "docs": [str(p) for p in args.docs],
        "model": args.model or "bundled",
        "seconds": args.seconds,
        "service": runs,
        "python_api": api,
        "overhead_p50_one_client": round(overhead, 3) if overhead else None,
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    header = ["batch", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"]
    print(" ".join(f"{h:>8}" for h in header) + "   req/s vs batch 0")
    baseline = {r["clients"]: r["requests_per_s"] for r in runs if r["batch_windows"] == 0}
    for r in runs:
        base = baseline.get(r["clients"])
        ratio = f"{r['requests_per_s'] / base:.2f}x" if base else ""
        cells = [r["batch_windows"], r["clients"], r["requests_per_s"], r["p50_ms"]]
        cells += [r["p95_ms"], r["p99_ms"], r["errors"]]
        print(" ".join(f"{c:>8}" for c in cells) + f"   {ratio}")
    for name, r in api.items():
        print(
            f"python {name:>12}: {r['requests_per_s']} q/s, p50 {r['p50_ms']} ms, "
            f"p95 {r['p95_ms']} ms"
        )
    print(
        "service p50 at one client (batch 0) / ask_indexed p50: "
        f"{result['overhead_p50_one_client']}"
    )


if __name__ == "__main__":
    main()
