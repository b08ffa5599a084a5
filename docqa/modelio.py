"""What the reader and the trainer share about models: loading them offline-first and
safely, the device and precision they run at, the longest window they read, and the padded
batches they are fed.

Named for models' input and output, not ``models``: ``docqa/models/`` is the folder of the
bundled reader. Nothing here loads a model; `docqa.reader.load_model` and `docqa.train` do,
with these checks and options. torch and transformers are imported where they are needed,
so importing this module stays cheap.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from docqa.errors import InputError, ModelLoadError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")

# transformers imports its classes lazily, on first use. Two threads loading at once (the
# reader loads in the background while the index makes its tokenizer) can meet inside those
# imports, and Python then hands one of them a module still being initialised ("cannot import
# name 'AutoTokenizer' from 'transformers'"). Every load holds this lock: loads take turns.
LOADING = threading.RLock()


def check_device(device: str) -> str:
    """``device`` if it names a device docqa can run on (whether it is there is
    `pick_device`'s question).

    >>> check_device("cuda:1")
    'cuda:1'
    """
    if device not in DEVICES and not device.startswith("cuda:"):
        raise InputError(f"Unknown device {device!r}; use one of {', '.join(DEVICES)}.")
    return device


def check_precision(precision: str) -> str:
    """``precision`` if it is one of `PRECISIONS`.

    >>> check_precision("bf16")
    'bf16'
    """
    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    return precision


def pick_device(device: str) -> str:
    """``auto`` → cuda, then mps, then cpu; anything else is checked and returned."""
    import torch

    check_device(device)
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
    where the CPU has bfloat16 dot products (AVX512-BF16 or AMX), else fp32: bf16 autocast
    was faster than fp32 with the same top answers, while int8, faster still, moved too many
    top answers to be a default (it stays one flag away). Without those instructions bf16
    runs in emulation, slower than fp32. The figures: README, Benchmarks (``python
    benchmarks/speed.py``, results in ``benchmarks/results/cpu-2core-*.json`` and
    ``agreement-*.json``).

    >>> pick_precision("fp32", "cpu")
    'fp32'
    """
    check_precision(precision)
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

    >>> from docqa.reader import BUNDLED
    >>> check_model_folder(BUNDLED)  # the bundled reader: safetensors, no code of its own
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
    with LOADING:
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
    if raised_by_torch_load(exc):
        return (
            f"Cannot load the model in {name}: its pickle weights file cannot be read as plain "
            "tensors (it is damaged, or holds objects), and docqa does not unpickle anything "
            "else."
        )
    return f"Cannot load the model in {name} ({type(exc).__name__}: {first_line(exc)})."


def refusal(name: str, exc: BaseException, allow_pickle: bool) -> str | None:
    """The sentence for a hub download that transformers refused for docqa's safety settings,
    or None where it failed for another reason."""
    if _asks_for_code(exc):
        return _code_refusal(name)
    if not allow_pickle and "file named model.safetensors" in _one_line(exc):
        return str(_pickle_refusal(name, "pytorch_model.bin"))
    if raised_by_torch_load(exc):
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


def raised_by_torch_load(exc: BaseException) -> bool:
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


def hub_reachable(timeout: float = 3.0) -> bool:
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


def check_window_length(config, max_seq_len: int | None, model: str) -> None:
    """Refuse windows longer than the position embeddings of the model ``config`` describes
    (a torch indexing error, deep in the first forward pass, otherwise); ``model`` says which
    model in the message.

    >>> from types import SimpleNamespace
    >>> check_window_length(SimpleNamespace(max_position_embeddings=512), 384, "the model m")
    >>> short = SimpleNamespace(max_position_embeddings=64)
    >>> check_window_length(short, 384, "the model m")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    docqa.errors.InputError: max_seq_len 384 is longer than the 64 tokens the model m can read ...
    """
    limit = max_positions(config)
    if max_seq_len is not None and limit is not None and max_seq_len > limit:
        raise InputError(
            f"max_seq_len {max_seq_len} is longer than the {limit} tokens {model} can read "
            f"(max_position_embeddings); use --max-seq-len {limit} or less."
        )


def collate(rows: Sequence, pad_id: int, device: str = "cpu"):
    """``(input_ids, token_type_ids, attention_mask)``: ``rows`` padded to the longest of them,
    as int64 tensors on ``device``.

    ``rows`` are anything with ``input_ids`` and ``token_type_ids`` arrays: the windows the
    reader reads, or the labelled windows the trainer learns from.

    >>> from types import SimpleNamespace as Row
    >>> rows = [Row(input_ids=[101, 7, 102], token_type_ids=[0, 1, 1]),
    ...         Row(input_ids=[101, 102], token_type_ids=[0, 1])]
    >>> ids, types, mask = collate(rows, pad_id=0)
    >>> ids.tolist(), types.tolist(), mask.tolist()
    ([[101, 7, 102], [101, 102, 0]], [[0, 1, 1], [0, 1, 0]], [[1, 1, 1], [1, 1, 0]])
    """
    import torch

    length = max(len(r.input_ids) for r in rows)
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    types = np.zeros((len(rows), length), dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for row, r in enumerate(rows):
        n = len(r.input_ids)
        ids[row, :n] = r.input_ids
        types[row, :n] = r.token_type_ids
        mask[row, :n] = 1
    return tuple(torch.from_numpy(a).to(device) for a in (ids, types, mask))
