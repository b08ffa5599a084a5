"""Write a SQuAD v1.1 file of questions over reference documentation, for training a reader.

Manuals are mostly entries: an option, a command or a function, then what it does and its
default. A reader trained only on Wikipedia rarely answers with an identifier (`--vanilla`,
`var.test`) and picks between neighbouring entries badly. This makes questions of that shape
from documentation already on the machine, never from the benchmark manuals:

- man pages (sections 1 and 8, rendered by ``man``): "Which ls option lists entries by
  columns?" -> ``-C``; "What is the default for the --width option of foo?" -> its default;
- the docstrings of Python's standard library: "Which function in math returns the arc
  tangent of y/x?" -> ``atan2``; "What is the default value of reverse in sorted?" -> ``False``;
- with ``--api``, the parameter lists of numpy, scipy, pandas, scikit-learn and torch
  functions, the shape of a manual's "Arguments" section: "Which argument of linspace() is
  the number of samples to generate?" -> ``num``; "What is the default endpoint of
  linspace()?" -> ``True``.

Each context holds several neighbouring entries, so the question must pick the right one.
The questions are templates, not paraphrases: they teach what an answer looks like in a
manual, not how people phrase questions (SQuAD's questions, mixed in with ``--squad``, do).

    python scripts/reference_qa.py OUT.json [--squad TRAIN.json --squad-fraction 0.5] [--seed 0]
        [--api]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import random
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

CONTEXT_CHARS = 1400  # about 300 word pieces: one 384-token window with the question
MAX_QUESTIONS_PER_CONTEXT = 4
VERBS = frozenset(
    re.findall(
        r"\w+",
        """
        accept add allow append apply assume bind build calculate call change check clear close
        compare compile compute connect convert copy count create decode delete dereference
        disable display do dump emit enable encode enter exclude execute exit extract fetch find
        follow force format generate get handle hide ignore include initialize insert install
        keep kill limit link list load log make map mark match mount move open output override
        parse pass pad preserve prevent print produce quit raise read receive recurse register
        remove replace report reset return run save scale search select send set show skip sort
        specify split start stop store strip suppress sync terminate test treat truncate turn
        unmount update use validate verify wait wrap write
        """,
    )
)
SKIP_MODULES = {
    "antigravity",
    "this",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "test",
    "lib2to3",
    "pydoc_data",
    "__hello__",
    "__phello__",
    "ensurepip",
    "venv",
}
DEFAULT_RE = re.compile(
    r"\((?:the )?default(?: is| value is|:|s to| to)?\s+([^\s),;]+)\)"
    r"|[Tt]he default is\s+([^\s,;]+)"
)


@dataclass
class Entry:
    """One documented item: its heading lines and body, the answer's place in the heading."""

    lines: list[str]
    answer: str  # a substring of lines[0]
    question: str | None  # "what does it do" question, or None
    default: tuple[str, str] | None  # (question, answer) about its default


