"""The reader: a Hugging Face question-answering model that turns windows into start/end logits.

It knows nothing of files or pages. It loads lazily (the first question pays, constructing a
`DocQA` is free), streams windows through the model in batches sorted by length with dynamic
padding, and never holds more than one batch of tensors at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from docqa.errors import InputError, ModelLoadError
from docqa.windowing import Window

LARGE = "bert-large-uncased-whole-word-masking-finetuned-squad"
ALIASES = {"large": LARGE}
BUNDLED = Path(__file__).parent / "models" / "docqa-mini"
DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_model(name: str | None) -> str:
    """The model to load: ``name``, else ``$DOCQA_MODEL``, else the bundled reader.

    >>> resolve_model("large")
    'bert-large-uncased-whole-word-masking-finetuned-squad'
    """
    name = name or os.environ.get("DOCQA_MODEL") or ""
    if not name:
        return str(BUNDLED) if (BUNDLED / "config.json").exists() else LARGE
    return ALIASES.get(name, name)


def pick_device(device: str) -> str:
    """``auto`` → cuda, then mps, then cpu; anything else is checked and returned."""
    import torch

    if device not in DEVICES and not device.startswith("cuda:"):
        raise InputError(f"Unknown device {device!r}; use one of {', '.join(DEVICES)}.")
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but no CUDA GPU is available.")
    return device


def load_model(name: str, device: str):
    """Load tokenizer and model; every failure becomes one `ModelLoadError` sentence.

    Tests replace this function to inject a reader whose logits they control.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # load reports are for model authors, not for readers
    hf_logging.disable_progress_bar()
    local = Path(name).expanduser()
    if (name.startswith((".", "/", "~")) or local.exists()) and not (
        local / "config.json"
    ).exists():
        raise ModelLoadError(
            f"Cannot load the model: {name} is not a model folder (no config.json in it)."
        )
    source = str(local) if local.exists() else name
    try:
        tokenizer, model = _from_pretrained(source, local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors...
        if local.exists() or not _hub_reachable():
            raise ModelLoadError(
                f"Cannot load the model {name!r}: it is not a local model folder, not in the "
                "Hugging Face cache, and the hub cannot be reached. Pass --model PATH to a "
                "local model folder, or download the model on a connected machine first."
                if not local.exists()
                else f"Cannot load the model in {name} ({type(exc).__name__}: {exc})."
            ) from exc
        try:
            tokenizer, model = _from_pretrained(source, local_files_only=False)
        except Exception as exc2:
            raise ModelLoadError(
                f"Cannot load the model {name!r} from the Hugging Face hub "
                f"({type(exc2).__name__}). Check the name, or pass --model PATH to a local "
                "model folder."
            ) from exc2
    model.eval()
    return model.to(device), tokenizer


def _from_pretrained(source: str, local_files_only: bool):
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    model = AutoModelForQuestionAnswering.from_pretrained(
        source, dtype=torch.float32, local_files_only=local_files_only
    )
    return tokenizer, model


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers at all: an offline machine should fail in
    seconds with one sentence, not after a minute of download retries."""
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return False
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


class Reader:
    """A loaded question-answering model, scoring windows in batches."""

    def __init__(self, model: str | None = None, device: str = "auto", batch_size: int = 16):
        if batch_size < 1:
            raise InputError("batch_size must be at least 1.")
        if device not in DEVICES and not device.startswith("cuda:"):
            raise InputError(f"Unknown device {device!r}; use one of {', '.join(DEVICES)}.")
        self.name = resolve_model(model)
        self.device_request = device
        self.batch_size = batch_size
        self._model = None
        self._tokenizer = None
        self.device = None

    def warm_up(self) -> None:
        """Load the model now rather than on the first question."""
        if self._model is None:
            self.device = pick_device(self.device_request)
            self._model, self._tokenizer = load_model(self.name, self.device)

    @property
    def tokenizer(self):
        self.warm_up()
        return self._tokenizer

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return 0 if pad is None else pad

    def logits(self, windows: list[Window]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(window index, start_logits, end_logits)`` for every window, in batches.

        Windows are sorted by length so each batch pads only to its own longest window.
        """
        import torch

        self.warm_up()
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        with torch.inference_mode():
            for batch in _chunks(order, self.batch_size):
                ids, types, mask = self._collate([windows[i] for i in batch])
                kwargs = {"input_ids": ids, "attention_mask": mask}
                if self._uses_token_types():
                    kwargs["token_type_ids"] = types
                out = self._model(**kwargs)
                starts = out.start_logits.float().cpu().numpy()
                ends = out.end_logits.float().cpu().numpy()
                for row, i in enumerate(batch):
                    n = len(windows[i])
                    yield i, starts[row, :n], ends[row, :n]

    def _uses_token_types(self) -> bool:
        config = getattr(self._model, "config", None)
        return getattr(config, "type_vocab_size", 2) > 1

    def _collate(self, batch: list[Window]):
        import torch

        length = max(len(w) for w in batch)
        ids = np.full((len(batch), length), self.pad_id, dtype=np.int64)
        types = np.zeros((len(batch), length), dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.int64)
        for row, w in enumerate(batch):
            ids[row, : len(w)] = w.input_ids
            types[row, : len(w)] = w.token_type_ids
            mask[row, : len(w)] = 1
        return tuple(torch.from_numpy(a).to(self.device) for a in (ids, types, mask))


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
