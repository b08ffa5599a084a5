"""Fine-tune an encoder into an extractive reader on SQuAD-format data, windowed as docqa reads.

Training windows are cut exactly as `docqa.windowing` cuts them at question time. With
``level="document"`` they are cut from whole articles (paragraphs joined in order), and each
question gets its answer window plus ``negatives`` windows that do not hold the answer,
labelled [CLS]. A reader trained only on answer-bearing paragraphs has never seen a window
without the answer and is confidently wrong in them; the [CLS] negatives teach it to say so
(Clark & Gardner 2018; Wang et al. 2019), which is what document-level scores reward.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from docqa.errors import InputError, ModelLoadError
from docqa.modelio import check_window_length, collate
from docqa.squad import Article, gold_spans, join_article, question_gold_spans, read_squad
from docqa.windowing import (
    TokenizedText,
    Window,
    WindowSpec,
    make_windows,
    pair_template,
    tokenize_question,
    tokenize_text,
)

CHECKPOINT = "checkpoint"


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run; saved beside the model so it can be reproduced."""

    train_path: str
    base: str
    out: str
    epochs: int = 1
    learning_rate: float = 1e-4
    batch_size: int = 32
    # Shorter windows than reading's (`WindowSpec`) train faster; the bundled reader's recipe
    # starts at this length (docqa/models/docqa-mini/README.md).
    max_seq_len: int = 256
    doc_stride: int = WindowSpec.doc_stride
    max_question_len: int = WindowSpec.max_question_len
    seed: int = 0
    level: Literal["document", "paragraph"] = "document"
    negatives: int = 1  # answer-less [CLS] windows per question, document level only
    # Shared normalisation (Clark & Gardner 2018): besides each window's own softmax, one
    # softmax over the context tokens of all of a question's windows, so a span's raw logit
    # means the same in every window. docqa ranks raw logits across windows; this trains that.
    shared_norm: bool = False
    warmup: float = 0.1
    max_grad_norm: float = 1.0
    save_every: int = 100  # optimizer steps between resumable checkpoints
    bf16: bool = False  # autocast matmuls to bfloat16 (CPUs with AVX512-BF16, GPUs)
    # Dropout on attention probabilities forces PyTorch's SDPA off its fused kernels onto the
    # math path, slower per training step on CPU (docqa/models/docqa-mini/README.md, Recipe).
    # Off by default.
    attention_dropout: float = 0.0
    eval_path: str | None = None
    limit: int | None = None  # first N articles only, for quick trials
    # Also read a base whose weights are only a pickle .bin (as tensors, weights_only=True).
    allow_pickle: bool = False

    def __post_init__(self):
        self.window_spec  # noqa: B018 - checks the window shape as reading does
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise InputError("epochs, batch size and learning rate must be positive.")
        if self.negatives < 0:
            raise InputError("negatives must be 0 or more.")

    @property
    def window_spec(self) -> WindowSpec:
        """The shape of the training windows, checked by the same `WindowSpec` as reading."""
        return WindowSpec(self.max_seq_len, self.doc_stride, self.max_question_len)


@dataclass(frozen=True)
class Feature:
    """One training window and its label: answer token positions, or the [CLS] position."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    start: int
    end: int
    context: tuple[int, int] = (0, 0)  # [first, last + 1) positions of context tokens
    group: int = -1  # the question it was cut for: shared normalisation spans a group


@dataclass(frozen=True)
class TrainProgress:
    epoch: int
    step: int
    total_steps: int
    loss: float


def answer_tokens(text: TokenizedText, char_start: int, char_end: int) -> tuple[int, int] | None:
    """First and last document token overlapping the character range, or None."""
    first = int(np.searchsorted(text.ends, char_start, side="right"))
    last = int(np.searchsorted(text.starts, char_end, side="left")) - 1
    if first >= len(text) or last < first:
        return None
    return first, last


def label_window(window: Window, tokens: tuple[int, int] | None, cls_index: int) -> Feature:
    """Label a window with the answer's positions if it holds the whole answer, else [CLS]."""
    start, end = cls_index, cls_index
    if tokens is not None and window.token_start <= tokens[0] and tokens[1] < window.token_end:
        start = window.context_offset + tokens[0] - window.token_start
        end = window.context_offset + tokens[1] - window.token_start
    context = (window.context_offset, window.context_offset + window.token_end - window.token_start)
    return Feature(window.input_ids, window.token_type_ids, start, end, context)