def third_person(verb: str) -> str:
    if verb in ("do", "go"):
        return verb + "es"
    if re.search(r"(s|sh|ch|x|z)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


def as_clause(description: str) -> str | None:
    """'print C-style escapes' -> 'prints C-style escapes'; None unless it starts with a verb."""
    words = description.split()
    if len(words) < 3 or len(words) > 25:
        return None
    first = words[0].lower()
    base = next((b for b in (first, first[:-1], first[:-2]) if b in VERBS), None)
    if base is None:
        return None
    verb = third_person(base)
    return " ".join([verb, *words[1:]]).rstrip(".:;,")


def first_sentence(text: str) -> str:
    text = " ".join(text.split())
    return re.split(r"(?<=[a-z0-9)])[.;] ", text + " ")[0].strip()


# -- man pages ---------------------------------------------------------------------------------


def render(page: Path) -> str:
    run = subprocess.run(
        ["man", "--nj", "--nh", "-l", "-P", "cat", str(page)],
        capture_output=True,
        text=True,
        env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"},
        timeout=20,
    )
    col = subprocess.run(
        ["col", "-bx"], input=run.stdout, capture_output=True, text=True, timeout=20
    )
    return col.stdout


def man_entries(text: str, command: str) -> list[list[Entry]]:
    """Option entries of a rendered man page, in runs of neighbours (one run per option list)."""
    lines = text.splitlines()
    runs: list[list[Entry]] = [[]]
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^ {7}(-\S.*)$", line)
        if not m:
            if line.strip() and not line.startswith(" " * 7):
                runs.append([])  # a new section: entries are no longer neighbours
            i += 1
            continue
        head = m.group(1)
        split = re.search(r"\s{2,}", head)
        tag = head[: split.start()] if split else head
        body = [head[split.end() :]] if split else []
        j = i + 1
        while j < len(lines) and lines[j].startswith(" " * 8) and lines[j].strip():
            body.append(lines[j].strip())
            j += 1
        i = j
        answer = tag.split(", ")[-1].strip()
        if not answer.startswith("-") or len(answer) > 40 or not body:
            continue
        description = " ".join(body)
        clause = as_clause(first_sentence(description))
        question = None
        if clause:
            question = random.choice(
                [
                    f"Which {command} option {clause}?",
                    f"What option of {command} {clause}?",
                    f"Which option {clause} in {command}?",
                ]
            )
        default = None
        found = DEFAULT_RE.search(description)
        if found:
            value = (found.group(1) or found.group(2)).strip("'\"`.")
            if (
                value
                and len(value) < 30
                and value.lower() not in ("to", "is", "the", "a", "value", "none")
            ):
                default = (f"What is the default for the {answer} option of {command}?", value)
        runs[-1].append(Entry([tag.strip(), *body], answer, question, default))
    return [run for run in runs if run]


def man_pages(limit: int) -> list[tuple[str, Path]]:
    # gcloud's thousands of pages are all alike
    pages = sorted(
        p
        for d in ("man1", "man8")
        for p in Path("/usr/share/man", d).glob("*.gz")
        if not p.name.startswith("gcloud")
    )
    random.shuffle(pages)
    return [(p.name.split(".")[0], p) for p in pages[:limit]]


# -- Python docstrings -------------------------------------------------------------------------


def quiet_import(module_name: str):
    """The module, or None where importing it fails (any error: some stdlib modules exit)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module_name)
    except BaseException:
        return None


def py_entries(module_name: str) -> list[list[Entry]]:
    module = quiet_import(module_name)
    if module is None:
        return []
    entries: list[Entry] = []
    items = []
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
            continue
        items.append((name, obj))
        if inspect.isclass(obj):
            items += [
                (f"{name}.{m}", f)
                for m, f in sorted(vars(obj).items())
                if not m.startswith("_") and callable(f)
            ]
    for name, obj in items:
        if not callable(obj):
            continue
        doc = inspect.getdoc(obj) or ""
        paragraph = doc.split("\n\n")[0]
        try:
            found = inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        parameters, signature = found.parameters.values(), str(found)
        short = name.split(".")[-1]
        if len(signature) > 100 or not paragraph or paragraph.lstrip().startswith(short + "("):
            continue
        clause = as_clause(first_sentence(paragraph))
        kind = (
            "method of " + name.split(".")[0]
            if "." in name
            else ("class" if inspect.isclass(obj) else "function")
        )
        question = None
        if clause:
            where = "" if "." in name else f" in {module_name}"
            question = random.choice(
                [
                    f"Which {kind}{where} {clause}?",
                    f"What {kind}{where} {clause}?",
                ]
            )
        heading = f"{name}{signature}"
        default = None
        params = [
            p
            for p in parameters
            if p.default not in (inspect.Parameter.empty, None) and len(repr(p.default)) < 20
        ]
        if params:
            p = random.choice(params)
            value = repr(p.default)
            # the answer is the default itself, where the heading shows it as "name=value"
            if f"{p.name}={value}" in heading:
                default = (f"What is the default value of {p.name} in {short}?", value)
        body = [" ".join(line.split()) for line in paragraph.splitlines()]
        entries.append(Entry([heading, *body], short, question, default))
    return [entries] if entries else []


# -- parameters of numpy-style and Google-style docstrings --------------------------------------

#: Libraries whose docstrings list their parameters ("name : type" under "Parameters", or
#: "name (type): ..." under "Args:"): what a manual's "Arguments" section looks like.
API_MODULES = (
    "numpy",
    "numpy.linalg",
    "numpy.fft",
    "scipy.stats",
    "scipy.optimize",
    "scipy.signal",
    "scipy.interpolate",
    "pandas",
    "sklearn.linear_model",
    "sklearn.cluster",
    "sklearn.model_selection",
    "sklearn.preprocessing",
    "torch.nn.functional",
)
NUMPY_PARAM = re.compile(r"^(\w+)(?:\s*:\s*(.*))?$")
GOOGLE_PARAM = re.compile(r"^ {4}(\w+)(?:\s*\(([^)]*)\))?:\s*(.*)$")
#: A default in a parameter's type line ("bool, default True") and in its description.
KIND_DEFAULT = re.compile(r"\bdefault(?:=|:|\s)\s*([^\s,;]+)")
DESCRIPTION_DEFAULT = re.compile(
    r"\b[Dd]efault(?:s to\s+|:\s*|=\s*|\s+is\s+|\s+value is\s+)([^\s,;]+)"
)
#: Words that make a description's first sentence a sentence rather than a noun phrase.
FINITE = frozenset(
    ["is", "are", "was", "will", "must", "should", "can", "may", "has", "have", "does"]
)
MARKUP = re.compile(r":\w+:`~?([^`]+)`|``([^`]+)``|`([^`]+)`")


def plain(text: str) -> str:
    """Docstring markup as a manual prints it: ``x`` and :attr:`p` become x and p."""
    return MARKUP.sub(lambda m: next(g for g in m.groups() if g), text)


def parameter_list(doc: str) -> list[tuple[str, str, list[str]]]:
    """``(name, type, description lines)`` of a docstring's parameters, numpy or Google style."""
    lines = doc.splitlines()
    found = []
    for i, line in enumerate(lines):
        numpy_style = line.strip() == "Parameters" and lines[i + 1 : i + 2] == ["-" * 10]
        if numpy_style or line.strip() == "Args:":
            start = i + (2 if numpy_style else 1)
            break
    else:
        return []
    for line in lines[start:]:
        if numpy_style and line and not line.startswith(" "):
            if set(line.strip()) == {"-"}:  # the underline of the next section's heading
                found.pop()
                break
            m = NUMPY_PARAM.match(line)
            if not m:
                break
            found.append((m.group(1), m.group(2) or "", []))
        elif not numpy_style and (m := GOOGLE_PARAM.match(line)):
            found.append((m.group(1), m.group(2) or "", [m.group(3)] if m.group(3) else []))
        elif line.startswith(" " * (4 if numpy_style else 8)) and found:
            found[-1][2].append(line.strip())
        elif line.strip() or not numpy_style:
            break
    return [(name, kind, body) for name, kind, body in found if body]


def parameter_question(function: str, name: str, description: str) -> str | None:
    """'Which argument of f() ...?' from the first sentence of a parameter's description."""
    sentence = plain(first_sentence(description)).split(": ")[0].rstrip(".:")
    words = sentence.split()
    if not 3 <= len(words) <= 25 or name in words or "(" in sentence:
        return None
    first = words[0].lower()
    lowered = sentence[0].lower() + sentence[1:]
    if first.endswith("ed"):  # "Used for drawing random variates": a participle, not a verb
        return f"Which argument of {function}() is {lowered}?"
    clause = as_clause(sentence)
    if clause:
        return f"Which argument of {function}() {clause}?"
    if first == "if" and sentence.lower().startswith("if true, "):
        return f"Which {function}() argument, if True, means that {sentence[9:]}?"
    if first == "whether":
        return f"Which argument of {function}() says {lowered}?"
    noun = first in ("the", "a", "an", "number", "name", "size", "maximum", "minimum", "type")
    if noun and not FINITE.intersection(w.lower() for w in words):
        article = "" if first in ("the", "a", "an") else "the "
        return f"Which argument of {function}() is {article}{lowered}?"
    return None


def api_entries(module_name: str) -> list[list[Entry]]:
    """One run per documented function or class: its heading, then its parameters."""
    module = quiet_import(module_name)
    if module is None:
        return []
    runs = []
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or not callable(obj):
            continue
        try:
            doc = inspect.getdoc(obj) or ""
        except Exception:
            continue
        params = parameter_list(doc)
        if len(params) < 3:
            continue
        summary = plain(doc.split("\n\n")[0].replace("\n", " "))
        run = [Entry([f"{name}()", summary], name, None, None)]
        for param, kind, body in params:
            description = plain(" ".join(body))
            question = parameter_question(name, param, description)
            default = None
            found = KIND_DEFAULT.search(kind) or DESCRIPTION_DEFAULT.search(description)
            if found:
                value = found.group(1).strip("'\"`.:()")
                if value and len(value) < 30 and value.lower() not in ("is", "the", "a", "none"):
                    default = (
                        random.choice(
                            [
                                f"What is the default {param} of {name}()?",
                                f"What does the {param} argument of {name}() default to?",
                            ]
                        ),
                        value,
                    )
            head = f"{param} : {plain(kind)}" if kind else param
            run.append(Entry([head, *[plain(b) for b in body]], param, question, default))
        runs.append(run)
    return runs


# -- contexts and questions --------------------------------------------------------------------


def contexts(run: list[Entry]):
    """Neighbouring entries joined into contexts of about CONTEXT_CHARS, with answer offsets."""
    block: list[Entry] = []
    size = 0
    for entry in [*run, None]:
        text_len = sum(len(line) + 1 for line in entry.lines) if entry else 0
        if block and (entry is None or size + text_len > CONTEXT_CHARS):
            yield from paragraph(block)
            block, size = [], 0
        if entry:
            block.append(entry)
            size += text_len


def paragraph(block: list[Entry]):
    text = ""
    qas = []
    for entry in block:
        heading_at = len(text) + (1 if text else 0)
        text += ("\n" if text else "") + "\n".join(entry.lines)
        if entry.question:
            at = text.find(entry.answer, heading_at)
            if 0 <= at < heading_at + len(entry.lines[0]):
                qas.append((entry.question, entry.answer, at))
        if entry.default:
            q, value = entry.default
            at = text.find(value, heading_at)
            if at >= 0:
                qas.append((q, value, at))
    if len(block) < 3 or not qas:
        return
    random.shuffle(qas)
    yield text, qas[:MAX_QUESTIONS_PER_CONTEXT]


def to_squad(title: str, paragraphs, counter: list[int]) -> dict:
    out = []
    for text, qas in paragraphs:
        items = []
        for question, answer, at in qas:
            assert text[at : at + len(answer)] == answer
            counter[0] += 1
            items.append(
                {
                    "id": f"ref-{counter[0]:06d}",
                    "question": question,
                    "answers": [{"text": answer, "answer_start": at}],
                }
            )
        out.append({"context": text, "qas": items})
    return {"title": title, "paragraphs": out}


def thin(articles: list[dict], fraction: float) -> list[dict]:
    """Keep each question with probability ``fraction``; drop what is left empty."""
    for article in articles:
        for p in article["paragraphs"]:
            p["qas"] = [
                q for q in p["qas"] if not q.get("is_impossible") and random.random() < fraction
            ]
        article["paragraphs"] = [p for p in article["paragraphs"] if p["qas"]]
    return [a for a in articles if a["paragraphs"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--man-pages", type=int, default=2000)
    parser.add_argument(
        "--man-questions", type=int, default=4000, help="about this many, each kept at random"
    )
    parser.add_argument(
        "--api",
        action="store_true",
        help="also ask for the parameters of numpy, scipy, pandas, scikit-learn and torch "
        "functions (installed here), by what they do and by their defaults",
    )
    parser.add_argument("--squad", type=Path, help="a SQuAD training file to mix in")
    parser.add_argument("--squad-fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    counter = [0]
    articles = []
    for command, page in man_pages(args.man_pages):
        try:
            text = render(page)
        except (subprocess.SubprocessError, UnicodeDecodeError, OSError):
            continue
        paragraphs = [p for run in man_entries(text, command) for p in contexts(run)]
        if paragraphs:
            articles.append(to_squad(f"man:{command}", paragraphs, counter))
    made_from_man = counter[0]
    articles = thin(articles, args.man_questions / max(made_from_man, 1))
    for name in sorted(sys.stdlib_module_names):
        if name in SKIP_MODULES or name.startswith("_"):
            continue
        paragraphs = [p for run in py_entries(name) for p in contexts(run)]
        if paragraphs:
            articles.append(to_squad(f"py:{name}", paragraphs, counter))
    made_from_stdlib = counter[0] - made_from_man
    for name in API_MODULES if args.api else ():
        runs = api_entries(name)
        # Only a function's first context names it, and its questions name the function.
        paragraphs = [
            p for run in runs for p in contexts(run) if p[0].startswith(run[0].lines[0] + "\n")
        ]
        if paragraphs:
            articles.append(to_squad(f"api:{name}", paragraphs, counter))
    print(
        f"about {min(made_from_man, args.man_questions)} man-page questions, "
        f"{made_from_stdlib} docstring questions, "
        f"{counter[0] - made_from_man - made_from_stdlib} parameter questions",
        file=sys.stderr,
    )
    if args.squad:
        squad = thin(json.loads(args.squad.read_text())["data"], args.squad_fraction)
        print(
            f"{sum(len(p['qas']) for a in squad for p in a['paragraphs'])} SQuAD questions",
            file=sys.stderr,
        )
        articles += squad
    random.shuffle(articles)
    args.out.write_text(json.dumps({"version": "1.1", "data": articles}))


if __name__ == "__main__":
    main()
