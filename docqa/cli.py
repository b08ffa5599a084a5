"""The `docqa` command line: a thin typer layer over the library.

Library errors become one sentence on stderr and an exit code:

  0  answered (or evaluated, trained)
  2  usage or input error: empty question, missing path, no readable document, bad data file
  3  the model cannot be loaded
  4  --strict was given and some file failed to load
"""

from __future__ import annotations

import json
import re
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from docqa import DEFAULT_CHUNKS, Decoding, TrainConfig, WindowSpec
from docqa.errors import DocQAError, InputError, ModelLoadError

EXIT_OK, EXIT_INPUT, EXIT_MODEL, EXIT_STRICT = 0, 2, 3, 4

app = typer.Typer(
    help="Extractive question answering over long documents: PDFs, manuals, folders.\n\n"
    "Exit codes: 0 answered; 2 usage or input error (empty question, missing path, no "
    "readable document); 3 model cannot be loaded; 4 --strict and a file failed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

# Options that several commands take are declared once here, so that their names, checks and
# help read the same in every command (tests/test_settings.py compares them).
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        envvar="DOCQA_MODEL",
        help="Model folder or Hugging Face name; 'large' = "
        "bert-large-uncased-whole-word-masking-finetuned-squad. Default: the bundled reader. "
        "index and search load only its tokenizer, which cuts the chunks.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
PasswordOpt = Annotated[str | None, typer.Option("--password", help="Password for encrypted PDFs.")]
TopKOpt = Annotated[
    int,
    typer.Option("--top-k", "-k", min=1, help="How many results: answers, or chunks for search."),
]
# The window shape's defaults and checks are `WindowSpec`'s; these only carry the values.
MaxSeqLenOpt = Annotated[
    int,
    typer.Option(
        "--max-seq-len", help="Tokens per window: question, context and special tokens together."
    ),
]
DocStrideOpt = Annotated[
    int, typer.Option("--doc-stride", help="Tokens of overlap between neighbouring windows.")
]
ExhaustiveOpt = Annotated[
    bool,
    typer.Option(
        "--exhaustive",
        help="Read every window (slow on long documents; for eval, only with --docs).",
    ),
]
DeviceOpt = Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, mps.")]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        envvar="DOCQA_PRECISION",
        help="auto (fastest measured for the device), fp32, bf16, fp16 (GPU), int8.",
    ),
]
IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index",
        envvar="DOCQA_INDEX",
        help="Index folder. Default: docqa's folder in the user cache directory.",
    ),
]
ChunksOpt = Annotated[
    int | None,
    typer.Option(
        "--chunks",
        "-c",
        min=1,
        help="Chunks the reader reads per question: the retriever's best N (eval of a SQuAD "
        f"file: all unless given; with --docs: {DEFAULT_CHUNKS}, as ask).",
    ),
]
# The old name of --chunks (a window is the reader's input), still accepted, not shown.
OldWindowsOpt = Annotated[int | None, typer.Option("--windows", "-w", min=1, hidden=True)]
DenseOpt = Annotated[
    bool,
    typer.Option(
        "--dense/--no-dense",
        help="Fuse BM25 with all-MiniLM-L6-v2 sentence vectors (better recall; index --vectors "
        "precomputes them); --no-dense: BM25 only.",
    ),
]
MaxFileOpt = Annotated[
    float,
    typer.Option(
        "--max-file-mb",
        min=0.001,
        help="Skip files larger than this many MB (reported as skipped, with the reason).",
    ),
]
ContentsOpt = Annotated[
    bool,
    typer.Option(
        "--include-contents",
        help="Also read tables of contents and indexes (skipped by default: they share the "
        "question's words but hold no answer).",
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers", min=1, help="Processes that parse files (default: one per CPU core)."
    ),
]
CorpusOpt = Annotated[
    str | None,
    typer.Option(
        "--corpus",
        help="A Lance corpus (folder or s3://...) made by docqa corpus build, to answer from "
        "(needs the scale extra).",
    ),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        help="Ray cluster to run on: 'auto', HOST:PORT or ray://...; default $RAY_ADDRESS, "
        "else a Ray started here on this machine's cores.",
    ),
]
CorpusVectorsOpt = Annotated[
    bool,
    typer.Option(
        "--vectors",
        help="Store every chunk's dense vector in the corpus, so that questions rank by "
        "BM25 fused with them, as docqa ask does (a corpus never makes them on demand). "
        "Kept for the corpus's later builds.",
    ),
]
ReadersOpt = Annotated[
    int | None,
    typer.Option(
        "--readers", min=1, help="Ray actors that read, one model each (default: all CPUs)."
    ),
]
AllowPickleOpt = Annotated[
    bool,
    typer.Option(
        "--allow-pickle",
        help="Also load a model whose weights are only a pickle .bin (read as plain tensors, "
        "torch.load weights_only=True). Default: safetensors only.",
    ),
]


def main() -> None:
    """Console-script entry point."""
    app()


@app.callback()
def _root() -> None:
    """Extractive question answering over long documents: PDFs, manuals, folders."""