def _overlap_scores(windows: list[Window], text: TokenizedText, question_ids: list[int]):
    """How many rare question tokens each window holds: picks negatives a retriever would pick."""
    df = Counter()
    sets = [set(text.ids[w.token_start : w.token_end].tolist()) for w in windows]
    for s in sets:
        df.update(s)
    idf = {t: math.log((len(windows) + 1) / (df[t] + 0.5)) for t in set(question_ids)}
    return [sum(idf[t] for t in set(question_ids) if t in s) for s in sets]


def make_features(
    tokenizer, articles: list[Article], config: TrainConfig, rng: random.Random
) -> list[Feature]:
    """Windows and labels for every question, cut the way docqa reads."""
    template = pair_template(tokenizer)
    features: list[Feature] = []
    for article in articles:
        if config.level == "document":
            text, _ = join_article(article)
            units = [(text, article.questions, gold_spans(article))]
        else:
            units = []
            for p, para in enumerate(article.paragraphs):
                qs = tuple(q for q in article.questions if q.paragraph_index == p)
                golds = {q.id: question_gold_spans(q) for q in qs}
                units.append((para, qs, golds))
        for text, questions, golds in units:
            tokens = tokenize_text(tokenizer, text)
            for q in questions:
                q_ids = tokenize_question(tokenizer, q.question, config.max_question_len)
                windows = make_windows(
                    template, q_ids, tokens, 0, config.max_seq_len, config.doc_stride
                )
                spans = golds[q.id]
                answer = answer_tokens(tokens, *spans[0]) if spans else None
                labelled = [label_window(w, answer, template.cls_index) for w in windows]
                positives = [i for i, f in enumerate(labelled) if f.start != template.cls_index]
                negatives = [i for i, f in enumerate(labelled) if f.start == template.cls_index]
                chosen: list[int] = []
                if positives:
                    # The window where the answer has most context, as the reader will prefer.
                    chosen.append(max(positives, key=lambda i: _margin(windows[i], answer)))
                k = config.negatives + (0 if positives else 1)
                # k == 0 (negatives=0, answer found): no negative, not even the hard one.
                if config.level == "document" and negatives and k > 0:
                    scores = _overlap_scores(windows, tokens, q_ids)
                    hard = max(negatives, key=lambda i: scores[i])
                    rest = [i for i in negatives if i != hard]
                    chosen.append(hard)
                    chosen.extend(rng.sample(rest, min(k - 1, len(rest))))
                group = features[-1].group + 1 if features else 0
                features.extend(replace(labelled[i], group=group) for i in chosen)
    return features


def _margin(window: Window, answer: tuple[int, int]) -> int:
    """Tokens of context on the answer's thinner side within ``window``."""
    return min(answer[0] - window.token_start, window.token_end - 1 - answer[1])


