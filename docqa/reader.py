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


def load_model(name: str, device: str, allow_pickle: bool = False):
    """Load tokenizer and model; every failure becomes one `ModelLoadError` sentence.

    A model is input from a stranger: no code it ships is ever run (``trust_remote_code`` is
    off, and a folder that asks for its own code is refused before transformers opens it),
    and its weights load from safetensors only. ``allow_pickle`` also accepts a pickle
    ``pytorch_model.bin``, read with ``torch.load(weights_only=True)``: tensors and plain
    types, never objects.

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
    folder = local if local.exists() else cached_model_folder(name)
    if folder is not None:
        check_model_folder(folder, allow_pickle=allow_pickle)
    source = str(local) if local.exists() else name
    try:
        tokenizer, model = _from_pretrained(source, True, allow_pickle)
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors...
        if local.exists() or not _hub_reachable():
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
            refusal = _refusal(name, exc2, allow_pickle)
            raise ModelLoadError(
                refusal
                or f"Cannot load the model {name!r} from the Hugging Face hub "
                f"({type(exc2).__name__}). Check the name, or pass --model PATH to a local "
                "model folder."
            ) from exc2
    model.eval()
    return model.to(device), tokenizer


def _from_pretrained(source: str, local_files_only: bool, allow_pickle: bool = False):
    import torch
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


def safe_load_options(allow_pickle: bool = False) -> dict:
    """``from_pretrained`` options that load weights without running anything from the model.

    ``use_safetensors=True`` refuses a model without safetensors weights; ``None`` prefers
    safetensors and falls back to a pickle ``.bin``, which ``weights_only=True`` reads as
    tensors and plain types only.
    """
    return {
        "trust_remote_code": False,
        "use_safetensors": None if allow_pickle else True,
        "weights_only": True,
    }


CODE_REFUSAL = "docqa does not run code shipped with a model"
PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
SAFE_NAMES = ("model.safetensors", "model.safetensors.index.json")


def check_model_folder(folder: Path, allow_pickle: bool = False, weights: bool = True) -> None:
    """Refuse a model folder that asks for its own code, or whose weights are only a pickle.

    transformers is told the same (``safe_load_options``); checking here first means the
    user gets one sentence that says why, and no custom module is ever imported, whatever
    transformers' version does with ``auto_map``. ``weights=False`` checks a folder whose
    tokenizer alone is loaded.

    >>> check_model_folder(BUNDLED)
    """
    for file in ("config.json", "tokenizer_config.json"):
        settings = _json_object(folder / file)
        if settings.get("auto_map"):
            raise ModelLoadError(
                f"{CODE_REFUSAL}: {folder} asks for its own code (auto_map in {file}); use a "
                "model whose architecture transformers knows."
            )
    config = _json_object(folder / "config.json")
    kind = config.get("model_type")
    if isinstance(kind, str) and kind and not _known_model_type(kind):
        raise ModelLoadError(
            f"{CODE_REFUSAL}, and the model in {folder} is of a type transformers does not know "
            f"({kind!r}); use a model whose architecture transformers knows."
        )
    if not weights or allow_pickle:
        return
    named = config.get("transformers_weights")
    if isinstance(named, str) and not named.endswith((".safetensors", ".safetensors.index.json")):
        # transformers loads a file named here even when told to use safetensors only.
        raise _pickle_refusal(folder, named)
    if not any((folder / n).exists() for n in SAFE_NAMES):
        pickles = [n for n in PICKLE_NAMES if (folder / n).exists()]
        if pickles:
            raise _pickle_refusal(folder, pickles[0])


def _pickle_refusal(folder: Path | str, file: str) -> ModelLoadError:
    return ModelLoadError(
        f"Cannot load the model in {folder}: its weights are a pickle file ({file}) and docqa "
        "loads safetensors weights only; convert the model to safetensors, or pass "
        "--allow-pickle to read the pickle as plain tensors (torch.load weights_only=True)."
    )


def _json_object(path: Path) -> dict:
    import json

    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or unreadable: transformers reports it when it loads the folder
    return value if isinstance(value, dict) else {}


def _known_model_type(kind: str) -> bool:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return kind in CONFIG_MAPPING


def cached_model_folder(name: str) -> Path | None:
    """The snapshot folder of hub model ``name`` in the Hugging Face cache, if it is there."""
    try:
        from huggingface_hub import try_to_load_from_cache

        for file in ("config.json", "tokenizer_config.json"):
            found = try_to_load_from_cache(name, file)
            if isinstance(found, str):
                return Path(found).parent
    except Exception:  # not a valid repo id, or no cache: nothing to check here
        return None
    return None


def load_failure(name: str, exc: BaseException) -> str:
    """One sentence for a local model folder that transformers could not load.

    A pickle weights file that ``torch.load(weights_only=True)`` refused (damaged, or holding
    objects rather than tensors) gets its own sentence instead of torch's page of advice.
    """
    if _asks_for_code(exc):
        return _code_refusal(name)
    if _raised_by_torch_load(exc):
        return (
            f"Cannot load the model in {name}: its pickle weights file cannot be read as plain "
            "tensors (it is damaged, or holds objects), and docqa does not unpickle anything "
            "else."
        )
    return f"Cannot load the model in {name} ({type(exc).__name__}: {first_line(exc)})."


def _refusal(name: str, exc: BaseException, allow_pickle: bool) -> str | None:
    """The sentence for a hub download that transformers refused for docqa's safety settings."""
    if _asks_for_code(exc):
        return _code_refusal(name)
    if not allow_pickle and "file named model.safetensors" in _one_line(exc):
        return str(_pickle_refusal(name, "pytorch_model.bin"))
    if _raised_by_torch_load(exc):
        return load_failure(name, exc)
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _asks_for_code(exc: BaseException) -> bool:
    """transformers' refusal of a model's own code when ``trust_remote_code`` is off."""
    text = str(exc)
    return "trust_remote_code" in text or "custom code" in text


