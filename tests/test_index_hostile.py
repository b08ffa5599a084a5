"""Issue 15 ("Safe by default"): the index, the API and worker processes under hostile conditions.

One test (or more) per numbered line of the issue: 4 private permissions, 5 file names that are
not UTF-8, 9 one `DocQA` used from several threads, 10 readers that never wait for a writer,
11 a password given after a PDF failed without one, 12 messages that say what happened
(read-only index, full disk), 13 no orphan processes after ``kill -9``, 14 sources given as a
generator or of a type that is not a source.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import PHRASE, ROOT, VOCAB, filler
from pdfgen import encrypt_pdf, make_pdf
from typer.testing import CliRunner

import docqa.index
from docqa import DocQA, Document
from docqa.cli import app
from docqa.errors import DocQAError, IndexBusyError, InputError
from docqa.index import Index

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and names")


def small_qa(index: Path, **kwargs) -> DocQA:
    """A DocQA with small windows over the index in ``index`` (BM25 only)."""
    settings = dict(max_seq_len=96, doc_stride=24, max_question_len=16, dense=False, chunks=2)
    return DocQA(index=index, **{**settings, **kwargs})


def one_sentence(text: str) -> str:
    """The single error line of a CLI run, checked to be one line and no traceback."""
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(" ".join(lines)) < 400, text
    return " ".join(" ".join(lines).split())


# --- 4: the index is private ---------------------------------------------------------------


def modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


@posix_only
@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask022", "umask000"])
def test_index_folder_and_files_are_private_whatever_the_umask(tmp_path, scheme, umask):
    """Issue 15.4: the index holds every document's text (decrypted PDFs too); it was
    created with the umask's permissions (0755 folder, 0644 files, world-writable under 0)."""
    doc = tmp_path / "secret.txt"
    doc.write_text("The vault code is 4417. " + filler(60))
    folder = tmp_path / "cache" / "ix"
    old = os.umask(umask)
    try:
        with Index(folder) as index:
            index.update([doc], scheme)
            while_open = modes(folder)  # -wal and -shm exist while a connection is open
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {"index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"} <= set(while_open)
    assert all(m == 0o600 for m in while_open.values()), {k: oct(v) for k, v in while_open.items()}
    assert all(m == 0o600 for m in modes(folder).values())


@posix_only
def test_an_existing_index_with_wider_permissions_is_tightened_on_open(tmp_path, scheme):
    """Issue 15.4: indexes made before the fix are 0755/0644; opening one tightens it."""
    doc = tmp_path / "secret.txt"
    doc.write_text("The vault code is 4417. " + filler(60))
    folder = tmp_path / "ix"
    with Index(folder) as first:
        first.update([doc], scheme)
        # Loosen everything, -wal and -shm included, as an older docqa left them.
        os.chmod(folder, 0o755)
        for name in modes(folder):
            os.chmod(folder / name, 0o644)
        with Index(folder) as second:
            assert [f.state for f in second.files()] == ["ok"]
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            found = modes(folder)
    assert {"index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"} <= set(found)
    assert all(m == 0o600 for m in found.values()), {k: oct(v) for k, v in found.items()}


# --- 5: file names that are not UTF-8 -------------------------------------------------------

CAFE = b"caf\xe9.txt"


@pytest.fixture
def cafe(tmp_path) -> Path:
    """A folder with ``caf\\xe9.txt`` (Latin-1 bytes, not UTF-8) holding the phrase."""
    folder = tmp_path / "docs"
    folder.mkdir()
    try:
        fd = os.open(os.path.join(os.fsencode(folder), CAFE), os.O_CREAT | os.O_WRONLY, 0o644)
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    os.write(fd, f"{filler(40)} Each autumn the {PHRASE} to Africa. {filler(40, 3)}".encode())
    os.close(fd)
    (folder / "garden.txt").write_text("Tomatoes need full sun and water. " + filler(60, 2))
    return folder


def name_of(path: str) -> bytes:
    return os.path.basename(os.fsencode(path))


