"""Issue 20: a Lance corpus built on Ray, asked from one machine and in batch.

Everything runs on a local Ray (``ray.init(num_cpus=2)``, one per module) and Lance folders
under the test's temp folder; one test builds into S3 served by moto on 127.0.0.1, one on a
two-node Ray cluster started (and stopped) on 127.0.0.1. Answers are compared with the local
index's: the same files, chunks and reader must give the same spans at the same offsets.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, filler, invoke_cli

ray = pytest.importorskip("ray")
pytest.importorskip("lancedb")

from docqa import DocQA, InputError  # noqa: E402
from docqa.scale import LanceCorpus, batch_answers, build_corpus  # noqa: E402

pytestmark = pytest.mark.slow
SAMPLE = ROOT / "sample_docs"
WARRANTY = "How long is the warranty?"


@pytest.fixture(scope="module")
def local_ray():
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=300 << 20
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def built(local_ray, tmp_path_factory, tiny_model):
    """The sample documents, a broken PDF and a text file, built into a corpus."""
    root = tmp_path_factory.mktemp("scale")
    docs = root / "docs"
    shutil.copytree(SAMPLE, docs)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a PDF")
    uri = str(root / "corpus")
    report = build_corpus(uri, [docs], model=str(tiny_model), workers=2)
    return uri, docs, report


def test_a_build_reads_every_file_and_a_broken_one_is_a_failed_row(built):
    uri, _, report = built
    states = {Path(s.path).name: s.state for s in report.statuses}
    assert states == {
        "aurora-manual.md": "ok",
        "aurora-manual.pdf": "ok",
        "faq.html": "ok",
        "release-notes.txt": "ok",
        "broken.pdf": "failed",
    }
    assert report.read == 5 and report.unchanged == 0
    rows = LanceCorpus(uri).files()
    assert {Path(p).name: r.state for p, r in rows.items()} == states
    assert len(LanceCorpus(uri).doc_ids()) == 4


def test_answers_from_the_corpus_are_the_local_index_answers(built, tiny_model, plant, tmp_path):
    """Same spans, offsets, pages and files as the single-machine path, for a planted answer
    and for the arbitrary answers of a random reader."""
    uri, docs, _ = built
    plant({"two years": 12.0})
    remote = DocQA(model=str(tiny_model), corpus=uri)
    local = DocQA(model=str(tiny_model), index=tmp_path / "index", dense=False)
    best = remote.ask(WARRANTY, top_k=3)[0]
    assert best.text == "two years" and best.page == 9
    assert best.source == str(docs.resolve() / "aurora-manual.pdf")
    assert best.document.text[best.start : best.end] == "two years"
    assert (best.start, best.end) == next(
        (a.start, a.end) for a in local.ask(WARRANTY, docs, top_k=3) if a.source == best.source
    )


def test_a_docqa_on_a_corpus_refuses_paths_with_a_sentence(built, tiny_model):
    uri, docs, _ = built
    qa = DocQA(model=str(tiny_model), corpus=uri)
    for call in (lambda: qa.ask(WARRANTY, docs), lambda: qa.index([docs])):
        with pytest.raises(InputError, match="docqa corpus build"):
            call()
    with pytest.raises(InputError, match="None"):  # no corpus: sources are needed
        DocQA(model=str(tiny_model), index=False).ask(WARRANTY)


def test_a_random_reader_answers_the_same_from_corpus_and_local_index(built, tiny_model, tmp_path):
    uri, docs, _ = built
    remote = DocQA(model=str(tiny_model), corpus=uri)
    local = DocQA(model=str(tiny_model), index=tmp_path / "index", dense=False)
    for question in (WARRANTY, "How long does the battery last?", "Where is Halcyon based?"):
        ours = [(a.source, a.start, a.end) for a in remote.ask(question, top_k=3, chunks=40)]
        theirs = [(a.source, a.start, a.end) for a in local.ask(question, docs, 3, chunks=40)]
        # 40 chunks hold every chunk of the sample documents: both read the same windows.
        assert ours == theirs, question


def test_rebuilding_reads_only_what_changed_and_removes_what_is_gone(
    local_ray, tmp_path, tiny_model
):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"note{i}.txt").write_text(f"Note {i}. {filler(30, i)}.\n")
    uri = str(tmp_path / "corpus")
    first = build_corpus(uri, [docs], model=str(tiny_model), workers=2)
    assert (first.read, first.unchanged, first.removed) == (3, 0, 0)
    again = build_corpus(uri, [docs], model=str(tiny_model), workers=2)
    assert (again.read, again.unchanged, again.removed) == (0, 3, 0)
    (docs / "note0.txt").write_text("Note zero was rewritten. The harbor lantern is green.\n")
    (docs / "note1.txt").unlink()
    (docs / "note3.txt").write_text(f"A new note. {filler(20)}.\n")
    third = build_corpus(uri, [docs], model=str(tiny_model), workers=2)
    assert (third.read, third.unchanged, third.removed) == (2, 1, 1)
    corpus = LanceCorpus(uri)
    assert sorted(Path(p).name for p in corpus.files()) == ["note0.txt", "note2.txt", "note3.txt"]
    assert len(corpus.doc_ids()) == 3
    texts = [corpus.document(d).text for d in corpus.doc_ids()]
    assert sum("lantern is green" in t for t in texts) == 1
    # Every chunk row belongs to a document of the corpus, each document's chunks once.
    chunks = corpus.table("chunks").to_arrow().to_pylist()
    keys = [(c["doc_id"], c["ordinal"]) for c in chunks]
    assert len(keys) == len(set(keys)) and {d for d, _ in keys} == set(corpus.doc_ids())


def _notes(folder: Path, n: int = 24, words: int = 400) -> None:
    """``n`` notes of made-up terms drawn unevenly (a few common, most rare), so that BM25's
    statistics (how many chunks hold a term, chunk lengths) decide the ranking."""
    import random

    folder.mkdir()
    vocabulary = [f"term{i}" for i in range(300)]
    weights = [1 / (i + 1) for i in range(300)]
    for i in range(n):
        rng = random.Random(i)
        body = " ".join(rng.choices(vocabulary, weights, k=words + 37 * i))
        (folder / f"note{i:02d}.txt").write_text(f"Note {i}. {body}.\n")


#: Common and rare terms; one held by few chunks (the index then ranks chunks without it
#: next, at 0, in its order), and a question of stop words alone (every chunk at 0).
RANKED = [
    "term3 term40?",
    "Which term120 and term7",
    "term250 term251 term5",
    "term1 term2",
    "term299 alone",
    "What is it?",
]


def _ranking(index, corpus_or_index, question, doc_ids, scheme, encoder=None, k=8):
    ranked = corpus_or_index.rank(question, doc_ids, scheme, k, encoder)
    return [
        (Path(index(c.doc_id)).name, c.token_start, c.token_end, round(score, 6))
        for c, score in ranked
    ]


def test_a_corpus_ranks_chunks_with_the_local_index_scores(local_ray, tmp_path, tiny_model):
    """Lance finds the candidates; docqa's BM25 with the corpus's statistics scores them: the
    same chunks, order and scores as the local index (Lance's own BM25 gives other scores,
    and so other answers on 7.5 % of SQuAD questions)."""
    from docqa import Index

    docs = tmp_path / "docs"
    _notes(docs)
    uri = str(tmp_path / "corpus")
    build_corpus(uri, [docs], model=str(tiny_model), workers=2)
    corpus = LanceCorpus(uri)
    local = DocQA(model=str(tiny_model), index=tmp_path / "index", dense=False)
    local.index([docs])
    index = Index(tmp_path / "index")
    paths = {f.doc_id: f.key for f in index.files()}
    scheme = DocQA(model=str(tiny_model), corpus=uri).scheme
    assert int(corpus.meta()["chunks"]) > 60  # enough chunks for the statistics to matter
    for question in RANKED:
        ours = _ranking(
            lambda d: corpus.document(d).source, corpus, question, corpus.doc_ids(), scheme
        )
        theirs = _ranking(paths.get, index, question, list(paths), scheme)
        assert ours == theirs and len(ours) == 8, question
    # Asked of some documents only: still the index's ranking among them.
    some = [d for d in corpus.doc_ids() if corpus.document(d).source.endswith(("3.txt", "7.txt"))]
    local_some = [d for d, p in paths.items() if p.endswith(("3.txt", "7.txt"))]
    assert _ranking(lambda d: corpus.document(d).source, corpus, RANKED[0], some, scheme) == (
        _ranking(paths.get, index, RANKED[0], local_some, scheme)
    )


def test_a_corpus_built_with_vectors_ranks_as_a_local_index_with_vectors(
    local_ray, tmp_path, tiny_model
):
    """`build_corpus(vectors=True)` stores each chunk's piece vectors as ``docqa index
    --vectors`` makes them; questions then fuse BM25 with them as the local index does. The
    corpus keeps vectors on later builds, and one built without them refuses to add them."""
    from docqa import Index
    from docqa.retrieve import DenseEncoder

    docs = tmp_path / "docs"
    _notes(docs, n=8)
    uri = str(tmp_path / "corpus")
    build_corpus(uri, [docs], model=str(tiny_model), workers=2, vectors=True)
    local = DocQA(model=str(tiny_model), index=tmp_path / "index")
    local.index([docs], vectors=True)
    index = Index(tmp_path / "index")
    paths = {f.doc_id: f.key for f in index.files()}
    corpus = LanceCorpus(uri)
    qa = DocQA(model=str(tiny_model), corpus=uri)
    assert qa.encoder is not None and corpus.encoder_name() == DenseEncoder.name
    encoder = qa.encoder
    for question in RANKED:
        ours = _ranking(
            lambda d: corpus.document(d).source,
            corpus,
            question,
            corpus.doc_ids(),
            qa.scheme,
            encoder,
        )
        theirs = _ranking(paths.get, index, question, list(paths), qa.scheme, encoder)
        bm25_only = _ranking(paths.get, index, question, list(paths), qa.scheme)
        assert ours == theirs, question
        assert ours != bm25_only, question  # the vectors were used: fused scores differ
    (docs / "later.txt").write_text(f"A later note. {filler(200)}.\n")
    build_corpus(uri, [docs], model=str(tiny_model), workers=2)  # vectors not asked again
    rows = LanceCorpus(uri).table("chunks").to_arrow().to_pylist()
    assert all(r["pieces"] > 0 and r["vectors"] for r in rows)
    plain = str(tmp_path / "plain")
    build_corpus(plain, [docs / "later.txt"], model=str(tiny_model), workers=2)
    assert DocQA(model=str(tiny_model), corpus=plain).ask("later note") is not None
    with pytest.raises(InputError, match="built without vectors"):
        build_corpus(plain, [docs], model=str(tiny_model), workers=2, vectors=True)
    with pytest.raises(InputError, match="no vectors"):
        DocQA(model=str(tiny_model), corpus=plain, dense=True).ask("later note")


def test_a_corpus_of_an_older_layout_is_refused_with_a_sentence(built, tmp_path):
    uri, _, _ = built
    old = tmp_path / "old"
    shutil.copytree(uri, old)
    shutil.rmtree(old / "bm25.lance")
    with pytest.raises(InputError, match="older docqa"):
        LanceCorpus(str(old))


def test_a_build_stopped_between_a_files_chunks_and_its_row_is_completed_once(
    local_ray, tmp_path, tiny_model, monkeypatch
):
    """A file's row is written last: a build that dies after a file's chunks were written
    but before its row builds that file again, and its chunks are there once, not twice."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"note{i}.txt").write_text(f"Note {i}. {filler(200, i)}.\n")
    uri = str(tmp_path / "corpus")
    real_add = type(LanceCorpus(uri, create=True).table("files")).add
    calls = {"files": 0}

    def add(table, data, *args, **kwargs):
        if table.name == "files":
            calls["files"] += 1
            raise OSError("killed before the files' rows")
        return real_add(table, data, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(type(LanceCorpus(uri).table("files")), "add", add)
        with pytest.raises(OSError):
            build_corpus(uri, [docs], model=str(tiny_model), workers=2)
    assert calls["files"] == 1
    stopped = LanceCorpus(uri)
    assert stopped.files() == {} and stopped.table("chunks").count_rows() > 0
    report = build_corpus(uri, [docs], model=str(tiny_model), workers=2)
    assert report.read == 3
    corpus = LanceCorpus(uri)
    chunks = corpus.table("chunks").to_arrow().to_pylist()
    keys = [(c["doc_id"], c["ordinal"]) for c in chunks]
    assert len(keys) == len(set(keys)) and {d for d, _ in keys} == set(corpus.doc_ids())
    assert corpus.table("documents").count_rows() == 3


def test_a_worker_killed_mid_build_still_builds_every_file_once(local_ray, tmp_path, tiny_model):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(60):
        (docs / f"note{i:02d}.txt").write_text(f"Note {i}. {filler(400, i)}.\n")
    uri = str(tmp_path / "corpus")
    killed = []

    def kill_a_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for pid in _map_workers():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    report = build_corpus(uri, [docs], model=str(tiny_model), workers=2)
    killer.join()
    assert killed, "no worker was found to kill"
    assert report.read + report.unchanged == 60 and report.failed == 0
    corpus = LanceCorpus(uri)
    assert len(corpus.files()) == 60 and len(corpus.doc_ids()) == 60
    assert corpus.table("documents").count_rows() == 60


def _map_workers() -> list[int]:
    """PIDs of the Ray actors that run the build's map (`ray::MapWorker...` processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::MapWorker"):
            found.append(int(entry.name))
    return found


def test_batch_answers_are_those_of_docqa_ask(built, tiny_model):
    uri, _, _ = built
    questions = [WARRANTY, "How long does the battery last?", "Who makes the Aurora?"]
    answers = batch_answers(uri, questions, top_k=2, workers=2, model=str(tiny_model))
    qa = DocQA(model=str(tiny_model), corpus=uri)
    for question, (found, error) in zip(questions, answers, strict=True):
        assert error == ""
        expected = [a.to_dict() for a in qa.ask(question, top_k=2)]
        assert [(a["source"], a["start"], a["end"]) for a in found] == [
            (a["source"], a["start"], a["end"]) for a in expected
        ]


def test_batch_questions_asked_of_one_file_answer_from_it_alone(built, tiny_model):
    uri, _, _ = built
    answers = batch_answers(
        uri,
        [WARRANTY, WARRANTY, WARRANTY],
        files=[None, "aurora-manual.md", "nowhere.pdf"],
        top_k=3,
        workers=2,
        model=str(tiny_model),
    )
    everywhere = {Path(a["source"]).name for a in answers[0][0]}
    assert everywhere - {"aurora-manual.md"}  # asked of all files, others answer too
    assert answers[1][0] and {Path(a["source"]).name for a in answers[1][0]} == {"aurora-manual.md"}
    assert answers[2] == ([], f"The corpus at {uri} has no readable file nowhere.pdf.")


def test_eval_on_a_corpus_scores_what_the_local_path_answers(built, tiny_model, tmp_path):
    """``docqa eval --corpus``: a SQuAD file's articles built into the corpus, the questions
    answered by a Ray pool of readers; the predictions are the local index's (BM25 alone)."""
    from docqa import CorpusQA, evaluate_docs, squad_files

    data = ROOT / "tests" / "fixtures" / "squad-v1.1-tiny.json"
    folder = tmp_path / "articles"
    folder.mkdir()
    questions = squad_files(data, folder)
    assert len(questions) == 7 and all(q.file.startswith("article-") for q in questions)
    uri = str(tmp_path / "corpus")
    ours = evaluate_docs(questions, CorpusQA(uri, workers=2, model=str(tiny_model)), [folder])
    local = DocQA(model=str(tiny_model), index=tmp_path / "index", dense=False)
    theirs = evaluate_docs(questions, local, [folder])
    assert ours.predictions == theirs.predictions and ours.total == 7
    assert (ours.exact, ours.f1) == (theirs.exact, theirs.f1)
    out = tmp_path / "p.json"
    args = ["eval", str(data), "--corpus", str(tmp_path / "cli"), "--readers", "2", "--json"]
    result = invoke_cli([*args, "--model", str(tiny_model), "--predictions", str(out)])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["total"] == 7
    assert json.loads(out.read_text()) == theirs.predictions


def test_cli_build_ask_and_batch(built, tiny_model, tmp_path):
    _, docs, _ = built
    uri = str(tmp_path / "corpus")
    model = ["--model", str(tiny_model)]
    result = invoke_cli(["corpus", "build", uri, str(docs), "--workers", "2", "--json", *model])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["read"] == 5 and len(payload["files"]) == 5
    asked = invoke_cli(["ask", WARRANTY, "--corpus", uri, "--json", "-k", "2", *model])
    assert asked.exit_code == 0, asked.stderr
    answers = json.loads(asked.stdout)["answers"]
    qa = DocQA(model=str(tiny_model), corpus=uri)
    assert answers == [a.to_dict() for a in qa.ask(WARRANTY, top_k=2)]
    searched = invoke_cli(["search", "warranty", "--corpus", uri, "--json", "-k", "3", *model])
    assert searched.exit_code == 0, searched.stderr
    hits = json.loads(searched.stdout)["hits"]
    # Two files say "warranty" (overlapping chunks of one file give one hit) and come first;
    # the third hit scores 0, as `docqa search` over the files lists it too.
    said = [h for h in hits if "warranty" in h["snippet"].lower()]
    assert len(hits) == 3 and said == hits[:2] and hits[2]["score"] == 0
    assert {Path(h["source"]).parent for h in hits} == {docs.resolve()}
    both = invoke_cli(["search", "warranty", str(docs), "--corpus", uri, *model])
    assert both.exit_code == 2 and "not both" in both.stderr
    questions = tmp_path / "q.jsonl"
    lines = [{"id": "a", "question": WARRANTY}, {"id": 2, "question": "Who?", "answers": ["x"]}]
    questions.write_text("\n".join(json.dumps(line) for line in lines))
    out = tmp_path / "answers.jsonl"
    args = ["batch", str(questions), "--corpus", uri, "--out", str(out), "--readers", "2"]
    result = invoke_cli([*args, *model])
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "2"]
    assert rows[0]["answers"][0] == qa.ask(WARRANTY)[0].to_dict()