def _code_refusal(name: str) -> str:
    return (
        f"{CODE_REFUSAL}: {name} asks for its own code; use a model whose architecture "
        "transformers knows."
    )


_TORCH_LOAD = ("torch/serialization.py", "torch/_weights_only_unpickler.py")


def _raised_by_torch_load(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it came from) was raised inside ``torch.load``."""
    import pickle
    import traceback

    while exc is not None:
        if isinstance(exc, pickle.UnpicklingError):
            return True
        frames = traceback.extract_tb(exc.__traceback__)
        if any(f.filename.replace("\\", "/").endswith(_TORCH_LOAD) for f in frames):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's text, cut to ``limit`` characters: messages stay one
    sentence even when a library explains itself over a page."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


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


# Models whose position ids start after the padding index (fairseq's convention): the first
# ``pad_token_id + 1`` of their position embeddings are never used by a token.
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer")


def max_positions(config) -> int | None:
    """The longest input ``config``'s position embeddings cover, or None where unbounded."""
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or getattr(config, "position_biased_input", True) is False:
        return None  # no absolute positions (DeBERTa's relative attention): no fixed limit
    if getattr(config, "model_type", None) in _OFFSET_POSITIONS:
        limit -= (getattr(config, "pad_token_id", None) or 0) + 1
    return limit


def check_window_length(model, max_seq_len: int | None, name: str) -> None:
    """Refuse windows longer than the model's position embeddings (a torch indexing error,
    deep in the first forward pass, otherwise)."""
    limit = max_positions(getattr(model, "config", None))
    if max_seq_len is not None and limit is not None and max_seq_len > limit:
        raise InputError(
            f"max_seq_len {max_seq_len} is longer than the {limit} tokens the model {name} can "
            f"read (max_position_embeddings); use --max-seq-len {limit} or less."
        )


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
            with _quiet_torchao():
                model, tokenizer = load_model(self.name, device, **options)
                check_window_length(model, self.max_seq_len, self.name)
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
