"""The reader: a Hugging Face question-answering model that turns windows into start/end logits.

It knows nothing of files or pages. It loads lazily (the first question pays, constructing a
`DocQA` is free), streams windows through the model in batches sorted by length with dynamic
padding, and never holds more than one batch of tensors at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from docqa.errors import InputError, ModelLoadError
from docqa.windowing import Window

LARGE = "bert-large-uncased-whole-word-masking-finetuned-squad"
ALIASES = {"large": LARGE}
BUNDLED = Path(__file__).parent / "models" / "docqa-mini"
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


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


def cpu_features() -> dict[str, bool]:
    """The CPU's matrix instructions that bf16 and int8 need (all False where unknown)."""
    import torch

    caps = getattr(torch.cpu, "get_capabilities", lambda: {})()
    keys = ("avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni", "amx_int8")
    return {k: bool(caps.get(k, False)) for k in keys}


def pick_precision(precision: str, device: str) -> str:
    """Resolve ``auto`` for ``device``, and check the other choices.

    ``auto`` on a GPU is bf16 where the GPU has it, else fp16. On a CPU it is bf16 (autocast)
    where the CPU has bfloat16 dot products (AVX512-BF16 or AMX), else fp32: measured on
    bert-large (README, Benchmarks), bf16 autocast was 2-3x faster than fp32 with the same
    top answer as fp32, while int8, faster still, moved too many top answers to be a
    default (it stays one flag away). Without those instructions bf16 runs in emulation,
    slower than fp32.

    >>> pick_precision("fp32", "cpu")
    'fp32'
    """
    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    if precision == "int8" and device != "cpu":
        raise InputError(f"int8 runs on the CPU, not on {device}; on a GPU use bf16 or fp16.")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device != "cpu":
        return "fp32"
    cpu = cpu_features()
    return "bf16" if cpu["avx512_bf16"] or cpu["amx_bf16"] else "fp32"


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
    resident: bert-base in bf16 held 885 MB instead of about 550.
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
def _quiet_torchao():
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
    fbgemm kernels ran bert-large 2.6x faster than fp32, while torchao's int8 linear (without
    ``torch.compile``) ran slower than fp32 (benchmarks/choices.py). torchao where torch's is
    gone. Weights are quantized per output channel: per-tensor scales moved answers more.
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
    with _quiet_torchao():
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        keep = set(names)
        quantize_(
            model,
            Int8DynamicActivationInt8WeightConfig(),
            filter_fn=lambda module, fqn: fqn in keep,
        )
    return model


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
        what = "has no config.json" if local.exists() else "does not exist"
        raise ModelLoadError(
            f"Cannot load the model: {name} {what}; pass --model PATH to a local model folder, "
            "or download the model on a connected machine first."
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

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        batch_size: int = 16,
        precision: str = "auto",
    ):
        if batch_size < 1:
            raise InputError("batch_size must be at least 1.")
        if device not in DEVICES and not device.startswith("cuda:"):
            raise InputError(f"Unknown device {device!r}; use one of {', '.join(DEVICES)}.")
        if precision not in PRECISIONS:
            raise InputError(
                f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}."
            )
        self.name = resolve_model(model)
        self.device_request = device
        self.precision_request = precision
        self.batch_size = batch_size
        self._model = None
        self._tokenizer = None
        self.device = None
        self.precision = None  # what ``precision_request`` resolved to, once loaded

    def warm_up(self) -> None:
        """Load the model now rather than on the first question."""
        if self._model is None:
            device = pick_device(self.device_request)
            precision = pick_precision(self.precision_request, device)
            with _quiet_torchao():
                model, self._tokenizer = load_model(self.name, device)
                self._model = apply_precision(model, precision, device)
            self.device, self.precision = device, precision

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
        # window's logits would depend on the other windows beside it (on bert-large, top
        # spans equal to fp32's fell from 71% at batch 4 to 29% at batch 16). One window per
        # forward keeps every answer a function of its own window.
        size = 1 if self.precision == "int8" else self.batch_size
        with torch.inference_mode(), self._autocast():
            for batch in _chunks(order, size):
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

    def _autocast(self):
        import contextlib

        import torch

        if self.precision == "bf16" and self.device == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

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
