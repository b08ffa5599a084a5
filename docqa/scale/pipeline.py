"""Ray Data pipelines: build a Lance corpus from files, and answer many questions from one.

Both run the same code on a laptop (a local Ray started here), on a cluster (``address``:
``auto`` or ``ray://...``/``HOST:PORT``, or ``RAY_ADDRESS``) and on KubeRay.

Build: this process walks the paths and plans (which files are new, changed or gone, from the
corpus's ``files`` table); Ray actors (one tokenizer each) hash each file, read the changed
ones with docqa's loaders, tokenize them, cut the same chunks as the local index and append
the documents and chunks to the corpus themselves (Lance appends never conflict), handing
back only each file's row; this process records the rows as they stream back, a few files
per commit (`LanceCorpus.commit`), each after its file's content. A file that fails to load
is a ``failed`` row; an actor that dies is restarted by Ray and its task run again; a build
that is killed resumes where it stopped: what it appended for files it never recorded is
deleted (`LanceCorpus.remove_unfinished`) and those files are built again.

Batch: questions are split among an actor pool of readers, each with its own model and its
own connection to the corpus; answers come back in question order.

On two cores, pools are sized to leave room for the tasks that feed them (DESIGN.md): each
actor asks for one CPU, and ``workers`` defaults to the cluster's CPUs.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from docqa.errors import InputError
from docqa.index.ingest import VECTOR_BATCH, sha256_file
from docqa.scale.corpus import BuiltFile, FileRow, LanceCorpus, document_id
from docqa.types import FileStatus
from docqa.windowing import WindowSpec

#: File rows recorded per commit (each is a new Lance version of the files table).
WRITE_FILES = 32


@dataclass(frozen=True)
class BuildReport:
    """What a build did: every file's status, and how many were read, kept or removed."""

    uri: str
    statuses: tuple[FileStatus, ...]
    read: int  # files loaded this time (new or changed)
    unchanged: int  # same content hash as in the corpus: not read again
    removed: int  # in the corpus but no longer under the paths given
    seconds: float
    doc_ids: tuple[int, ...] = ()  # every document that answers, after the build

    @property
    def failed(self) -> int:
        return sum(s.state == "failed" for s in self.statuses)


def start_ray(address: str | None = None, workers: int | None = None):
    """Ray, connected: to ``address`` (or ``RAY_ADDRESS``) when given, else a local Ray with
    ``workers`` CPUs. An already connected Ray is used as it is."""
    try:
        import ray
    except ImportError:
        raise InputError("Ray is needed: pip install 'docqa[scale]'.") from None
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        # Ray's own progress lines would bury docqa's: warnings and errors only.
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
        if address is None:
            options["num_cpus"] = workers or os.cpu_count() or 1
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InputError(f"Cannot connect to Ray at {address}: {exc}") from exc
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    return ray


def _actor_options() -> dict:
    """Ray options for the actors: one CPU each, and held to it (the tokenizer's own thread
    pool would otherwise spread one actor over every core of its node); and this process's
    ``AWS_*`` variables, so they read and write an ``s3://`` corpus with the credentials and
    endpoint the driver was given (workers of a cluster started earlier would not have them).
    """
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    env["TOKENIZERS_PARALLELISM"] = "false"
    return {"num_cpus": 1, "runtime_env": {"env_vars": env}}


def _pool(ray, workers: int | None):
    size = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    return ray.data.ActorPoolStrategy(size=size)


