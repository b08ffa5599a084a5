"""``docqa.train``: feature labels, a few real training steps, resume, and ``docqa train``.

Labels are checked against the fixture's own answer text: each positive feature is mapped back
to document characters through the window it was cut from (recomputed here with
``make_windows``) and must slice to exactly the gold answer; its tokens must also decode to it.
Answer-less windows are checked by characters too, not through ``answer_tokens``.

Training runs use the tiny random BERT from ``conftest`` with dropout off, so every run is
deterministic: the loss comparison does not depend on luck, and an interrupted-then-resumed run
must end with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import unicodedata
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from docqa.errors import InputError
from docqa.modelio import collate
from docqa.squad import Article, join_article, read_squad
from docqa.train import (
    CHECKPOINT,
    Feature,
    TrainConfig,
    answer_tokens,
    label_window,
    make_features,
    train,
)
from docqa.windowing import (
    Window,
    make_windows,
    pair_template,
    tokenize_question,
    tokenize_text,
)

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "squad-v1.1-tiny.json"
V2 = FIXTURES / "squad-v2.0-tiny.json"
# Two articles: "Harbour" (156 tokens: four windows at max_seq_len 64) with answers at the very
# start and the very end of the text, answers made of punctuation-heavy tokens ("$1,250.75",
# "U.S.-based", "6:45 a.m.", accented names) and two unanswerable questions; "Mountain" fits
# in one window, so its questions cannot have negatives.
EDGE = FIXTURES / "train-edge.json"
ALL = [V1, V2, EDGE]
CLS = 0

# Small windows so that articles span several of them.
SMALL = {"max_seq_len": 64, "doc_stride": 16, "max_question_len": 16}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Torch on one thread: with the cores busy, two threads made these steps 6x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_config(path: Path, base: str | Path = "x", out: str | Path = "x", **kw) -> TrainConfig:
    return TrainConfig(str(path), base=str(base), out=str(out), **{**SMALL, **kw})


def norm(text: str) -> str:
    """Lower case, no accents, no whitespace: how an uncased WordPiece decode compares."""
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in text if not c.isspace() and not unicodedata.combining(c))


def cases(path: Path, level: str):
    """(text the question is asked of, question, its gold (start, end) or None) in file order."""
    for article in read_squad(path):
        joined, starts = join_article(article)
        for q in article.questions:
            if level == "document":
                text, offset = joined, starts[q.paragraph_index]
            else:
                text, offset = article.paragraphs[q.paragraph_index], 0
            gold = None
            if q.answers:
                gold = (
                    offset + q.answer_starts[0],
                    offset + q.answer_starts[0] + len(q.answers[0]),
                )
                assert text[gold[0] : gold[1]] == q.answers[0]
            yield article, text, q, gold


def features_of(tokenizer, article: Article, question, config: TrainConfig) -> list[Feature]:
    """The features ``make_features`` makes for one question of ``article``."""
    one = Article(article.title, article.paragraphs, (question,))
    return make_features(tokenizer, [one], config, random.Random(config.seed))


def windows_of(tokenizer, text: str, question, config: TrainConfig):
    tokens = tokenize_text(tokenizer, text)
    q_ids = tokenize_question(tokenizer, question.question, config.max_question_len)
    windows = make_windows(
        pair_template(tokenizer), q_ids, tokens, 0, config.max_seq_len, config.doc_stride
    )
    return tokens, windows


def window_of(feature: Feature, windows: list[Window]) -> Window:
    found = [w for w in windows if np.array_equal(w.input_ids, feature.input_ids)]
    assert len(found) == 1, "a feature's inputs must be exactly one window of the document"
    assert np.array_equal(found[0].token_type_ids, feature.token_type_ids)
    return found[0]


def holds(window: Window, tokens, gold: tuple[int, int]) -> bool:
    """Whether the window's context covers the whole gold character range."""
    lo, hi = tokens.starts[window.token_start], tokens.ends[window.token_end - 1]
    return lo <= gold[0] and gold[1] <= hi


