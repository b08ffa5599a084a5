"""A corpus at scale: documents, their chunks and tokens in Lance tables (LanceDB).

The store is a folder or an object-store prefix (``s3://bucket/corpus``; credentials and
endpoint from the usual ``AWS_*`` environment variables), queried from any machine without a
server. Five tables:

* ``files``: one row per file built in: path, content hash, loader status, document id. A
  file's row is written last, after its document and chunks, so a file without one was not
  finished: the next build deletes what it left (`remove_unfinished`) and builds it again.
* ``documents``: the loader's `Document` (text, pages, sections, regions as JSON) and its
  reader tokens, packed as in the local index.
* ``chunks``: one row per chunk (the same chunks as the local index cuts): its text, its
  BM25 terms (docqa's own, `bm25_tokens`) under a Lance full-text index, whether it lies in a
  contents or index region, and, in a corpus built with vectors, its dense piece vectors.
* ``bm25``: each term's document frequency over all chunks (made by `finish`).
* ``meta``: the chunk scheme the corpus was cut with, the number of chunks and of terms, the
  encoder of the vectors.

`LanceCorpus` answers the calls `DocQA` makes of its local index when planning a question
(``document``, ``tokens``, ``tokenized``, ``rank``), so the reading side is the same code.
Ranking is the local index's, over candidates Lance finds: Lance's full-text index gives the
`RESCORED` best chunks for the question's terms, those are scored with docqa's BM25 and the
corpus's statistics (`SubsetBm25`: the scores the local index gives them) and, when the corpus
has vectors, fused with dense similarity over BM25's best as the local index fuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np

from docqa.errors import InputError
from docqa.retrieve import DENSE_CANDIDATES, Chunk, Retriever, SubsetBm25, bm25_tokens
from docqa.types import Document, Page, Region, Section
from docqa.windowing import ChunkScheme, TokenizedText

#: Documents kept decoded in memory by one `LanceCorpus` (a question reads a few).
CACHED_DOCUMENTS = 16
#: Chunks Lance's full-text index finds per question, to be scored with docqa's BM25: enough
#: that BM25's best candidates for dense fusion (`DENSE_CANDIDATES`) are among them although
#: Lance's scores differ slightly from bm25s's (its own BM25 variant over the same terms).
RESCORED = 100
#: The layout of the tables; a corpus built by another layout is built again, not read.
FORMAT = "2"


def lance_modules():
    """``(lancedb, pyarrow)``, or an `InputError` saying how to install them."""
    try:
        import lancedb
        import pyarrow
    except ImportError:
        raise InputError("A corpus needs the scale extra: pip install 'docqa[scale]'.") from None
    return lancedb, pyarrow


def document_id(path: str, sha256: str) -> int:
    """A file's document id: the same on every machine that builds it, without coordination
    (63 bits of a hash of its path and content)."""
    digest = hashlib.sha256(f"{path}\0{sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class FileRow:
    """What the corpus knows of one file."""

    path: str
    sha256: str
    state: str
    reason: str
    doc_id: int | None


@dataclass(frozen=True)
class BuiltFile:
    """One file as a build task made it, ready to be written: its row and, when it was read,
    its document (with tokens) and chunks."""

    file: FileRow
    document: Document | None = None
    tokens: TokenizedText | None = None
    chunks: Sequence[Chunk] = ()
    skipped: Sequence[bool] = ()
    vectors: Sequence[np.ndarray] | None = None  # each chunk's piece vectors, when asked


def _schemas(pa):
    return {
        "files": pa.schema(
            [
                ("path", pa.string()),
                ("sha256", pa.string()),
                ("state", pa.string()),
                ("reason", pa.string()),
                ("doc_id", pa.int64()),
            ]
        ),
        "documents": pa.schema(
            [
                ("doc_id", pa.int64()),
                ("source", pa.string()),
                ("sha256", pa.string()),
                ("text", pa.large_string()),
                ("layout", pa.string()),  # pages, sections, regions, meta as JSON
                ("n_tokens", pa.int64()),
                ("tokens", pa.large_binary()),
            ]
        ),
        "chunks": pa.schema(
            [
                ("doc_id", pa.int64()),
                ("ordinal", pa.int32()),
                ("token_start", pa.int64()),
                ("token_end", pa.int64()),
                ("start", pa.int64()),
                ("end", pa.int64()),
                ("text", pa.string()),
                ("terms", pa.string()),  # BM25 terms, space-separated (as the local index)
                ("skipped", pa.bool_()),
                ("pieces", pa.int32()),  # dense piece vectors (0: none)
                ("vectors", pa.large_binary()),  # float16 [pieces, dim]
            ]
        ),
        "bm25": pa.schema([("term", pa.string()), ("df", pa.int64())]),
        "meta": pa.schema([("key", pa.string()), ("value", pa.string())]),
    }


def _layout(doc: Document) -> str:
    return json.dumps(
        {
            "pages": [[p.number, p.start, p.end] for p in doc.pages],
            "sections": [[s.title, s.start] for s in doc.sections],
            "regions": [[r.start, r.end, r.role] for r in doc.regions],
            "meta": doc.meta,
        }
    )


def pack(tokens: TokenizedText) -> bytes:
    return (
        np.stack([tokens.ids, tokens.starts, tokens.ends, tokens.word_start, tokens.word_end])
        .astype("<i8")
        .tobytes()
    )


def unpack(n: int, data: bytes, lo: int = 0, hi: int | None = None) -> TokenizedText:
    block = np.frombuffer(data, dtype="<i8").reshape(5, n)[:, lo:hi]
    return TokenizedText(*(np.array(row) for row in block))


def pack_vectors(vectors: np.ndarray) -> bytes:
    """A chunk's piece vectors as stored: float16, as the local index stores them."""
    return np.asarray(vectors, dtype="<f2").tobytes()


