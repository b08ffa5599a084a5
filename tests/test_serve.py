"""Issue 19: `docqa serve`, the HTTP API (every endpoint and error status through the ASGI test
client), uploads, the token, a real uvicorn server, the offsets → pdfium mapping on the shared
manuals, and `docqa ask --highlight`.

The reader is a `PlantedModel` (logits peak on "two years" and on `PHRASE`), so an answer that
comes back from the wrong file, page or offsets fails the test.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import MANUALS, PHRASE, ROOT, RealServer, filler, invoke_cli

pytest.importorskip("fastapi")
pytest.importorskip("pypdfium2")

from fastapi.testclient import TestClient
from PIL import Image

from docqa import DocQA, create_app, load
from docqa.highlight import (
    HIGHLIGHT_ALPHA,
    HIGHLIGHT_RGB,
    locate,
    normal_form,
    open_pdf,
    page_text,
)

TOKEN = "s3cret-token"
SAMPLE_PDF = ROOT / "sample_docs" / "aurora-manual.pdf"
WARRANTY = "How long is the warranty?"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def planted(tokenizer):
    """Patch the reader loader for a whole module (the `plant` fixture is per test)."""
    from planted import PlantedModel, planted_loader

    model = PlantedModel(tokenizer, {"two years": 12.0, PHRASE: 14.0})
    model.loads = []
    return model, planted_loader(model, tokenizer, model.loads)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model, tokenizer):
    """An app over a folder with the sample PDF and a text file, with a token."""
    import docqa.reader

    root = tmp_path_factory.mktemp("serve")
    folder = root / "docs"
    folder.mkdir()
    shutil.copy(SAMPLE_PDF, folder / "aurora-manual.pdf")
    (folder / "notes.txt").write_text(f"Release notes. {filler(40)}.\n")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really a PDF")
    _, loader = planted(tokenizer)
    qa = DocQA(model=str(tiny_model), index=root / "index", dense=False, workers=1)
    app = create_app(qa, [folder], token=TOKEN, max_upload_mb=1)
    client = TestClient(app, raise_server_exceptions=False)
    # The model loads once, at start: the planted loader is needed only until then.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(docqa.reader, "load_model", loader)
        client.__enter__()
    try:
        client.headers.update(AUTH)
        yield client, qa, root
    finally:
        client.__exit__(None, None, None)


def ids_by_name(client) -> dict[str, int]:
    docs = client.get("/v1/documents").json()["documents"]
    return {d["name"].rsplit("/", 1)[-1]: d["id"] for d in docs}


def is_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text and "<html" not in response.text.lower()
    return body


def marked_text_pixels(png: bytes) -> int:
    """Pixels of dark text under the highlight: what a highlight painted over the answer's
    words shows, and one painted beside them (on blank paper) does not."""
    p = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    r, g, b = p[..., 0], p[..., 1], p[..., 2]
    return int(((b < 100) & (r > b + 60) & (g > b + 40)).sum())


def highlight_pixels(png: bytes) -> int:
    """Pixels of a rendered page painted with the highlight over white paper."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    want = np.array(
        [round(255 * (1 - HIGHLIGHT_ALPHA) + c * HIGHLIGHT_ALPHA) for c in HIGHLIGHT_RGB]
    )
    return int((np.abs(pixels - want) <= 6).all(axis=-1).sum())


# -- the page, its assets, the documents of the service: no token needed ---------------------