@pytest.mark.parametrize(
    "args, message",
    [
        (["ask", WARRANTY, "--corpus", "{missing}"], "no docqa corpus"),
        (["ask", WARRANTY], "--corpus"),
        (["ask", WARRANTY, "sample_docs", "--corpus", "{missing}"], "takes no PATHS"),
        (["batch", "{missing}/q.jsonl", "--corpus", "{missing}", "--out", "x"], "No such"),
        (["eval", "{missing}.json", "--corpus", "{missing}", "--exhaustive"], "--exhaustive"),
        (["eval", "{missing}.json", "--ray", "auto"], "apply with --corpus"),
    ],
)
def test_corpus_input_errors_are_one_sentence_and_exit_2(tmp_path, args, message):
    missing = str(tmp_path / "nothing-here")
    result = invoke_cli([a.replace("{missing}", missing) for a in args])
    assert result.exit_code == 2, result.stdout
    said = " ".join(result.stderr.split())  # one sentence, wrapped to the terminal's width
    assert message in said and said.count("error:") == 1 and "Traceback" not in said


def test_a_corpus_on_s3_served_by_moto(built, tiny_model, tmp_path, monkeypatch, plant):
    """The same build and questions against S3 (moto on 127.0.0.1): the object-store code
    path that a real bucket takes, configured by the usual AWS_* variables."""
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        env = {
            "AWS_ENDPOINT": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="docqa-test")
        _, docs, _ = built
        report = build_corpus("s3://docqa-test/manuals", [docs], model=str(tiny_model), workers=2)
        assert report.read == 5 and report.failed == 1
        keys = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket="docqa-test")
        assert any(o["Key"].startswith("manuals/chunks.lance/") for o in keys["Contents"])
        plant({"two years": 12.0})
        best = DocQA(model=str(tiny_model), corpus="s3://docqa-test/manuals").ask(WARRANTY)[0]
        assert best.text == "two years" and best.page == 9
    finally:
        server.stop()