def unpack_vectors(pieces: int, data: bytes | None) -> np.ndarray:
    block = np.frombuffer(data or b"", dtype="<f2")
    return block.reshape(pieces, block.size // pieces if pieces else 0)


def _quoted(values: Iterable[int]) -> str:
    return ",".join(str(int(v)) for v in values)


def _strings(values: Iterable[str]) -> str:
    """SQL string literals for a Lance filter (quotes doubled)."""
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


class LanceCorpus:
    """A Lance corpus at ``uri`` (a folder or ``s3://...``), opened for reading and writing.

    ``create=True`` makes the tables when they are missing (building); otherwise a missing
    corpus is an `InputError`.
    """

    def __init__(self, uri: str, create: bool = False):
        lancedb, pa = lance_modules()
        self.uri = str(uri)
        self._pa = pa
        self._schemas = _schemas(pa)
        # A build sees at once what its tasks appended from other processes; a reader sees
        # the corpus as it was when opened.
        consistency = {"read_consistency_interval": timedelta(0)} if create else {}
        try:
            self._db = lancedb.connect(self.uri, **consistency)
            names = set(self._table_names())
        except (OSError, ValueError, RuntimeError) as exc:
            raise InputError(f"Cannot open the corpus at {self.uri}: {exc}") from exc
        if not create and "chunks" not in names:
            raise InputError(f"There is no docqa corpus at {self.uri}; build one first.")
        if "chunks" in names and "bm25" not in names:
            raise InputError(
                f"The corpus at {self.uri} was built by an older docqa; build it again into a "
                "new URI."
            )
        self._tables = {}
        for name, schema in self._schemas.items():
            if name in names:
                self._tables[name] = self._db.open_table(name)
            else:
                self._tables[name] = self._db.create_table(name, schema=schema)
        self._lock = threading.Lock()
        self._doc_ids: list[int] | None = None  # read once: a reader sees the corpus it opened
        self._paths: dict[int, str] = {}  # the file of each of those documents
        self._scheme_key: str | None = None
        self._meta: dict[str, str] | None = None
        self._frequency: dict[str, int] = {}  # document frequencies looked up so far
        self._documents: OrderedDict[int, tuple[Document, int, bytes]] = OrderedDict()

    def table(self, name: str):
        """The LanceDB table ``name`` (``files``, ``documents``, ``chunks``, ``meta``), to read
        with LanceDB directly (``.to_arrow()``, ``.count_rows()``, ``.search(...)``)."""
        return self._tables[name]

    def _table_names(self) -> list[str]:
        listed = self._db.list_tables()
        return list(getattr(listed, "tables", listed))

    # -- building ------------------------------------------------------------------------------

    def files(self) -> dict[str, FileRow]:
        """Every file built in, by path."""
        rows = self._tables["files"].to_arrow().to_pylist()
        return {r["path"]: FileRow(**r) for r in rows}

    def scheme_key(self) -> str | None:
        """The key of the scheme the chunks are cut with (None before the first build); read
        once, since a corpus never changes its scheme."""
        if self._scheme_key is None:
            rows = self._tables["meta"].search().where("key = 'scheme'").to_list()
            self._scheme_key = rows[0]["value"] if rows else None
        return self._scheme_key

    def meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict (read once by a reader; again after `finish`)."""
        if self._meta is None:
            rows = self._tables["meta"].to_arrow().to_pylist()
            self._meta = {r["key"]: r["value"] for r in rows}
        return self._meta

    def encoder_name(self) -> str | None:
        """The encoder whose vectors the chunks carry, or None: a corpus without vectors."""
        return self.meta().get("encoder")

    def set_encoder(self, name: str | None) -> str | None:
        """Settle which encoder's vectors the chunks carry, and return it: ``name`` for a new
        corpus; a corpus keeps what it was first built with (vectors on every later build,
        or none), so that no chunk ranks without the vectors its neighbours have."""
        if self.scheme_key() is not None and self._tables["files"].count_rows():
            known = self.encoder_name()
            if name is not None and known is None:
                raise InputError(
                    f"The corpus at {self.uri} was built without vectors; build it with "
                    "--vectors into a new URI."
                )
            return known
        if name is not None:
            self._put_meta({"encoder": name})
        return name

    def _put_meta(self, values: dict[str, str]) -> None:
        table = self._tables["meta"]
        table.delete(f"key IN ({_strings(values)})")
        table.add([{"key": k, "value": v} for k, v in values.items()])
        self._meta = None

    def set_scheme(self, scheme: ChunkScheme) -> None:
        """Record the scheme the chunks are cut with; a corpus holds one scheme only."""
        known = self.scheme_key()
        if known is None:
            self._put_meta({"scheme": scheme.key, "format": FORMAT})
            self._scheme_key = scheme.key
        elif known != scheme.key:
            raise InputError(
                f"The corpus at {self.uri} was cut for another reader or window shape; "
                "build it with the same --model and window options, or into a new URI."
            )

    def remove(self, doc_ids: Sequence[int], paths: Sequence[str]) -> None:
        """Delete documents ``doc_ids`` (with their chunks) and the rows of files ``paths``."""
        for start in range(0, len(doc_ids), 500):
            ids = _quoted(doc_ids[start : start + 500])
            self._tables["chunks"].delete(f"doc_id IN ({ids})")
            self._tables["documents"].delete(f"doc_id IN ({ids})")
        for start in range(0, len(paths), 500):
            self._tables["files"].delete(f"path IN ({_strings(paths[start : start + 500])})")

    def append(self, built: Sequence[BuiltFile]) -> None:
        """Append the documents and chunks of files a build task read (no file rows: those
        come last, from `commit`). Appends never conflict, so every task appends its own."""
        documents, chunks = [], []
        for b in built:
            if b.document is None or b.tokens is None:
                continue
            doc_id = b.file.doc_id
            texts = [b.document.text[c.start : c.end] for c in b.chunks]
            terms = bm25_tokens(texts) if texts else []
            vectors = b.vectors if b.vectors is not None else [None] * len(texts)
            documents.append(
                {
                    "doc_id": doc_id,
                    "source": b.file.path,
                    "sha256": b.file.sha256,
                    "text": b.document.text,
                    "layout": _layout(b.document),
                    "n_tokens": len(b.tokens),
                    "tokens": pack(b.tokens),
                }
            )
            rows = zip(b.chunks, b.skipped, texts, terms, vectors, strict=True)
            for ordinal, (c, skipped, text, words, pieces) in enumerate(rows):
                chunks.append(
                    {
                        "doc_id": doc_id,
                        "ordinal": ordinal,
                        "token_start": c.token_start,
                        "token_end": c.token_end,
                        "start": c.start,
                        "end": c.end,
                        "text": text,
                        "terms": " ".join(words),
                        "skipped": bool(skipped),
                        "pieces": 0 if pieces is None else len(pieces),
                        "vectors": None if pieces is None else pack_vectors(pieces),
                    }
                )
        pa = self._pa
        if documents:
            self._tables["documents"].add(
                pa.Table.from_pylist(documents, schema=self._schemas["documents"])
            )
        if chunks:
            self._tables["chunks"].add(pa.Table.from_pylist(chunks, schema=self._schemas["chunks"]))

    def commit(self, files: Sequence[FileRow], replaced: Sequence[int] = ()) -> None:
        """Record ``files`` as built (their rows say so), after their documents and chunks
        were appended; documents ``replaced`` (earlier versions of these files) go."""
        if not files:
            return
        self._doc_ids = None
        self.remove(list(replaced), [f.path for f in files])
        rows = [vars(f) for f in files]
        self._tables["files"].add(self._pa.Table.from_pylist(rows, schema=self._schemas["files"]))

    def remove_unfinished(self) -> int:
        """Delete the documents and chunks that no file row names: what a build that was
        stopped had appended for files it never recorded. How many documents went."""
        recorded = {r.doc_id for r in self.files().values() if r.doc_id is not None}
        query = self._tables["documents"].search().select(["doc_id"]).limit(None)
        stored = {int(r["doc_id"]) for r in query.to_list()}
        chunked = self._tables["chunks"].search().select(["doc_id"]).limit(None)
        stored |= {int(r["doc_id"]) for r in chunked.to_list()}
        unfinished = sorted(stored - recorded)
        self.remove(unfinished, [])
        return len(unfinished)

    def finish(self) -> None:
        """Count each term's chunks (the ``bm25`` table and statistics), build the full-text
        index over the chunks' terms, and compact the tables' fragments."""
        from lancedb.index import FTS

        chunks = self._tables["chunks"]
        frequency: dict[str, int] = {}
        n_chunks = n_terms = 0
        # Counted again over every chunk at each build: a document frequency depends on all
        # documents, and files come and go.
        query = chunks.search().select(["terms"]).limit(None)
        for batch in query.to_batches():
            for terms in batch.column("terms").to_pylist():
                words = terms.split()
                n_chunks += 1
                n_terms += len(words)
                for word in set(words):
                    frequency[word] = frequency.get(word, 0) + 1
        pa = self._pa
        self._tables["bm25"] = self._db.create_table(
            "bm25",
            pa.table(
                {"term": list(frequency), "df": list(frequency.values())},
                schema=self._schemas["bm25"],
            ),
            mode="overwrite",
        )
        self._put_meta({"chunks": str(n_chunks), "terms": str(n_terms)})
        if n_chunks:
            self._tables["bm25"].create_scalar_index("term")
            # The terms are docqa's already (lower case, stemmed, no stop words): Lance only
            # splits them, so that it finds the chunks docqa's BM25 would score.
            chunks.create_index(
                "terms",
                config=FTS(
                    base_tokenizer="whitespace",
                    lower_case=False,
                    stem=False,
                    remove_stop_words=False,
                    ascii_folding=False,
                    max_token_length=None,
                    with_position=False,
                ),
                replace=True,
            )
        for table in self._tables.values():
            table.optimize()
        self._frequency = {}

    # -- reading (what `DocQA` asks of an index) -----------------------------------------------

    def doc_ids(self) -> list[int]:
        """The ids of every document that answers (files read successfully), as of the first
        call: a build running meanwhile is seen by a corpus opened after it."""
        if self._doc_ids is None:
            query = self._tables["files"].search().where("state = 'ok'")
            rows = query.select(["doc_id", "path"]).limit(None).to_list()
            self._paths = {int(r["doc_id"]): r["path"] for r in rows}
            self._doc_ids = sorted(self._paths)
        return self._doc_ids

    def doc_ids_of(self, name: str) -> list[int]:
        """The documents of the file ``name``: its path as built, or the end of it after a
        folder separator (``manuals/R-intro.pdf``); an `InputError` when none answers."""
        suffix = "/" + name.replace(os.sep, "/").lstrip("/")
        found = sorted(
            r.doc_id
            for r in self.files().values()
            if r.state == "ok"
            and r.doc_id is not None
            and (r.path == name or r.path.replace(os.sep, "/").endswith(suffix))
        )
        if not found:
            raise InputError(f"The corpus at {self.uri} has no readable file {name}.")
        return found

    def _check(self, scheme: ChunkScheme) -> None:
        if self.scheme_key() != scheme.key:
            raise InputError(
                f"The corpus at {self.uri} was cut for another reader or window shape; ask "
                "with the --model it was built with."
            )

    def _load(self, doc_id: int) -> tuple[Document, int, bytes]:
        with self._lock:
            hit = self._documents.get(doc_id)
            if hit is not None:
                self._documents.move_to_end(doc_id)
                return hit
        rows = self._tables["documents"].search().where(f"doc_id = {int(doc_id)}").to_list()
        if not rows:
            raise InputError(f"The corpus has no document {doc_id}.")
        row = rows[0]
        layout = json.loads(row["layout"])
        doc = Document(
            text=row["text"],
            source=row["source"],
            pages=tuple(Page(*p) for p in layout["pages"]),
            sections=tuple(Section(*s) for s in layout["sections"]),
            regions=tuple(Region(*r) for r in layout["regions"]),
            sha256=row["sha256"],
            meta=layout["meta"],
        )
        hit = (doc, int(row["n_tokens"]), row["tokens"])
        with self._lock:
            self._documents[doc_id] = hit
            while len(self._documents) > CACHED_DOCUMENTS:
                self._documents.popitem(last=False)
        return hit

    def document(self, doc_id: int, source: str | None = None) -> Document:
        doc = self._load(doc_id)[0]
        return doc if source is None else replace(doc, source=source)

    def tokens(
        self, doc_id: int, scheme: ChunkScheme, lo: int = 0, hi: int | None = None
    ) -> TokenizedText:
        self._check(scheme)
        _, n, data = self._load(doc_id)
        return unpack(n, data, lo, hi)

    def tokenized(self, doc_id: int, scheme: ChunkScheme) -> TokenizedText:
        return self.tokens(doc_id, scheme)

    def rank(
        self,
        question: str,
        doc_ids: Sequence[int],
        scheme: ChunkScheme,
        k: int,
        encoder=None,
        include_contents: bool = False,
    ) -> list[tuple[Chunk, float]]:
        """The ``k`` chunks of ``doc_ids`` ranked best for ``question``, as the local index
        ranks them: Lance's full-text index finds the `RESCORED` best chunks for the
        question's terms; docqa's BM25 scores them with the corpus's statistics; with an
        ``encoder`` (and a corpus built with its vectors), BM25's best are fused with dense
        similarity (`Retriever`).
        """
        self._check(scheme)
        if encoder is not None and encoder.name != self.encoder_name():
            raise InputError(
                f"The corpus at {self.uri} has no vectors of {encoder.name}; ask it without "
                "dense retrieval (--no-dense), or build it with --vectors."
            )
        terms = bm25_tokens([question])[0]
        skip = [] if include_contents else ["skipped = false"]
        filters = list(skip)
        wanted = set(int(d) for d in doc_ids)
        if wanted != set(self.doc_ids()):
            filters.append(f"doc_id IN ({_quoted(sorted(wanted))})")
        columns = ["doc_id", "ordinal", "token_start", "token_end", "start", "end", "terms"]
        columns.append("_score")  # Lance's own; asked for, so that Lance does not warn
        if encoder is not None:
            columns += ["pieces", "vectors"]
        rows = []
        if terms:
            query = self._tables["chunks"].search(
                " ".join(dict.fromkeys(terms)), query_type="fts", fts_columns="terms"
            )
            if filters:
                query = query.where(" AND ".join(filters), prefilter=True)
            rows = query.select(columns).limit(max(RESCORED, k)).to_list()
        # The local index ranks every chunk: those without any of the question's terms score 0
        # and come after, in its order, and are among BM25's candidates for dense fusion when
        # fewer chunks hold a term.
        needed = max(DENSE_CANDIDATES, k) if encoder is not None else k
        if len(rows) < needed:
            found = {(r["doc_id"], r["ordinal"]) for r in rows}
            rows += self._unmatched(sorted(wanted), needed - len(rows), found, columns, skip)
        rows.sort(key=self._order)
        meta = self.meta()
        n_chunks, n_terms = int(meta.get("chunks", 0)), int(meta.get("terms", 0))
        if not rows or not n_chunks:
            return []
        bm25 = SubsetBm25(
            [r["terms"].split() for r in rows], self.frequency(terms), n_chunks, n_terms / n_chunks
        )
        vectors = None
        if encoder is not None:
            vectors = lambda positions: [  # noqa: E731 - the Retriever's VectorSource
                unpack_vectors(rows[i]["pieces"], rows[i]["vectors"]) for i in positions
            ]
        ranked = Retriever(bm25, encoder, vectors).rank(question, k)
        return [
            (
                Chunk(
                    int(rows[i]["doc_id"]),
                    int(rows[i]["token_start"]),
                    int(rows[i]["token_end"]),
                    int(rows[i]["start"]),
                    int(rows[i]["end"]),
                ),
                score,
            )
            for i, score in ranked
        ]

    def _order(self, row: dict) -> tuple:
        """A chunk's place in the local index's order (files as a folder walk meets them, each
        file's chunks in turn): equal scores rank in this order there, so here too."""
        return self._path_key(row["doc_id"]), row["ordinal"]

    def _path_key(self, doc_id: int) -> list[str]:
        """A document's file as a folder walk orders it (folder by folder)."""
        self.doc_ids()
        return self._paths.get(doc_id, "").split(os.sep)

    def _unmatched(
        self, doc_ids: Sequence[int], n: int, found: set, columns: list[str], filters: list[str]
    ) -> list[dict]:
        """The first ``n`` chunks of ``doc_ids`` in the local index's order that are not
        ``found`` and pass ``filters``: those the index ranks next, all scoring 0."""
        out: list[dict] = []
        table = self._tables["chunks"]
        columns = [c for c in columns if c != "_score"]
        for doc in sorted(doc_ids, key=self._path_key):
            limit = n + len(found) + 8
            total = table.count_rows(f"doc_id = {int(doc)}")
            while True:
                where = " AND ".join([f"doc_id = {int(doc)}", f"ordinal < {limit}", *filters])
                rows = table.search().where(where).select(columns).limit(None).to_list()
                fresh = sorted(
                    (r for r in rows if (r["doc_id"], r["ordinal"]) not in found),
                    key=lambda r: r["ordinal"],
                )
                if len(fresh) >= n - len(out) or total <= limit:
                    break
                limit *= 2
            out += fresh[: n - len(out)]
            if len(out) >= n:
                break
        return out

    def frequency(self, terms: Sequence[str]) -> dict[str, int]:
        """How many chunks of the corpus hold each of ``terms`` (absent: none)."""
        missing = [t for t in dict.fromkeys(terms) if t not in self._frequency]
        if missing:
            rows = (
                self._tables["bm25"]
                .search()
                .where(f"term IN ({_strings(missing)})")
                .limit(None)
                .to_list()
            )
            found = {r["term"]: int(r["df"]) for r in rows}
            with self._lock:
                self._frequency.update({t: found.get(t, 0) for t in missing})
        return {t: self._frequency[t] for t in terms}

    def search(
        self,
        query: str,
        doc_ids: Sequence[int],
        scheme: ChunkScheme,
        k: int = 10,
        encoder=None,
        paths: dict[int, str] | None = None,
        include_contents: bool = False,
    ):
        """Ranked chunks with their file, page and best snippet, as `Index.search` gives them
        (`Hit`); no reader model involved."""
        from docqa.index.search import hits_from_ranked

        # Neighbouring chunks overlap: rank spares, as the index does.
        ranked = self.rank(query, doc_ids, scheme, 3 * k, None, include_contents)
        return hits_from_ranked(
            ranked, k, query, lambda doc_id: self.document(doc_id, (paths or {}).get(doc_id))
        )