def epoch_batches(features: list[Feature], config: TrainConfig, epoch: int) -> list[list[int]]:
    """Feature indices of each batch of ``epoch``.

    The order depends only on the seed and the epoch, so resuming mid-epoch continues with
    exactly the batches that were not yet seen. With shared normalisation a question's windows
    are kept in one batch, and a batch holds about ``batch_size`` windows.
    """
    rng = random.Random(config.seed * 1000 + epoch)
    if not config.shared_norm:
        order = list(range(len(features)))
        rng.shuffle(order)
        return [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    groups: dict[int, list[int]] = {}
    for i, f in enumerate(features):
        groups.setdefault(f.group, []).append(i)
    members = list(groups.values())
    rng.shuffle(members)
    per_batch = max(1, round(config.batch_size * len(members) / len(features)))
    return [
        [i for group in members[g : g + per_batch] for i in group]
        for g in range(0, len(members), per_batch)
    ]


def shared_norm_loss(logits, batch: list[Feature], which: Literal["start", "end"]):
    """Cross-entropy of one softmax over the context tokens of all windows of each question.

    Pure in its inputs: ``logits`` is (windows, positions), ``batch`` the features in rows.
    Questions whose answer is in none of their windows are left out (nothing to point at).
    """
    import torch

    masked = torch.full_like(logits, torch.finfo(logits.dtype).min)
    for row, f in enumerate(batch):
        masked[row, f.context[0] : f.context[1]] = logits[row, f.context[0] : f.context[1]]
    rows_of: dict[int, list[int]] = {}
    for row, f in enumerate(batch):
        rows_of.setdefault(f.group, []).append(row)
    losses = []
    width = logits.shape[1]
    for rows in rows_of.values():
        gold = [(k, getattr(batch[r], which)) for k, r in enumerate(rows)]
        gold = [(k, pos) for k, pos in gold if batch[rows[k]].context[0] <= pos]
        if not gold:
            continue
        k, pos = gold[0]
        flat = masked[rows].reshape(1, -1)
        losses.append(torch.nn.functional.cross_entropy(flat, torch.tensor([k * width + pos])))
    if not losses:
        return logits.sum() * 0.0
    return torch.stack(losses).mean()


def train(config: TrainConfig, progress: Callable[[TrainProgress], None] | None = None) -> Path:
    """Fine-tune ``config.base`` on ``config.train_path``; returns the output folder.

    Resumes from ``OUT/checkpoint`` when one exists (same config), so an interrupted run
    loses at most ``save_every`` steps.

    >>> config = TrainConfig("train.json", base="path/to/encoder", out="runs/reader")
    >>> train(config)  # doctest: +SKIP
    """
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForQuestionAnswering,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )

    out = Path(config.out)
    ckpt = out / CHECKPOINT
    out.mkdir(parents=True, exist_ok=True)
    random.seed(config.seed)
    torch.manual_seed(config.seed)

    # The data first: a wrong path should not wait on a model load (or a hub check) to be told.
    articles = read_squad(config.train_path)
    resume = (ckpt / "state.pt").exists()
    source = str(ckpt) if resume else config.base
    state = _read_state(ckpt) if resume else None
    tokenizer = _load_pretrained(
        AutoTokenizer.from_pretrained, config.base, weights=False, trust_remote_code=False
    )
    model_config = _load_pretrained(
        AutoConfig.from_pretrained, source, weights=False, trust_remote_code=False
    )
    # Before the windows are cut: a window longer than the position embeddings would only
    # fail in the first forward pass, as a torch indexing error.
    check_window_length(model_config, config.max_seq_len, source)
    if config.limit:
        articles = articles[: config.limit]
    features = make_features(tokenizer, articles, config, random.Random(config.seed))
    if not features:
        raise InputError(f"No training windows could be made from {config.train_path}.")
    steps_per_epoch = len(epoch_batches(features, config, 0))
    total_steps = steps_per_epoch * config.epochs

    if hasattr(model_config, "attention_probs_dropout_prob"):
        model_config.attention_probs_dropout_prob = config.attention_dropout
    model = _load_pretrained(
        AutoModelForQuestionAnswering.from_pretrained,
        source,
        allow_pickle=config.allow_pickle,
        config=model_config,
        dtype=torch.float32,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup * total_steps), total_steps
    )
    step = 0 if state is None else _restore(state, ckpt, optimizer, scheduler)

    pad_id = tokenizer.pad_token_id or 0
    model.train()
    started = time.monotonic()
    log = (out / "train_log.jsonl").open("a")
    while step < total_steps:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        batches = epoch_batches(features, config, epoch)
        for b in range(in_epoch, steps_per_epoch):
            batch = [features[i] for i in batches[b]]
            ids, types, mask = collate(batch, pad_id)
            starts = torch.tensor([f.start for f in batch])
            ends = torch.tensor([f.end for f in batch])
            with torch.autocast(
                "cpu" if not torch.cuda.is_available() else "cuda",
                dtype=torch.bfloat16,
                enabled=config.bf16,
            ):
                outputs = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
            start_logits, end_logits = outputs.start_logits.float(), outputs.end_logits.float()
            loss_fn = torch.nn.functional.cross_entropy
            loss = (loss_fn(start_logits, starts) + loss_fn(end_logits, ends)) / 2
            if config.shared_norm:
                loss = (
                    loss
                    + (
                        shared_norm_loss(start_logits, batch, "start")
                        + shared_norm_loss(end_logits, batch, "end")
                    )
                    / 2
                )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            record = TrainProgress(epoch, step, total_steps, loss.item())
            log.write(
                json.dumps({**asdict(record), "s": round(time.monotonic() - started, 1)}) + "\n"
            )
            log.flush()
            if progress:
                progress(record)
            if step % config.save_every == 0 or b == steps_per_epoch - 1:
                _save_checkpoint(model, tokenizer, optimizer, scheduler, step, ckpt)
    log.close()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "docqa_train.json").write_text(
        json.dumps({**asdict(config), "features": len(features), "steps": total_steps}, indent=2)
    )
    return out


