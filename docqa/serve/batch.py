"""Questions that arrive together, read in one pass of the reader.

Each request plans its own question in its worker thread (retrieval runs in parallel: it is
mostly SQLite and BM25) and hands the resulting `Reading` to one `ReadBatcher`. A single
thread runs the reader: it takes every reading waiting, up to ``max_windows`` windows, and
reads them with `DocQA.read`. Questions that arrive while a batch is being read wait for the
next one; a question that arrives alone waits for nothing (there is no timer). Running the
model from one thread also means two requests never run it at once, which on a CPU only
makes them fight over the same cores.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from docqa import Prediction, Reading

log = logging.getLogger("docqa.serve")

#: Windows read in one batch at most (10 questions at the default depth of 10 chunks).
BATCH_WINDOWS = 100


@dataclass
class _Job:
    reading: Reading
    done: threading.Event = field(default_factory=threading.Event)
    result: Prediction | None = None
    error: BaseException | None = None


class ReadBatcher:
    """Reads `Reading`s with ``read`` (`DocQA.read`), those waiting together in one call of
    at most ``max_windows`` windows (a reading larger than that is read alone).

    ``batches`` counts the calls and ``questions`` the readings read, so the size of the
    batches shows in ``/v1/info``.
    """

    def __init__(
        self,
        read: Callable[[Sequence[Reading]], list[Prediction]],
        max_windows: int = BATCH_WINDOWS,
    ):
        self._read = read
        self.max_windows = max_windows
        self.batches = 0
        self.questions = 0
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="docqa-reader", daemon=True)
        self._thread.start()

    def read(self, reading: Reading) -> Prediction:
        """The prediction for ``reading``, read with those that wait beside it."""
        if not self._thread.is_alive():
            raise RuntimeError("The reader has stopped.")
        job = _Job(reading)
        self._jobs.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def waiting(self) -> int:
        """Readings queued and not yet taken into a batch."""
        return self._jobs.qsize()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        # Taken from the queue but kept for the next batch: a reading that would have made
        # this one too large, or the stop sign (None) once this batch is served.
        held: list[_Job | None] = []
        while True:
            job = held.pop() if held else self._jobs.get()
            if job is None:
                return
            batch, windows = [job], len(job.reading.windows)
            while not held:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None or windows + len(more.reading.windows) > self.max_windows:
                    held.append(more)
                else:
                    batch.append(more)
                    windows += len(more.reading.windows)
            self._serve(batch)

    def _serve(self, batch: list[_Job]) -> None:
        try:
            results = self._read([job.reading for job in batch])
        except BaseException as exc:  # any: a request must never wait for ever
            if len(batch) > 1:
                # One reading's failure must not cost the others their answers.
                for job in batch:
                    self._serve([job])
                return
            batch[0].error = exc
        else:
            self.batches += 1
            self.questions += len(batch)
            for job, result in zip(batch, results, strict=True):
                job.result = result
        for job in batch:
            job.done.set()
