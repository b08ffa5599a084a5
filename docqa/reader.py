"""The reader: a Hugging Face question-answering model that turns windows into start/end logits.

It knows nothing of files or pages. It loads lazily (the first question pays, constructing a
`DocQA` is free), streams windows through the model in batches sorted by length with dynamic
padding, and never holds more than one batch of tensors at a time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from docqa.errors import InputError, ModelLoadError
from docqa.modelio import (
    LOADING,
    cached_model_folder,
    check_device,
    check_model_folder,
    check_precision,
    check_window_length,
    collate,
    hub_reachable,
    load_failure,
    pick_device,
    pick_precision,
    refusal,
    safe_load_options,
)
from docqa.windowing import Window

LARGE = "bert-large-uncased-whole-word-masking-finetuned-squad"
ALIASES = {"large": LARGE}
BUNDLED = Path(__file__).parent / "models" / "docqa-mini"


def resolve_model(name: str | None) -> str:
    """The model to load: ``name``, else ``$DOCQA_MODEL``, else the bundled reader.

    >>> resolve_model("large")
    'bert-large-uncased-whole-word-masking-finetuned-squad'
    """
    name = name or os.environ.get("DOCQA_MODEL") or ""
    if not name:
        return str(BUNDLED) if (BUNDLED / "config.json").exists() else LARGE
    return ALIASES.get(name, name)


def apply_precision(model, precision: str, device: str):
    """Cast or quantize a loaded fp32 model for ``precision`` (resolved, never ``auto``).

    On a CPU, bf16 runs under autocast (`Reader.logits`): matrix products in bfloat16,
    layer norms, embeddings and the residual stream in fp32. That moved fewer answers than a
    model cast to bfloat16 throughout, at the same speed. The Linear layers' weights are cast
    to bfloat16 once, here, since autocast would round them to exactly the same values on
    every call (for a one-window question, that cast cost more than the forward pass).
    On a GPU, bf16 and fp16 cast the whole model. int8 quantizes every Linear layer but the
    answer head dynamically: int8 weights per output channel, activations quantized at run
    time (`_quantize_int8`).
    """
    import torch

    if precision in ("bf16", "fp16") and device != "cpu":
        return model.to(torch.bfloat16 if precision == "bf16" else torch.float16)
    if precision == "bf16":
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.to(torch.bfloat16)
        return _own_storage(model)
    if precision == "int8":
        return _own_storage(_quantize_int8(model))
    return model


def _own_storage(model):
    """Copy the tensors left in fp32 into memory of their own.

    Weights load as views of one memory map of the safetensors file, and the map lives as long
    as any of them does. After the Linear weights are replaced (cast or quantized), the
    embeddings and layer norms would keep the whole map, fp32 Linear weights included,
    resident (peak and resident memory: README, Benchmarks; ``python benchmarks/speed.py``).
    """
    import torch

    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.dtype == torch.float32:
            tensor.data = tensor.data.clone()
    return model


def _has_torchao() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchao") is not None


@contextmanager
def quiet_torchao():
    """Import torchao without its log lines about CUDA-only kernels and deprecated pytree
    registrations: they say nothing to a reader of documents. transformers imports torchao
    on every model load when it is installed, so loading goes through here too."""
    import logging

    quiet = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        if _has_torchao():
            import torchao  # noqa: F401
        yield
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)


def _torch_quantize_dynamic():
    """torch's own dynamic quantization (fbgemm/oneDNN int8 kernels), or None where a
    future torch has removed it."""
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError:  # pragma: no cover - a future torch without it
        return None
    return quantize_dynamic, per_channel_dynamic_qconfig


def _quantize_int8(model):
    """Dynamic int8 for every Linear layer but the answer head.

    torch's ``quantize_dynamic`` first: it is deprecated in favour of torchao, but on CPUs its
    fbgemm kernels ran bert-large faster than fp32, while torchao's int8 linear (without
    ``torch.compile``) ran slower than fp32 (README, Benchmarks, the precision list;
    ``python benchmarks/choices.py``). torchao where torch's is gone. Weights are quantized
    per output channel: per-tensor scales moved answers more.
    """
    import warnings

    import torch

    # The answer head is one tiny matrix (hidden -> 2) whose outputs are the logits
    # themselves: quantizing it saves nothing and moves every score.
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.endswith("qa_outputs")
    ]
    for name in names:
        # The quantized layer keeps this very bias tensor: a copy lets the weights file go.
        bias = model.get_submodule(name).bias
        if bias is not None:
            bias.data = bias.data.clone()
    torch_dynamic = _torch_quantize_dynamic()
    if torch_dynamic is not None:
        quantize_dynamic, qconfig = torch_dynamic
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its deprecation notices, on every call
            return quantize_dynamic(
                model, dict.fromkeys(names, qconfig), dtype=torch.qint8, inplace=True
            )
    if not _has_torchao():
        raise InputError("int8 needs torchao with this version of torch: pip install torchao.")
    with quiet_torchao():
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        keep = set(names)
        quantize_(
            model,
            Int8DynamicActivationInt8WeightConfig(),
            filter_fn=lambda module, fqn: fqn in keep,
        )
    return model


def load_model(name: str, device: str, allow_pickle: bool = False):
    """Load tokenizer and model; every failure becomes one `ModelLoadError` sentence.

    A model is input from a stranger: no code it ships is ever run (``trust_remote_code`` is
    off, and a folder that asks for its own code is refused before transformers opens it),
    and its weights load from safetensors only. ``allow_pickle`` also accepts a pickle
    ``pytorch_model.bin``, read with ``torch.load(weights_only=True)``: tensors and plain
    types, never objects.

    Tests replace this function to inject a reader whose logits they control.
    """
    with LOADING:
        from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # load reports are for model authors, not for readers
    hf_logging.disable_progress_bar()
    local = Path(name).expanduser()
    if (name.startswith((".", "/", "~")) or local.exists()) and not (
        local / "config.json"
    ).exists():
        what = "has no config.json" if local.exists() else "does not exist"
        raise ModelLoadError(
            f"Cannot load the model: {name} {what}; pass --model PATH to a local model folder, "
            "or download the model on a connected machine first."
        )
    folder = local if local.exists() else cached_model_folder(name)
    if folder is not None:
        check_model_folder(folder, allow_pickle=allow_pickle)
    source = str(local) if local.exists() else name
    try:
        tokenizer, model = _from_pretrained(source, True, allow_pickle)
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors...
        if local.exists() or not hub_reachable():
            raise ModelLoadError(
                f"Cannot load the model {name!r}: it is not a local model folder, not in the "
                "Hugging Face cache, and the hub cannot be reached. Pass --model PATH to a "
                "local model folder, or download the model on a connected machine first."
                if not local.exists()
                else load_failure(name, exc)
            ) from exc
        try:
            tokenizer, model = _from_pretrained(source, False, allow_pickle)
        except Exception as exc2:
            refused = refusal(name, exc2, allow_pickle)
            raise ModelLoadError(
                refused
                or f"Cannot load the model {name!r} from the Hugging Face hub "
                f"({type(exc2).__name__}). Check the name, or pass --model PATH to a local "
                "model folder."
            ) from exc2
    model.eval()
    return model.to(device), tokenizer


def _from_pretrained(source: str, local_files_only: bool, allow_pickle: bool = False):
    import torch

    with LOADING:
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(
            source, local_files_only=local_files_only, trust_remote_code=False
        )
        model = AutoModelForQuestionAnswering.from_pretrained(
            source,
            dtype=torch.float32,
            local_files_only=local_files_only,
            **safe_load_options(allow_pickle),
        )
    return tokenizer, model


class Reader:
    """A loaded question-answering model, scoring windows in batches."""

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        batch_size: int = 16,
        precision: str = "auto",
        allow_pickle: bool = False,
        max_seq_len: int | None = None,
    ):
        if batch_size < 1:
            raise InputError("batch_size must be at least 1.")
        check_device(device)
        check_precision(precision)
        self.name = resolve_model(model)
        self.device_request = device
        self.precision_request = precision
        self.batch_size = batch_size
        self.allow_pickle = allow_pickle
        self.max_seq_len = max_seq_len  # the longest window it will be given, checked on load
        self._model = None
        self._loading = threading.Lock()  # one load, whichever thread asks first
        self._tokenizer = None
        self.device = None
        self.precision = None  # what ``precision_request`` resolved to, once loaded

    def warm_up(self) -> None:
        """Load the model now rather than on the first question."""
        if self._model is not None:
            return
        with self._loading:
            if self._model is not None:
                return
            device = pick_device(self.device_request)
            precision = pick_precision(self.precision_request, device)
            # Only a non-default setting is passed on: stand-in loaders in tests take two.
            options = {"allow_pickle": True} if self.allow_pickle else {}
            with quiet_torchao():
                model, tokenizer = load_model(self.name, device, **options)
                config = getattr(model, "config", None)
                check_window_length(config, self.max_seq_len, f"the model {self.name}")
                model = apply_precision(model, precision, device)
            # The model last: a thread that finds it set uses the tokenizer and device too.
            self._tokenizer, self.device, self.precision = tokenizer, device, precision
            self._model = model

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
        # Dynamic int8 quantizes each input tensor with one activation scale: in a batch, a
        # window's logits would depend on the other windows beside it (on bert-large, fewer
        # top spans equal to fp32's the larger the batch: README, Benchmarks, the precision
        # list). One window per forward keeps every answer a function of its own window.
        size = 1 if self.precision == "int8" else self.batch_size
        with torch.inference_mode(), self._autocast():
            for batch in _chunks(order, size):
                ids, types, mask = collate([windows[i] for i in batch], self.pad_id, self.device)
                kwargs = {"input_ids": ids, "attention_mask": mask}
                if self._uses_token_types():
                    kwargs["token_type_ids"] = types
                out = self._model(**kwargs)
                starts = out.start_logits.float().cpu().numpy()
                ends = out.end_logits.float().cpu().numpy()
                for row, i in enumerate(batch):
                    n = len(windows[i])
                    yield i, starts[row, :n], ends[row, :n]

    def _autocast(self):
        import contextlib

        import torch

        if self.precision == "bf16" and self.device == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _uses_token_types(self) -> bool:
        config = getattr(self._model, "config", None)
        return getattr(config, "type_vocab_size", 2) > 1


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