def _load_pretrained(load, source: str, weights: bool = True, allow_pickle: bool = False, **kwargs):
    """``load(source)``; any failure becomes one `ModelLoadError` sentence, not a traceback.

    Local files and the Hugging Face cache first; the hub only when it answers, so an offline
    machine fails in seconds instead of after a minute of download retries (as `load_model`).
    A folder that asks for its own code, or (``weights``) holds only pickle weights without
    ``allow_pickle``, is refused before transformers opens it, as `load_model` does; model
    weights load with `safe_load_options`.
    """
    from docqa.modelio import (
        cached_model_folder,
        check_model_folder,
        hub_reachable,
        load_failure,
        raised_by_torch_load,
        refusal,
        safe_load_options,
    )

    local = Path(source).expanduser()
    folder = local if local.exists() else cached_model_folder(source)
    if folder is not None:
        check_model_folder(folder, allow_pickle=allow_pickle, weights=weights)
    if weights:
        kwargs = {**kwargs, **safe_load_options(allow_pickle)}
    try:
        return load(source, local_files_only=True, **kwargs)
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors...
        first = exc
    if local.exists():
        if raised_by_torch_load(first):
            raise ModelLoadError(load_failure(source, first)) from first
    elif hub_reachable():
        try:
            return load(source, **kwargs)
        except Exception as exc:
            refused = refusal(source, exc, allow_pickle)
            if refused:
                raise ModelLoadError(refused) from exc
            first = exc
    raise ModelLoadError(
        f"Cannot load {source!r} to train from ({type(first).__name__}): give --base a local "
        "model folder, or a hub name this machine can download."
    ) from first


def _read_state(ckpt: Path) -> dict:
    """``ckpt/state.pt``, read with ``weights_only=True``: tensors and plain types, never
    objects, so a checkpoint someone else planted cannot run code. `_save_checkpoint` writes
    nothing else."""
    import torch

    try:
        state = torch.load(ckpt / "state.pt", weights_only=True)
    except Exception as exc:  # UnpicklingError for objects, others for a damaged file
        raise _bad_checkpoint(ckpt) from exc
    if not isinstance(state, dict):
        raise _bad_checkpoint(ckpt)
    return state


def _restore(state: dict, ckpt: Path, optimizer, scheduler) -> int:
    """Put the optimizer and schedule back as the checkpoint left them; the step it reached."""
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = state["step"]
    except Exception as exc:  # missing keys, or state of another model's shapes
        raise _bad_checkpoint(ckpt) from exc
    if not isinstance(step, int) or step < 0:
        raise _bad_checkpoint(ckpt)
    return step


def _bad_checkpoint(ckpt: Path) -> InputError:
    return InputError(
        f"The checkpoint in {ckpt} cannot be loaded safely (state.pt holds more than tensors "
        "and plain values, or is damaged); delete it to start afresh."
    )


def _save_checkpoint(model, tokenizer, optimizer, scheduler, step: int, ckpt: Path) -> None:
    import torch

    # Written to a temporary folder and renamed, so a kill mid-save leaves the old checkpoint.
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    # Tensors, numbers, lists and dicts only (AdamW's and LambdaLR's state dicts are), so that
    # `_resume` reads it back with weights_only=True.
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step},
        tmp / "state.pt",
    )
    old = ckpt.with_name(ckpt.name + ".old")
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    if old.exists():
        import shutil

        shutil.rmtree(old)