def printable(text: str) -> str:
    """``text`` that any terminal can print: a file name that is not UTF-8 reaches here with
    lone surrogates in it (``os.fsdecode``), which no encoder writes; they are shown as the
    bytes they stand for (``caf\\xe9.txt``)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def write_json(payload) -> None:
    """One JSON object on stdout; lone surrogates (a file name that is not UTF-8) as ``\\udcXX``
    escapes, which ``json.loads`` and ``os.fsencode`` turn back into the name's bytes."""
    text = json.dumps(payload, ensure_ascii=False)
    sys.stdout.write(_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(printable(message))}", highlight=False)
    return typer.Exit(code)


def make_qa(dense: bool, **settings):
    """The `DocQA` a command asks with: ``--dense`` (the default) turns dense retrieval on
    when its package is installed, ``--no-dense`` off."""
    from docqa import DocQA

    return DocQA(dense=None if dense else False, **settings)


@contextmanager
def errors_to_exit_codes():
    """Turn library errors into one sentence and an exit code; never a traceback."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for w in caught:
            if issubclass(w.category, UserWarning) and w.category.__module__.startswith("docqa"):
                message = printable(str(w.message))
                err.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)
    except ModelLoadError as exc:
        raise fail(str(exc), EXIT_MODEL) from None
    except DocQAError as exc:  # InputError and any other docqa error (ModelLoadError is above)
        raise fail(str(exc), EXIT_INPUT) from None
    except KeyboardInterrupt:
        raise fail("Interrupted.", 130) from None


class RateColumn(ProgressColumn):
    """Items per second (``3.2 files/s``) of a task that names its ``unit``; blank otherwise."""

    def render(self, task) -> Text:
        unit = task.fields.get("unit")
        if not unit or not task.speed:
            return Text("")
        rate = f"{task.speed:.1f} {unit}/s"
        pages = task.fields.get("pages")
        if pages and task.elapsed:
            rate += f", {pages / task.elapsed:.1f} pages/s"
        return Text(rate, style="progress.data.speed")


class Bar:
    """What `progress_bar` yields. ``bar(done, total, status)`` moves the main task;
    ``bar.files`` is `DocQA.index`'s ``progress(done, total, path)``; ``bar.pieces(done,
    total, what)`` shows long work inside one file (its parts, its vectors) on a row of its
    own, so that the files' rate and ETA stay the files'."""

    def __init__(self, progress: Progress, description: str, unit: str | None):
        self.progress = progress
        self.description = description
        self.task = progress.add_task(description, total=None, unit=unit)
        self.piece_task = None
        self.what = None
        self.stopped = False

    def __call__(self, done: int, total: int | None = None, status: str | None = None) -> None:
        text = self.description if status is None else f"{self.description} {status}"
        self.progress.update(self.task, completed=done, total=total, description=text)

    def files(self, done: int, total: int, path: str, pages: int = 0) -> None:
        self(done, total)
        self.progress.update(self.task, pages=pages)
        if self.piece_task is not None:  # that file's pieces are finished
            self.progress.update(self.piece_task, visible=False)

    def pieces(self, done: int, total: int, what: str) -> None:
        text = f"{self.description} {escape(printable(what))}"
        if self.piece_task is None:
            self.piece_task = self.progress.add_task(text, total=total)
        elif what != self.what:  # other work: its own rate and ETA
            self.progress.reset(self.piece_task, total=total, description=text, visible=True)
        self.what = what
        self.progress.update(self.piece_task, completed=done, total=total, visible=True)

    def stop(self) -> None:
        """Take the bar off the screen now (what follows is not this work); once."""
        if not self.stopped:
            self.stopped = True
            self.progress.stop()


@contextmanager
def progress_bar(description: str, enabled: bool = True, unit: str | None = None):
    """A progress bar on stderr, shown only when it is a terminal: done/total, the rate in
    ``unit`` per second when a unit is given, the time left and the time so far."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        RateColumn(),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not enabled or not err.is_terminal,
    )
    bar = Bar(progress, description, unit)
    progress.start()
    try:
        yield bar
    finally:
        bar.stop()


def seconds(value: float) -> float:
    """A phase's duration for ``--json`` (milliseconds are enough)."""
    return round(value, 3)


def index_timings(report) -> dict[str, float]:
    """Ingest phases from the index's own report, for ``--json`` ``timings``: the whole
    update and each of its phases (`UpdateReport.phases`: walk, plan, parse, tokenize,
    vectors, finish)."""
    phases = {f"index_{name}": seconds(t) for name, t in report.phases.items()}
    return {"index_update": seconds(report.seconds), **phases}


def when_indexed(bar, marks: list[float], max_wait: float | None = None):
    """The ``indexed(report)`` callback of ask and search: note the time in ``marks``, take
    the bar away, and show the files' statuses (and what --max-wait left unread)."""

    def indexed(report) -> None:
        marks.append(time.perf_counter())
        bar.stop()
        if report.doc_ids or len(report.statuses) > 1:
            print_statuses(report.statuses)
        if report.unread:
            read = len(report.statuses)
            err.print(
                f"[yellow]note:[/] --max-wait {max_wait:g} s ran out: {read} of "
                f"{read + report.unread} files read; this answer comes from those (the next "
                "run reads the rest).",
                highlight=False,
            )

    return indexed


