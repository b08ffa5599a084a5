"""docqa: extractive question answering over long documents.

>>> from docqa import DocQA
>>> DocQA().ask("How long does the battery last?", "sample_docs/")[0].text  # doctest: +SKIP
'about 14 months'
>>> hits, report = DocQA().search("battery life", "sample_docs/", k=3)  # doctest: +SKIP
"""

from typing import TYPE_CHECKING

from docqa.api import DEFAULT_CHUNKS, Decoding, DocQA, Reading, Retrieval, check_paths
from docqa.errors import DocQAError, InputError, LoaderError, ModelLoadError, NoDocumentsError
from docqa.evaluate import (
    DocsEvalReport,
    EvalReport,
    evaluate,
    evaluate_docs,
    read_questions,
    squad_files,
)
from docqa.highlight import highlight_pdf
from docqa.loaders import LoadResult, load, load_paths, supported_suffixes
from docqa.retrieve import highlight_terms
from docqa.squad import LEVELS as EVAL_LEVELS
from docqa.train import TrainConfig, train
from docqa.types import Answer, Document, FileStatus, Page, Prediction, Region, Section
from docqa.windowing import WindowSpec

if TYPE_CHECKING:
    from docqa.index import Hit, Index, UpdateReport
    from docqa.scale import BuildReport, CorpusQA, LanceCorpus, batch_answers, build_corpus
    from docqa.serve import create_app

# The persistent index's names load on first use: `import docqa` need not open SQLite.
# `create_app` needs the serve extra (FastAPI), the corpus names the scale extra (Ray,
# LanceDB, loaded only when called): `import docqa` never imports them.
_LAZY = {
    "Hit": "docqa.index",
    "Index": "docqa.index",
    "UpdateReport": "docqa.index",
    "create_app": "docqa.serve",
    "BuildReport": "docqa.scale",
    "CorpusQA": "docqa.scale",
    "LanceCorpus": "docqa.scale",
    "batch_answers": "docqa.scale",
    "build_corpus": "docqa.scale",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # once: later lookups do not come here
        return value
    raise AttributeError(f"module 'docqa' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DEFAULT_CHUNKS",
    "EVAL_LEVELS",
    "Answer",
    "BuildReport",
    "CorpusQA",
    "Decoding",
    "DocQA",
    "DocQAError",
    "DocsEvalReport",
    "Document",
    "EvalReport",
    "FileStatus",
    "Hit",
    "Index",
    "InputError",
    "LanceCorpus",
    "LoadResult",
    "LoaderError",
    "ModelLoadError",
    "NoDocumentsError",
    "Page",
    "Prediction",
    "Reading",
    "Region",
    "Retrieval",
    "Section",
    "TrainConfig",
    "UpdateReport",
    "WindowSpec",
    "batch_answers",
    "build_corpus",
    "check_paths",
    "create_app",
    "evaluate",
    "evaluate_docs",
    "highlight_pdf",
    "highlight_terms",
    "load",
    "load_paths",
    "read_questions",
    "squad_files",
    "supported_suffixes",
    "train",
]
