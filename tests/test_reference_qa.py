"""scripts/reference_qa.py: the questions over reference documentation the bundled reader's last
training stage reads (its model card). A wrong offset or a question about the wrong entry
would teach the reader to answer with the neighbouring option."""

from __future__ import annotations

import random
import shutil
import types

import pytest
from conftest import load_script

reference_qa = load_script("reference_qa")

RENDERED = """\
LS(1)                            User Commands                           LS(1)

DESCRIPTION
       List information about the FILEs (the current directory by default).

       -a, --all
              do not ignore entries starting with .

       -A, --almost-all
              do not list implied . and ..

       --block-size=SIZE
              with -l, scale sizes by SIZE when printing them (default 1024)

       -C     list entries by columns

       -w, --width=COLS
              set output width to COLS.  0 means no limit

EXIT STATUS
       -x     print a lone option after a new section
"""


def questions(text: str, command: str) -> list[tuple[str, str, str]]:
    """(question, answer, the context line the answer's offset points into)."""
    random.seed(0)
    out = []
    for run in reference_qa.man_entries(text, command):
        for context, qas in reference_qa.contexts(run):
            for question, answer, at in qas:
                assert context[at : at + len(answer)] == answer
                line = (
                    context[: at + len(answer)].rsplit("\n", 1)[-1]
                    + context[at + len(answer) :].split("\n", 1)[0]
                )
                out.append((question, answer, line))
    return out


def test_each_option_is_asked_by_what_it_does_and_answered_by_its_own_tag(monkeypatch):
    monkeypatch.setattr(reference_qa, "MAX_QUESTIONS_PER_CONTEXT", 10)
    found = {answer: (question, line) for question, answer, line in questions(RENDERED, "ls")}
    # "do not ignore..." and "list entries..." start with verbs; "with -l, ..." does not, but
    # its default is still asked; the entry after a new section heading is not a neighbour of
    # these and its run (one entry) is too short to make a context
    assert set(found) == {"--all", "--almost-all", "-C", "--width=COLS", "1024"}
    assert "does not ignore entries starting with" in found["--all"][0]
    assert "lists entries by columns" in found["-C"][0]
    assert "sets output width to COLS" in found["--width=COLS"][0]
    assert found["1024"][0] == "What is the default for the --block-size=SIZE option of ls?"
    # every answer points into its own entry's heading (or, for a default, its body)
    assert found["--all"][1] == "-a, --all"
    assert found["-C"][1] == "-C"
    assert "(default 1024)" in found["1024"][1]


@pytest.mark.parametrize(
    ("description", "clause"),
    [
        (
            "print C-style escapes for nongraphic characters",
            "prints C-style escapes for nongraphic characters",
        ),
        ("Return the arc tangent of y/x.", "returns the arc tangent of y/x"),
        ("Returns an iterable of nodes", "returns an iterable of nodes"),
        ("do not list implied entries", "does not list implied entries"),
        ("apply the patch in reverse", "applies the patch in reverse"),
        ("with -l, print the author", None),  # not a verb: no "which option ..." question
        ("list all", None),  # too short to tell options apart
    ],
)
def test_descriptions_become_third_person_clauses(description, clause):
    assert reference_qa.as_clause(description) == clause


def test_python_docstrings_ask_for_the_function_and_its_defaults():
    random.seed(0)
    runs = reference_qa.py_entries("textwrap")
    pairs = [
        (q, a, context)
        for run in runs
        for context, qas in reference_qa.contexts(run)
        for q, a, _ in qas
    ]
    asked = {a: q for q, a, _ in pairs}
    assert asked["dedent"].endswith(
        "function in textwrap removes any common leading whitespace from every line in `text`?"
    )
    for question, answer, context in pairs:
        assert answer in context
        if question.startswith("What is the default value of"):
            name = question.split(" of ")[1].split(" in ")[0]
            assert f"{name}={answer}" in context


@pytest.mark.skipif(
    shutil.which("man") is None or not (reference_qa.Path("/usr/share/man/man1").exists()),
    reason="no man pages here",
)
def test_a_real_man_page_renders_into_questions():
    page = next(reference_qa.Path("/usr/share/man/man1").glob("ls.1*"), None)
    if page is None:
        pytest.skip("no ls man page")
    found = {answer for _, answer, _ in questions(reference_qa.render(page), "ls")}
    assert found & {"-C", "--all", "--almost-all", "--escape"}


