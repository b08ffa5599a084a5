"""Issue 19: the web page in a real browser (headless Chromium from the system, driven by
Playwright) against a real uvicorn server on 127.0.0.1: upload the sample PDF, ask "How long
is the warranty?", see "two years" highlighted, open the page image and find the highlight
painted on it. A screenshot is saved in the test's temp folder, and also to
``$DOCQA_SCREENSHOT`` when that is set (the README's picture is made so, with the bundled
reader instead of the planted one, so that the picture shows real answers and scores)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, RealServer

pytest.importorskip("fastapi")
pytest.importorskip("pypdfium2")
playwright = pytest.importorskip("playwright.sync_api")

from docqa import DocQA, create_app  # noqa: E402
from docqa.highlight import HIGHLIGHT_ALPHA, HIGHLIGHT_RGB  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary on PATH (CI installs Debian's chromium: see .ci/run)",
)
SAMPLE_PDF = ROOT / "sample_docs" / "aurora-manual.pdf"
TOKEN = "page-token"

#: Pixels of the page image painted with the highlight over white paper, and over dark text,
#: counted in the page.
COUNT_HIGHLIGHT = """(image) => {
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const [r, g, b] = WANT;
  let paper = 0;
  let text = 0;
  for (let i = 0; i < data.length; i += 4) {
    const near = (k, v) => Math.abs(data[i + k] - v) <= 6;
    if (near(0, r) && near(1, g) && near(2, b)) paper++;
    // Dark text under the highlight: the highlight is over the answer's words.
    const [pr, pg, pb] = [data[i], data[i + 1], data[i + 2]];
    if (pb < 100 && pr > pb + 60 && pg > pb + 40) text++;
  }
  return [paper, text];
}"""


@pytest.fixture
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # Root in CI's container: Chromium's sandbox needs user namespaces it may not have.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()


def test_upload_ask_and_see_the_answer_highlighted_on_the_page(
    browser, tiny_model, tmp_path, plant
):
    if os.environ.get("DOCQA_SCREENSHOT"):
        # The README's picture: the bundled reader's real answers and scores (slower to load).
        qa = DocQA(index=tmp_path / "index", dense=False, workers=1)
    else:
        plant({"two years": 12.0})
        qa = DocQA(model=str(tiny_model), index=tmp_path / "index", dense=False, workers=1)
    want = [round(255 * (1 - HIGHLIGHT_ALPHA) + c * HIGHLIGHT_ALPHA) for c in HIGHLIGHT_RGB]
    with RealServer(create_app(qa, [], token=TOKEN)) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        prompts = []

        def give_token(dialog):
            prompts.append(dialog.message)
            dialog.accept(TOKEN)

        page.on("dialog", give_token)
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(server.url + "/")
        # Keyboard first: the question field has the focus when the page opens.
        page.wait_for_function("document.activeElement && document.activeElement.id")
        assert page.evaluate("document.activeElement.id") == "question"

        page.set_input_files("#file-input", str(SAMPLE_PDF))
        page.locator("#file-list li.state-ok", has_text="aurora-manual.pdf").wait_for(
            timeout=60_000
        )
        assert len(prompts) == 1  # the token was asked for once, on the first 401

        page.fill("#question", "How long is the warranty?")
        page.press("#question", "Enter")
        marked = page.locator("#answers li").first.locator("mark.answer")
        marked.wait_for(timeout=60_000)
        assert marked.inner_text() == "two years"
        assert (
            page.locator("#answers li")
            .first.locator(".open")
            .inner_text()
            .endswith("aurora-manual.pdf:9")
        )

        page.locator("#answers li").first.locator("button.open").click()
        page.wait_for_function(
            "() => { const i = document.getElementById('page-image');"
            " return i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0; }",
            timeout=60_000,
        )
        image = page.locator("#page-image")
        paper, text = image.evaluate(COUNT_HIGHLIGHT.replace("WANT", str(want)))
        assert paper > 200 and text > 50, (paper, text)
        assert len(prompts) == 1

        # Nothing came from anywhere but this server.
        assert all(u.startswith((server.url, "blob:", "data:")) for u in requested), requested

        shot = tmp_path / "docqa-serve.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        if os.environ.get("DOCQA_SCREENSHOT"):
            target = Path(os.environ["DOCQA_SCREENSHOT"])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, target)

        # Search tab, by keyboard.
        page.focus("#tab-ask")
        page.keyboard.press("ArrowRight")
        assert page.evaluate("document.activeElement.id") == "query"
        page.keyboard.type("warranty")
        page.keyboard.press("Enter")
        hit = page.locator("#hits li").first
        hit.wait_for(timeout=30_000)
        assert "aurora-manual.pdf:9" in hit.inner_text()
        assert hit.locator("mark").first.inner_text().lower() == "warranty"

        # A narrow screen: one column, nothing wider than the screen.
        page.set_viewport_size({"width": 380, "height": 800})
        page.locator("#tab-ask").click()
        assert page.evaluate("document.documentElement.scrollWidth") <= 380
        page.close()