@posix_only
def test_a_file_name_that_is_not_utf8_is_indexed_and_answered(plant, tmp_path, cafe):
    """Issue 15.5: a name like b"caf\\xe9.txt" raised UnicodeEncodeError out of SQLite and
    lost the whole folder."""
    plant({PHRASE: 10.0})
    qa = small_qa(tmp_path / "ix")
    [answer] = qa.ask("Where does the kestrel migrate?", cafe)
    assert answer.text == PHRASE and name_of(answer.source) == CAFE
    again = qa.index([cafe])
    assert {name_of(s.path): s.state for s in again.statuses} == {CAFE: "ok", b"garden.txt": "ok"}
    assert again.parsed == 0, "found again under its stored name"
    keys = {name_of(f.key) for f in qa._open_index().files()}
    assert keys == {CAFE, b"garden.txt"}
    # Deleted from the folder: dropped from the index like any other file.
    os.unlink(os.path.join(os.fsencode(cafe), CAFE))
    assert qa.index([cafe]).removed == 1
    assert {name_of(f.key) for f in qa._open_index().files()} == {b"garden.txt"}


@posix_only
def test_cli_prints_a_name_that_is_not_utf8(plant, tmp_path, cafe):
    """Issue 15.5: the CLI's statuses, answers and --json must print such a name (escaped),
    not crash while printing it."""
    plant({PHRASE: 10.0})
    ix = str(tmp_path / "ix")
    common = ["--index", ix, "--no-dense", "--max-seq-len", "96", "--doc-stride", "24"]
    runner = CliRunner()
    result = runner.invoke(app, ["ask", "Where does the kestrel go?", str(cafe), *common])
    assert result.exit_code == 0, (result.stderr, result.exception)
    # Rich wraps long lines, inside a long path too: look at the output unwrapped.
    assert PHRASE in result.stdout and "caf\\xe9.txt" in "".join(result.stdout.splitlines())
    result = runner.invoke(app, ["ask", "Where does the kestrel go?", str(cafe), *common, "--json"])
    assert result.exit_code == 0, (result.stderr, result.exception)
    payload = json.loads(result.stdout)
    # JSON keeps the name exactly: os.fsencode of the decoded string gives the bytes back.
    assert name_of(payload["answers"][0]["source"]) == CAFE
    assert CAFE in {name_of(f["path"]) for f in payload["files"]}
    result = runner.invoke(app, ["index", str(cafe), *common[:3], "--json"])
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert CAFE in {name_of(f["path"]) for f in json.loads(result.stdout)["files"]}
    result = runner.invoke(app, ["search", "kestrel", str(cafe), *common[:3]])
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "caf\\xe9.txt" in "".join(result.stdout.splitlines())
    result = runner.invoke(app, ["search", "kestrel", str(cafe), *common[:3], "--json"])
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert name_of(json.loads(result.stdout)["hits"][0]["source"]) == CAFE


# --- 9: one DocQA, several threads ----------------------------------------------------------

TOPICS = {
    "birds.txt": ("Where does the violet kestrel fly each autumn?", PHRASE),
    "garden.txt": ("When should tomato side shoots be pruned?", "every saturday morning"),
    "sensor.txt": ("How long do the sensor lithium batteries last?", "fourteen long months"),
    "boat.txt": ("What colour is the harbour ferry hull?", "deep emerald green"),
}


def threads_library(folder: Path) -> list[str]:
    folder.mkdir()
    questions = []
    for n, (name, (question, answer)) in enumerate(TOPICS.items()):
        topic = " ".join(w for w in question.lower().rstrip("?").split() if len(w) > 4)
        (folder / name).write_text(
            f"{filler(60, n)} About the {topic}: {answer}. {filler(60, n + 1)}"
        )
        questions += [question, f"Tell me: {question.lower()}"]
    return questions


def summary(answers) -> list[tuple]:
    return [(a.text, os.path.basename(a.source), a.start, round(a.score, 6)) for a in answers]