# --- feature labelling -------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["document", "paragraph"])
@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_labels_slice_back_to_the_gold_answer(tokenizer, path, level):
    config = make_config(path, level=level, negatives=2)
    positives = 0
    for article, text, q, gold in cases(path, level):
        tokens, windows = windows_of(tokenizer, text, q, config)
        for f in features_of(tokenizer, article, q, config):
            w = window_of(f, windows)
            if f.start == CLS:
                assert f.end == CLS
                assert gold is None or not holds(w, tokens, gold), (
                    f"{q.id}: answer in a [CLS] window"
                )
                continue
            assert gold is not None, f"{q.id}: an unanswerable question got an answer label"
            n_context = w.token_end - w.token_start
            assert w.context_offset <= f.start <= f.end < w.context_offset + n_context
            first = w.token_start + f.start - w.context_offset
            last = w.token_start + f.end - w.context_offset
            assert text[tokens.starts[first] : tokens.ends[last]] == q.answers[0]
            assert (tokens.starts[first], tokens.ends[last]) == gold
            decoded = tokenizer.decode(f.input_ids[f.start : f.end + 1].tolist())
            assert norm(decoded) == norm(q.answers[0])
            positives += 1
    assert positives > 0


def test_only_windows_with_the_whole_answer_are_labelled_with_it(tokenizer):
    # Every window, not only the chosen ones: a window that cuts the answer in two must be
    # [CLS], or the reader learns spans that end at a window's edge.
    config = make_config(EDGE, level="document")
    template = pair_template(tokenizer)
    cut = 0
    for _, text, q, gold in cases(EDGE, "document"):
        if gold is None:
            continue
        tokens, windows = windows_of(tokenizer, text, q, config)
        answer = answer_tokens(tokens, *gold)
        for w in windows:
            f = label_window(w, answer, template.cls_index)
            if holds(w, tokens, gold):
                first = w.token_start + f.start - w.context_offset
                last = w.token_start + f.end - w.context_offset
                assert text[tokens.starts[first] : tokens.ends[last]] == q.answers[0]
            else:
                assert (f.start, f.end) == (CLS, CLS), q.id
                lo, hi = tokens.starts[w.token_start], tokens.ends[w.token_end - 1]
                cut += lo < gold[1] and gold[0] < hi
    assert cut >= 1, "the fixture must have an answer cut by a window edge"


@pytest.mark.parametrize("negatives", [1, 2])
@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_document_level_one_positive_and_the_asked_negatives(tokenizer, path, negatives):
    config = make_config(path, level="document", negatives=negatives)
    enough = unanswerable = 0
    for article, text, q, gold in cases(path, "document"):
        tokens, windows = windows_of(tokenizer, text, q, config)
        features = features_of(tokenizer, article, q, config)
        used = [window_of(f, windows).token_start for f in features]
        assert len(set(used)) == len(used), f"{q.id}: a window was chosen twice"
        labels = [f.start for f in features]
        if gold is None:
            assert labels == [CLS] * min(negatives + 1, len(windows)), q.id
            unanswerable += len(windows) > 1
            continue
        without = sum(not holds(w, tokens, gold) for w in windows)
        assert sum(s != CLS for s in labels) == 1, q.id
        assert labels[0] != CLS, f"{q.id}: the answer window comes first"
        assert labels.count(CLS) == min(negatives, without), q.id
        enough += without >= negatives
    if path == EDGE:  # the counts above must not all be cut short by too few windows
        assert enough >= 5 and unanswerable >= 2


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_paragraph_level_has_no_negatives(tokenizer, path):
    config = make_config(path, level="paragraph", negatives=3)
    for article, _, q, gold in cases(path, "paragraph"):
        labels = [f.start for f in features_of(tokenizer, article, q, config)]
        if gold is not None:
            assert len(labels) == 1 and labels[0] != CLS, q.id


