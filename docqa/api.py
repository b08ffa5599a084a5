"""`DocQA`: ask questions of documents and folders from Python.

>>> qa = DocQA()                                      # doctest: +SKIP
>>> qa.ask("How long does the battery last?", "sample_docs/")[0].text  # doctest: +SKIP
'about 14 months'
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from docqa.aggregate import (
    context_line,
    merge_duplicates,
    null_score_diff,
    top_answers,
    window_candidates,
)
from docqa.errors import InputError
from docqa.loaders import load_paths
from docqa.reader import Reader
from docqa.spans import best_window_per_token
from docqa.types import Answer, Document, Prediction, WindowRef
from docqa.windowing import (
    TokenizedText,
    Window,
    make_windows,
    pair_template,
    tokenize_question,
    tokenize_text,
)

Source = str | os.PathLike | Document
Sources = Source | Iterable[Source]


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
        max_seq_len: int = 384,
        doc_stride: int = 128,
        max_answer_len: int = 30,
        max_question_len: int = 64,
        batch_size: int = 16,
        top_n_per_window: int = 20,
        max_context: bool = True,
        no_answer_threshold: float | None = None,
        rank_by: str = "logit",
        cache_size: int = 64,
        precision: str = "auto",
    ):
        if max_question_len < 1 or max_answer_len < 1:
            raise InputError("max_question_len and max_answer_len must be at least 1.")
        # The tokenizer's own special tokens are at most 4 (RoBERTa); checking with that bound
        # here means a bad combination fails now rather than at the first long question.
        if doc_stride < 0 or doc_stride >= max_seq_len - max_question_len - 4:
            raise InputError(
                f"doc_stride ({doc_stride}) must be smaller than max_seq_len ({max_seq_len}) "
                f"minus max_question_len ({max_question_len}) and the special tokens."
            )
        if max_seq_len > 4096:
            raise InputError("max_seq_len above 4096 is not supported.")
        self.reader = Reader(model, device=device, batch_size=batch_size, precision=precision)
        self.max_seq_len = max_seq_len
        self.doc_stride = doc_stride
        self.max_answer_len = max_answer_len
        self.max_question_len = max_question_len
        self.top_n_per_window = top_n_per_window
        self.max_context = max_context
        self.no_answer_threshold = no_answer_threshold
        if rank_by not in ("logit", "null_margin"):
            raise InputError("rank_by must be 'logit' or 'null_margin'.")
        self.rank_by = rank_by
        self._cache: OrderedDict[tuple, TokenizedText] = OrderedDict()
        self._cache_size = cache_size
        self._template = None

    @property
    def model_name(self) -> str:
        return self.reader.name

    def warm_up(self) -> None:
        """Load the model now instead of on the first question."""
        self.reader.warm_up()

    def ask(self, question: str, sources: Sources, top_k: int = 1) -> list[Answer]:
        """The ``top_k`` best answers to ``question`` across all ``sources``, best first.

        ``sources`` is a path (file or folder), a `Document`, or an iterable of them. Files that
        cannot be read are skipped (see `docqa.load_paths` for their statuses); if none can be,
        `NoDocumentsError` says why. An empty list means no span qualified (or, with
        ``no_answer_threshold`` set, the model judged the question unanswerable).
        """
        return list(self.predict(question, self.documents(sources), top_k=top_k).answers)

    def ask_many(
        self, questions: Sequence[str], sources: Sources, top_k: int = 1
    ) -> list[list[Answer]]:
        """Answers to each of ``questions`` from the same ``sources``, in question order.

        The sources are loaded and tokenized once and the model loads once for the whole
        batch; each question then costs only its own reading. The result equals
        ``[self.ask(q, sources, top_k) for q in questions]``.

        >>> qa.ask_many(["Who?", "When?"], "manual.pdf")  # doctest: +SKIP
        [[Answer(text='Ada Lovelace', ...)], [Answer(text='1843', ...)]]
        """
        if isinstance(questions, str):
            raise InputError("ask_many takes a list of questions; use ask for one question.")
        documents = self.documents(sources)
        return [list(self.predict(q, documents, top_k=top_k).answers) for q in questions]

    def documents(self, sources: Sources) -> list[Document]:
        """Load paths among ``sources``; `Document` objects pass through unchanged."""
        if isinstance(sources, (str, os.PathLike, Document)):
            sources = [sources]
        docs: list[Document] = []
        paths: list[str | os.PathLike] = []
        for s in sources:
            if isinstance(s, Document):
                docs.append(s)
            elif isinstance(s, (str, os.PathLike)):
                paths.append(Path(s))
            else:
                raise InputError(f"Cannot read a source of type {type(s).__name__}.")
        if paths:
            docs.extend(load_paths(paths).require_documents())
        if not docs:
            raise InputError("No documents were given.")
        return docs

    def predict(self, question: str, documents: Sequence[Document], top_k: int = 1) -> Prediction:
        """Read every window of ``documents`` and rank spans from all of them together."""
        if top_k < 1:
            raise InputError("top_k must be at least 1.")
        tokenizer = self.reader.tokenizer
        question_ids = tokenize_question(tokenizer, question, self.max_question_len)
        texts = [self.tokenized(doc) for doc in documents]
        windows: list[Window] = []
        allowed: list = []
        for d, text in enumerate(texts):
            doc_windows = make_windows(
                self.template, question_ids, text, d, self.max_seq_len, self.doc_stride
            )
            windows.extend(doc_windows)
            allowed.extend(self._allowed_starts(doc_windows, len(text)))

        candidates = []
        nulls = []
        for i, start_logits, end_logits in self.reader.logits(windows):
            w = windows[i]
            nulls.append(
                float(start_logits[self.template.cls_index] + end_logits[self.template.cls_index])
            )
            candidates.extend(
                window_candidates(
                    w,
                    start_logits,
                    end_logits,
                    texts[w.doc_index],
                    self.template.cls_index,
                    self.max_answer_len,
                    self.top_n_per_window,
                    allowed[i],
                )
            )
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
    def template(self):
        if self._template is None:
            self._template = pair_template(self.reader.tokenizer)
        return self._template

    def tokenized(self, doc: Document) -> TokenizedText:
        """The document's tokens, computed once per document and model (LRU-cached)."""
        key = (doc.sha256 or id(doc), doc.source, len(doc.text))
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        text = tokenize_text(self.reader.tokenizer, doc.text)
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