def test_one_docqa_used_from_four_threads_answers_as_one_thread(plant, tmp_path):
    """Issue 15.9: SQLite connections cannot cross threads; a DocQA shared by threads raised
    IndexCorruptError ("cannot be read ... rebuild") on a healthy index."""
    plant({answer: 10.0 for _, answer in TOPICS.values()})
    folder = tmp_path / "docs"
    questions = threads_library(folder)
    single = small_qa(tmp_path / "ix-single")
    expected = [summary(single.ask(q, folder)) for q in questions]
    assert [e[0][0] for e in expected] == [a for _, a in TOPICS.values() for _ in (0, 1)]
    shared = small_qa(tmp_path / "ix-shared")  # fresh: the first ask of each thread indexes
    barrier = threading.Barrier(4)

    def work(k: int) -> list[list[tuple]]:
        barrier.wait()
        order = questions[k:] + questions[:k]
        found = [summary(shared.ask(q, folder)) for q in order]
        return found[len(found) - k :] + found[: len(found) - k]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))
    for found in results:
        assert found == expected


# --- 10: readers never wait for a writer ----------------------------------------------------

HOLD_LOCK = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1] + "/index.lock")
lock.acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_lock(folder: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the index's write lock, as a long build does."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder), str(seconds)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "locked"
    return child


def test_readers_answer_while_another_process_holds_the_write_lock(plant, tmp_path, scheme):
    """Issue 15.10: every update took the write lock, even with nothing to write, so `ask`
    and `search` about indexed files waited for another process's build (and then raised
    IndexBusyError)."""
    plant({PHRASE: 10.0})
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "birds.txt").write_text(f"{filler(80)} Each autumn the {PHRASE}. {filler(80, 2)}")
    ix = tmp_path / "ix"
    qa = small_qa(ix)
    assert qa.ask("Where does the kestrel go?", folder)[0].text == PHRASE
    with Index(ix) as index:
        index.update([folder], scheme)
    child = hold_lock(ix, 120)
    try:
        # lock_timeout=0: a reader that tried to take the write lock would fail at once with
        # IndexBusyError (the child holds it), so answering proves it never waits for it.
        reader = small_qa(ix)
        reader._index = Index(ix, lock_timeout=0)
        [answer] = reader.ask("Where does the kestrel go?", folder)
        assert answer.text == PHRASE
        with Index(ix, lock_timeout=0) as index:
            report = index.update([folder], scheme)
            hits = index.search("kestrel autumn", report.doc_ids, scheme, k=1)
        assert "kestrel" in hits[0].snippet
        # A file that still needs indexing waits for the writer (here: gives up at once).
        (folder / "new.txt").write_text("Something new to index. " + filler(40))
        with pytest.raises(IndexBusyError, match="Another docqa process is updating"):
            Index(ix, lock_timeout=0.2).update([folder], scheme)
    finally:
        child.kill()
        child.wait()


# --- 11: a password given after a PDF failed without one -----------------------------------


def test_a_pdf_that_needed_a_password_is_retried_when_one_is_given(tmp_path, scheme):
    """Issue 15.11: the stored "needs a password" status was reused by file stat and by
    content hash, so --password had no effect until --rebuild."""
    plain = make_pdf(tmp_path / "plain.pdf", ["The vault code is 4417. " + filler(40)])
    docs = tmp_path / "docs"
    docs.mkdir()
    locked = encrypt_pdf(plain, docs / "locked.pdf", user_password="s3cret")
    with Index(tmp_path / "ix") as index:
        [status] = index.update([docs], scheme).statuses
        assert status.state == "failed" and "needs a password" in status.reason
        # The same file, unchanged (same size and time): a wrong password is tried.
        report = index.update([docs], scheme, password="wrong")
        assert report.parsed == 1 and "password given is wrong" in report.statuses[0].reason
        report = index.update([docs], scheme, password="s3cret")
        assert report.parsed == 1 and report.statuses[0].state == "ok"
        hits = index.search("vault code", report.doc_ids, scheme, k=1)
        assert "4417" in hits[0].snippet
        # Decrypted once, the text is reused without the password.
        report = index.update([docs], scheme)
        assert report.parsed == 0 and report.statuses[0].state == "ok"
    # By content hash: a copy under another name of a PDF that failed for want of a password.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(locked, other / "a.pdf")
    with Index(tmp_path / "ix2") as index:
        assert index.update([other], scheme).statuses[0].state == "failed"
        shutil.copy(locked, other / "b.pdf")
        report = index.update([other], scheme, password="s3cret")
        assert [s.state for s in report.statuses] == ["ok", "ok"]