# --- parameters of numpy-style and Google-style docstrings (--api) ---------------------------

NUMPY_DOC = """\
Return evenly spaced numbers over a specified interval.

Parameters
----------
start : array_like
    The starting value of the sequence.
num : int, optional
    Number of samples to generate. Default is 50. Must be non-negative.
endpoint : bool, default True
    If True, `stop` is the last sample.
retstep : bool, optional
    Whether to return the spacing between samples.

Returns
-------
samples : ndarray
    There are `num` equally spaced samples.
"""

GOOGLE_DOC = """\
Randomly zero some elements of the input.

Args:
    p: probability of an element to be zeroed. Default: 0.5
    training (bool): apply dropout if is ``True``.
        Nothing else.
    inplace: If set to ``True``, will do this operation in-place.

Returns:
    A tensor.
"""


def test_numpy_style_parameters_stop_at_the_next_section():
    params = reference_qa.parameter_list(NUMPY_DOC)
    assert [(name, kind) for name, kind, _ in params] == [
        ("start", "array_like"),
        ("num", "int, optional"),
        ("endpoint", "bool, default True"),
        ("retstep", "bool, optional"),
    ]
    assert params[1][2] == ["Number of samples to generate. Default is 50. Must be non-negative."]


def test_google_style_parameters_keep_their_continuation_lines():
    params = reference_qa.parameter_list(GOOGLE_DOC)
    assert [(name, kind) for name, kind, _ in params] == [
        ("p", ""),
        ("training", "bool"),
        ("inplace", ""),
    ]
    assert params[1][2] == ["apply dropout if is ``True``.", "Nothing else."]
    assert reference_qa.parameter_list("No parameters here.\n\nReturns\n-------\nx\n") == []


@pytest.mark.parametrize(
    ("description", "question"),
    [
        (
            "The starting value of the sequence.",
            "Which argument of f() is the starting value of the sequence?",
        ),
        (
            "Number of samples to generate. Default is 50.",
            "Which argument of f() is the number of samples to generate?",
        ),
        (
            "If True, `stop` is the last sample.",
            "Which f() argument, if True, means that stop is the last sample?",
        ),
        (
            "Whether to return the spacing.",
            "Which argument of f() says whether to return the spacing?",
        ),
        (
            "Used for drawing random variates.",
            "Which argument of f() is used for drawing random variates?",
        ),
        (
            "Return the spacing between samples.",
            "Which argument of f() returns the spacing between samples?",
        ),
        ("The window must be a real array.", None),  # a sentence, not what the argument is
        ("The value of num itself.", None),  # names the answer
        ("Ignored.", None),
    ],
)
def test_a_parameter_is_asked_by_what_its_description_says(description, question):
    assert reference_qa.parameter_question("f", "num", description) == question


def test_api_entries_ask_each_parameter_in_its_own_functions_context(monkeypatch):
    module = types.ModuleType("fake_api")

    def linspace(start, num=50, endpoint=True, retstep=False):
        pass

    linspace.__doc__ = NUMPY_DOC
    module.linspace = linspace
    monkeypatch.setitem(reference_qa.sys.modules, "fake_api", module)
    monkeypatch.setattr(reference_qa, "MAX_QUESTIONS_PER_CONTEXT", 10)
    random.seed(0)
    [run] = reference_qa.api_entries("fake_api")
    [(context, qas)] = list(reference_qa.contexts(run))
    assert context.startswith("linspace()\nReturn evenly spaced numbers")
    asked = {}
    for question, answer, at in qas:
        line = context[: at + len(answer)].rsplit("\n", 1)[-1] + context[at + len(answer) :]
        asked[answer] = (question, line.split("\n", 1)[0])
    assert set(asked) == {"start", "num", "endpoint", "retstep", "50", "True"}
    # a parameter's answer is its own heading; a default points into its own entry
    assert asked["num"][1] == "num : int, optional"
    assert asked["endpoint"][1] == "endpoint : bool, default True"
    assert asked["50"][1].startswith("Number of samples to generate. Default is 50")
    assert "of linspace()" in asked["50"][0] and " num " in asked["50"][0]
    assert asked["True"][1] == "endpoint : bool, default True"
