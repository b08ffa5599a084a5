"""Issue 19, item 6: questions that arrive together are read in one batch.

`DocQA.read` reads several questions' readings in one pass of the reader and gives each the
prediction it gets alone; `ReadBatcher` (the service's one reader thread) puts the readings
that wait together into one such call, never more than its window budget, and one failing
reading never costs the others their answers.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from conftest import ROOT

from docqa import DocQA
from docqa.serve.batch import ReadBatcher

QUESTIONS = [
    "How long is the warranty?",
    "How long does the battery last?",
    "What does the warranty not cover?",
    "How do I pair the outdoor sensor?",
]


def fake_reading(name: str, windows: int = 10):
    return SimpleNamespace(name=name, windows=[None] * windows)


class GatedRead:
    """A ``read`` whose first call waits for ``gate``: the readings queued meanwhile must all
    come in the next call. Each prediction is the reading's name (or raises for ``bad``)."""

    def __init__(self, bad: str | None = None):
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.bad = bad

    def __call__(self, readings):
        names = [r.name for r in readings]
        self.calls.append(names)
        if len(self.calls) == 1:
            assert self.gate.wait(10)
        if self.bad in names:
            raise ValueError(f"cannot read {self.bad}")
        return [f"answer to {n}" for n in names]


def ask_in_threads(batcher: ReadBatcher, readings) -> dict:
    results: dict = {}

    def ask(reading):
        try:
            results[reading.name] = batcher.read(reading)
        except ValueError as exc:
            results[reading.name] = exc

    threads = [threading.Thread(target=ask, args=(r,)) for r in readings]
    for t in threads:
        t.start()
    return results, threads


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def queued_behind_one(read: GatedRead, max_windows: int, later: int) -> dict:
    """Ask q0, and while it is being read queue q1..q{later}; then let the reader go on.
    Every question's answer (or error), by name."""
    batcher = ReadBatcher(read, max_windows=max_windows)
    try:
        first, first_threads = ask_in_threads(batcher, [fake_reading("q0")])
        wait_for(lambda: read.calls)  # q0 is being read; the others queue behind it
        names = [f"q{i}" for i in range(1, later + 1)]
        results, threads = ask_in_threads(batcher, [fake_reading(n) for n in names])
        wait_for(lambda: batcher.waiting() == later)
        read.gate.set()
        for t in first_threads + threads:
            t.join(10)
    finally:
        batcher.close()
    return {**first, **results, "batches": (batcher.batches, batcher.questions)}


def test_readings_that_wait_together_are_read_in_one_call():
    read = GatedRead()
    results = queued_behind_one(read, max_windows=100, later=3)
    assert read.calls[0] == ["q0"]
    assert sorted(read.calls[1]) == ["q1", "q2", "q3"] and len(read.calls) == 2
    assert results.pop("batches") == (2, 4)
    assert results == {f"q{i}": f"answer to q{i}" for i in range(4)}


def test_a_batch_never_holds_more_windows_than_its_budget():
    read = GatedRead()
    queued_behind_one(read, max_windows=25, later=5)
    # Ten windows each, at most 25 a batch: two questions a batch.
    assert [len(c) for c in read.calls] == [1, 2, 2, 1]
    assert sorted(n for c in read.calls for n in c) == [f"q{i}" for i in range(6)]


def test_a_failing_reading_costs_only_its_own_answer():
    results = queued_behind_one(GatedRead(bad="q2"), max_windows=100, later=3)
    assert results["q1"] == "answer to q1" and results["q3"] == "answer to q3"
    assert isinstance(results["q2"], ValueError)


def test_a_closed_batcher_refuses_new_readings():
    batcher = ReadBatcher(lambda readings: [r.name for r in readings])
    assert batcher.read(fake_reading("q0")) == "q0"
    batcher.close()
    with pytest.raises(RuntimeError):
        batcher.read(fake_reading("q1"))


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_read_together_gives_each_question_its_own_prediction(tiny_model, tmp_path, precision):
    """`DocQA.read` of four questions at once (one reader pass, batches mixing questions)
    equals each question read alone: same answers at the same offsets, same windows."""
    # Batches of 8 windows, sorted by length across all questions: they mix questions.
    qa = DocQA(
        model=str(tiny_model),
        index=tmp_path / "index",
        dense=False,
        precision=precision,
        batch_size=8,
    )
    ids = qa.index([ROOT / "sample_docs"]).doc_ids
    readings = [qa.plan_indexed(q, ids, top_k=3, chunks=5) for q in QUESTIONS]
    assert all(len(r.windows) >= 5 for r in readings)
    together = qa.read(readings)
    alone = [qa.read([r])[0] for r in readings]
    for t, a in zip(together, alone, strict=True):
        assert [(x.source, x.start, x.end) for x in t.answers] == [
            (x.source, x.start, x.end) for x in a.answers
        ]
        assert [x.score for x in t.answers] == pytest.approx([x.score for x in a.answers], 1e-3)
        assert t.windows_read == a.windows_read
    assert qa.ask_indexed(QUESTIONS[1], ids, top_k=3, chunks=5) == alone[1]
