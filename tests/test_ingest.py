"""Ingest (issue 16): a time budget for the first answer, progress with pages, phase timings,
and a kill -9 in the middle of a large file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from conftest import PHRASE, ROOT, filler
from typer.testing import CliRunner

from docqa.cli import app
from docqa.index import Index


def notes(folder, first: int, last: int) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(first, last):
        (folder / f"note-{i:02d}.txt").write_text(f"Note {i}. {filler(40, i)}")


def test_max_wait_keeps_what_was_read_and_leaves_the_rest_for_the_next_update(tmp_path, scheme):
    folder = tmp_path / "docs"
    notes(folder, 0, 5)
    with Index(tmp_path / "ix") as index:
        assert index.update([folder], scheme).parsed == 5
        notes(folder, 5, 10)
        # Out of time at once: the five known files answer, the five new ones wait.
        r = index.update([folder], scheme, max_wait=0)
        assert (r.parsed, r.unread, len(r.doc_ids)) == (0, 5, 5)
        assert len(index.files()) == 5  # nothing remembered about the unread files
        r = index.update([folder], scheme)
        assert (r.parsed, r.unread, len(r.doc_ids)) == (5, 0, 10)


def test_ask_with_max_wait_says_how_much_was_read(plant, tmp_path):
    plant({PHRASE: 10.0})
    folder = tmp_path / "docs"
    notes(folder, 0, 3)
    (folder / "birds.txt").write_text(f"{filler(30)} Each autumn the {PHRASE} to Africa.")
    ix = str(tmp_path / "ix")
    ask = ["ask", "Where does the kestrel go?", str(folder), "--index", ix, "--no-dense"]
    assert CliRunner().invoke(app, ask).exit_code == 0
    notes(folder, 3, 7)
    result = CliRunner().invoke(app, [*ask, "--max-wait", "0", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["answers"][0]["text"] == PHRASE and payload["unread"] == 4
    assert "--max-wait 0 s ran out: 4 of 8 files read" in result.stderr


def test_progress_reports_pages_and_an_old_three_argument_callback_still_works(tmp_path, scheme):
    folder = tmp_path / "docs"
    notes(folder, 0, 4)
    seen, old = [], []
    with Index(tmp_path / "ix") as index:
        index.update([folder], scheme, progress=lambda d, t, p, pages: seen.append((d, pages)))
        assert seen == [(1, 1), (2, 2), (3, 3), (4, 4)]  # a text file is one page
        notes(folder, 4, 5)
        index.update([folder], scheme, progress=lambda d, t, p: old.append(d))
        assert old == [1, 2, 3, 4, 5]


def test_update_reports_the_time_of_each_phase(tmp_path, scheme):
    folder = tmp_path / "docs"
    notes(folder, 0, 3)
    with Index(tmp_path / "ix") as index:
        r = index.update([folder], scheme)
    assert set(r.phases) == {"walk", "plan", "parse", "tokenize", "vectors", "finish"}
    assert all(t >= 0 for t in r.phases.values())
    assert sum(r.phases.values()) <= r.seconds + 0.01
    assert r.phases["tokenize"] > 0


#: `docqa index` of one large file, in small parts, each slowed down so that the test can kill
#: the process while parts are still being tokenized.
SLOW_PARTS = (
    "import time, docqa.index.ingest as g; g.PART_CHARS = 20000; real = g.tokenize_text; "
    "g.tokenize_text = lambda *a, **k: (time.sleep(0.3), real(*a, **k))[1]; "
    "from docqa.cli import main; main()"
)


def test_kill_9_during_a_large_file_keeps_every_committed_part(tmp_path, scheme):
    """Issue 16: each part of a large file is committed as it is finished; kill -9 loses only
    the part in flight, and the next run carries on to the same chunks as one clean run."""
    big = tmp_path / "big.txt"
    big.write_text(" ".join(f"{filler(50, i)} Line {i}." for i in range(4000)))
    ix = tmp_path / "ix"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", SLOW_PARTS, "index", str(big), "--index", str(ix), "--json"]
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        committed = 0
        while committed < 3:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no part was committed within 120 s"
            time.sleep(0.1)
            committed = _count(ix, "SELECT COUNT(*) FROM tokens")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    parts = _count(ix, "SELECT COUNT(*) FROM texts")
    kept = _count(ix, "SELECT COUNT(*) FROM tokens")
    assert 3 <= kept < parts  # killed in the middle, every committed part still there
    assert _count(ix, "SELECT COUNT(*) FROM chunks") > 0
    carry_on = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert carry_on.returncode == 0, carry_on.stderr
    assert json.loads(carry_on.stdout)["parsed"] == 0  # the text was kept: only tokenizing
    clean = subprocess.run(
        [*args[:-3], "--index", str(tmp_path / "clean"), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert clean.returncode == 0, clean.stderr
    chunks = "SELECT position, token_start, token_end, char_start, char_end, terms FROM chunks"
    assert _rows(ix, chunks) == _rows(tmp_path / "clean", chunks)


def _count(folder, sql: str) -> int:
    rows = _rows(folder, sql)
    return rows[0][0] if rows else 0


def _rows(folder, sql: str) -> list:
    """Rows read straight from the index file (as another process would), [] before it exists."""
    path = folder / "index.sqlite3"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql + " ORDER BY 1").fetchall()
    except sqlite3.OperationalError:
        return []  # the schema is being created


#: Indexes a folder with the bundled reader's tokenizer in a fresh process, and says whether
#: that needed transformers (loading a tokenizer imports it: seconds, before any file is read).
INDEX_ONCE = (
    "import json, sys; from docqa import DocQA; "
    "r = DocQA(index=sys.argv[1]).index([sys.argv[2]]); "
    "print(json.dumps({'parsed': r.parsed, 'tokenized': r.tokenized, "
    "'transformers': 'transformers' in sys.modules}))"
)


def run_script(script: str, *args) -> str:
    """``python -c script ARGS`` in a fresh process with this checkout first; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_reindexing_an_unchanged_folder_loads_no_tokenizer_and_a_new_file_still_gets_windows(
    tmp_path,
):
    """Issue 16: the index remembers the reader tokenizer's scheme by its files, so a later
    process re-indexes an unchanged folder without loading it, and loads it when a file needs
    tokenizing."""
    folder = tmp_path / "docs"
    notes(folder, 0, 3)
    ix = tmp_path / "ix"

    def index_once() -> dict:
        return json.loads(run_script(INDEX_ONCE, ix, folder))

    assert index_once() == {"parsed": 3, "tokenized": 3, "transformers": True}
    assert index_once() == {"parsed": 0, "tokenized": 0, "transformers": False}
    chunks = _count(ix, "SELECT COUNT(*) FROM chunks")
    notes(folder, 3, 4)
    assert index_once() == {"parsed": 1, "tokenized": 1, "transformers": True}
    assert _count(ix, "SELECT COUNT(*) FROM chunks") > chunks
    assert _count(ix, "SELECT COUNT(DISTINCT scheme) FROM chunks") == 1  # the same scheme


def test_a_question_also_remembers_the_tokenizer_for_the_next_process(tmp_path):
    """Issue 16: after ``ask`` (the scheme then comes from the loaded reader), re-indexing the
    unchanged folder in a new process loads no tokenizer either."""
    folder = tmp_path / "docs"
    notes(folder, 0, 2)
    ix = tmp_path / "ix"
    ask = (
        "import sys; from docqa import DocQA; DocQA(index=sys.argv[1]).ask('Note?', [sys.argv[2]])"
    )
    run_script(ask, ix, folder)
    assert json.loads(run_script(INDEX_ONCE, ix, folder)) == {
        "parsed": 0,
        "tokenized": 0,
        "transformers": False,
    }


def test_the_remembered_tokenizer_is_forgotten_when_its_files_change(tmp_path):
    from docqa.windowing import tokenizer_files_key

    model = tmp_path / "model"
    model.mkdir()
    (model / "tokenizer.json").write_text("{}")
    before = tokenizer_files_key(str(model))
    (model / "tokenizer.json").write_text('{"changed": 1}')
    assert before is not None and tokenizer_files_key(str(model)) != before
    assert tokenizer_files_key("no/such/model-anywhere") is None
