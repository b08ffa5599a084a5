"""The `docqa` command line: a thin typer layer over the library.

Library errors become one sentence on stderr and an exit code:

  0  answered (or evaluated, trained)
  2  usage or input error: empty question, missing path, no readable document, bad data file
  3  the model cannot be loaded
  4  --strict was given and some file failed to load
"""

from __future__ import annotations

import json
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

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

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        envvar="DOCQA_MODEL",
        help="Model folder or Hugging Face name; 'large' = "
        "bert-large-uncased-whole-word-masking-finetuned-squad. Default: the bundled reader.",
    ),
]
DeviceOpt = Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda, mps.")]


def main() -> None:
    """Console-script entry point."""
    app()


@app.callback()
def _root() -> None:
    """Extractive question answering over long documents: PDFs, manuals, folders."""


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


@contextmanager
def errors_to_exit_codes():
    """Turn library errors into one sentence and an exit code; never a traceback."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for w in caught:
            if issubclass(w.category, UserWarning) and w.category.__module__.startswith("docqa"):
                err.print(f"[yellow]warning:[/] {escape(str(w.message))}", highlight=False)
    except ModelLoadError as exc:
        raise fail(str(exc), EXIT_MODEL) from None
    except (InputError, DocQAError) as exc:
        raise fail(str(exc), EXIT_INPUT) from None
    except KeyboardInterrupt:
        raise fail("Interrupted.", 130) from None


@contextmanager
def progress_bar(description: str, enabled: bool = True):
    """A progress bar on stderr, shown only when it is a terminal."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not enabled or not err.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int | None = None) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def print_statuses(statuses) -> None:
    """A short per-file summary on stderr when anything was not read."""
    bad = [s for s in statuses if s.state != "ok"]
    if not bad:
        return
    ok = len(statuses) - len(bad)
    err.print(f"[dim]{ok} file(s) read; {len(bad)} not:[/]", highlight=False)
    for s in bad:
        err.print(f"  [yellow]{s.state:7}[/] {escape(s.path)}: {escape(s.reason)}", highlight=False)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to read.")],
    model: ModelOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many answers.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    device: DeviceOpt = "auto",
    password: Annotated[str | None, typer.Option(help="Password for encrypted PDFs.")] = None,
    strict: Annotated[bool, typer.Option(help="Exit 4 if any file failed to load.")] = False,
    max_seq_len: Annotated[int, typer.Option(help="Tokens per window.")] = 384,
    doc_stride: Annotated[int, typer.Option(help="Tokens of overlap between windows.")] = 128,
    max_answer_len: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 30,
    no_answer_threshold: Annotated[
        float | None,
        typer.Option(help="Say 'no answer' when the [CLS] score beats the best span by this."),
    ] = None,
) -> None:
    """Answer QUESTION from the documents in PATHS."""
    from docqa.api import DocQA
    from docqa.loaders import load_paths

    with errors_to_exit_codes():
        if not question.strip():
            raise InputError("The question is empty.")
        qa = DocQA(
            model=model,
            device=device,
            max_seq_len=max_seq_len,
            doc_stride=doc_stride,
            max_answer_len=max_answer_len,
            no_answer_threshold=no_answer_threshold,
        )
        result = load_paths(paths, password=password)
        if result.documents or len(result.statuses) > 1:
            print_statuses(result.statuses)
        documents = result.require_documents()
        with progress_bar("Loading model", enabled=not as_json):
            qa.warm_up()
        answers = list(qa.predict(question, documents, top_k=top_k).answers)
    failed = any(s.state == "failed" for s in result.statuses)
    if as_json:
        payload = {
            "question": question,
            "model": qa.model_name,
            "answers": [a.to_dict() for a in answers],
            "files": [
                {"path": s.path, "state": s.state, "reason": s.reason} for s in result.statuses
            ],
        }
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
    else:
        show_answers(answers)
    if strict and failed:
        raise typer.Exit(EXIT_STRICT)


def show_answers(answers) -> None:
    if not answers:
        out.print("[yellow]No answer found.[/]")
        return
    for rank, a in enumerate(answers, 1):
        where = a.source + (f":{a.page}" if a.page is not None else "")
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


if __name__ == "__main__":
    main()