@pytest.mark.xfail(
    strict=True,
    reason="bug: at paragraph level make_features drops SQuAD 2.0 unanswerable questions "
    "(no positive window and negatives are document-level only), so a paragraph-level v2.0 "
    "reader never sees a [CLS] target",
)
def test_paragraph_level_keeps_unanswerable_questions_as_cls(tokenizer):
    config = make_config(V2, level="paragraph")
    for article, _, q, gold in cases(V2, "paragraph"):
        if gold is None:
            labels = [f.start for f in features_of(tokenizer, article, q, config)]
            assert labels and set(labels) == {CLS}, q.id


def test_zero_negatives_gives_only_positives(tokenizer):
    # Regression: negatives=0 crashed in random.sample(rest, -1) whenever an answerable
    # question had an answer-less window.
    config = make_config(EDGE, level="document", negatives=0)
    for article, _, q, gold in cases(EDGE, "document"):
        labels = [f.start for f in features_of(tokenizer, article, q, config)]
        if gold is None:
            assert labels == [CLS], q.id
        else:
            assert len(labels) == 1 and labels[0] != CLS, q.id


def test_negative_negatives_is_rejected():
    with pytest.raises(InputError):
        make_config(EDGE, negatives=-1)


@pytest.mark.parametrize("level", ["document", "paragraph"])
def test_features_are_reproducible_for_a_seed(tokenizer, level):
    config = make_config(EDGE, level=level, negatives=2)
    articles = read_squad(EDGE)
    a = make_features(tokenizer, articles, config, random.Random(7))
    b = make_features(tokenizer, articles, config, random.Random(7))
    assert [(f.input_ids.tolist(), f.start, f.end) for f in a] == [
        (f.input_ids.tolist(), f.start, f.end) for f in b
    ]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Port Elsworth is a harbour town.", "Port Elsworth"),  # at the start of the text
        ("The breakwater was designed by Zoë Ólafsdóttir-Brandt", "Zoë Ólafsdóttir-Brandt"),
        ("The season costs $1,250.75 (about 1,100 euros).", "$1,250.75"),
        ("It was built by the U.S.-based Halloway & Sons company.", "U.S.-based Halloway & Sons"),
        ("The ferry leaves at 6:45 a.m. every weekday.", "6:45 a.m."),
        ("The ferry leaves at 6:45 a.m.", "6:45 a.m."),  # punctuation at the end of the text
        ("It is (roughly 4,300) people.", "(roughly 4,300)"),
    ],
)
def test_answer_tokens_cover_exactly_the_answer(tokenizer, text, answer):
    tokens = tokenize_text(tokenizer, text)
    start = text.rindex(answer)
    first, last = answer_tokens(tokens, start, start + len(answer))
    assert text[tokens.starts[first] : tokens.ends[last]] == answer


def test_answer_tokens_edge_ranges(tokenizer):
    text = "Halloway & Sons  company"
    tokens = tokenize_text(tokenizer, text)
    words = [text[s:e] for s, e in zip(tokens.starts, tokens.ends, strict=True)]
    # Surrounding whitespace (SQuAD answers sometimes carry it) adds no token.
    first, last = answer_tokens(tokens, text.index("Sons") - 1, text.index("Sons") + 5)
    assert words[first : last + 1] == ["Sons"]
    # Part of a word gives the whole tokens it touches, never an empty range.
    first, last = answer_tokens(tokens, 2, 4)
    assert tokens.starts[first] <= 2 and tokens.ends[last] >= 4 and first <= last
    # Only whitespace, or past the end: no tokens.
    assert answer_tokens(tokens, text.index("  ") + 1, text.index("  ") + 2) is None
    assert answer_tokens(tokens, len(text), len(text) + 3) is None


