"""Issue 19: property-based requests from the app's own OpenAPI document (schemathesis): no
generated request gets a 5xx, and every error is JSON ``{error, detail}``. Bounded: a few
examples per operation, each under a deadline."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from conftest import ROOT, filler

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")
pytest.importorskip("pypdfium2")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from docqa import DocQA, create_app  # noqa: E402

#: Requests drawn per generation mode, across all operations: enough to reach each operation
#: several times, few enough for a quick run.
MAX_EXAMPLES = 60


@pytest.fixture(scope="module")
def app_schema(tmp_path_factory, tiny_model):
    """The app over the sample PDF and a text file, started (lifespan run) before any request,
    and its OpenAPI document as schemathesis reads it."""
    root = tmp_path_factory.mktemp("schema")
    folder = root / "docs"
    folder.mkdir()
    shutil.copy(ROOT / "sample_docs" / "aurora-manual.pdf", folder)
    (folder / "notes.txt").write_text(f"Release notes. {filler(40)}.\n")
    qa = DocQA(model=str(tiny_model), index=root / "index", dense=False, workers=1)
    app = create_app(qa, [folder], max_upload_mb=1)
    with TestClient(app):  # the lifespan: model loaded, folder indexed
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_generated_request_gets_a_server_error(app_schema, mode):
    """Valid requests (positive) and requests that break the schema (negative), drawn across
    every operation of the OpenAPI document."""
    from schemathesis import GenerationMode

    strategy = app_schema.as_strategy(generation_mode=GenerationMode(mode))

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=timedelta(seconds=20),
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case):
        response = case.call()
        case.validate_response(response, checks=[not_a_server_error])
        assert "Traceback" not in response.text
        if response.status_code >= 400:
            content_type = response.headers.get("content-type", [""])[0]
            assert content_type.startswith("application/json"), response.text
            assert set(response.json()) == {"error", "detail"}

    check()