def test_cli_index_password_after_a_failure(tmp_path):
    """Issue 15.11 through the CLI: `docqa index --password` after a run without one."""
    plain = make_pdf(tmp_path / "plain.pdf", ["The vault code is 4417. " + filler(40)])
    docs = tmp_path / "docs"
    docs.mkdir()
    encrypt_pdf(plain, docs / "locked.pdf", user_password="s3cret")
    base = ["index", str(docs), "--index", str(tmp_path / "ix"), "--no-dense", "--json"]
    runner = CliRunner()
    assert runner.invoke(app, base).exit_code == 2
    result = runner.invoke(app, [*base, "--password", "s3cret"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["parsed"] == 1 and payload["files"][0]["state"] == "ok"


# --- 12: messages that say what happened ----------------------------------------------------

READ_ONLY_SCRIPT = """
import json, sys
from typer.testing import CliRunner
import docqa.reader
from docqa.cli import app
sys.path.insert(0, sys.argv[2])
from planted import PlantedModel, planted_loader
from transformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[3])
model = PlantedModel(tokenizer, {sys.argv[4]: 10.0})
docqa.reader.load_model = planted_loader(model, tokenizer)
results = {}
for name, args in json.loads(sys.argv[1]).items():
    r = CliRunner().invoke(app, args)
    error = r.exception
    error = None if error is None or isinstance(error, SystemExit) else repr(error)
    results[name] = [r.exit_code, r.stdout, r.stderr, error]
print("RESULTS " + json.dumps(results))
"""


def run_with_read_only(folder: Path, commands: dict[str, list[str]]) -> dict[str, list]:
    """Run CLI commands in a process that sees ``folder`` read-only for real.

    Tests run as root here, and root ignores permission bits; so as root the folder is made
    read-only with a read-only bind mount in a private mount namespace (``unshare``), which
    stops root too (EROFS). As another user, permission bits do it.
    """
    tests = str(Path(__file__).parent)
    argv = [sys.executable, "-c", READ_ONLY_SCRIPT, json.dumps(commands), tests, str(VOCAB), PHRASE]
    if os.getuid() != 0:
        os.chmod(folder, 0o500)
        for p in folder.iterdir():
            os.chmod(p, 0o400)
        try:
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
        finally:
            os.chmod(folder, 0o700)
            for p in folder.iterdir():
                os.chmod(p, 0o600)
    else:
        q = shlex.quote(str(folder))
        mount = f"mount --bind {q} {q} && mount -o remount,bind,ro {q}"
        unshare = shutil.which("unshare")
        if unshare is None or subprocess.run([unshare, "-rm", "sh", "-c", mount]).returncode:
            pytest.skip("root, and no way to mount the index read-only (unshare -rm)")
        command = " ".join(shlex.quote(a) for a in argv)
        shell = f"{mount} && {command}"
        done = subprocess.run(
            [unshare, "-rm", "sh", "-c", shell],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")]
    assert lines, done.stderr
    return json.loads(lines[0][len("RESULTS ") :])


@linux_only
@pytest.mark.parametrize("wal", [False, True], ids=["closed", "wal-in-use"])
def test_read_only_index_answers_and_says_it_is_read_only(plant, tmp_path, wal):
    """Issue 15.12: a read-only index said it was corrupt ("rebuild or delete"), or gave a
    PermissionError traceback (--rebuild), even when nothing needed writing. ``wal``: another
    process has it open, so its -wal and -shm files exist (SQLite reads through them)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "birds.txt").write_text(f"{filler(80)} Each autumn the {PHRASE}. {filler(80, 2)}")
    ix = tmp_path / "ix"
    build = CliRunner().invoke(app, ["index", str(docs), "--index", str(ix), "--no-dense"])
    assert build.exit_code == 0, build.stderr
    plant({PHRASE: 10.0})  # the same reader as in the read-only process below
    question = ["ask", "Where does the kestrel go?", str(docs), "--index", str(ix), "--no-dense"]
    build = CliRunner().invoke(app, question)
    assert build.exit_code == 0 and PHRASE in build.stdout, build.stderr
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "new.txt").write_text("Something new to index. " + filler(40))
    common = ["--index", str(ix), "--no-dense"]
    commands = {
        "ask": [*question, "--json"],
        "search": ["search", "kestrel autumn", str(docs), *common, "--json"],
        "index": ["index", str(docs), *common],
        "new": ["search", "kestrel", str(docs), str(newer), *common],
        "rebuild": ["index", "--rebuild", str(docs), *common],
    }
    with contextlib.ExitStack() as stack:
        if wal:
            writer = stack.enter_context(Index(ix))
            assert writer.files() and (ix / "index.sqlite3-shm").exists()
        results = run_with_read_only(ix, commands)
    code, stdout, stderr, error = results["ask"]
    assert (code, error) == (0, None), stderr
    assert json.loads(stdout)["answers"][0]["text"] == PHRASE
    code, stdout, stderr, error = results["search"]
    assert (code, error) == (0, None), stderr
    assert json.loads(stdout)["hits"][0]["source"].endswith("birds.txt")
    code, stdout, stderr, error = results["index"]
    assert (code, error) == (0, None), stderr
    assert "0 parsed" in " ".join(stdout.split())
    for name in ("new", "rebuild"):
        code, stdout, stderr, error = results[name]
        assert (code, error) == (2, None), (name, stderr, error)
        message = one_sentence(stderr)
        assert message.startswith("error:") and "read-only" in message, message
        assert "rebuild it" not in message and "delete" not in message, message


def test_a_full_disk_says_so_not_rebuild(tmp_path, scheme, monkeypatch):
    """Issue 15.12: SQLite's "database or disk is full" was reported as a damaged index
    ("rebuild it ... or delete that folder"). The disk fills for real here: SQLite's
    max_page_count makes it return SQLITE_FULL as a full disk does."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "small.txt").write_text("A small note. " + filler(20))
    ix = tmp_path / "ix"
    with Index(ix) as index:
        index.update([docs], scheme)
    real_connect = sqlite3.connect

    def nearly_full(*args, **kwargs):
        db = real_connect(*args, **kwargs)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages + 1}")
        return db

    monkeypatch.setattr(sqlite3, "connect", nearly_full)
    (docs / "big.txt").write_text(" ".join(f"word{i}" for i in range(40_000)))
    with pytest.raises(DocQAError) as caught, Index(ix) as index:
        index.update([docs], scheme)
    message = str(caught.value)
    assert "full" in message and "rebuild" not in message and "delete" not in message, message
    result = CliRunner().invoke(app, ["index", str(docs), "--index", str(ix), "--no-dense"])
    assert result.exit_code == 2, result.stderr
    message = one_sentence(result.stderr)
    assert "full" in message and "rebuild" not in message, message
    # The index itself is fine: what was there still reads.
    monkeypatch.setattr(sqlite3, "connect", real_connect)
    with Index(ix) as index:
        assert [os.path.basename(f.key) for f in index.files()] == ["small.txt"]


def test_no_space_left_creating_the_index_says_the_disk_is_full(tmp_path, monkeypatch):
    """Issue 15.12: an OSError(ENOSPC) while creating the index files is a full disk too."""

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(docqa.index.store, "_create_private_file", no_space)
    with pytest.raises(DocQAError, match="full") as caught:
        Index(tmp_path / "ix").connect()
    assert "rebuild" not in str(caught.value)


# --- 13: no orphan processes after kill -9 --------------------------------------------------

#: `docqa index` with the pool threshold lowered so that a few small PDFs go to worker processes.
INDEX_IN_POOL = (
    "import sys, docqa.index.ingest; docqa.index.ingest.PARALLEL_MIN_BYTES = 0; "
    "from docqa.cli import main; "
    "sys.argv = ['docqa', 'index', '--no-dense', '--index', sys.argv[1], sys.argv[2]]; main()"
)


def session_processes(sid: int) -> list[tuple[int, str]]:
    """Live (not zombie) processes of session ``sid``: descendants keep it when orphaned."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append((int(pid), command))
    return found


@linux_only
def test_kill_9_of_docqa_index_leaves_no_worker_processes(tmp_path):
    """Issue 15.13: after kill -9 of `docqa index`, its parsing pool and PDF workers lived
    on as orphans, forever."""
    from pypdf import PdfReader, PdfWriter

    words = " ".join(f"word{i}" for i in range(400))
    base = make_pdf(tmp_path / "base.pdf", [f"Page {n}. {words}" for n in range(4)])
    writer = PdfWriter()
    for _ in range(25):
        for page in PdfReader(str(base)).pages:
            writer.add_page(page)
    docs = tmp_path / "docs"
    docs.mkdir()
    with open(tmp_path / "long.pdf", "wb") as f:
        writer.write(f)
    data = (tmp_path / "long.pdf").read_bytes()
    for n in range(8):  # 100 pages each, different bytes: every one is parsed
        (docs / f"m{n}.pdf").write_bytes(data + f"\n%{n}\n".encode())
    parent = subprocess.Popen(
        [sys.executable, "-c", INDEX_IN_POOL, str(tmp_path / "ix"), str(docs)],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            procs = session_processes(parent.pid)
            if sum("_pdf_worker" in c for _, c in procs) >= 2:
                break
            assert parent.poll() is None, "docqa index ended before its workers were seen"
            time.sleep(0.05)
        else:
            pytest.fail("no PDF workers appeared")
        assert sum("spawn_main" in c for _, c in procs) >= 2, procs
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while session_processes(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = session_processes(parent.pid)
        assert not left, f"orphans: {left}"
    finally:
        for pid, _ in session_processes(parent.pid):
            os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()


# --- 14: sources as a generator, or of a wrong type -----------------------------------------


def test_sources_given_as_a_generator_are_read_once(plant, tmp_path):
    """Issue 15.14: `ask(q, generator)` split the sources (consuming the generator), then
    loaded them again from the exhausted generator: "No documents were given"."""
    plant({PHRASE: 10.0})
    text = f"{filler(40)} Each autumn the {PHRASE} to Africa. {filler(40, 3)}"
    doc = Document(text=text, source="birds")
    qa = small_qa(tmp_path / "ix")
    assert qa.ask("Where?", (d for d in [doc]))[0].text == PHRASE
    assert [a[0].text for a in qa.ask_many(["Where?", "What?"], (d for d in [doc]))] == [
        PHRASE,
        PHRASE,
    ]
    path = tmp_path / "birds.txt"
    path.write_text(text)
    assert qa.ask("Where?", (p for p in [path]))[0].text == PHRASE
    mixed = (s for s in [path, Document(text="Nothing here. " + filler(30), source="x")])
    assert qa.ask("Where?", mixed)[0].text == PHRASE
    memory = small_qa(False)
    assert memory.ask("Where?", iter([str(path)]))[0].text == PHRASE


@pytest.mark.parametrize(
    ("sources", "named"), [(None, "None"), (42, "int"), (b"birds.txt", "bytes"), ([b"x"], "bytes")]
)
def test_sources_that_are_not_sources_are_an_input_error(tmp_path, sources, named):
    """Issue 15.14: None and ints raised a bare TypeError ("'int' object is not iterable"),
    and bytes iterated as ints."""
    qa = small_qa(tmp_path / "ix")
    for call in (
        lambda: qa.ask("Where?", sources),
        lambda: qa.ask_many(["Where?"], sources),
        lambda: qa.documents(sources),
    ):
        with pytest.raises(InputError) as caught:
            call()
        message = str(caught.value)
        assert named in message and "\n" not in message and message.endswith("."), message