class _BuildTask:
    """A Ray actor: reads files with one tokenizer (loaded once) and appends their documents
    and chunks to the corpus itself, so the bulk of a build never passes through the driver;
    it hands back only each file's row (`FileRow`), or None for a file unchanged."""

    def __init__(
        self,
        uri: str,
        model: str | None,
        settings: dict,
        max_file_mb: float | None,
        password,
        vectors: bool = False,
    ):
        from docqa.loaders import LoadOptions
        from docqa.retrieve import DenseEncoder
        from docqa.windowing import ChunkScheme

        self.corpus = LanceCorpus(uri, create=True)  # the driver made it: opens, consistent
        self.scheme = ChunkScheme.default(model, **settings)
        self.encoder = DenseEncoder() if vectors else None
        # One CPU per actor: a long PDF is not read by two processes at once here.
        self.options = LoadOptions(password=password, max_file_mb=max_file_mb, split_pdfs=False)

    def __call__(self, batch: dict) -> dict:
        out = []
        for path, known in zip(batch["path"], batch["known"], strict=True):
            built = self.build(str(path), str(known))
            if built is not None:
                self.corpus.append([built])
            out.append(pickle.dumps(None if built is None else built.file))
        return {"path": batch["path"], "file": out}

    def build(self, path: str, known: str) -> BuiltFile | None:
        """The file as the corpus should hold it; None when its content is unchanged."""
        try:
            sha = sha256_file(path)
        except OSError as exc:
            return BuiltFile(FileRow(path, "", "failed", f"Cannot read: {exc.strerror}.", None))
        if sha == known:
            return None
        try:
            return self._read(path, sha)
        except Exception as exc:  # one bad file is a row, never a failed job
            return BuiltFile(FileRow(path, sha, "failed", f"{type(exc).__name__}: {exc}", None))

    def _read(self, path: str, sha: str) -> BuiltFile:
        from docqa.loaders import load_paths
        from docqa.retrieve import make_chunks, skipped_chunks
        from docqa.windowing import tokenize_text

        result = load_paths([path], options=self.options)
        status = result.statuses[0] if result.statuses else FileStatus(path, "failed", "")
        if not result.documents:
            return BuiltFile(FileRow(path, sha, status.state, status.reason, None))
        doc = result.documents[0]
        doc_id = document_id(path, sha)
        tokens = tokenize_text(self.scheme.require_tokenizer(), doc.text)
        chunks = make_chunks(tokens, doc_id, self.scheme.chunk_len, self.scheme.stride)
        regions = {doc_id: [(r.start, r.end, r.role) for r in doc.regions]}
        skipped = skipped_chunks(
            np.full(len(chunks), doc_id),
            np.array([c.start for c in chunks], dtype=np.int64),
            np.array([c.end for c in chunks], dtype=np.int64),
            regions,
        )
        return BuiltFile(
            FileRow(path, sha, status.state, status.reason, doc_id),
            doc,
            tokens,
            chunks,
            [bool(s) for s in skipped],
            None if self.encoder is None else self._vectors(doc.text, chunks),
        )

    def _vectors(self, text: str, chunks) -> list[np.ndarray]:
        """Each chunk's piece vectors, encoded as ``docqa index --vectors`` encodes them:
        `VECTOR_BATCH` chunks at a time, pieces cut over the batch's text."""
        found: list[np.ndarray] = []
        for b in range(0, len(chunks), VECTOR_BATCH):
            batch = chunks[b : b + VECTOR_BATCH]
            lo, hi = batch[0].start, max(c.end for c in batch)
            vectors, owners = self.encoder.encode_chunks(
                text[lo:hi], [(c.start - lo, c.end - lo) for c in batch]
            )
            found += [vectors[owners == i] for i in range(len(batch))]
        return found


def _files(paths: Sequence[str | os.PathLike]) -> tuple[list[str], list[FileStatus]]:
    """The files under ``paths`` (absolute), and what was passed over (with why)."""
    from docqa.loaders.walk import walk

    found, skipped = [], []
    for given in paths:
        root = Path(given)
        if not root.exists():
            raise InputError(f"No such file or folder: {root}.")
        if root.is_file():
            found.append(str(root.resolve()))
            continue
        for entry in walk(root):
            if entry.skip_reason:
                skipped.append(FileStatus(str(entry.path), "skipped", entry.skip_reason))
            else:
                found.append(str(entry.path.resolve()))
    return list(dict.fromkeys(found)), skipped