def print_statuses(statuses) -> None:
    """A short per-file summary on stderr when anything was not read (or read only in part)."""
    bad = [s for s in statuses if s.state != "ok"]
    notes = [s for s in statuses if s.state == "ok" and s.reason]
    if bad:
        ok = len(statuses) - len(bad)
        err.print(f"[dim]{ok} file(s) read; {len(bad)} not:[/]", highlight=False)
    for s in bad:
        path, reason = escape(printable(s.path)), escape(printable(s.reason))
        err.print(f"  [yellow]{s.state:7}[/] {path}: {reason}", highlight=False)
    for s in notes:
        path, reason = escape(printable(s.path)), escape(printable(s.reason))
        err.print(f"  [dim]note[/]    {path}: {reason}", highlight=False)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders to read (or --corpus).")
    ] = None,
    model: ModelOpt = None,
    top_k: TopKOpt = 1,
    as_json: JsonOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    password: PasswordOpt = None,
    corpus: CorpusOpt = None,
    strict: Annotated[bool, typer.Option(help="Exit 4 if any file failed to load.")] = False,
    max_seq_len: MaxSeqLenOpt = WindowSpec.max_seq_len,
    doc_stride: DocStrideOpt = WindowSpec.doc_stride,
    max_answer_len: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 30,
    no_answer_threshold: Annotated[
        float | None,
        typer.Option(help="Say 'no answer' when the [CLS] score beats the best span by this."),
    ] = None,
    chunks: ChunksOpt = DEFAULT_CHUNKS,
    old_windows: OldWindowsOpt = None,
    exhaustive: ExhaustiveOpt = False,
    index_dir: IndexOpt = None,
    dense: DenseOpt = True,
    allow_pickle: AllowPickleOpt = False,
    max_file_mb: MaxFileOpt = 512.0,
    workers: WorkersOpt = None,
    include_contents: ContentsOpt = False,
    max_wait: Annotated[
        float | None,
        typer.Option(
            "--max-wait",
            min=0,
            help="Seconds of indexing after which no further file is parsed: the answer "
            "comes from the files read by then (the rest are read by the next run).",
        ),
    ] = None,
    highlight: Annotated[
        Path | None,
        typer.Option(
            "--highlight",
            help="Write a copy of the best answer's PDF to this file, the answer marked by a "
            "highlight annotation (needs the serve extra).",
        ),
    ] = None,
) -> None:
    """Answer QUESTION from the documents in PATHS, or from a corpus (--corpus).

    Files are indexed on first use (see docqa index): later questions parse nothing.
    The reader reads the --chunks best chunks, or every window with --exhaustive.
    """
    from docqa import check_paths

    started = time.perf_counter()
    chunks = _renamed_option(chunks, old_windows)
    with errors_to_exit_codes():
        if not question.strip():
            raise InputError("The question is empty.")
        if corpus is not None and (paths or exhaustive or highlight):
            raise InputError("--corpus takes no PATHS, --exhaustive or --highlight.")
        if corpus is None and not paths:
            raise InputError("Give files or folders to read, or --corpus.")
        qa = make_qa(
            dense,
            model=model,
            device=device,
            precision=precision,
            max_seq_len=max_seq_len,
            doc_stride=doc_stride,
            max_answer_len=max_answer_len,
            no_answer_threshold=no_answer_threshold,
            chunks=chunks,
            index=index_dir,
            allow_pickle=allow_pickle,
            max_file_mb=max_file_mb,
            workers=workers,
            include_contents=include_contents,
            corpus=corpus,
        )
        if corpus is not None:
            return answer_from_corpus(qa, question, top_k, as_json, started)
        # A missing path or an empty folder is an input error (exit 2): say so before loading
        # the model, which is slow and may itself fail (exit 3).
        check_paths(paths)
        loading = time.perf_counter()
        with progress_bar("Loading model", enabled=not as_json):
            qa.warm_up()
        loaded = time.perf_counter()
        indexed_at = []
        with progress_bar("Indexing", enabled=not as_json, unit="files") as bar:
            indexed = when_indexed(bar, indexed_at, max_wait)
            # One update of the index per question: ask_paths brings it up to date, then
            # reads; the statuses are shown in between.
            prediction, report = qa.ask_paths(
                question,
                paths,
                top_k,
                None if exhaustive else chunks,
                progress=bar.files,
                password=password,
                pieces=bar.pieces,
                indexed=indexed,
                max_wait=max_wait,
            )
        answers = list(prediction.answers)
    finished = time.perf_counter()
    if highlight is not None:
        with errors_to_exit_codes():
            from docqa import highlight_pdf

            if not answers:
                raise InputError("No answer was found, so there is nothing to highlight.")
            highlight_pdf(answers[0], highlight)
    statuses = report.statuses
    failed = any(s.state == "failed" for s in statuses)
    if as_json:
        payload = {
            "question": question,
            "model": qa.model_name,
            "answers": [a.to_dict() for a in answers],
            "files": [{"path": s.path, "state": s.state, "reason": s.reason} for s in statuses],
            "unread": report.unread,
            "timings": {
                "load_model": seconds(loaded - loading),
                "index": seconds(indexed_at[0] - loaded),
                **index_timings(report),
                "answer": seconds(finished - indexed_at[0]),
                "total": seconds(time.perf_counter() - started),
            },
        }
        write_json(payload)
    else:
        show_answers(answers)
    if strict and failed:
        raise typer.Exit(EXIT_STRICT)