def test_page_assets_health_and_openapi_load_without_the_token(served):
    client, _, _ = served
    bare = {"Authorization": ""}
    page = client.get("/", headers=bare)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert client.get(asset, headers=bare).status_code == 200
    assert {"app.js", "style.css"} <= {
        a.rsplit("/", 1)[-1] for a in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    }
    # Nothing on the page comes from the network: no absolute URL in the page or its assets.
    for text in (
        page.text,
        client.get("/static/app.js").text,
        client.get("/static/style.css").text,
    ):
        assert not re.search(r"(?:src|href|url\()\s*=?\s*[\"']?(?:https?:)?//", text)
    assert client.get("/healthz", headers=bare).json() == {"status": "ok", "model": "loaded"}
    schema = client.get("/openapi.json", headers=bare).json()
    assert {"/v1/ask", "/v1/search", "/v1/documents", "/v1/info"} <= set(schema["paths"])
    assert "/v1/documents/{doc_id}/pages/{number}.png" in schema["paths"]
    assert client.get("/docs", headers=bare).status_code == 200


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("get", "/v1/info", None),
        ("get", "/v1/documents", None),
        ("get", "/v1/search?q=warranty", None),
        ("post", "/v1/ask", {"question": WARRANTY}),
        ("delete", "/v1/documents/1", None),
        ("get", "/v1/documents/1/pages/1.png", None),
    ],
)
@pytest.mark.parametrize("header", ["", "Bearer wrong", f"Basic {TOKEN}", TOKEN])
def test_every_v1_request_needs_the_token(served, method, path, body, header):
    client, _, _ = served
    kwargs = {"headers": {"Authorization": header}}
    if body is not None:
        kwargs["json"] = body
    response = getattr(client, method)(path, **kwargs)
    assert is_json_error(response, 401)["error"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


def test_binds_no_cors_by_default_and_one_origin_with_cors(served, tiny_model, tmp_path):
    client, _, _ = served
    origin = {"Origin": "http://example.test"}
    assert "access-control-allow-origin" not in client.get("/v1/info", headers=origin).headers
    qa = DocQA(model=str(tiny_model), index=tmp_path / "index", dense=False, workers=1)
    app = create_app(qa, [], cors="http://example.test")
    with TestClient(app) as other:
        allowed = other.get("/healthz", headers=origin)
        assert allowed.headers["access-control-allow-origin"] == "http://example.test"
        refused = other.get("/healthz", headers={"Origin": "http://elsewhere.test"})
        assert "access-control-allow-origin" not in refused.headers


# -- asking ------------------------------------------------------------------------------------


def test_ask_returns_what_docqa_ask_json_returns(served, tiny_model, tokenizer, monkeypatch):
    """The service's answer object is the CLI's: same keys, same answers (plus each answer's
    ``doc_id``), from the same index."""
    import docqa.reader

    client, _, root = served
    response = client.post("/v1/ask", json={"question": WARRANTY, "top_k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    best = body["answers"][0]
    assert best["text"] == "two years"
    assert best["source"].endswith("aurora-manual.pdf") and best["page"] == 9
    doc = load(root / "docs" / "aurora-manual.pdf")
    assert doc.text[best["start"] : best["end"]] == "two years"
    assert best["doc_id"] == ids_by_name(client)["aurora-manual.pdf"]

    _, loader = planted(tokenizer)
    monkeypatch.setattr(docqa.reader, "load_model", loader)
    args = ["ask", WARRANTY, str(root / "docs"), "--json", "-k", "2", "--no-dense"]
    args += ["--model", str(tiny_model), "--index", str(root / "index")]
    result = invoke_cli(args)
    assert result.exit_code == 0, result.stderr
    cli = json.loads(result.stdout)
    assert set(body) == set(cli)
    for ours, theirs in zip(body["answers"], cli["answers"], strict=True):
        assert {k: v for k, v in ours.items() if k != "doc_id"} == theirs


def test_ask_options_chunks_windows_exhaustive_and_sources(served):
    client, _, _ = served
    ids = ids_by_name(client)
    for extra in ({"chunks": 2}, {"windows": 2}, {"exhaustive": True}):
        answers = client.post("/v1/ask", json={"question": WARRANTY, **extra}).json()["answers"]
        assert answers[0]["text"] == "two years", extra
    only_notes = client.post(
        "/v1/ask", json={"question": WARRANTY, "sources": [ids["notes.txt"]], "top_k": 3}
    ).json()
    assert all(a["source"].endswith("notes.txt") for a in only_notes["answers"])
    missing = client.post("/v1/ask", json={"question": WARRANTY, "sources": [987654]})
    assert "987654" in is_json_error(missing, 404)["detail"]


@pytest.mark.parametrize(
    "body, status",
    [
        ({"question": "   "}, 400),  # the library's InputError: one sentence
        ({}, 422),
        ({"question": WARRANTY, "top_k": 0}, 422),
        ({"question": WARRANTY, "chunks": -1}, 422),
        ({"question": WARRANTY, "sources": "all"}, 422),
        ({"question": WARRANTY, "surprise": 1}, 422),
        ({"question": 12}, 422),
    ],
)
def test_bad_questions_are_json_errors(served, body, status):
    client, _, _ = served
    is_json_error(client.post("/v1/ask", json=body), status)


def test_malformed_json_body_is_a_422(served):
    client, _, _ = served
    response = client.post(
        "/v1/ask", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    is_json_error(response, 422)


def test_unknown_routes_and_methods_are_json_not_html(served):
    client, _, _ = served
    is_json_error(client.get("/v1/nothing"), 404)
    is_json_error(client.get("/nothing/at/all"), 404)
    is_json_error(client.put("/v1/ask", json={}), 405)


def test_an_unexpected_failure_is_a_json_500_without_traceback(served, monkeypatch):
    client, _, _ = served
    service = client.app.state.service

    def broken(*args):
        raise RuntimeError("secret internal state /etc/passwd")

    monkeypatch.setattr(service, "ask", broken)
    response = client.post("/v1/ask", json={"question": WARRANTY})
    body = is_json_error(response, 500)
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert body["error"] == "internal"


def test_a_model_that_cannot_load_answers_503(tmp_path):
    qa = DocQA(model=str(tmp_path / "no-such-model"), index=tmp_path / "index", dense=False)
    app = create_app(qa, [])
    with TestClient(app) as client:
        assert client.get("/healthz").json()["model"] == "error"
        body = is_json_error(client.post("/v1/ask", json={"question": WARRANTY}), 503)
        assert "\n" not in body["detail"]
        is_json_error(client.get("/v1/search", params={"q": "warranty"}), 503)


# -- search and info ---------------------------------------------------------------------------


def test_search_gives_passages_with_file_page_and_snippet(served):
    client, _, _ = served
    hits = client.get("/v1/search", params={"q": "warranty purchase", "k": 3}).json()["hits"]
    assert hits and hits[0]["source"].endswith("aurora-manual.pdf")
    assert hits[0]["page"] == 9 and "warranty" in hits[0]["snippet"].lower()
    assert hits[0]["doc_id"] == ids_by_name(client)["aurora-manual.pdf"]
    is_json_error(client.get("/v1/search", params={"q": "   "}), 400)
    is_json_error(client.get("/v1/search", params={"q": "x", "k": 0}), 422)
    is_json_error(client.get("/v1/search"), 422)


def test_info_names_model_precision_and_index(served):
    client, qa, root = served
    info = client.get("/v1/info").json()
    assert info["model"] == qa.model_name
    assert info["precision"] == qa.reader.precision
    assert info["index"] == str(root / "index") and info["index_bytes"] > 0
    assert info["documents"] >= 2 and ".pdf" in info["suffixes"]
    # Questions go through the service's one reader thread, which counts them.
    reads = info["reads"]
    assert client.post("/v1/ask", json={"question": WARRANTY}).status_code == 200
    after = client.get("/v1/info").json()["reads"]
    assert after["questions"] == reads["questions"] + 1
    assert after["batches"] == reads["batches"] + 1


def test_with_batching_off_each_request_reads_alone(tiny_model, tmp_path, plant):
    plant({"two years": 12.0})
    qa = DocQA(model=str(tiny_model), index=tmp_path / "index", dense=False, workers=1)
    app = create_app(qa, [SAMPLE_PDF], batch_windows=0)
    with TestClient(app) as client:
        answer = client.post("/v1/ask", json={"question": WARRANTY}).json()["answers"][0]
        assert answer["text"] == "two years"
        assert client.get("/v1/info").json()["reads"]["batches"] is None


# -- uploads -----------------------------------------------------------------------------------


def test_upload_then_ask_answers_from_the_uploaded_file_then_delete(served):
    client, _, root = served
    text = f"Field guide. {filler(30)}. In autumn the {PHRASE} each year. {filler(30, 3)}."
    files = [
        ("files", ("birds.txt", text.encode(), "text/plain")),
        ("files", ("more.md", b"# More\n\nNothing to see.\n", "text/markdown")),
    ]
    response = client.post("/v1/documents", files=files)
    assert response.status_code == 200, response.text
    statuses = response.json()["files"]
    assert [(s["name"], s["state"]) for s in statuses] == [("birds.txt", "ok"), ("more.md", "ok")]
    bird = statuses[0]["id"]

    uploads = root / "index" / "uploads"
    assert stat.S_IMODE(uploads.stat().st_mode) == 0o700
    stored = sorted(p for p in uploads.iterdir() if not p.name.startswith("."))
    assert len(stored) == 2
    for p in stored:  # generated names: never the client's
        assert re.fullmatch(r"[0-9a-f]{32}\.(txt|md)", p.name)
        assert stat.S_IMODE(p.stat().st_mode) == 0o600

    listed = {d["name"]: d for d in client.get("/v1/documents").json()["documents"]}
    assert listed["birds.txt"]["id"] == bird and listed["birds.txt"]["upload"]
    assert listed["birds.txt"]["size"] == len(text.encode())
    assert listed["birds.txt"]["pages"] == 1
    served = {
        d["name"].rsplit("/", 1)[-1]: d for d in client.get("/v1/documents").json()["documents"]
    }
    assert served["aurora-manual.pdf"]["pages"] == len(load(SAMPLE_PDF).pages)
    pdf = served["aurora-manual.pdf"]
    assert pdf["state"] == "ok" and not pdf["upload"]
    broken = served["broken.pdf"]  # listed with its status and why, and no document
    assert broken["state"] == "failed" and broken["reason"] and broken["id"] is None

    answer = client.post("/v1/ask", json={"question": "Where does it migrate?"}).json()
    best = answer["answers"][0]
    assert (best["text"], best["source"], best["doc_id"]) == (PHRASE, "birds.txt", bird)

    deleted = client.delete(f"/v1/documents/{bird}")
    assert deleted.status_code == 200 and deleted.json()["files"] == ["birds.txt"]
    assert "birds.txt" not in ids_by_name(client)
    assert len([p for p in uploads.iterdir() if not p.name.startswith(".")]) == 1
    after = client.post("/v1/ask", json={"question": "Where does it migrate?", "top_k": 3})
    assert all(a["source"] != "birds.txt" for a in after.json()["answers"])
    is_json_error(client.delete(f"/v1/documents/{bird}"), 404)
    more = ids_by_name(client)["more.md"]
    assert client.delete(f"/v1/documents/{more}").status_code == 200


def test_documents_from_the_folders_given_cannot_be_deleted(served):
    client, _, _ = served
    pdf = ids_by_name(client)["aurora-manual.pdf"]
    is_json_error(client.delete(f"/v1/documents/{pdf}"), 400)
    is_json_error(client.delete("/v1/documents/not-a-number"), 422)


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "../../evil.txt", "/tmp/evil.txt", "..\\evil.txt", "a/../../evil.txt", ".."],
)
def test_path_traversal_in_upload_names_is_refused(served, name):
    client, _, root = served
    before = set((root / "index" / "uploads").iterdir())
    response = client.post("/v1/documents", files=[("files", (name, b"evil", "text/plain"))])
    is_json_error(response, 400)
    assert set((root / "index" / "uploads").iterdir()) == before
    assert not list(root.rglob("evil.txt")) and not Path("/tmp/evil.txt").exists()


def test_upload_type_and_size_limits(served):
    client, _, root = served
    before = set((root / "index" / "uploads").iterdir())
    for name in ("tool.exe", "archive.tar.gz", "noext", "page.PDF.sh"):
        response = client.post("/v1/documents", files=[("files", (name, b"x", "text/plain"))])
        assert is_json_error(response, 415)["error"] == "unsupported_type"
    # One refused file refuses the whole request: nothing is stored.
    mixed = [("files", ("ok.txt", b"fine", "text/plain")), ("files", ("bad.exe", b"x", "a/b"))]
    is_json_error(client.post("/v1/documents", files=mixed), 415)
    big = b"word " * (1024 * 1024 // 5 + 1000)  # a little over the 1 MB limit
    response = client.post("/v1/documents", files=[("files", ("big.txt", big, "text/plain"))])
    assert is_json_error(response, 413)["error"] == "too_large"
    is_json_error(client.post("/v1/documents"), 422)  # no file at all
    assert set((root / "index" / "uploads").iterdir()) == before


def test_upload_over_the_limit_without_content_length_is_refused(served):
    """A client that streams (no Content-Length) meets the limit while the file is stored."""
    client, _, root = served
    boundary = "xyzzy"
    big = b"word " * (1024 * 1024 // 5 + 1000)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + big
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def chunks():
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    response = client.post(
        "/v1/documents",
        content=chunks(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    is_json_error(response, 413)
    assert not [p for p in (root / "index" / "uploads").iterdir() if p.suffix == ".txt"]


def test_a_slow_upload_does_not_hold_up_questions(served, monkeypatch):
    """Issue 19, item 6: while an upload is being indexed, a question about indexed files is
    answered (it reads the index as it stands; it does not wait for the update)."""
    client, qa, _ = served
    indexing, release = threading.Event(), threading.Event()
    real_index = qa.index

    def slow_index(paths, **kwargs):
        indexing.set()
        assert release.wait(30)
        return real_index(paths, **kwargs)

    monkeypatch.setattr(qa, "index", slow_index)
    results = {}

    def upload():
        files = [("files", ("slow.txt", b"A slow file.", "text/plain"))]
        results["upload"] = client.post("/v1/documents", files=files)

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        assert indexing.wait(30)
        started = time.perf_counter()
        answer = client.post("/v1/ask", json={"question": WARRANTY})
        assert answer.status_code == 200 and answer.json()["answers"][0]["text"] == "two years"
        assert not release.is_set()  # answered while the upload was still being indexed
        assert client.get("/v1/documents").status_code == 200
        assert time.perf_counter() - started < 25
    finally:
        release.set()
        thread.join(60)
    assert results["upload"].json()["files"][0]["state"] == "ok"
    slow = ids_by_name(client)["slow.txt"]
    assert client.delete(f"/v1/documents/{slow}").status_code == 200


# -- pages -------------------------------------------------------------------------------------


def test_page_image_highlights_the_answer(served):
    client, _, _ = served
    best = client.post("/v1/ask", json={"question": WARRANTY}).json()["answers"][0]
    url = f"/v1/documents/{best['doc_id']}/pages/{best['page']}.png"
    marked = client.get(url, params={"highlight": f"{best['start']}:{best['end']}"})
    assert marked.status_code == 200 and marked.headers["content-type"] == "image/png"
    plain = client.get(url)
    assert highlight_pixels(plain.content) == 0
    assert highlight_pixels(marked.content) > 200
    # Over the answer's words: the highlight covers dark text (a box beside them would not).
    assert marked_text_pixels(plain.content) == 0
    assert marked_text_pixels(marked.content) > 50
    # The highlight is where the answer is: a span on another page paints nothing here.
    other = client.get(
        url.replace(f"/{best['page']}.png", "/1.png"),
        params={"highlight": f"{best['start']}:{best['end']}"},
    )
    assert highlight_pixels(other.content) == 0


def test_page_image_errors(served):
    client, _, _ = served
    ids = ids_by_name(client)
    pdf, notes = ids["aurora-manual.pdf"], ids["notes.txt"]
    is_json_error(client.get(f"/v1/documents/{pdf}/pages/99.png"), 404)
    is_json_error(client.get("/v1/documents/987654/pages/1.png"), 404)
    is_json_error(client.get(f"/v1/documents/{notes}/pages/1.png"), 400)
    is_json_error(client.get(f"/v1/documents/{pdf}/pages/0.png"), 422)
    for bad in ("x:y", "10", "5:-1", "1:2:3"):
        is_json_error(
            client.get(f"/v1/documents/{pdf}/pages/1.png", params={"highlight": bad}), 422
        )
    is_json_error(client.get(f"/v1/documents/{pdf}/pages/1.png", params={"highlight": "9:3"}), 400)


@pytest.mark.parametrize("name", ["R-FAQ.pdf", "R-intro.pdf"])
def test_offsets_map_to_the_same_words_in_pdfium(name):
    """docqa's offsets (pypdf text after clean-up and furniture removal) → pdfium's characters
    on the page: for spans of one to six words on several pages, the characters chosen spell
    the span, and a one-word span lands inside the longer span around it (the right
    occurrence of a common word, not the first on the page)."""
    path = MANUALS / name
    if not path.exists():
        pytest.skip(f"the shared manuals are not here ({path})")
    doc = load(path)
    pdf = open_pdf(path)
    rng = random.Random(19)
    checked = 0
    try:
        for page in rng.sample(doc.pages, 6):
            text = doc.text[page.start : page.end]
            words = list(re.finditer(r"\S+", text))
            if len(words) < 12:
                continue
            chars = page_text(pdf, page.number)
            for _ in range(6):
                i, n = rng.randrange(1, len(words) - 7), rng.randint(1, 6)
                start, end = page.start + words[i].start(), page.start + words[i + n - 1].end()
                found = locate(doc, page.number, start, end, chars)
                shown = "".join(chars.chars[j] for j in found)
                assert normal_form(shown)[0] == normal_form(doc.text[start:end])[0], (
                    page.number,
                    doc.text[start:end],
                    shown,
                )
                around = locate(
                    doc,
                    page.number,
                    page.start + words[i - 1].start(),
                    page.start + words[i + 6].end(),
                    chars,
                )
                assert set(found) <= set(around)
                checked += 1
    finally:
        pdf.close()
    assert checked >= 20


def test_text_the_page_does_not_hold_is_not_highlighted(served):
    """A span whose text is not on the page gives no characters (no guessed highlight)."""
    from docqa import Document, Page

    pdf = open_pdf(SAMPLE_PDF)
    try:
        chars = page_text(pdf, 1)
    finally:
        pdf.close()
    doc = Document("zebra quantum xylophone", "x.pdf", pages=(Page(1, 0, 23),))
    assert locate(doc, 1, 0, 23, chars) == []


# -- a real server -----------------------------------------------------------------------------


def test_a_real_uvicorn_server_on_a_free_local_port(tiny_model, tmp_path, plant):
    import httpx

    plant({"two years": 12.0})
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SAMPLE_PDF, folder)
    qa = DocQA(model=str(tiny_model), index=tmp_path / "index", dense=False, workers=1)
    with RealServer(create_app(qa, [folder], token=TOKEN)) as server:
        assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
        assert httpx.get(server.url + "/v1/info").status_code == 401
        answer = httpx.post(server.url + "/v1/ask", json={"question": WARRANTY}, headers=AUTH)
        assert answer.json()["answers"][0]["text"] == "two years"
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/healthz", timeout=2)


# -- the command line --------------------------------------------------------------------------


def test_import_docqa_does_not_import_fastapi():
    code = "import sys, docqa; assert 'fastapi' not in sys.modules and 'uvicorn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_serve_without_the_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed
    result = invoke_cli(["serve"])
    assert result.exit_code == 2
    assert "pip install 'docqa[serve]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_serve_command_builds_the_app_and_runs_uvicorn(monkeypatch, tiny_model, tmp_path, plant):
    """`docqa serve PATH --token T --max-upload-mb N --cors O --batch-windows B`: the options
    reach the app; 127.0.0.1 by default."""
    import uvicorn

    plant({"two years": 12.0})
    ran = {}

    def fake_run(app, host, port, **kwargs):
        ran.update(app=app, host=host, port=port)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SAMPLE_PDF, folder)
    args = ["serve", str(folder), "--model", str(tiny_model), "--index", str(tmp_path / "ix")]
    args += ["--token", TOKEN, "--max-upload-mb", "2", "--cors", "http://a.test", "--no-dense"]
    result = invoke_cli([*args, "--batch-windows", "30"])
    assert result.exit_code == 0, result.stderr
    assert (ran["host"], ran["port"]) == ("127.0.0.1", 8000)
    with TestClient(ran["app"]) as client:
        assert client.get("/v1/info").status_code == 401
        info = client.get("/v1/info", headers=AUTH).json()
        assert info["max_upload_mb"] == 2 and info["documents"] == 1
        assert info["reads"]["batch_windows"] == 30
        cors = client.get("/healthz", headers={"Origin": "http://a.test"})
        assert cors.headers["access-control-allow-origin"] == "http://a.test"


def test_serve_refuses_a_missing_path_and_a_model_that_cannot_load(tmp_path, tiny_model):
    missing = invoke_cli(["serve", str(tmp_path / "nowhere"), "--model", str(tiny_model)])
    assert missing.exit_code == 2 and "nowhere" in missing.stderr
    bad_model = invoke_cli(["serve", "--model", str(tmp_path / "no-model")])
    assert bad_model.exit_code == 3 and "no-model" in bad_model.stderr


def test_ask_highlight_writes_a_pdf_with_a_highlight_annotation(tmp_path, tiny_model, plant):
    from pypdf import PdfReader

    plant({"two years": 12.0})
    out = tmp_path / "answer.pdf"
    args = ["ask", WARRANTY, str(SAMPLE_PDF), "--model", str(tiny_model), "--no-dense"]
    args += ["--index", str(tmp_path / "ix"), "--highlight", str(out), "--json"]
    result = invoke_cli(args)
    assert result.exit_code == 0, result.stderr
    best = json.loads(result.stdout)["answers"][0]
    assert best["text"] == "two years"
    reader = PdfReader(out)
    assert len(reader.pages) == len(PdfReader(SAMPLE_PDF).pages)
    marked = [
        (n, a.get_object())
        for n, page in enumerate(reader.pages, 1)
        for a in page.get("/Annots") or []
        if a.get_object()["/Subtype"] == "/Highlight"
    ]
    assert [n for n, _ in marked] == [best["page"]]
    quads = [float(q) for q in marked[0][1]["/QuadPoints"]]
    # The characters inside the quadrilaterals spell the answer.
    pdf = open_pdf(out)
    try:
        chars = page_text(pdf, best["page"])
    finally:
        pdf.close()
    inside = ""
    for ch, (x0, y0, x1, y1) in zip(chars.chars, chars.boxes, strict=True):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        for k in range(0, len(quads), 8):
            xs, ys = quads[k : k + 8 : 2], quads[k + 1 : k + 8 : 2]
            if x1 > x0 and min(xs) <= cx <= max(xs) and min(ys) <= cy <= max(ys):
                inside += ch
    assert normal_form(inside)[0] == "twoyears"


def test_ask_highlight_refuses_an_answer_from_a_text_file(tmp_path, tiny_model, plant):
    plant({PHRASE: 12.0})
    notes = tmp_path / "notes.txt"
    notes.write_text(f"{filler(20)} the {PHRASE} {filler(20)}")
    out = tmp_path / "out.pdf"
    args = ["ask", "Where?", str(notes), "--model", str(tiny_model), "--no-dense"]
    args += ["--index", str(tmp_path / "ix"), "--highlight", str(out)]
    result = invoke_cli(args)
    assert result.exit_code == 2 and "not a PDF" in result.stderr
    assert not out.exists()


def test_upload_folder_permissions_are_fixed_at_start(tiny_model, tmp_path):
    uploads = tmp_path / "index" / "uploads"
    uploads.mkdir(parents=True)
    os.chmod(uploads, 0o755)
    qa = DocQA(model=str(tiny_model), index=tmp_path / "index", dense=False)
    with TestClient(create_app(qa, [])):
        assert stat.S_IMODE(uploads.stat().st_mode) == 0o700
