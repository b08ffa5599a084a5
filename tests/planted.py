"""A test double for the reader: a module whose logits peak on chosen phrases.

Random weights say nothing about where an answer is, so end-to-end tests use this instead:
for every occurrence of a planted phrase's token ids inside the *context* part of a window,
the start logit of its first token and the end logit of its last token are raised. A test
that knows where it planted a phrase then knows exactly which span must come back, with
which offsets, page, file and rank.

>>> model = PlantedModel(tokenizer, {"blue heron": 10.0})  # doctest: +SKIP
>>> loader = planted_loader(model, tokenizer)  # doctest: +SKIP
>>> monkeypatch.setattr(docqa.reader, "load_model", loader)  # doctest: +SKIP

The ``plant`` fixture in ``conftest.py`` does this for a test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers.modeling_outputs import QuestionAnsweringModelOutput


@dataclass
class _Config:
    type_vocab_size: int = 2


@dataclass(frozen=True)
class Plant:
    """One planted phrase: ``start`` on its first token, ``end`` on its last."""

    ids: tuple[int, ...]
    start: float
    end: float


class PlantedModel(torch.nn.Module):
    """Returns ``baseline`` everywhere, ``cls`` at [CLS], and peaks on planted phrases.

    ``phrases`` maps a phrase (tokenized with the real tokenizer, so it matches the document's
    tokens wherever it starts and ends on word boundaries) to a logit, or to a
    ``(start_logit, end_logit)`` pair. ``partial=True`` also peaks on a phrase cut by the end
    of a window (start on its first token, end on the window's last context token), the way a
    real reader is tempted by half an answer at a window edge.
    """

    def __init__(
        self,
        tokenizer,
        phrases: dict[str, float | tuple[float, float]],
        *,
        cls: float = 0.0,
        baseline: float = 0.0,
        partial: bool = False,
    ):
        super().__init__()
        self.config = _Config()
        self.sep_id = tokenizer.sep_token_id
        self.cls_value = cls
        self.baseline = baseline
        self.partial = partial
        self.plants = []
        for phrase, value in phrases.items():
            ids = tuple(tokenizer(phrase, add_special_tokens=False)["input_ids"])
            assert ids, f"phrase {phrase!r} has no tokens"
            start, end = value if isinstance(value, tuple) else (value, value)
            self.plants.append(Plant(ids, float(start), float(end)))
        self.calls = 0
        self.rows = 0

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        self.calls += 1
        self.rows += input_ids.shape[0]
        ids = input_ids.cpu().numpy()
        mask = attention_mask.cpu().numpy().astype(bool)
        types = None if token_type_ids is None else token_type_ids.cpu().numpy()
        start = np.full(ids.shape, self.baseline, dtype=np.float32)
        end = np.full(ids.shape, self.baseline, dtype=np.float32)
        for row in range(ids.shape[0]):
            lo, hi = self._context(ids[row], mask[row], None if types is None else types[row])
            context = ids[row, lo:hi]
            for plant in self.plants:
                for pos, length in self._matches(context, plant.ids):
                    start[row, lo + pos] = max(start[row, lo + pos], plant.start)
                    end[row, lo + pos + length - 1] = max(
                        end[row, lo + pos + length - 1], plant.end
                    )
            start[row, 0] = end[row, 0] = self.cls_value
        return QuestionAnsweringModelOutput(
            start_logits=torch.from_numpy(start), end_logits=torch.from_numpy(end)
        )

    def _context(self, ids, mask, types) -> tuple[int, int]:
        """``[lo, hi)``: the context tokens, between the first [SEP] and the last."""
        n = int(mask.sum())
        seps = np.flatnonzero(ids[:n] == self.sep_id)
        assert len(seps) >= 2, "a window must be [CLS] question [SEP] context [SEP]"
        lo, hi = int(seps[0]) + 1, int(seps[-1])
        if types is not None:
            assert (types[lo:hi] == 1).all() and (types[:lo] == 0).all(), "bad token types"
        return lo, hi

    def _matches(self, context: np.ndarray, phrase: tuple[int, ...]):
        """(position, length) of each whole occurrence; cut ones at the end if ``partial``."""
        n, m = len(context), len(phrase)
        target = np.asarray(phrase)
        for pos in range(n):
            if context[pos] != target[0]:
                continue
            length = min(m, n - pos)
            if (context[pos : pos + length] == target[:length]).all() and (
                length == m or self.partial
            ):
                yield pos, length


def planted_loader(model: PlantedModel, tokenizer, calls: list | None = None):
    """A stand-in for ``docqa.reader.load_model`` returning ``model``; records calls."""

    def load_model(name, device):
        if calls is not None:
            calls.append((name, device))
        return model, tokenizer

    return load_model