def answer_from_corpus(qa, question: str, top_k: int, as_json: bool, started: float) -> None:
    """`docqa ask --corpus`: the answers from a Lance corpus (nothing is indexed)."""
    with progress_bar("Loading model", enabled=not as_json):
        qa.warm_up()
    answered = time.perf_counter()
    answers = qa.ask(question, top_k=top_k)
    if not as_json:
        show_answers(answers)
        return
    payload = {
        "question": question,
        "model": qa.model_name,
        "answers": [a.to_dict() for a in answers],
        "files": [],
        "unread": 0,
        "timings": {
            "answer": seconds(time.perf_counter() - answered),
            "total": seconds(time.perf_counter() - started),
        },
    }
    write_json(payload)


def show_answers(answers) -> None:
    if not answers:
        out.print("[yellow]No answer found.[/]")
        return
    for rank, a in enumerate(answers, 1):
        where = printable(a.source) + (f":{a.page}" if a.page is not None else "")
        out.print(
            f"[bold]{rank}. {escape(a.text)}[/]  [dim]score {a.score:.3f}  {escape(where)}[/]",
            highlight=False,
        )
        out.print("   " + highlighted_context(a), highlight=False)


def highlighted_context(a) -> str:
    """The answer's context line with the answer in bold."""
    i = a.context.find(" ".join(a.text.split()))
    if i < 0:
        return escape(a.context)
    n = len(" ".join(a.text.split()))
    return (
        escape(a.context[:i])
        + "[reverse]"
        + escape(a.context[i : i + n])
        + "[/]"
        + escape(a.context[i + n :])
    )


@app.command("eval")
def eval_command(
    data: Annotated[
        Path,
        typer.Argument(
            help="A SQuAD v1.1 or v2.0 JSON file, or a JSONL file of questions about --docs."
        ),
    ],
    model: ModelOpt = None,
    level: Annotated[
        str,
        typer.Option(
            help="paragraph: ask each question of its paragraph; document: of its whole article."
        ),
    ] = "document",
    limit: Annotated[int | None, typer.Option(min=1, help="First N questions only.")] = None,
    per_article: Annotated[
        int | None,
        typer.Option(min=1, help="First N questions of every article: a sample of the whole file."),
    ] = None,
    as_json: JsonOpt = False,
    predictions: Annotated[
        Path | None, typer.Option(help="Write {id: answer} predictions to this file.")
    ] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    max_seq_len: MaxSeqLenOpt = WindowSpec.max_seq_len,
    doc_stride: DocStrideOpt = WindowSpec.doc_stride,
    max_context: Annotated[
        bool,
        typer.Option(
            help="Only let a token start an answer in its max-context window (off: drop the "
            "spans at an edge where a window cuts the text instead)."
        ),
    ] = Decoding.max_context,
    chunks: ChunksOpt = None,
    old_windows: OldWindowsOpt = None,
    exhaustive: ExhaustiveOpt = False,
    docs: Annotated[
        list[Path] | None,
        typer.Option(
            "--docs",
            help="Files or folders the JSONL questions are about (repeat for more); each "
            "question goes through docqa ask.",
        ),
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Only JSONL questions whose 'split' is this.")
    ] = None,
    index_dir: IndexOpt = None,
    dense: DenseOpt = True,
    allow_pickle: AllowPickleOpt = False,
    include_contents: ContentsOpt = False,
    corpus: Annotated[
        str | None,
        typer.Option(
            "--corpus",
            help="Build the documents into this Lance corpus (folder or s3://...) on Ray and "
            "answer every question from it with a Ray pool of readers (needs the scale "
            "extra). A SQuAD file's articles are built as one text file each.",
        ),
    ] = None,
    ray_address: RayOpt = None,
    readers: ReadersOpt = None,
    vectors: CorpusVectorsOpt = False,
) -> None:
    """Score a reader on labelled data: EM, F1, window recall, throughput.

    DATA is a SQuAD file, or (with --docs, or a .jsonl suffix) one JSON object a line:
    {"id", "question", "answers": [...], "file"?, "split"?}, each question asked of the
    --docs files (or of its "file" among them) the way docqa ask does.
    """
    from docqa import EVAL_LEVELS, DocQA, evaluate

    chunks = _renamed_option(chunks, old_windows)
    with errors_to_exit_codes():
        if level not in EVAL_LEVELS:
            raise InputError(f"--level must be one of {', '.join(EVAL_LEVELS)}, not {level!r}.")
        questions_mode = bool(docs) or data.suffix.lower() == ".jsonl"
        if questions_mode:
            _check_questions_options(docs, level, per_article, chunks, exhaustive)
        elif split is not None:
            raise InputError("--split applies to JSONL question files (with --docs).")
        if corpus is not None:
            _eval_corpus(
                data,
                corpus,
                docs if questions_mode else None,
                level=level,
                per_article=per_article,
                limit=limit,
                split=split,
                depth=None if exhaustive else (chunks or DEFAULT_CHUNKS),
                as_json=as_json,
                predictions=predictions,
                address=ray_address,
                workers=readers,
                vectors=vectors,
                model=model,
                device=device,
                precision=precision,
                window_spec=WindowSpec(max_seq_len=max_seq_len, doc_stride=doc_stride),
                max_context=max_context,
                dense=dense and None,
                allow_pickle=allow_pickle,
                include_contents=include_contents,
            )
            return
        elif ray_address is not None or readers is not None or vectors:
            raise InputError("--ray, --readers and --vectors apply with --corpus.")
        qa = DocQA(
            model=model,
            device=device,
            precision=precision,
            max_seq_len=max_seq_len,
            doc_stride=doc_stride,
            max_context=max_context,
            # As docqa ask: dense retrieval when its package is installed.
            dense=(dense and None) if questions_mode else dense,
            index=index_dir,
            allow_pickle=allow_pickle,
            include_contents=include_contents,
        )
        if questions_mode:
            depth = None if exhaustive else (chunks or DEFAULT_CHUNKS)
            _eval_questions(qa, data, docs or [], depth, split, limit, as_json, predictions)
            return
        with progress_bar("Evaluating", enabled=True) as update:
            report = evaluate(
                data,
                qa,
                level=level,
                limit=limit,
                progress=update,
                chunks=chunks,
                per_article=per_article,
            )
    if predictions is not None:
        predictions.write_text(json.dumps(report.predictions, ensure_ascii=False, indent=1))
    if as_json:
        payload = {
            **report.to_json(),
            "model": qa.model_name,
            "chunks": chunks,
            "per_article": per_article,
        }
        sys.stdout.write(json.dumps(payload) + "\n")
        return
    depth = f"chunks={chunks}" if chunks else "chunks=all"
    out.print(
        f"[bold]{escape(str(data))}[/]  level={level}  {depth}  model={escape(qa.model_name)}"
    )
    for key, value in report.to_json().items():
        if value is not None and key != "level":
            shown = f"{value:.2f}" if isinstance(value, float) else str(value)
            out.print(f"  {key:22} {shown}", highlight=False)


