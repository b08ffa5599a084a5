"""docqa: extractive question answering over long documents.

>>> from docqa import DocQA
>>> DocQA().ask("How long does the battery last?", "sample_docs/")[0].text  # doctest: +SKIP
'about 14 months'
"""

from docqa.api import DocQA
from docqa.errors import DocQAError, InputError, LoaderError, ModelLoadError, NoDocumentsError
from docqa.evaluate import DocsEvalReport, EvalReport, evaluate, evaluate_docs
from docqa.loaders import LoadResult, load, load_paths
from docqa.train import TrainConfig, train
from docqa.types import Answer, Document, FileStatus, Page, Prediction, Section

__all__ = [
    "Answer",
    "DocQA",
    "DocQAError",
    "DocsEvalReport",
    "Document",
    "EvalReport",
    "FileStatus",
    "InputError",
    "LoadResult",
    "LoaderError",
    "ModelLoadError",
    "NoDocumentsError",
    "Page",
    "Prediction",
    "Section",
    "TrainConfig",
    "evaluate",
    "evaluate_docs",
    "load",
    "load_paths",
    "train",
]