# --- training ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def still_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny model with dropout off: training on it is deterministic."""
    folder = tmp_path_factory.mktemp("tiny-no-dropout")
    shutil.copytree(tiny_model, folder, dirs_exist_ok=True)
    config = json.loads((folder / "config.json").read_text())
    config["hidden_dropout_prob"] = 0.0
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def mean_loss(folder: Path, features: list[Feature]) -> float:
    import torch
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(str(folder)).eval()
    ids, types, mask = collate(features, pad_id=0)
    starts = torch.tensor([f.start for f in features])
    ends = torch.tensor([f.end for f in features])
    with torch.no_grad():
        out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
    ce = torch.nn.functional.cross_entropy
    return float((ce(out.start_logits, starts) + ce(out.end_logits, ends)) / 2)


def log_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_training_lowers_the_loss_and_saves_a_reader(still_model, tokenizer, tmp_path):
    from docqa import DocQA
    from docqa.types import Document

    out = tmp_path / "reader"
    config = make_config(
        EDGE, still_model, out, epochs=4, batch_size=4, learning_rate=5e-3, warmup=0.0
    )
    assert train(config) == out

    features = make_features(tokenizer, read_squad(EDGE), config, random.Random(config.seed))
    assert mean_loss(out, features) < 0.8 * mean_loss(still_model, features)
    log = log_of(out)
    steps = -(-len(features) // config.batch_size) * config.epochs
    assert [r["step"] for r in log] == list(range(1, steps + 1))
    first = [r["loss"] for r in log if r["epoch"] == 0]
    last = [r["loss"] for r in log if r["epoch"] == config.epochs - 1]
    assert np.mean(last) < np.mean(first)
    saved = json.loads((out / "docqa_train.json").read_text())
    assert (saved["features"], saved["steps"], saved["negatives"]) == (len(features), steps, 1)

    qa = DocQA(model=str(out), device="cpu", **SMALL)
    article = read_squad(EDGE)[0]
    doc = Document.from_text(join_article(article)[0], source="harbour.txt")
    answers = qa.ask("Who designed the new breakwater?", doc, top_k=5)
    assert answers
    for a in answers:
        assert doc.text[a.start : a.end] == a.text


class Interrupted(Exception):
    pass


def test_resume_continues_from_the_checkpoint(still_model, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    out = tmp_path / "resumed"
    config = make_config(
        EDGE, still_model, out, epochs=2, batch_size=4, learning_rate=1e-3, save_every=1
    )
    kill_at = 7  # step 2 of the second epoch: the resumed epoch starts mid-way

    def stop(p) -> None:
        if p.step == kill_at:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(config, progress=stop)
    ckpt = out / CHECKPOINT
    saved_step = torch.load(ckpt / "state.pt", weights_only=False)["step"]
    assert kill_at - 1 <= saved_step <= kill_at
    assert not (out / "model.safetensors").exists()
    assert (ckpt / "tokenizer.json").exists()
    assert AutoTokenizer.from_pretrained(str(ckpt)).tokenize("Zoë") == ["zoe"]
    logged = len(log_of(out))

    seen = []
    train(config, progress=lambda p: seen.append((p.epoch, p.step)))
    total = seen[-1][1]
    assert total == 10
    assert [s for _, s in seen] == list(range(saved_step + 1, total + 1)), "must not restart at 1"
    assert seen[0][0] == 1
    assert [r["step"] for r in log_of(out)[logged:]] == list(range(saved_step + 1, total + 1))
    assert (out / "model.safetensors").exists() and (out / "docqa_train.json").exists()

    # The same run without the interruption ends with the same weights: optimizer, schedule
    # and batch order were all restored.
    straight = tmp_path / "straight"
    train(replace(config, out=str(straight), save_every=100))
    a, b = load_file(out / "model.safetensors"), load_file(straight / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=0, atol=1e-6), name


# --- the command -------------------------------------------------------------------------------


def run_cli(*args: str):
    from typer.testing import CliRunner

    from docqa.cli import app

    return CliRunner().invoke(app, ["train", *map(str, args)])


def assert_one_sentence(result, code: int, words: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    # Rich wraps long lines at the console width, so compare the message without whitespace.
    message = "".join(result.stderr.split())
    assert message.startswith("error:") and message.count("error:") == 1, result.stderr
    assert words in message, result.stderr


def test_cli_trains_and_writes_the_reader(still_model, tmp_path):
    out = tmp_path / "cli-reader"
    # The CLI keeps max_question_len at 64, so 128 is the smallest window size it accepts.
    result = run_cli(
        V1, "--base", still_model, "--out", out, "--epochs", "1", "--batch-size", "4",
        "--max-seq-len", "128", "--doc-stride", "32", "--save-every", "1000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "config.json").exists()
    saved = json.loads((out / "docqa_train.json").read_text())
    assert (saved["max_seq_len"], saved["doc_stride"], saved["batch_size"]) == (128, 32, 4)
    assert "Saved the reader to" in result.stdout


def test_cli_progress_bar_shows_epoch_and_loss(still_model, tmp_path, monkeypatch):
    import io

    from rich.console import Console

    import docqa.cli

    # The bar is drawn only on a terminal; a terminal console writing to a buffer stands in.
    screen = io.StringIO()
    monkeypatch.setattr(docqa.cli, "err", Console(file=screen, force_terminal=True, width=120))
    result = run_cli(
        V1, "--base", still_model, "--out", tmp_path / "r", "--batch-size", "4",
        "--max-seq-len", "128", "--doc-stride", "32", "--save-every", "1000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert re.search(r"Training epoch 1 loss \d+\.\d{3}", screen.getvalue()), screen.getvalue()


def test_cli_bad_doc_stride_is_one_sentence(still_model, tmp_path):
    out = tmp_path / "never"
    result = run_cli(
        V1, "--base", still_model, "--out", out, "--max-seq-len", "128", "--doc-stride", "128"
    )
    assert_one_sentence(result, 2, "doc_stride")
    assert not out.exists()


def test_cli_missing_data_file(still_model, tmp_path):
    result = run_cli(tmp_path / "nope.json", "--base", still_model, "--out", tmp_path / "o")
    assert_one_sentence(result, 2, "nope.json")


def test_cli_unloadable_base_is_one_sentence(tmp_path):
    # Regression: an unloadable --base escaped as an OSError traceback (exit 1).
    result = run_cli(V1, "--base", tmp_path / "no-model", "--out", tmp_path / "o")
    assert_one_sentence(result, 3, "no-model")


def test_cli_missing_data_is_reported_before_the_base_is_loaded(tmp_path):
    result = run_cli(tmp_path / "nope.json", "--base", tmp_path / "no-model", "--out", tmp_path)
    assert_one_sentence(result, 2, "nope.json")


def test_offline_hub_name_fails_without_trying_to_download(tmp_path, monkeypatch):
    import transformers

    import docqa.modelio

    calls = []

    def from_pretrained(source, **kwargs):
        calls.append(kwargs)
        raise OSError(f"{source} is not in the cache")

    monkeypatch.setattr(docqa.modelio, "hub_reachable", lambda: False)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    result = run_cli(V1, "--base", "no-such-org/no-such-model", "--out", tmp_path / "o")
    assert_one_sentence(result, 3, "no-such-org/no-such-model")
    # Only the cache was asked: no download attempt (and its minute of retries) offline.
    assert calls == [{"local_files_only": True, "trust_remote_code": False}]


# --- shared normalisation ----------------------------------------------------------------------


def test_features_of_one_question_share_a_group(tokenizer):
    config = make_config(EDGE, level="document", negatives=2)
    features = make_features(tokenizer, read_squad(EDGE), config, random.Random(0))
    questions = [q for article in read_squad(EDGE) for q in article.questions]
    groups = [f.group for f in features]
    assert groups == sorted(groups), "a question's windows are contiguous"
    assert sorted(set(groups)) == list(range(len(questions)))
    for f in features:
        lo, hi = f.context
        assert 0 < lo < hi <= len(f.input_ids)
        assert set(f.token_type_ids[lo:hi].tolist()) == {1}, "context is the second segment"
        assert f.start == CLS or lo <= f.start <= f.end < hi


def feature(start: int, group: int, length: int = 6, context=(2, 5)) -> Feature:
    ids = np.arange(length)
    return Feature(ids, np.zeros(length, dtype=int), start, start, context, group)


def test_shared_norm_loss_is_one_softmax_over_the_question_context_tokens():
    import torch

    batch = [feature(0, 7), feature(3, 7), feature(4, 8), feature(0, 9)]
    logits = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    from docqa.train import shared_norm_loss

    got = shared_norm_loss(logits, batch, "start")
    # Group 7: positions 2-4 of both rows, gold at row 1 position 3 (index 3 + 1 of the 6).
    g7 = torch.cat([logits[0, 2:5], logits[1, 2:5]])
    loss7 = torch.logsumexp(g7, 0) - logits[1, 3]
    loss8 = torch.logsumexp(logits[2, 2:5], 0) - logits[2, 4]
    # Group 9 has no answer window: nothing to point at, left out of the mean.
    assert torch.allclose(got, (loss7 + loss8) / 2)


def test_shared_norm_loss_punishes_a_confident_span_in_an_answerless_window():
    import torch

    from docqa.train import shared_norm_loss

    batch = [feature(3, 0), feature(0, 0)]  # the answer window, then a [CLS] negative
    calm = torch.zeros(2, 6)
    calm[0, 3] = 5.0
    calm[1, 0] = 6.0  # the negative window says "no answer here"
    loud = calm.clone()
    loud[1, 4] = 5.0  # ...and yet rates a span in it as highly as the answer
    # By its own softmax the negative window is still right ([CLS] wins), so a per-window
    # loss barely moves; across windows the two spans tie, which docqa's ranking cannot break.
    assert loud[1].argmax() == 0
    assert shared_norm_loss(loud, batch, "start") > shared_norm_loss(calm, batch, "start") + 0.5


def test_shared_norm_batches_keep_a_question_together(tokenizer):
    from docqa.train import epoch_batches

    config = make_config(EDGE, level="document", negatives=2, shared_norm=True, batch_size=6)
    features = make_features(tokenizer, read_squad(EDGE), config, random.Random(0))
    batches = epoch_batches(features, config, epoch=0)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(features)))
    batch_of: dict[int, set[int]] = {}
    for n, b in enumerate(batches):
        for i in b:
            batch_of.setdefault(features[i].group, set()).add(n)
    assert all(len(n) == 1 for n in batch_of.values()), "a question split across batches"
    assert np.mean([len(b) for b in batches[:-1]]) == pytest.approx(6, abs=2)
    assert batches == epoch_batches(features, config, epoch=0)
    assert batches != epoch_batches(features, config, epoch=1)


def test_shared_norm_training_runs_resumes_and_lowers_its_loss(still_model, tmp_path):
    out = tmp_path / "shared"
    config = make_config(
        EDGE, still_model, out, epochs=3, batch_size=6, learning_rate=5e-3, warmup=0.0,
        negatives=2, shared_norm=True, save_every=1,
    )  # fmt: skip

    def stop(p) -> None:
        if p.step == 4:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(config, progress=stop)
    train(config)
    log = log_of(out)
    # Step 4 is logged twice: it was interrupted before its checkpoint and run again.
    assert [r["step"] for r in log] == [1, 2, 3, 4, *range(4, log[-1]["total_steps"] + 1)]
    first = [r["loss"] for r in log if r["epoch"] == 0]
    last = [r["loss"] for r in log if r["epoch"] == config.epochs - 1]
    assert np.mean(last) < np.mean(first)
    assert json.loads((out / "docqa_train.json").read_text())["shared_norm"] is True
