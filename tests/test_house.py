"""Issue 18, parts 3, 5, 6 and 7: house rules a newcomer can rely on, checked.

No module uses another module's private names; what the reader and the trainer share lives
once, in `docqa.modelio`; figures stay with their measurements, not in comments; CI runs the
doctests; the tests' shared helpers are defined once; no ``except`` names an error beside
its own subclass.
"""

from __future__ import annotations

import ast
import builtins
import io
import re
import shlex
import subprocess
import sys
import tokenize
from pathlib import Path

import numpy as np
import pytest
from conftest import FILLER, PHRASE, ROOT, VOCAB

import docqa.errors
import docqa.modelio
import docqa.reader
from docqa.errors import InputError
from docqa.modelio import collate
from docqa.train import Feature
from docqa.windowing import fast_backend, tokenize_text

#: The module: ``docqa.train`` is the `train` function, which docqa re-exports.
train_module = sys.modules["docqa.train"]


def python_files(*, tests: bool = True) -> list[Path]:
    """docqa's own code: the package, the benchmarks (not their outputs), scripts, tests."""
    files = sorted((ROOT / "docqa").rglob("*.py"))
    files += sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))
    return files + (sorted((ROOT / "tests").glob("*.py")) if tests else [])


def module_of(path: Path) -> tuple[str, str]:
    """``(module, package)`` of a file (``docqa/index/store.py``: docqa.index.store and
    docqa.index)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


# --- 3. no private names across modules -------------------------------------------------------


def private_uses(source: str, module: str, package: str, attributes: bool = True) -> list[str]:
    """Each use in ``source`` (the code of ``module``) of another docqa module's private name,
    as ``"owner._name"``: ``from docqa.x import _name`` (relative imports too), and with
    ``attributes``, ``x._name`` where ``x`` was bound by importing a docqa module."""
    found: list[str] = []
    bound: dict[str, str] = {}  # local name -> the docqa dotted name it was imported as
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base != "docqa" and not base.startswith("docqa."):
                continue
            for alias in node.names:
                if is_private(alias.name) and base != module:
                    found.append(f"{base}.{alias.name}")
                bound[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "docqa" or alias.name.startswith("docqa."):
                    local = alias.asname or alias.name.split(".")[0]
                    bound[local] = alias.name if alias.asname else local
    if not attributes:
        return found
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Attribute) and is_private(node.attr)):
            continue
        chain, base = [], node.value
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name) and base.id in bound:
            owner = ".".join([bound[base.id], *reversed(chain)])
            if owner != module and not owner.startswith(module + "."):
                found.append(f"{owner}.{node.attr}")
    return found


def all_private_uses() -> set[str]:
    """Every private use across modules in the tree. Tests may reach into the module they
    test through its module object (``pdf._outline_items``, ``monkeypatch.setattr(pdf,
    "_extract_apart", ...)``): only their imports are checked; the code itself is checked
    for both."""
    uses = set()
    for path in python_files():
        module, package = module_of(path)
        in_tests = path.parent.name == "tests"
        for use in private_uses(path.read_text(), module, package, attributes=not in_tests):
            uses.add(f"{module}: {use}")
    return uses


def test_no_module_uses_another_modules_private_names():
    """Issue 18, part 3: `train.py` imported `reader._hub_reachable`, `_refusal` and
    `_raised_by_torch_load`, the benchmarks `reader._quiet_torchao`, tests `train._collate`
    and `retrieve._stemmer`; the index package its own `store._transaction` and others."""
    unexpected = sorted(all_private_uses())
    assert unexpected == [], "make these names public where they are defined: " + ", ".join(
        unexpected
    )


def test_the_scan_finds_what_train_py_and_the_benchmarks_imported_before():
    before = """
from docqa.reader import max_positions

def _load_pretrained():
    from docqa.reader import _hub_reachable, _refusal, cached_model_folder
"""
    assert private_uses(before, "docqa.train", "docqa") == [
        "docqa.reader._hub_reachable",
        "docqa.reader._refusal",
    ]
    assert private_uses("from docqa.reader import _quiet_torchao", "choices", "") == [
        "docqa.reader._quiet_torchao"
    ]
    relative = "from .store import _parts, Store\nfrom . import _base"
    assert private_uses(relative, "docqa.index.search", "docqa.index") == [
        "docqa.index.store._parts",
        "docqa.index._base",
    ]
    attributes = """