def _check_questions_options(docs, level, per_article, chunks, exhaustive) -> None:
    """Refuse SQuAD-only options with a JSONL file, before the model loads."""
    if not docs:
        raise InputError("A JSONL question file needs --docs: the files its questions are about.")
    if level != "document" or per_article is not None:
        raise InputError("--level and --per-article apply to SQuAD files, not to --docs.")
    if exhaustive and chunks is not None:
        raise InputError("Give --chunks or --exhaustive, not both.")


def _renamed_option(chunks: int | None, old_windows: int | None) -> int | None:
    """--chunks, or its old name --windows (said on stderr) when that was given instead."""
    if old_windows is None:
        return chunks
    err.print("[yellow]--windows is now --chunks.[/]")
    return old_windows


def _eval_corpus(
    data, uri, docs, level, per_article, limit, split, depth, as_json, predictions, **settings
) -> None:
    """`docqa eval --corpus URI`: the documents built into the corpus, every question
    answered from it on Ray (a SQuAD file's articles written as files first)."""
    import tempfile

    from docqa import CorpusQA, squad_files

    if depth is None:
        raise InputError("A corpus reads its retrieved chunks: --exhaustive does not apply.")
    asker = CorpusQA(uri, **settings)
    if docs is not None:
        _eval_questions(asker, data, docs, depth, split, limit, as_json, predictions)
        return
    if level != "document":
        raise InputError("A corpus answers at document level: --level paragraph does not apply.")
    with tempfile.TemporaryDirectory(prefix="docqa-articles-") as folder:
        questions = squad_files(data, folder, per_article, limit)
        _eval_questions(
            asker, data, [Path(folder)], depth, None, None, as_json, predictions, questions
        )


