"""Beyond one machine: a corpus in Lance tables (`LanceCorpus`), built and asked on Ray
(`build_corpus`, `batch_answers`). Needs the scale extra: ``pip install 'docqa[scale]'``;
nothing in docqa's core imports this package.

>>> from docqa.scale import build_corpus  # doctest: +SKIP
>>> build_corpus("s3://bucket/manuals", ["manuals/"], address="auto").read  # doctest: +SKIP
476
"""

from docqa.scale.corpus import LanceCorpus
from docqa.scale.pipeline import BuildReport, CorpusQA, batch_answers, build_corpus

__all__ = ["BuildReport", "CorpusQA", "LanceCorpus", "batch_answers", "build_corpus"]