import docqa.index.ingest
import docqa.api as api
from docqa.loaders import html as html_loader
docqa.index.ingest._chunk_terms([])
api._dense_available()
html_loader._TextWriter()
"""
    assert sorted(private_uses(attributes, "speed", "")) == [
        "docqa.api._dense_available",
        "docqa.index.ingest._chunk_terms",
        "docqa.loaders.html._TextWriter",
    ]
    assert private_uses(attributes, "speed", "", attributes=False) == []


def test_a_module_may_use_its_own_private_names_and_anyones_dunders():
    own = "from docqa.reader import _chunks\nimport docqa.reader\ndocqa.reader._chunks"
    assert private_uses(own, "docqa.reader", "docqa") == []
    assert private_uses("from docqa import __version__", "docqa.cli", "docqa") == []
    assert private_uses("from bm25s.scoring import _select_idf_scorer", "docqa.x", "docqa") == []


# --- 3. what the reader and the trainer share, in one public module --------------------------

SHARED = {
    "collate",
    "hub_reachable",
    "safe_load_options",
    "check_model_folder",
    "cached_model_folder",
    "load_failure",
    "refusal",
    "raised_by_torch_load",
    "pick_device",
    "pick_precision",
    "check_device",
    "check_precision",
    "max_positions",
    "check_window_length",
}


def test_reader_and_trainer_share_one_copy_of_loading_collation_and_checks():
    """Issue 18, part 3: batch collation was written twice (`Reader._collate`,
    `train._collate`) and the window-length check twice; the loading helpers the trainer used
    were the reader's private ones."""
    for module in (docqa.reader, train_module):
        tree = ast.parse(Path(module.__file__).read_text())
        defined = {n.name.lstrip("_") for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert defined & SHARED == set(), module.__name__
    for name in SHARED:
        assert callable(getattr(docqa.modelio, name)), name
    assert docqa.reader.collate is train_module.collate is docqa.modelio.collate
    assert train_module.check_window_length is docqa.modelio.check_window_length


def test_collate_pads_windows_of_any_kind_alike():
    def feature(ids):
        return Feature(np.array(ids, dtype=np.int64), np.ones(len(ids), dtype=np.int64), 0, 0)

    ids, types, mask = collate([feature([101, 7, 8, 102]), feature([101, 102])], pad_id=0)
    assert ids.tolist() == [[101, 7, 8, 102], [101, 102, 0, 0]]
    assert types.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert {str(t.dtype) for t in (ids, types, mask)} == {"torch.int64"}
    assert collate([feature([5])], pad_id=3)[0].device.type == "cpu"


def test_device_and_precision_are_checked_by_one_function_each():
    with pytest.raises(InputError, match="Unknown device 'tpu'"):
        docqa.reader.Reader(device="tpu")
    with pytest.raises(InputError, match="Unknown device 'tpu'"):
        docqa.modelio.pick_device("tpu")
    with pytest.raises(InputError, match="Unknown precision 'fp8'"):
        docqa.reader.Reader(precision="fp8")
    with pytest.raises(InputError, match="Unknown precision 'fp8'"):
        docqa.modelio.pick_precision("fp8", "cpu")


def test_the_tokenizer_reset_is_one_public_function():
    """A saved tokenizer can carry fixed truncation and padding; `fast_backend` drops both
    for every caller that encodes through the Rust backend."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(VOCAB))
    tokenizer.backend_tokenizer.enable_truncation(8)
    tokenizer.backend_tokenizer.enable_padding(length=16)
    backend = fast_backend(tokenizer)
    assert backend.truncation is None and backend.padding is None
    assert len(tokenize_text(tokenizer, " ".join(FILLER * 3))) == 30


def reset_copies() -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in python_files(tests=False):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "no_truncation":
                name = str(path.relative_to(ROOT))
                counts[name] = counts.get(name, 0) + 1
    return counts


def test_only_fast_backend_resets_the_tokenizer():
    """Issue 18, part 3: the reset was written out three times."""
    copies = reset_copies()
    assert copies.pop("docqa/windowing.py") == 1
    assert copies == {}, "call docqa.windowing.fast_backend instead"


# --- 5. figures live with their measurements ------------------------------------------------

#: A measured figure: an F1 or EM score, a percentage, a duration, a size, a speed-up.
FIGURE = re.compile(
    r"\b(F1|EM)\s+\d+\.\d"
    r"|\d\s?%"
    r"|\b\d+(\.\d+)?(\s?[-–]\s?\d+(\.\d+)?)?\s?(ms|s|seconds|minutes|hours|MB|GB)\b"
    r"|\b\d+(\.\d+)?(-\d+(\.\d+)?)?\s?[x×](?!\w)"
)


def prose(source: str) -> list[tuple[int, str]]:
    """The comment and docstring lines of ``source`` (doctest examples left out)."""
    lines = [
        (tok.start[0], tok.string)
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) or not body:
            continue
        first = body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            text = first.value.value
            for k, line in enumerate(text.splitlines() if isinstance(text, str) else []):
                if not line.strip().startswith((">>>", "...")):
                    lines.append((first.lineno + k, line))
    return sorted(lines)


def figures(source: str) -> list[str]:
    return [f"{n}: {line.strip()}" for n, line in prose(source) if FIGURE.search(line)]


def test_no_measured_figures_in_comments_or_docstrings():
    """Issue 18, part 5: `api.py` carried F1 tables beside `DEFAULT_CHUNKS` and
    `RETRIEVER_WEIGHT` that went stale at each re-measurement; they are in the README and
    the results files, with the command that produced them."""
    found = {}
    for path in sorted((ROOT / "docqa").rglob("*.py")):
        if hits := figures(path.read_text()):
            found[str(path.relative_to(ROOT))] = hits
    assert found == {}


def test_the_figure_check_catches_what_api_py_said_before():
    before = '''
#: Measured with the bundled reader on SQuAD dev at document level (benchmarks/retrieval_f1.py,
#: 64 questions from all 16 articles, retriever weight 4): F1 59.8 / 62.2 / 62.2 / 62.2 / 62.2
#: 10 windows, 53.8 reading every one). 3 to 20 tie; 10 keeps window recall at 98.7 %
DEFAULT_CHUNKS = 10


def f():
    """bf16 autocast was 2-3x faster; bert-base held 885 MB; it took 2.5 s."""
    # fell from 71% at batch 4
'''
    assert [hit.split(":")[0] for hit in figures(before)] == ["3", "4", "9", "10"]
    clean = '"""SQuAD EM and F1 (0-100), 384-token windows, scores F1 1 when gold is empty."""'
    assert figures(clean) == []


# --- 6. tests as documentation -----------------------------------------------------------------


def pytest_command(text: str) -> list[str]:
    """The ``python -m pytest ...`` command in ``text``, as its words."""
    for line in text.splitlines():
        if "python -m pytest" in line:
            command = line[line.index("python -m pytest") :]
            return shlex.split(command.split("&&")[0])
    raise AssertionError("no python -m pytest command")


def test_ci_runs_the_readme_test_command_with_the_doctests():
    """Issue 18, part 6: the doctests passed, but nothing ran them."""
    readme = pytest_command((ROOT / "README.md").read_text())
    ci = pytest_command((ROOT / ".ci" / "run").read_text())
    assert readme == ci
    assert {"tests", "docqa", "--doctest-modules"} <= set(ci)
    # The PDF worker is a script: importing it strips its folder from sys.path.
    assert "--ignore=docqa/loaders/_pdf_worker.py" in ci
    assert (ROOT / "docqa" / "loaders" / "_pdf_worker.py").exists()


def test_importing_every_module_for_the_doctests_starts_no_work():
    """Collecting the doctests imports every module under docqa/ (pytest itself leaves
    ``__main__.py`` out, the test command the PDF worker): none may change ``sys.path``,
    start a thread or a process."""
    modules = [
        module_of(p)[0]
        for p in sorted((ROOT / "docqa").rglob("*.py"))
        if p.name not in ("__main__.py", "_pdf_worker.py")
    ]
    code = f"""
import importlib, multiprocessing, sys, threading
path, threads = list(sys.path), threading.active_count()
for name in {modules!r}:
    importlib.import_module(name)
assert sys.path == path, "sys.path changed"
assert threading.active_count() == threads, "a thread started"
assert not multiprocessing.active_children(), "a process started"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]