def _eval_questions(
    qa, data, docs, chunks, split, limit, as_json, predictions, questions=None
) -> None:
    """`docqa eval QUESTIONS.jsonl --docs PATH`: each question through the docqa ask path
    (``questions``: these instead of DATA's lines)."""
    from docqa import evaluate_docs

    with progress_bar("Evaluating", enabled=True) as update:
        report = evaluate_docs(
            data if questions is None else questions,
            qa,
            docs,
            chunks=chunks,
            split=split,
            limit=limit,
            progress=update,
            index_progress=lambda done, total, _: update(done, total, "(indexing)"),
        )
    print_statuses(report.files)
    if predictions is not None:
        predictions.write_text(json.dumps(report.predictions, ensure_ascii=False, indent=1))
    if as_json:
        payload = {**report.to_json(), "model": qa.model_name, "docs": [str(p) for p in docs]}
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        return
    depth = f"chunks={chunks}" if chunks else "chunks=all"
    where = f"  split={escape(split)}" if split is not None else ""
    out.print(f"[bold]{escape(str(data))}[/]{where}  {depth}  model={escape(qa.model_name)}")
    for key, value in report.to_json().items():
        if key in ("exact", "f1", "total", "furniture_answers", "questions_per_s", "seconds"):
            shown = f"{value:.2f}" if isinstance(value, float) else str(value)
            out.print(f"  {key:22} {shown}", highlight=False)
    for qid, kind in report.furniture.items():
        answer = repr(report.predictions[qid])  # repr shows the line breaks that gave it away
        out.print(f"    {escape(qid)}: {escape(answer)} ({kind})", highlight=False)


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="SQuAD v1.1/v2.0 training file.")],
    base: Annotated[str, typer.Option(help="Encoder folder or hub name to fine-tune.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the trained reader.")],
    epochs: int = 1,
    learning_rate: Annotated[float, typer.Option("--lr", "--learning-rate")] = 1e-4,
    batch_size: int = 32,
    max_seq_len: MaxSeqLenOpt = TrainConfig.max_seq_len,
    doc_stride: DocStrideOpt = TrainConfig.doc_stride,
    seed: int = 0,
    level: Annotated[
        str,
        typer.Option(
            help="document: windows from whole articles with [CLS] negatives; "
            "paragraph: classic SQuAD windows."
        ),
    ] = "document",
    negatives: Annotated[int, typer.Option(help="Answer-less windows per question.")] = 1,
    shared_norm: Annotated[
        bool,
        typer.Option(help="Also one softmax across each question's windows (document level)."),
    ] = False,
    bf16: Annotated[
        bool, typer.Option(help="bfloat16 autocast (fast on AVX512-BF16 CPUs).")
    ] = False,
    save_every: Annotated[int, typer.Option(help="Steps between resumable checkpoints.")] = 100,
    eval_data: Annotated[
        Path | None, typer.Option("--eval", help="SQuAD file to score the result on.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="First N articles only.")] = None,
    allow_pickle: AllowPickleOpt = False,
) -> None:
    """Fine-tune an encoder into a reader; resumes from OUT/checkpoint if one exists."""
    from docqa import train as run_training

    with errors_to_exit_codes():
        if level not in ("document", "paragraph"):
            raise InputError("--level must be document or paragraph.")
        config = TrainConfig(
            train_path=str(data),
            base=base,
            out=str(out_dir),
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            max_seq_len=max_seq_len,
            doc_stride=doc_stride,
            seed=seed,
            level=level,
            negatives=negatives,
            shared_norm=shared_norm,
            bf16=bf16,
            save_every=save_every,
            eval_path=str(eval_data) if eval_data else None,
            limit=limit,
            allow_pickle=allow_pickle,
        )
        with progress_bar("Training") as update:

            def show(p) -> None:
                update(p.step, p.total_steps, f"epoch {p.epoch + 1} loss {p.loss:.3f}")

            folder = run_training(config, progress=show)
    out.print(f"Saved the reader to {escape(str(folder))}", highlight=False)
    if eval_data is not None:
        eval_command(
            eval_data,
            model=str(folder),
            level="paragraph",
            limit=None,
            as_json=False,
            predictions=None,
            device="auto",
            max_seq_len=WindowSpec.max_seq_len,
            doc_stride=WindowSpec.doc_stride,
            max_context=Decoding.max_context,
        )


@app.command("index")
def index_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to index.")],
    index_dir: IndexOpt = None,
    model: ModelOpt = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Delete the index first and build it afresh.")
    ] = False,
    dense: DenseOpt = True,
    vectors: Annotated[
        bool,
        typer.Option(
            "--vectors",
            help="Precompute the dense vector of every chunk now. Otherwise vectors are "
            "computed for each question's candidate chunks when first needed, and kept.",
        ),
    ] = False,
    password: PasswordOpt = None,
    max_seq_len: MaxSeqLenOpt = WindowSpec.max_seq_len,
    doc_stride: DocStrideOpt = WindowSpec.doc_stride,
    as_json: JsonOpt = False,
    max_file_mb: MaxFileOpt = 512.0,
    workers: WorkersOpt = None,
) -> None:
    """Index PATHS so that questions and searches about them are fast.

    Text, pages, content hashes, chunks and BM25 go into one SQLite file (only the model's
    tokenizer is loaded). Re-running reads only changed files and drops deleted ones.
    Safe to interrupt; a second indexer waits for the first.
    """
    from docqa import LoadResult

    started = time.perf_counter()
    with errors_to_exit_codes():
        if vectors and not dense:
            raise InputError("--vectors precomputes the dense vectors that --no-dense turns off.")
        qa = make_qa(
            dense,
            model=model,
            max_seq_len=max_seq_len,
            doc_stride=doc_stride,
            index=index_dir,
            max_file_mb=max_file_mb,
            workers=workers,
        )
        indexing = time.perf_counter()
        with progress_bar("Indexing", enabled=not as_json, unit="files") as bar:
            report = qa.index(
                paths,
                progress=bar.files,
                password=password,
                pieces=bar.pieces,
                vectors=vectors,
                rebuild=rebuild,
            )
        finished = time.perf_counter()
        location = qa.index_directory
        print_statuses(report.statuses)
        if not report.doc_ids:
            LoadResult((), report.statuses).require_documents()
    rate = report.pages_per_s
    if as_json:
        payload = {
            "index": str(location),
            "documents": len(report.doc_ids),
            "parsed": report.parsed,
            "unchanged": report.reused,
            "removed": report.removed,
            "pages_parsed": report.pages,
            "pages_per_s": rate,
            "seconds": report.seconds,
            "vectors": vectors,
            "files": [
                {"path": s.path, "state": s.state, "reason": s.reason} for s in report.statuses
            ],
            "timings": {
                "index": seconds(finished - indexing),
                **index_timings(report),
                "total": seconds(time.perf_counter() - started),
            },
        }
        write_json(payload)
        return
    speed = f", parsing {rate:.1f} pages/s" if rate else ""
    out.print(
        f"Indexed {len(report.doc_ids)} document(s): {report.parsed} parsed, "
        f"{report.reused} unchanged, {report.removed} removed in {report.seconds:.1f} s"
        f"{speed}. Index: {escape(printable(str(location)))}",
        highlight=False,
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Words to look for (a question works too).")],
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders to search (or --corpus).")
    ] = None,
    top_k: TopKOpt = 5,
    index_dir: IndexOpt = None,
    model: ModelOpt = None,
    dense: DenseOpt = True,
    as_json: JsonOpt = False,
    max_file_mb: MaxFileOpt = 512.0,
    include_contents: ContentsOpt = False,
    corpus: CorpusOpt = None,
) -> None:
    """Ranked chunks for QUERY in PATHS (or a corpus), with file, page and snippet: no reader
    model needed."""

    started = time.perf_counter()
    with errors_to_exit_codes():
        if (corpus is None) == (not paths):
            raise InputError("Give files or folders to search, or --corpus, not both.")
        qa = make_qa(
            dense,
            model=model,
            index=index_dir,
            max_file_mb=max_file_mb,
            include_contents=include_contents,
            corpus=corpus,
        )
        indexed_at = [started]
        with progress_bar("Indexing", enabled=not as_json and not corpus, unit="files") as bar:
            indexed = when_indexed(bar, indexed_at)
            hits, report = qa.search(
                query, paths or None, top_k, progress=bar.files, pieces=bar.pieces, indexed=indexed
            )
        finished = time.perf_counter()
    if as_json:
        timings = {"search": seconds(finished - indexed_at[-1])}
        if report is not None:
            timings = {"index": seconds(indexed_at[-1] - started), **index_timings(report)}
            timings["search"] = seconds(finished - indexed_at[-1])
        timings["total"] = seconds(time.perf_counter() - started)
        write_json({"query": query, "hits": [h.to_dict() for h in hits], "timings": timings})
        return
    if not hits:
        out.print("[yellow]Nothing found.[/]")
        return
    for rank, h in enumerate(hits, 1):
        where = printable(h.path) + (f":{h.page}" if h.page is not None else "")
        out.print(f"[bold]{rank}. {escape(where)}[/]  [dim]score {h.score:.3f}[/]", highlight=False)
        out.print("   " + highlighted_snippet(h.snippet, query), highlight=False)