def build_corpus(
    uri: str,
    paths: Sequence[str | os.PathLike],
    *,
    model: str | None = None,
    window_spec: WindowSpec | None = None,
    address: str | None = None,
    workers: int | None = None,
    max_file_mb: float | None = 512.0,
    password: str | None = None,
    vectors: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> BuildReport:
    """Build (or bring up to date) the Lance corpus at ``uri`` from the files under ``paths``,
    on Ray (see the module's docstring). ``vectors``: also each chunk's dense vectors (a
    corpus keeps what its first build chose). ``progress(done, total, path)`` is called as
    each file finishes, as `DocQA.index` calls it.
    """
    from docqa.retrieve import DenseEncoder
    from docqa.windowing import ChunkScheme

    started = time.perf_counter()
    settings = asdict(window_spec or WindowSpec())
    files, passed_over = _files(paths)
    corpus = LanceCorpus(uri, create=True)
    corpus.set_scheme(ChunkScheme.default(model, **settings))
    vectors = corpus.set_encoder(DenseEncoder.name if vectors else None) is not None
    known = corpus.files()
    corpus.remove_unfinished()
    gone = [p for p in known if p not in set(files)]
    corpus.remove([d for p in gone if (d := known[p].doc_id) is not None], gone)
    items = [
        {"path": p, "known": known[p].sha256 if p in known and known[p].state != "failed" else ""}
        for p in files
    ]
    statuses: dict[str, FileStatus] = {
        p: FileStatus(p, known[p].state, known[p].reason) for p in files if p in known
    }
    read = 0
    if items:
        ray = start_ray(address, workers)
        dataset = ray.data.from_items(items).map_batches(
            _BuildTask,
            fn_constructor_kwargs={
                "uri": str(uri),
                "model": model,
                "settings": settings,
                "max_file_mb": max_file_mb,
                "password": password,
                "vectors": vectors,
            },
            batch_size=1,
            compute=_pool(ray, workers),
            **_actor_options(),
        )
        pending: list[FileRow] = []
        done = 0
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for path, blob in zip(batch["path"], batch["file"], strict=True):
                done += 1
                file = pickle.loads(blob)  # made by our own build task, above
                if file is not None:
                    pending.append(file)
                    statuses[file.path] = FileStatus(file.path, file.state, file.reason)
                    read += 1
                if progress is not None:
                    progress(done, len(items), str(path))
            if len(pending) >= WRITE_FILES:
                _commit(corpus, pending, known)
                pending = []
        _commit(corpus, pending, known)
    corpus.finish()
    return BuildReport(
        uri=str(uri),
        statuses=tuple(statuses[p] for p in files) + tuple(passed_over),
        read=read,
        unchanged=len(files) - read,
        removed=len(gone),
        seconds=time.perf_counter() - started,
        doc_ids=tuple(corpus.doc_ids()),
    )


def _commit(corpus: LanceCorpus, files: list[FileRow], known: dict[str, FileRow]) -> None:
    """Record files whose documents their tasks appended, replacing their earlier versions."""
    replaced = [
        old.doc_id
        for f in files
        if (old := known.get(f.path)) is not None
        and old.doc_id is not None
        and old.doc_id != f.doc_id
    ]
    corpus.commit(files, replaced)


class _ReadTask:
    """A Ray actor: one reader and one connection to the corpus, answering questions."""

    def __init__(self, uri: str, qa_settings: dict, top_k: int, chunks: int):
        from docqa import DocQA

        self.qa = DocQA(corpus=uri, **qa_settings)
        self.qa.warm_up()
        self.corpus = LanceCorpus(uri)  # to find the documents of a question's file
        self.top_k = top_k
        self.chunks = chunks

    def __call__(self, batch: dict) -> dict:
        from docqa.errors import DocQAError

        answers, errors = [], []
        for question, file in zip(batch["question"], batch["file"], strict=True):
            try:
                if file:  # asked of one file of the corpus
                    doc_ids = self.corpus.doc_ids_of(str(file))
                    prediction = self.qa.ask_indexed(
                        str(question), doc_ids, top_k=self.top_k, chunks=self.chunks
                    )
                    found = list(prediction.answers)
                else:
                    found = self.qa.ask(str(question), top_k=self.top_k, chunks=self.chunks)
                answers.append(pickle.dumps([a.to_dict() for a in found]))
                errors.append("")
            except DocQAError as exc:
                answers.append(pickle.dumps([]))
                errors.append(str(exc))
        return {"position": batch["position"], "answers": answers, "error": errors}


def batch_answers(
    uri: str,
    questions: Sequence[str],
    *,
    files: Sequence[str | None] | None = None,
    top_k: int = 1,
    chunks: int | None = None,
    address: str | None = None,
    workers: int | None = None,
    **qa_settings,
) -> list[tuple[list[dict], str]]:
    """Each question's answers (as `Answer.to_dict`) and error sentence ("" when none), in
    question order, read by a pool of ``workers`` reader actors over the corpus at ``uri``:
    over the whole corpus, or over ``files[i]`` for question ``i`` when that is not None (a
    path as built, or its end: `LanceCorpus.doc_ids_of`). ``qa_settings`` are `DocQA`'s
    (``model``, ``precision``, ``dense``, ...)."""
    from docqa import DEFAULT_CHUNKS

    LanceCorpus(uri)  # a missing corpus is told here, before Ray starts
    if not questions:
        return []
    files = list(files) if files is not None else [None] * len(questions)
    if len(files) != len(questions):
        raise InputError("Give one file (or None) for each question.")
    ray = start_ray(address, workers)
    dataset = ray.data.from_items(
        [
            {"position": i, "question": q, "file": f or ""}
            for i, (q, f) in enumerate(zip(questions, files, strict=True))
        ]
    ).map_batches(
        _ReadTask,
        fn_constructor_kwargs={
            "uri": uri,
            "qa_settings": qa_settings,
            "top_k": top_k,
            "chunks": chunks or DEFAULT_CHUNKS,
        },
        batch_size=8,
        compute=_pool(ray, workers),
        **_actor_options(),
    )
    results: list[tuple[list[dict], str] | None] = [None] * len(questions)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for position, blob, error in zip(
            batch["position"], batch["answers"], batch["error"], strict=True
        ):
            results[int(position)] = (pickle.loads(blob), str(error))
    # Every question comes back once (Ray runs a failed task again); a gap would be a bug,
    # told as an error on that question rather than a lost row.
    return [r if r is not None else ([], "Not answered.") for r in results]


class CorpusQA:
    """Questions about files, asked of the Lance corpus at ``uri`` (``docqa eval --corpus``,
    through `docqa.evaluate_docs`): `index` builds the files into the corpus on Ray
    (`build_corpus`, with ``vectors`` when asked); `ask_batch` answers every question at once
    with a Ray pool of ``workers`` readers (`batch_answers`); `ask_paths` one question here.
    ``qa_settings`` are `DocQA`'s (``model``, ``precision``, ``dense``, ...).
    """

    def __init__(
        self,
        uri: str,
        *,
        address: str | None = None,
        workers: int | None = None,
        vectors: bool = False,
        window_spec: WindowSpec | None = None,
        **qa_settings,
    ):
        from docqa import DocQA

        self.uri = str(uri)
        self.address = address
        self.workers = workers
        self.vectors = vectors
        self.window_spec = window_spec
        self.qa_settings = qa_settings
        self.qa = DocQA(corpus=self.uri, window_spec=window_spec, **qa_settings)
        self._docs: list[str] = []
        self._corpus: LanceCorpus | None = None  # opened at the first question, after `index`

    @property
    def model_name(self) -> str:
        return self.qa.model_name

    def index(self, paths, progress=None) -> BuildReport:
        self._docs = [str(Path(p).resolve()) for p in paths]
        self._corpus = None  # a corpus opened before the build would not see it
        return build_corpus(
            self.uri,
            list(paths),
            model=self.qa_settings.get("model"),
            window_spec=self.window_spec,
            address=self.address,
            workers=self.workers,
            vectors=self.vectors,
            progress=progress,
        )

    def _file(self, paths) -> str | None:
        """The one file a question is asked of, or None: every file built."""
        wanted = [str(Path(p).resolve()) for p in paths]
        if wanted == self._docs or len(wanted) != 1 or Path(wanted[0]).is_dir():
            return None
        return wanted[0]

    def ask_paths(self, question: str, paths, top_k: int = 1, chunks: int | None = None):
        file = self._file(paths)
        if self._corpus is None:
            self._corpus = LanceCorpus(self.uri)
        corpus = self._corpus
        doc_ids = corpus.doc_ids() if file is None else corpus.doc_ids_of(file)
        return self.qa.ask_indexed(question, doc_ids, top_k=top_k, chunks=chunks), None

    def ask_batch(self, questions: Sequence[str], paths, chunks: int | None = None) -> list[str]:
        found = batch_answers(
            self.uri,
            questions,
            files=[self._file(p) for p in paths],
            chunks=chunks,
            address=self.address,
            workers=self.workers,
            window_spec=self.window_spec,
            **self.qa_settings,
        )
        for i, (_, error) in enumerate(found):
            if error:
                raise InputError(f"Question {i + 1} ({questions[i]!r}) failed: {error}")
        return [answers[0]["text"] if answers else "" for answers, _ in found]