def test_shared_test_helpers_are_defined_once():
    """Issue 18, part 6: ``filler`` (or ``words``), its word list and ``PHRASE`` were copied
    into several test files; they live in ``conftest.py``."""
    copies = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name == "conftest.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "filler":
                copies.append(f"{path.name}:{node.lineno} def filler")
            elif isinstance(node, ast.List):
                try:
                    if ast.literal_eval(node) == FILLER:
                        copies.append(f"{path.name}:{node.lineno} the filler words")
                except ValueError:
                    pass
            elif isinstance(node, ast.Constant) and node.value == PHRASE:
                copies.append(f"{path.name}:{node.lineno} PHRASE")
    assert copies == []


# --- 7. redundancies ------------------------------------------------------------------------


def exception_class(node: ast.expr):
    if isinstance(node, ast.Name):
        return getattr(builtins, node.id, None) or getattr(docqa.errors, node.id, None)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return getattr(sys.modules.get(node.value.id), node.attr, None)
    return None


def redundant_excepts(source: str) -> list[str]:
    """Each error named in an ``except`` that an earlier or sibling name already catches."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Try):
            continue
        caught: list[tuple[type, str]] = []
        for handler in node.handlers:
            if handler.type is None:
                continue
            names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            here = [(exception_class(n), ast.unparse(n)) for n in names]
            here = [(c, n) for c, n in here if isinstance(c, type)]
            for c, n in here:
                for other, other_name in caught + here:
                    if other_name != n and issubclass(c, other):
                        found.append(f"{n} beside {other_name}")
            caught += here
    return found


def all_redundant_excepts() -> set[str]:
    return {
        f"{path.relative_to(ROOT)}: {what}"
        for path in python_files()
        for what in redundant_excepts(path.read_text())
    }


def test_no_except_names_an_error_beside_its_own_subclass():
    """Issue 18, part 7: the CLI caught ``(InputError, DocQAError)``."""
    assert all_redundant_excepts() == set()
    before = "try:\n    pass\nexcept (InputError, DocQAError):\n    pass\n"
    assert redundant_excepts(before) == ["InputError beside DocQAError"]
    later = "try:\n    pass\nexcept OSError:\n    pass\nexcept FileNotFoundError:\n    pass\n"
    assert redundant_excepts(later) == ["FileNotFoundError beside OSError"]
    fine = "try:\n    pass\nexcept (OSError, ValueError):\n    pass\nexcept Exception:\n    pass"
    assert redundant_excepts(fine) == []