@app.command()
def serve(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders to serve (indexed at start).")
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; 127.0.0.1 lets only this machine in.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    model: ModelOpt = None,
    index_dir: IndexOpt = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="DOCQA_TOKEN",
            help="Every /v1 request must send 'Authorization: Bearer TOKEN' (the page asks once).",
        ),
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.001, help="Largest upload, in MB.")
    ] = 50.0,
    cors: Annotated[
        str | None,
        typer.Option(help="Let pages from this origin call the API (no CORS by default)."),
    ] = None,
    batch_windows: Annotated[
        int | None,
        typer.Option(
            "--batch-windows",
            min=0,
            help="Questions that arrive together are read in one batch of at most this many "
            "windows (default: ten questions' worth); 0 reads each question alone.",
        ),
    ] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    dense: DenseOpt = True,
    allow_pickle: AllowPickleOpt = False,
    max_file_mb: MaxFileOpt = 512.0,
) -> None:
    """Serve the HTTP API (/v1, docs at /docs) and the web page (/) over PATHS and uploads.

    The model loads once; PATHS are indexed at start. Uploads are stored under the index
    folder. Binds 127.0.0.1 unless --host says otherwise.
    """
    try:
        import uvicorn

        from docqa import create_app
    except ImportError:
        raise fail("docqa serve needs its extra: pip install 'docqa[serve]'.", EXIT_INPUT) from None
    from docqa import check_paths

    with errors_to_exit_codes():
        qa = make_qa(
            dense,
            model=model,
            device=device,
            precision=precision,
            index=index_dir,
            allow_pickle=allow_pickle,
            max_file_mb=max_file_mb,
        )
        if paths:
            check_paths(paths)
        # Loaded here so that a model that cannot load is told as by docqa ask (exit 3).
        with progress_bar("Loading model"):
            qa.warm_up()
        batching = {} if batch_windows is None else {"batch_windows": batch_windows}
        application = create_app(
            qa, paths or [], token=token, max_upload_mb=max_upload_mb, cors=cors, **batching
        )
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        err.print(
            f"[yellow]warning:[/] listening on {escape(host)} without --token: anyone who "
            "can reach this port can read and upload documents.",
            highlight=False,
        )
    import logging

    # The service's own lines (indexing progress at start) in the same log as uvicorn's.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    uvicorn.run(application, host=host, port=port, log_level="info")


