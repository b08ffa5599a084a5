"""`docqa serve`: an HTTP API and a web page over one `DocQA`, its model loaded once.

Why FastAPI (over Starlette alone), served by uvicorn: the versioned API gets its OpenAPI
document and interactive docs page (``/docs``) from the route signatures, request bodies are
validated by pydantic into a 422 with the field that is wrong, and Starlette's ASGI
``TestClient`` drives every endpoint in tests without a socket. FastAPI is Starlette
underneath, so static files, middleware and lifespan are Starlette's.

How it behaves:

* The model loads once, in the lifespan, and the folders given are indexed there (progress in
  the log) before the first request is taken.
* Questions are answered in worker threads (``run_in_threadpool``), so the event loop never
  waits on the reader; they read the index as it stands (`DocQA.plan_indexed`), so an upload
  being indexed (under the index's write lock) never holds up a question about files already
  indexed. Questions that arrive together are read in one batch by one reader thread
  (`docqa.serve.batch`).
* Uploads are limited in size (413) and to docqa's file types (415), stored under the index
  folder in ``uploads/`` (mode 0700) under generated names; the client's file name is kept
  only as the name shown, never used as a path.
* Every error is JSON ``{error, detail}``; never a traceback or an HTML page.
* ``token``: every ``/v1`` request needs ``Authorization: Bearer <token>``; the page, its
  assets, ``/healthz`` and the OpenAPI document do not. No CORS unless ``cors`` names an origin.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from docqa import (
    DEFAULT_CHUNKS,
    DocQA,
    DocQAError,
    Document,
    Index,
    InputError,
    ModelLoadError,
    NoDocumentsError,
    supported_suffixes,
)
from docqa.serve.batch import BATCH_WINDOWS, ReadBatcher

log = logging.getLogger("docqa.serve")

STATIC = Path(__file__).with_name("static")
#: Where uploads go, inside the index folder.
UPLOADS = "uploads"
#: The uploads' shown names (generated file name → the client's name), beside them (a
#: hidden file: the index's walk passes it by).
NAMES_FILE = ".names.json"
#: Longest shown name kept from a client.
MAX_NAME = 200
#: Documents kept in memory for rendering pages (their text and pages).
CACHED_DOCUMENTS = 8
#: Read size while storing an upload.
UPLOAD_BLOCK = 1 << 20

_STATUS_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_type",
    422: "invalid_request",
    500: "internal",
    503: "unavailable",
}


class ApiError(HTTPException):
    """An error answered as ``{error, detail}`` with this status."""


class AskRequest(BaseModel):
    """A question for `POST /v1/ask`."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., max_length=10_000, description="The question to answer.")
    top_k: int = Field(1, ge=1, le=50, description="How many answers.")
    chunks: int | None = Field(
        None, ge=1, le=10_000, description=f"Chunks read (default {DEFAULT_CHUNKS})."
    )
    windows: int | None = Field(None, ge=1, le=10_000, description="Old name of chunks.")
    exhaustive: bool = Field(False, description="Read every window of every document (slow).")
    sources: list[int] | None = Field(
        None, max_length=10_000, description="Ids of documents to answer from (default: all)."
    )


@dataclass
class ServedFile:
    """One file the service answers from: as the index knows it, and how it is shown."""

    path: str  # where it is on disk (as given at start, or the generated upload path)
    name: str  # what the client sees
    state: str
    reason: str
    doc_id: int | None
    upload: bool

    def to_dict(self, pages: int | None = None) -> dict:
        size = None
        with contextlib.suppress(OSError):
            size = os.stat(self.path).st_size
        return {
            "id": self.doc_id,
            "name": self.name,
            "state": self.state,
            "reason": self.reason,
            "pages": pages,
            "size": size,
            "upload": self.upload,
        }


