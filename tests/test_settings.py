"""Issue 18, part 2: settings defined once.

The window shape (``max_seq_len``, ``doc_stride``, ``max_question_len``) is one frozen
`WindowSpec`, with one set of bounds, used by reading (`DocQA`), indexing (`ChunkScheme`),
training (`TrainConfig`) and the CLI; the CLI's repeated options are declared once.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import click.testing
import pytest
import typer
from typer.testing import CliRunner

import docqa
from docqa import Decoding, DocQA, InputError, Retrieval, TrainConfig, WindowSpec
from docqa.api import renamed
from docqa.cli import app
from docqa.index import ChunkScheme

PACKAGE = Path(docqa.__file__).parent


def assert_one_sentence(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    assert message.endswith("."), message
    assert not re.search(r"[.!?]\s+[A-Z]", message), f"more than one sentence: {message}"


# --- WindowSpec ------------------------------------------------------------------------------

BAD_SHAPES = [
    pytest.param({"doc_stride": 400}, "doc_stride (400)", id="stride-longer-than-context"),
    pytest.param({"max_seq_len": 128, "doc_stride": 60}, "doc_stride (60)", id="stride-at-bound"),
    pytest.param({"doc_stride": -1}, "doc_stride", id="negative-stride"),
    pytest.param({"max_question_len": 0}, "max_question_len", id="no-question"),
    pytest.param({"max_seq_len": 8192, "doc_stride": 128}, "4096", id="too-long"),
    pytest.param({"max_seq_len": 64, "doc_stride": 0}, "max_seq_len", id="no-room"),
    pytest.param({"max_seq_len": 384.0}, "whole number", id="not-an-int"),
]


@pytest.mark.parametrize(("shape", "words"), BAD_SHAPES)
def test_window_spec_rejects_a_bad_shape_in_one_sentence(shape, words):
    with pytest.raises(InputError) as caught:
        WindowSpec(**shape)
    assert words in str(caught.value)
    assert_one_sentence(str(caught.value))


def test_window_spec_is_frozen_with_the_reading_defaults():
    spec = WindowSpec()
    assert (spec.max_seq_len, spec.doc_stride, spec.max_question_len) == (384, 128, 64)
    with pytest.raises(AttributeError):
        spec.doc_stride = 1  # type: ignore[misc]


def test_the_one_bound_leaves_room_for_question_specials_and_more_than_the_stride():
    """The window must hold the longest question, the most special tokens a tokenizer adds
    (4, RoBERTa) and at least ``doc_stride + 1`` context tokens: 128 - 64 - 4 = 60."""
    assert WindowSpec(max_seq_len=128, doc_stride=59).chunk_len(3) == 61
    assert WindowSpec(max_seq_len=128, doc_stride=59).chunk_len(4) == 60
    with pytest.raises(InputError):
        WindowSpec(max_seq_len=128, doc_stride=60)


# --- one validation: reading, indexing and training reject the same shape the same way -----


def rejections(shape: dict) -> dict[str, str]:
    """The message each user of the window shape gives for ``shape``."""
    found = {}
    attempts = {
        "WindowSpec": lambda: WindowSpec(**shape),
        "DocQA": lambda: DocQA(index=False, dense=False, **shape),
        "TrainConfig": lambda: TrainConfig("train.json", base="encoder", out="out", **shape),
        "ChunkScheme.remembered": lambda: ChunkScheme.remembered("f" * 16, 3, **shape),
    }
    for name, attempt in attempts.items():
        with pytest.raises(InputError) as caught:
            attempt()
        found[name] = str(caught.value)
    return found


@pytest.mark.parametrize(
    "shape",
    [
        {"max_seq_len": 384, "doc_stride": 400, "max_question_len": 64},
        # Before issue 18 training accepted this one (bound -3) and reading refused it (-4).
        {"max_seq_len": 128, "doc_stride": 60, "max_question_len": 64},
        {"max_seq_len": 384, "doc_stride": -1, "max_question_len": 64},
        {"max_seq_len": 384, "doc_stride": 128, "max_question_len": 0},
        {"max_seq_len": 5000, "doc_stride": 128, "max_question_len": 64},
    ],
    ids=["stride", "bound", "negative", "question", "too-long"],
)
def test_reading_indexing_and_training_reject_a_shape_with_the_same_sentence(shape):
    """Issue 18: doc_stride was checked in several places with different bounds (-4 in
    api.py, -3 in train.py, the tokenizer's own count in the index) and different messages."""
    messages = rejections(shape)
    assert len(set(messages.values())) == 1, messages
    assert_one_sentence(messages["WindowSpec"])


def test_reading_indexing_and_training_accept_the_same_shapes(tokenizer):
    """The largest stride the bound allows works everywhere, the index scheme included."""
    shape = {"max_seq_len": 128, "doc_stride": 59, "max_question_len": 64}
    qa = DocQA(index=False, dense=False, **shape)
    assert qa.window_spec == WindowSpec(**shape)
    assert (qa.max_seq_len, qa.doc_stride, qa.max_question_len) == (128, 59, 64)
    assert TrainConfig("t.json", base="b", out="o", **shape).window_spec == WindowSpec(**shape)
    scheme = ChunkScheme.for_tokenizer(tokenizer, **shape)
    assert (scheme.chunk_len, scheme.stride) == (WindowSpec(**shape).chunk_len(3), 59)


def test_the_defaults_are_window_spec_s():
    spec = WindowSpec()
    qa = DocQA(index=False, dense=False)
    assert qa.window_spec == spec
    scheme = ChunkScheme.remembered("f" * 16, 3)
    assert (scheme.chunk_len, scheme.stride) == (spec.chunk_len(3), spec.doc_stride)
    config = TrainConfig("t.json", base="b", out="o")
    assert (config.doc_stride, config.max_question_len) == (spec.doc_stride, spec.max_question_len)


@pytest.mark.parametrize(
    "argv",
    [
        "ask Where? nowhere --doc-stride 400",
        "eval missing.json --doc-stride 400",
        "index nowhere --doc-stride 400",
        # Training's own default length is shorter; the same shape is asked for here.
        "train missing.json --base b --out o --max-seq-len 384 --doc-stride 400",
    ],
    ids=["ask", "eval", "index", "train"],
)
def test_every_command_refuses_a_bad_shape_with_window_spec_s_sentence(argv):
    """Refused before any model loads or file is read: exit 2, WindowSpec's one sentence."""
    with pytest.raises(InputError) as caught:
        WindowSpec(max_seq_len=384, doc_stride=400)
    result = CliRunner().invoke(app, argv.split())
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert message == "error: " + str(caught.value), result.stderr


# --- no window shape written out beside WindowSpec -----------------------------------------

#: Numbers in docqa's code (comments and strings, docstrings included, are skipped) that are
#: not the window shape, each with why.
NOT_THE_WINDOW_SHAPE = {
    # all-MiniLM-L6-v2's own input length, for dense pieces
    ("retrieve.py", "PIECE_TOKENS = 128"),
    # how far apart retrieved chunks may be and still be read as one span of tokens
    ("api.py", "SPAN_GAP = 128"),
}
#: Defaults of a window-shape keyword written as a number outside windowing.py, each with why.
OWN_DEFAULTS = {
    # training's own, shorter windows (the bundled reader's recipe), checked by WindowSpec
    ("train.py", "max_seq_len: int = 256"),
}
SHAPE_DEFAULT = re.compile(r"\b(max_seq_len|doc_stride|max_question_len)\s*(:[^=]*)?=\s*\d")


def code_lines_with_numbers(source: str, numbers: set[str]) -> set[int]:
    """Line numbers where one of ``numbers`` is a number token of the code itself."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.start[0] for t in tokens if t.type == tokenize.NUMBER and t.string in numbers}


def test_the_window_shape_is_written_only_in_windowing():
    """Issue 18: 384/128 were written out in 8 places (DocQA, ChunkScheme.for_tokenizer and
    .remembered, the CLI's options, TrainConfig); each now reads WindowSpec's."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "windowing.py":
            continue
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for n in sorted(code_lines_with_numbers(source, {"384", "128"})):
            line = lines[n - 1].strip()
            if (path.name, line) not in NOT_THE_WINDOW_SHAPE:
                found.append(f"{path.relative_to(PACKAGE)}:{n}: {line}")
        for n, line in enumerate(lines, 1):
            if (
                SHAPE_DEFAULT.search(line)
                and (path.name, line.strip()) not in OWN_DEFAULTS
                and n in code_lines_with_numbers(source, set(re.findall(r"\d+", line)))
            ):
                found.append(f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}")
    assert not found, "window shape written out beside WindowSpec:\n" + "\n".join(found)


# --- the CLI's repeated options, declared once ----------------------------------------------

#: Options that several commands take with a different meaning, each with why.
DIFFERENT_MEANINGS = {
    "--level": "eval: where a question is asked; train: where training windows are cut",
    "--limit": "eval: first N questions; train: first N articles",
    "--out": "train: the folder of the trained reader; batch: the answers file",
    "--corpus": "ask, search, batch: the corpus to answer from; eval: the corpus to build "
    "the documents into, then answer from",
    "--vectors": "index: precompute now what questions would make on demand; corpus build: "
    "store vectors in the corpus, which never makes them on demand",
}


#: The CLI as click sees it, built once so that a test can change one option's help.
GROUP = typer.main.get_command(app)


def commands() -> dict[str, object]:
    return dict(GROUP.commands)


def shared_options() -> dict[str, list[str]]:
    """Each long option that two or more commands take and show, with those commands (a
    hidden option, an old name kept working, has no help to compare)."""
    taken: dict[str, list[str]] = {}
    for name, command in commands().items():
        for param in command.params:
            longs = [o for o in param.opts if o.startswith("--")]
            if longs and longs[0] != "--help" and not getattr(param, "hidden", False):
                taken.setdefault(longs[0], []).append(name)
    return {opt: names for opt, names in taken.items() if len(names) > 1}


def rendered_help(command: str) -> dict[str, str]:
    """Each option's help text as ``docqa COMMAND --help`` shows it (one row per option on a
    wide terminal), without its names, type, range, default and environment variable."""
    result = click.testing.CliRunner().invoke(GROUP, [command, "--help"], env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    rows = {}
    for raw in result.stdout.splitlines():
        row = " ".join(raw.strip("│ \n").split())
        found = re.match(r"^\*?\s*(--[\w-]+)[\w, -]*?<[^>]*>\s*(\[x[^\]]*\]\s*)?(.*)$", row)
        if found:
            text = re.sub(r"\s*\[(default|env var|required)[^\]]*\]", "", found.group(3))
            rows[found.group(1)] = text.strip()
    return rows


def test_the_repeated_options_are_the_ones_issue_18_names():
    shared = shared_options()
    for option in ("--json", "--password", "--max-seq-len", "--doc-stride", "--model"):
        assert option in shared, option
    assert "--precision" in shared
    assert set(shared["--max-seq-len"]) == {"ask", "eval", "index", "train"}


def test_every_command_shows_the_same_help_for_a_shared_option():
    """Issue 18: --model, --max-seq-len, --dense and others were declared once per command,
    and their help drifted (search's --model, index's --max-seq-len and --dense)."""
    helps = {name: rendered_help(name) for name in commands()}
    drifted = []
    for option, names in sorted(shared_options().items()):
        if option in DIFFERENT_MEANINGS:
            continue
        texts = {name: helps[name].get(option) for name in names}
        assert all(texts.values()), f"{option} has no help in some command: {texts}"
        if len(set(texts.values())) > 1:
            drifted.append(f"{option}: {texts}")
    assert not drifted, "\n".join(drifted)


def test_the_help_comparison_sees_a_drifted_copy(monkeypatch):
    """The check above fails when one command's copy of an option says something else."""
    param = next(p for p in GROUP.commands["index"].params if "--doc-stride" in p.opts)
    monkeypatch.setattr(param, "help", "Overlap, said differently.")
    assert rendered_help("index")["--doc-stride"] == "Overlap, said differently."
    with pytest.raises(AssertionError, match="--doc-stride"):
        test_every_command_shows_the_same_help_for_a_shared_option()


# --- DocQA's settings objects (issue 18, part 2: its keywords grouped) ----------------------


def test_docqa_groups_its_keywords_into_settings_objects_and_a_keyword_overrides_the_object():
    qa = DocQA(
        decoding=Decoding(rank_by="null_margin", max_answer_len=12),
        max_answer_len=5,
        chunks=3,
        max_seq_len=256,
        index=False,
    )
    assert qa.decoding == Decoding(max_answer_len=5, rank_by="null_margin")
    assert qa.retrieval == Retrieval(chunks=3)
    assert qa.window_spec == WindowSpec(max_seq_len=256)
    assert DocQA(index=False).decoding == Decoding() and DocQA(index=False).retrieval == Retrieval()


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"max_answer_len": 0}, "max_answer_len"),
        ({"top_n_per_window": 0}, "top_n_per_window"),
        ({"rank_by": "score"}, "rank_by"),
        ({"chunks": 0}, "chunks"),
        ({"decoding": Retrieval()}, "decoding must be a Decoding"),
    ],
)
def test_bad_settings_are_one_sentence_whether_given_as_keyword_or_object(settings, needle):
    with pytest.raises(InputError, match=needle) as caught:
        DocQA(index=False, **settings)
    assert_one_sentence(str(caught.value))
    kind = {"chunks": Retrieval}.get(next(iter(settings)), Decoding)
    if "decoding" not in settings:
        with pytest.raises(InputError, match=needle):
            kind(**settings)


def test_an_unknown_keyword_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="max_answer_length"):
        DocQA(max_answer_length=5)


def test_the_old_name_windows_still_works_with_a_deprecation_warning():
    """Issue 18, part 1: the retrieved unit is a chunk; ``windows=`` was its old name."""
    with pytest.warns(DeprecationWarning, match="chunks"):
        qa = DocQA(windows=4, index=False)
    assert qa.retrieval.chunks == 4
    seen = []

    @renamed("windows", "chunks")
    def ask(question, chunks=None):
        seen.append(chunks)

    with pytest.warns(DeprecationWarning, match=r"ask\(windows=\.\.\.\) is now chunks="):
        ask("q", windows=2)
    ask("q", chunks=3)
    assert seen == [2, 3]
    for method in (DocQA.ask, DocQA.ask_many, DocQA.ask_paths, DocQA.predict):
        assert method.__wrapped__.__code__.co_varnames[4] == "chunks", method