corpus_app = typer.Typer(
    help="A corpus beyond one machine: Lance tables built and asked on Ray (needs the scale "
    "extra: pip install 'docqa[scale]').",
    no_args_is_help=True,
)
app.add_typer(corpus_app, name="corpus")


@corpus_app.command("build")
def corpus_build(
    uri: Annotated[str, typer.Argument(help="Where the corpus lives: a folder or s3://...")],
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to build it from.")],
    ray_address: RayOpt = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Ray actors that read files (default: all CPUs)."),
    ] = None,
    model: ModelOpt = None,
    password: PasswordOpt = None,
    max_file_mb: MaxFileOpt = 512.0,
    max_seq_len: MaxSeqLenOpt = WindowSpec.max_seq_len,
    doc_stride: DocStrideOpt = WindowSpec.doc_stride,
    vectors: CorpusVectorsOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Build the corpus at URI from PATHS on Ray, or bring it up to date: unchanged files
    (same content hash) are not read again, files gone are removed."""
    from docqa import build_corpus, check_paths

    with errors_to_exit_codes():
        check_paths(paths)
        spec = WindowSpec(max_seq_len=max_seq_len, doc_stride=doc_stride)
        with progress_bar("Building", enabled=not as_json, unit="files") as bar:
            report = build_corpus(
                uri,
                paths,
                model=model,
                window_spec=spec,
                address=ray_address,
                workers=workers,
                max_file_mb=max_file_mb,
                password=password,
                vectors=vectors,
                progress=bar.files,
            )
    if as_json:
        write_json(
            {
                "corpus": report.uri,
                "read": report.read,
                "unchanged": report.unchanged,
                "removed": report.removed,
                "seconds": seconds(report.seconds),
                "files": [
                    {"path": s.path, "state": s.state, "reason": s.reason} for s in report.statuses
                ],
            }
        )
        return
    print_statuses(report.statuses)
    err.print(
        f"{report.read} file(s) read, {report.unchanged} unchanged, {report.removed} removed "
        f"in {report.seconds:.1f} s: {escape(report.uri)}",
        highlight=False,
    )


@app.command()
def batch(
    questions: Annotated[
        Path,
        typer.Argument(help='JSON lines: {"id", "question"}, as for docqa eval (answers unused).'),
    ],
    output: Annotated[Path, typer.Option("--out", help="Where to write the answers (JSONL).")],
    corpus: CorpusOpt = None,
    ray_address: RayOpt = None,
    readers: ReadersOpt = None,
    model: ModelOpt = None,
    top_k: TopKOpt = 1,
    chunks: ChunksOpt = DEFAULT_CHUNKS,
    precision: PrecisionOpt = "auto",
) -> None:
    """Answer every question of QUESTIONS from a corpus on Ray: a pool of readers, one
    model each. Each output line is the question's id, question and answers as in
    docqa ask --json, or its error."""
    from docqa import batch_answers, read_questions

    with errors_to_exit_codes():
        if corpus is None:
            raise InputError("docqa batch answers from a corpus: give --corpus URI.")
        rows = read_questions(questions, answers=False)
        if not rows:
            raise InputError(f"{questions} holds no question.")
        found = batch_answers(
            corpus,
            [r.question for r in rows],
            files=[r.file for r in rows],
            top_k=top_k,
            chunks=chunks,
            address=ray_address,
            workers=readers,
            model=model,
            precision=precision,
        )
        try:
            with output.open("w", encoding="utf-8") as f:
                for row, (answers, error) in zip(rows, found, strict=True):
                    line = {"id": row.id, "question": row.question, "answers": answers}
                    if error:
                        line["error"] = error
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise InputError(f"Cannot write {output}: {exc.strerror or exc}.") from exc
    failed = sum(1 for _, error in found if error)
    err.print(f"{len(rows)} question(s) answered into {escape(str(output))}; {failed} failed.")


def highlighted_snippet(snippet: str, query: str) -> str:
    """The snippet on one line, with the words that match the query in bold."""
    from docqa import highlight_terms

    flat = " ".join(snippet.split())
    parts, last = [], 0
    for s, e in highlight_terms(flat, query):
        parts.append(escape(flat[last:s]) + "[bold yellow]" + escape(flat[s:e]) + "[/]")
        last = e
    return "".join(parts) + escape(flat[last:])


if __name__ == "__main__":
    main()