class Service:
    """What the app holds: the `DocQA`, the files it serves, and the uploads folder."""

    def __init__(
        self,
        qa: DocQA,
        paths: Sequence[str | os.PathLike],
        upload_dir: Path | None,
        batch_windows: int = BATCH_WINDOWS,
    ):
        self.qa = qa
        self.batch_windows = batch_windows
        # Made at start; None: each request reads its own question (``batch_windows=0``).
        self.batcher: ReadBatcher | None = None
        self.paths = [Path(p) for p in paths]
        self.upload_dir = upload_dir
        self.files: dict[str, ServedFile] = {}  # by absolute path
        self.names: dict[str, str] = {}  # upload file name → shown name
        self.model_error: str | None = None
        self.ready = False
        self.index: Index | None = None
        self._state = threading.Lock()  # files, names, caches
        self._writing = threading.Lock()  # one index update at a time from this service
        self._pdfium = threading.Lock()  # pdfium is not thread-safe
        self._ids: dict[str, int | None] = {}  # sha256 → doc id
        self._documents: OrderedDict[int, Document] = OrderedDict()
        self._pages: dict[int, int] = {}  # doc id → pages

    # -- start -------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the model, make the uploads folder, index the folders given and the uploads."""
        uploads = self.uploads()
        if self.batch_windows > 0:
            self.batcher = ReadBatcher(self.qa.read, self.batch_windows)
        try:
            self.qa.warm_up()
        except ModelLoadError as exc:
            # The page and the listing still work; questions answer 503 with this sentence.
            self.model_error = str(exc)
            log.error("%s", exc)
        self.index = Index(self.qa.index_directory)
        names_file = uploads / NAMES_FILE
        if names_file.exists():
            # Unreadable names cost only the names shown: the files are served under their own.
            with contextlib.suppress(OSError, ValueError):
                names = json.loads(names_file.read_text(encoding="utf-8"))
                if isinstance(names, dict):
                    self.names = {str(k): str(v) for k, v in names.items()}
        started = time.perf_counter()

        def progress(done: int, total: int, path: str, pages: int = 0) -> None:
            log.info("indexed %d/%d files (%s)", done, total, path)

        if self.model_error is not None:
            # Indexing needs the model's tokenizer: nothing is served until the model loads.
            self.ready = True
            return
        with self._writing:
            report = self.qa.index([*self.paths, uploads], progress=progress)
        self._take(report)
        log.info(
            "serving %d document(s) from %d file(s), indexed in %.1f s",
            len(report.doc_ids),
            len(report.files),
            time.perf_counter() - started,
        )
        self.ready = True

    def uploads(self) -> Path:
        folder = self.upload_dir or self.qa.index_directory / UPLOADS
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)  # also when it existed with other permissions
        self.upload_dir = folder
        return folder

    def _take(self, report) -> None:
        """Record the files of an index update (and forget those it dropped)."""
        uploads = str(self.upload_dir.resolve()) + os.sep
        with self._state:
            for f in report.files:
                key = f.key
                upload = key.startswith(uploads)
                name = self.names.get(Path(key).name, Path(key).name) if upload else f.path
                self.files[key] = ServedFile(f.path, name, f.state, f.reason, f.doc_id, upload)
            for key in [k for k, f in self.files.items() if not os.path.exists(f.path)]:
                del self.files[key]

    # -- reading -----------------------------------------------------------------------------

    def served(self) -> list[ServedFile]:
        with self._state:
            return sorted(self.files.values(), key=lambda f: (f.name, f.path))

    def doc_ids(self, sources: Sequence[int] | None = None) -> list[int]:
        ids = list(dict.fromkeys(f.doc_id for f in self.served() if f.doc_id is not None))
        if sources is None:
            return ids
        unknown = [i for i in sources if i not in ids]
        if unknown:
            raise ApiError(404, f"No document has id {unknown[0]}.")
        return list(dict.fromkeys(sources))

    def names_by_id(self) -> dict[int, str]:
        shown: dict[int, str] = {}
        for f in self.served():
            if f.doc_id is not None:
                shown.setdefault(f.doc_id, f.name)
        return shown

    def doc_id_of(self, doc: Document) -> int | None:
        with self._state:
            if doc.sha256 in self._ids:
                return self._ids[doc.sha256]
        found = self.index.document_id(doc.sha256) if doc.sha256 else None
        with self._state:
            self._ids[doc.sha256] = found
        return found

    def listing(self) -> list[dict]:
        """Every file served, with its page count (read once per document, then kept)."""
        found = []
        for f in self.served():
            pages = None
            if f.doc_id is not None:
                with self._state:
                    pages = self._pages.get(f.doc_id)
                if pages is None:
                    pages = len(self.document(f.doc_id).pages)
                    with self._state:
                        self._pages[f.doc_id] = pages
            found.append(f.to_dict(pages))
        return found

    def file_of(self, doc_id: int) -> ServedFile:
        files = [f for f in self.served() if f.doc_id == doc_id]
        if not files:
            raise ApiError(404, f"No document has id {doc_id}.")
        return files[0]

    def document(self, doc_id: int) -> Document:
        with self._state:
            doc = self._documents.get(doc_id)
            if doc is not None:
                self._documents.move_to_end(doc_id)
                return doc
        doc = self.index.document(doc_id)
        with self._state:
            self._documents[doc_id] = doc
            while len(self._documents) > CACHED_DOCUMENTS:
                self._documents.popitem(last=False)
        return doc

    def ask(self, body: AskRequest, ids: list[int]) -> dict:
        if self.model_error is not None:
            raise ModelLoadError(self.model_error)
        chunks = body.chunks if body.chunks is not None else body.windows
        depth = None if body.exhaustive else (chunks or self.qa.retrieval.chunks)
        started = time.perf_counter()
        reading = self.qa.plan_indexed(
            body.question, ids, body.top_k, depth, sources=self.names_by_id()
        )
        if self.batcher is None:
            prediction = self.qa.read([reading])[0]
        else:
            prediction = self.batcher.read(reading)
        answers = [
            {**a.to_dict(), "doc_id": self.doc_id_of(a.document)} for a in prediction.answers
        ]
        return {
            "question": body.question,
            "model": self.qa.model_name,
            "answers": answers,
            "files": [
                {"path": f.name, "state": f.state, "reason": f.reason} for f in self.served()
            ],
            "unread": 0,
            "timings": {"answer": round(time.perf_counter() - started, 3)},
        }

    def search(self, query: str, k: int) -> dict:
        if self.model_error is not None:  # its tokenizer cuts the chunks searched
            raise ModelLoadError(self.model_error)
        ids = self.doc_ids()
        if not ids:
            raise NoDocumentsError("No document has been indexed to search.")
        qa = self.qa
        hits = self.index.search(
            query, ids, qa.scheme, k, qa.encoder, self.names_by_id(), qa.include_contents
        )
        return {"query": query, "hits": [h.to_dict() for h in hits]}

    def page_png(self, doc_id: int, number: int, highlight: tuple[int, int] | None) -> bytes:
        from docqa.highlight import answer_boxes, render_page

        served = self.file_of(doc_id)
        if Path(served.path).suffix.lower() != ".pdf":
            raise ApiError(400, f"Document {doc_id} is not a PDF; only PDF pages are rendered.")
        doc = self.document(doc_id)
        if not any(p.number == number for p in doc.pages):
            raise ApiError(404, f"Document {doc_id} has no page {number}.")
        with self._pdfium:
            boxes = answer_boxes(served.path, doc, number, *highlight) if highlight else []
            return render_page(served.path, number, boxes)

    # -- writing -----------------------------------------------------------------------------

    def add_uploads(self, stored: list[tuple[Path, str]]) -> list[dict]:
        """Index uploaded files (already stored under generated names); their statuses."""
        with self._state:
            for path, name in stored:
                self.names[path.name] = name
            self._save_names()
        with self._writing:
            report = self.qa.index([p for p, _ in stored])
        self._take(report)
        by_key = {f.key: f for f in report.files}
        found = []
        for path, name in stored:
            f = by_key.get(str(path.resolve()))
            found.append(
                {
                    "id": f.doc_id if f else None,
                    "name": name,
                    "state": f.state if f else "failed",
                    "reason": f.reason if f else "The file was not indexed.",
                }
            )
        return found

    def delete(self, doc_id: int) -> dict:
        files = [f for f in self.served() if f.doc_id == doc_id]
        if not files:
            raise ApiError(404, f"No document has id {doc_id}.")
        uploaded = [f for f in files if f.upload]
        if not uploaded:
            raise ApiError(
                400, f"Document {doc_id} comes from a folder given at start; only uploads go."
            )
        for f in uploaded:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f.path)
        with self._writing:
            # A file given that no longer exists is dropped from the index.
            report = self.qa.index([Path(f.path) for f in uploaded])
        with self._state:
            for f in uploaded:
                self.names.pop(Path(f.path).name, None)
            self._save_names()
            self._documents.pop(doc_id, None)
        self._take(report)
        return {"deleted": doc_id, "files": [f.name for f in uploaded]}

    def _save_names(self) -> None:
        target = self.upload_dir / NAMES_FILE
        temp = target.with_name(NAMES_FILE + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.names, f, ensure_ascii=False)
        os.replace(temp, target)