TWO_NODES = textwrap.dedent(
    """
    import json, sys
    from docqa.scale import build_corpus, batch_answers
    uri, docs, model, address = sys.argv[1:5]
    import ray
    ray.init(address=address, log_to_driver=False)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    report = build_corpus(uri, [docs], model=model, workers=2)
    answers = batch_answers(uri, ["How long is the warranty?"], workers=2, model=model)
    print("RESULT " + json.dumps({"nodes": len(nodes), "read": report.read,
                                  "answers": answers[0][0]}))
    """
)


def test_a_two_node_cluster_on_this_machine_builds_and_answers(built, tiny_model, tmp_path):
    """A head and a second node (`ray start`, one CPU each, 127.0.0.1), the driver in its own
    process: the build and the batch run across both nodes and match the local Ray's."""
    _, docs, _ = built
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    ray_cli = str(Path(sys.executable).with_name("ray"))
    # Short: Ray's socket paths under it must fit in 107 bytes (tmp_path is too long).
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--block"]
    common += ["--object-store-memory", str(200 << 20), "--disable-usage-stats"]
    head = ["--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", str(temp)]
    nodes = [
        subprocess.Popen(
            [ray_cli, "start", *head, *common],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]
    try:
        time.sleep(8)
        assert nodes[0].poll() is None, "the head node did not start"
        nodes.append(
            subprocess.Popen(
                [ray_cli, "start", "--address", address, *common],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        time.sleep(8)
        assert nodes[1].poll() is None, "the second node did not start"
        uri = str(tmp_path / "corpus")
        run = subprocess.run(
            [sys.executable, "-c", TWO_NODES, uri, str(docs), str(tiny_model), address],
            capture_output=True,
            text=True,
            timeout=400,
        )
        lines = [x for x in run.stdout.splitlines() if x.startswith("RESULT ")]
        assert lines, run.stderr[-3000:]
        result = json.loads(lines[0][len("RESULT ") :])
    finally:
        for node in reversed(nodes):
            os.killpg(node.pid, signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
    assert result["nodes"] == 2 and result["read"] == 5
    here = DocQA(model=str(tiny_model), corpus=uri).ask(WARRANTY)
    assert [(a["source"], a["start"]) for a in result["answers"]] == [
        (a.source, a.start) for a in here
    ]