def create_app(
    qa: DocQA,
    paths: Sequence[str | os.PathLike] = (),
    *,
    token: str | None = None,
    max_upload_mb: float = 50.0,
    cors: str | None = None,
    upload_dir: str | os.PathLike | None = None,
    batch_windows: int = BATCH_WINDOWS,
) -> FastAPI:
    """The ASGI app serving ``qa`` over ``paths`` (files and folders, indexed at start) and
    the files uploaded to it (under ``upload_dir``, default ``uploads/`` in the index folder).
    Questions that arrive together are read in one batch of up to ``batch_windows`` windows
    (`ReadBatcher`; 0: each request reads alone).

    >>> import uvicorn  # doctest: +SKIP
    >>> uvicorn.run(create_app(DocQA(), ["manuals/"], token="s3cret"), port=8000)  # doctest: +SKIP
    """
    if qa.index_location is False:
        raise InputError("docqa serve needs an index (DocQA(index=False) has none).")
    if token is not None and not token.strip():
        raise InputError("The token is empty.")
    if not max_upload_mb > 0:
        raise InputError("max_upload_mb must be positive.")
    if batch_windows < 0:
        raise InputError("batch_windows must be 0 (no batching) or more.")
    service = Service(
        qa, paths, Path(upload_dir) if upload_dir is not None else None, batch_windows
    )
    limit = int(max_upload_mb * 1024 * 1024)
    allowed = set(supported_suffixes())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(service.start)
        yield
        if service.batcher is not None:
            service.batcher.close()
        if service.index is not None:
            service.index.close()

    app = FastAPI(
        title="docqa",
        summary="Extractive question answering over your documents.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service

    if cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=[cors],
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )

    @app.middleware("http")
    async def upload_size(request: Request, call_next):
        # Refused before the body is read when the client says how large it is.
        if request.method == "POST" and request.url.path == "/v1/documents":
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit + 64 * 1024:
                return error_response(413, f"Uploads are limited to {max_upload_mb:g} MB.")
        return await call_next(request)

    def authorize(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            value.strip().encode(), token.encode()
        ):
            raise ApiError(
                401,
                "This server needs a token: send Authorization: Bearer <token>.",
                headers={"WWW-Authenticate": "Bearer"},
            )

    # -- errors ------------------------------------------------------------------------------

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return error_response(exc.status_code, detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:3]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", ""))
        return error_response(422, "; ".join(parts) or "The request is not valid.")

    @app.exception_handler(NoDocumentsError)
    async def no_documents(request: Request, exc: NoDocumentsError):
        return error_response(404, str(exc))

    @app.exception_handler(ModelLoadError)
    async def no_model(request: Request, exc: ModelLoadError):
        return error_response(503, str(exc))

    @app.exception_handler(DocQAError)
    async def input_error(request: Request, exc: DocQAError):
        return error_response(400, str(exc))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "The server failed on this request; its log says why.")

    # -- the page ----------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict:
        """Whether the service is up; ``model`` says whether the reader loaded."""
        return {
            "status": "ok" if service.ready else "starting",
            "model": "error" if service.model_error else "loaded",
        }

    # -- the API -----------------------------------------------------------------------------

    v1 = [Depends(authorize)]

    @app.get("/v1/info", dependencies=v1, tags=["service"])
    async def info() -> dict:
        """The model, its device and precision, the index (folder, files, documents, size) and
        how questions were batched."""
        reader = qa.reader
        index_bytes = None
        with contextlib.suppress(OSError):
            index_bytes = service.index.path.stat().st_size if service.index else None
        served = service.served()
        return {
            "model": qa.model_name,
            "device": str(reader.device) if reader.device is not None else None,
            "precision": reader.precision,
            "model_error": service.model_error,
            "index": str(qa.index_directory),
            "index_bytes": index_bytes,
            "files": len(served),
            "documents": len(service.doc_ids()),
            "max_upload_mb": max_upload_mb,
            "suffixes": sorted(allowed),
            "chunks": qa.retrieval.chunks,
            # How questions were read: ``questions`` over ``batches`` is the mean batch.
            "reads": {
                "batch_windows": service.batch_windows,
                "batches": service.batcher.batches if service.batcher else None,
                "questions": service.batcher.questions if service.batcher else None,
            },
        }

    @app.post("/v1/ask", dependencies=v1, tags=["questions"])
    async def ask(body: AskRequest) -> dict:
        """Answers to a question from the documents served (or those in ``sources``): the
        same object as ``docqa ask --json``, each answer with its document's ``doc_id``."""
        if service.model_error is not None:
            raise ModelLoadError(service.model_error)
        ids = service.doc_ids(body.sources)
        return await run_in_threadpool(service.ask, body, ids)

    @app.get("/v1/search", dependencies=v1, tags=["questions"])
    async def search(
        q: Annotated[str, Query(min_length=1, max_length=10_000, description="Words to find.")],
        k: Annotated[int, Query(ge=1, le=100, description="How many passages.")] = 5,
    ) -> dict:
        """Passages that match ``q``, with file, page and snippet; no reader involved."""
        if not q.strip():
            raise ApiError(400, "The query is empty.")
        return await run_in_threadpool(service.search, q, k)

    @app.get("/v1/documents", dependencies=v1, tags=["documents"])
    async def documents() -> dict:
        """Every file served, with its status, document id, pages and size."""
        return {"documents": await run_in_threadpool(service.listing)}

    @app.post("/v1/documents", dependencies=v1, tags=["documents"])
    async def upload(files: Annotated[list[UploadFile], File(description="Files to add.")]):
        """Upload files (one or many): each is stored, indexed, and answers from then on."""
        checked = []
        for f in files:
            name = shown_name(f.filename or "")
            suffix = Path(name).suffix.lower()
            if suffix not in allowed:
                raise ApiError(
                    415,
                    f"{name or 'The file'} is not a type docqa reads "
                    f"({', '.join(sorted(allowed))}).",
                )
            checked.append((f, name, suffix))
        folder = service.upload_dir
        stored: list[tuple[Path, str]] = []
        try:
            for f, name, suffix in checked:
                target = folder / f"{uuid.uuid4().hex}{suffix}"
                await store_upload(f, target, limit, max_upload_mb)
                stored.append((target, name))
        except BaseException:
            for target, _ in stored:
                with contextlib.suppress(OSError):
                    target.unlink()
            raise
        return {"files": await run_in_threadpool(service.add_uploads, stored)}

    @app.delete("/v1/documents/{doc_id}", dependencies=v1, tags=["documents"])
    async def delete(doc_id: int) -> dict:
        """Remove an uploaded document (files served from the folders given stay)."""
        return await run_in_threadpool(service.delete, doc_id)

    @app.get(
        "/v1/documents/{doc_id}/pages/{number}.png",
        dependencies=v1,
        tags=["documents"],
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    async def page_image(
        doc_id: int,
        number: Annotated[int, PathParam(ge=1, le=100_000)],
        highlight: Annotated[
            str | None,
            Query(
                pattern=r"^\d{1,12}:\d{1,12}$",
                description="START:END, character offsets of the document's text to highlight.",
            ),
        ] = None,
    ):
        """Page ``number`` of a PDF document as a PNG, with ``highlight`` painted over the
        characters of the document's text ``START:END`` (an answer's ``start`` and ``end``)."""
        span = None
        if highlight:
            start, end = (int(x) for x in highlight.split(":"))
            if end < start:
                raise ApiError(400, "highlight is START:END with START <= END.")
            span = (start, end)
        png = await run_in_threadpool(service.page_png, doc_id, number, span)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    return app


def error_response(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    error = _STATUS_NAMES.get(status, "error")
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def shown_name(filename: str) -> str:
    """The client's file name as text to show. A name holding a path (a slash, a backslash,
    ``..``) is refused: the service never uses a client's name as a path, and a client that
    sends one is not sending a file name.

    >>> shown_name("manual.pdf")
    'manual.pdf'
    """
    name = _UNSAFE.sub("", filename).strip()
    if "/" in filename or "\\" in filename or name in (".", ".."):
        raise ApiError(400, "An upload's file name must be a name, not a path.")
    if not name:
        raise ApiError(400, "An upload needs a file name with a suffix docqa reads.")
    return name[:MAX_NAME]


async def store_upload(f: UploadFile, target: Path, limit: int, max_mb: float) -> None:
    """Copy an upload to ``target`` (mode 0600), refusing it past ``limit`` bytes."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while block := await f.read(UPLOAD_BLOCK):
                size += len(block)
                if size > limit:
                    raise ApiError(413, f"Uploads are limited to {max_mb:g} MB a file.")
                out.write(block)
    except BaseException:
        with contextlib.suppress(OSError):
            target.unlink()
        raise
