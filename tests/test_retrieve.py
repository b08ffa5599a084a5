"""Retrieval: chunks, BM25, dense fusion, and reading only the retrieved chunks (issue 7)."""

from __future__ import annotations

import dataclasses
import inspect
import itertools

import numpy as np
import pytest
from conftest import PHRASE, filler

import docqa.retrieve
from docqa import DocQA, Document, InputError
from docqa.retrieve import (
    Bm25,
    Chunk,
    Retriever,
    bm25_tokens,
    candidates,
    chunk_length,
    chunk_windows,
    fuse,
    fuse_candidates,
    in_regions,
    make_chunks,
    max_by_owner,
    ranks,
    rrf,
    skipped_chunks,
)
from docqa.windowing import pair_template, tokenize_question, tokenize_text


def test_chunks_cover_the_text_with_the_stride_overlap(tokenizer):
    text = tokenize_text(tokenizer, filler(1000))
    chunks = make_chunks(text, 3, chunk_len=100, stride=30)
    assert chunks[0].token_start == 0 and chunks[-1].token_end == len(text)
    for a, b in itertools.pairwise(chunks):
        assert b.token_start == a.token_end - 30
    assert all(c.doc_id == 3 and c.token_end - c.token_start <= 100 for c in chunks)
    assert all(c.start == text.starts[c.token_start] for c in chunks)
    assert make_chunks(tokenize_text(tokenizer, ""), 0, 100, 30) == []


def test_chunk_length_leaves_room_for_the_longest_question():
    assert chunk_length(384, 64, 3) == 317
    with pytest.raises(InputError):
        chunk_length(64, 64, 3)


def test_a_chunk_is_one_reader_window_unless_the_question_is_too_long(tokenizer):
    template = pair_template(tokenizer)
    text = tokenize_text(tokenizer, filler(400))
    chunk_len = chunk_length(128, 16, template.n_special)
    chunk = make_chunks(text, 0, chunk_len, 32)[1]
    short = tokenize_question(tokenizer, "which bird?", 16)
    [w] = chunk_windows(template, short, text, 0, chunk, 128, 32)
    assert (w.token_start, w.token_end) == (chunk.token_start, chunk.token_end)
    assert len(w) <= 128
    np.testing.assert_array_equal(
        w.input_ids[w.context_offset : w.context_offset + chunk_len],
        text.ids[chunk.token_start : chunk.token_end],
    )
    # 40 question tokens leave less room than the chunk was cut for: read it in pieces.
    long = tokenize_question(tokenizer, "why " * 40, 64)
    pieces = chunk_windows(template, long, text, 0, chunk, 128, 32)
    assert len(pieces) > 1 and all(len(p) <= 128 for p in pieces)
    assert pieces[0].token_start == chunk.token_start and pieces[-1].token_end == chunk.token_end


def test_bm25_ranks_the_passage_sharing_rare_words_first():
    texts = [
        "The outdoor sensor runs on two AA lithium batteries.",
        "Warranty: two years from the date of purchase.",
        "The display shows the temperature in Celsius.",
    ]
    r = Retriever.build(texts)
    assert next(i for i, _ in r.rank("Which batteries does the sensor use?", k=3)) == 0
    assert [i for i, _ in r.rank("how long is the warranty", k=1)] == [1]
    # A question with no known word still returns k chunks (in document order).
    assert [i for i, _ in r.rank("zzz qqq", k=2)] == [0, 1]


def test_mask_keeps_ranking_inside_the_documents_asked_about():
    r = Retriever.build(["lithium batteries", "lithium batteries too", "nothing here"])
    mask = np.array([False, True, True])
    ranked = r.rank("lithium batteries", k=5, mask=mask)
    assert [i for i, _ in ranked] == [1, 2]


def test_bm25_state_round_trip_scores_identically():
    tokens = bm25_tokens(["alpha beta gamma", "beta beta delta", "epsilon"])
    a = Bm25(tokens)
    b = Bm25.from_state(a.to_state())
    for q in (["beta"], ["alpha", "delta"], ["unknown"]):
        np.testing.assert_allclose(a.scores(q), b.scores(q))
    empty = Bm25.from_state(Bm25([]).to_state())
    assert empty.size == 0 and empty.scores(["x"]).shape == (0,)


def test_rrf_rewards_agreement():
    # Item 2 is first in both rankings (rank arrays: one rank per item).
    fused = rrf([np.array([1, 2, 0]), np.array([2, 1, 0])])
    assert int(np.argmax(fused)) == 2


def test_dense_fusion_finds_a_paraphrase_bm25_misses():
    # No term of the question (after stemming and stop words) is in any passage: BM25 ties
    # at zero and keeps document order; the sentence encoder knows flu is influenza.
    texts = [
        "The question is listed in the table of contents.",
        "Stock markets fell sharply after the announcement.",
        "Physicians recommend resting and drinking plenty of fluids when you have influenza.",
    ]
    question = "what should I do if I catch the flu"
    lexical = Retriever.build(texts)
    assert lexical.rank(question, 1)[0][0] == 0
    # Dense similarity is added as `DocQA` adds it: a vector source over the texts' chunks.
    encoder = docqa.retrieve.DenseEncoder()
    chunks = [(i, 0, len(t)) for i, t in enumerate(texts)]
    source = docqa.retrieve.ChunkVectors(encoder, chunks, lambda i, a, b: texts[i][a:b])
    fused = dataclasses.replace(lexical, encoder=encoder, vectors=source)
    assert fused.rank(question, 1)[0][0] == 2


def test_encoder_vectors_are_unit_length():
    enc = docqa.retrieve.DenseEncoder()
    v = enc.encode(["a cat", "a dog on a mat", ""])
    assert v.shape == (3, enc.dim) == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v[:2], axis=1), 1.0, rtol=1e-5)
    # A long chunk is cut into several pieces, a short one is one piece.
    texts = {"long": "word " * 400, "short": "short"}
    chunks = [(d, 0, len(texts[d]), 0, len(texts[d])) for d in ("long", "short")]
    long, short = docqa.retrieve.piece_vectors(enc, chunks, lambda d, a, b: texts[d][a:b])
    assert len(long) > 1 and len(short) == 1
    np.testing.assert_allclose(np.linalg.norm(long, axis=1), 1.0, rtol=1e-5)


def test_vector_size_is_read_from_the_encoders_config(tiny_model):
    """Issue 18, part 4: the vector size was written out as 384; an encoder of another size
    gives vectors of its own size."""
    enc = docqa.retrieve.DenseEncoder(tiny_model)
    assert enc.dim == 32
    assert enc.encode(["a cat", "a dog"]).shape == (2, 32)
    text = "word " * 300
    chunk = (0, 0, len(text), 0, len(text))
    [found] = docqa.retrieve.piece_vectors(enc, [chunk], lambda d, a, b: text[a:b])
    assert found.shape[0] > 1 and found.shape[1] == 32


def test_pieces_are_cut_one_way_only():
    """Issue 18, part 4: `DenseEncoder.pieces`, `encode_passages` and `Retriever.build(encoder=)`
    cut and encoded pieces a second way that only tests used; production cuts them with
    `DenseEncoder.cut_pieces` (through `piece_vectors` and `encode_chunks`)."""
    assert not hasattr(docqa.retrieve.DenseEncoder, "pieces")
    assert not hasattr(docqa.retrieve.DenseEncoder, "encode_passages")
    assert list(inspect.signature(Retriever.build).parameters) == ["texts"]


# --- predict(..., chunks=N): the reader reads only what the retriever chose ------------------


def long_document() -> tuple[Document, str]:
    """Twenty filler passages and one about the kestrel, far from the start."""
    parts = [filler(120, i) for i in range(20)]
    parts[13] = f"{filler(40)} Each autumn the {PHRASE} to Africa. {filler(40, 3)}"
    text = "\n\n".join(parts)
    return Document.from_text(text, source="birds.txt"), text


def qa(**settings) -> DocQA:
    return DocQA(max_seq_len=96, doc_stride=24, max_question_len=16, dense=False, **settings)


def test_predict_reads_only_the_retrieved_chunks(plant):
    plant({PHRASE: 10.0})
    doc, text = long_document()
    reader = qa()
    every = reader.predict("Where does the kestrel migrate each autumn?", [doc])
    some = reader.predict("Where does the kestrel migrate each autumn?", [doc], chunks=2)
    assert len(some.windows_read) == 2 < len(every.windows_read)
    assert some.answers[0].text == every.answers[0].text == PHRASE
    assert some.answers[0].start == text.index(PHRASE)
    # The best chunk is first, and holds the answer.
    first = some.windows_read[0]
    assert first.start <= text.index(PHRASE) < first.end


def test_more_chunks_than_the_document_has_reads_every_chunk(plant):
    plant({PHRASE: 10.0})
    doc = Document.from_text(f"{filler(30)} {PHRASE} {filler(30)}")
    p = qa().predict("where?", [doc], chunks=50)
    assert len(p.windows_read) == 1 and p.answers[0].text == PHRASE


def test_ask_defaults_to_retrieval_and_exhaustive_reads_all(plant):
    plant({PHRASE: 10.0})
    doc, _ = long_document()
    reader = qa(chunks=1, index=False)
    assert reader.ask("Where does the kestrel migrate?", doc)[0].text == PHRASE
    assert reader.ask("Where does the kestrel migrate?", doc, exhaustive=True)[0].text == PHRASE


def test_retriever_weight_breaks_a_reader_tie_in_favour_of_the_better_chunk(plant):
    # The reader likes both phrases equally; only the retriever knows which chunk matches.
    plant({"grey heron": 5.0, "barn owl": 5.0})
    parts = [filler(100, i) for i in range(6)]
    parts[1] = f"{filler(20)} The barn owl hunts. {filler(20)}"
    parts[4] = f"{filler(20)} Herons wade in marshes; the grey heron waits. {filler(20)}"
    doc = Document.from_text("\n\n".join(parts))
    question = "Which heron waits in marshes?"
    fused = qa(retriever_weight=2.0).predict(question, [doc], top_k=2, chunks=3)
    assert fused.answers[0].text == "grey heron"
    assert fused.answers[0].logit == pytest.approx(12.0)


def test_bad_chunks_setting_is_an_input_error(plant):
    plant({PHRASE: 1.0})
    with pytest.raises(InputError):
        DocQA(chunks=0)
    with pytest.raises(InputError):
        qa().predict("where?", [Document.from_text("x y z")], chunks=0)


def test_chunk_is_hashable_and_frozen():
    c = Chunk(0, 0, 10, 0, 50)
    assert {c: 1}[c] == 1


def test_dense_retrieval_in_predict_finds_a_paraphrase(plant):
    plant({"plenty of fluids": 10.0})
    parts = [filler(200, i) for i in range(8)]
    parts[5] = "Physicians recommend resting and drinking plenty of fluids when you have influenza."
    doc = Document.from_text("\n\n".join(parts))
    # Windows (237 tokens) longer than the encoder's 128-token pieces, as with real settings.
    reader = DocQA(max_seq_len=256, doc_stride=64, max_question_len=16, dense=True)
    p = reader.predict("what should I do if I catch the flu", [doc], chunks=1)
    [window] = p.windows_read
    assert window.start <= doc.text.index("influenza") < window.end
    assert p.answers[0].text == "plenty of fluids"


# --- dense vectors on demand (issue 16): only BM25's candidates, each encoded once ----------


class CountingEncoder(docqa.retrieve.DenseEncoder):
    """The real sentence encoder, counting the texts it encodes."""

    def __init__(self):
        super().__init__()
        self.encoded: list[str] = []

    def encode(self, texts):
        self.encoded.extend(texts)
        return super().encode(texts)


@pytest.fixture(scope="module")
def counting_encoder():
    return CountingEncoder()


def test_dense_similarity_is_computed_for_bm25_candidates_only(counting_encoder):
    texts = [
        f"passage {i} about {'lithium batteries' if i % 7 == 0 else 'the weather'}"
        for i in range(40)
    ]
    asked: list[list[int]] = []
    source = docqa.retrieve.ChunkVectors(
        counting_encoder,
        [(i, 0, len(t)) for i, t in enumerate(texts)],
        lambda i, a, b: texts[i][a:b],
    )

    def vectors(indices):
        asked.append(sorted(int(i) for i in indices))
        return source(indices)

    retriever = Retriever(Bm25(bm25_tokens(texts)), counting_encoder, vectors, candidates=4)
    ranked = retriever.rank("which batteries", k=3)
    lexical = Bm25(bm25_tokens(texts)).scores(bm25_tokens(["which batteries"])[0])
    best4 = sorted(np.argsort(-lexical, kind="stable")[:4].tolist())
    assert asked == [best4]
    assert {i for i, _ in ranked} <= set(best4) and len(ranked) == 3
    # Reading more chunks than there are candidates widens the candidates to k.
    assert len(retriever.rank("which batteries", k=9)) == 9 and len(asked[-1]) == 9


def test_chunk_vectors_encode_each_chunk_once(counting_encoder):
    texts = [f"text number {i} " * 5 for i in range(6)]
    source = docqa.retrieve.ChunkVectors(
        counting_encoder,
        [(i, 0, len(t)) for i, t in enumerate(texts)],
        lambda i, a, b: texts[i][a:b],
    )
    counting_encoder.encoded.clear()
    first = source(np.array([0, 2]))
    assert len(counting_encoder.encoded) == 2
    counting_encoder.encoded.clear()
    again = source(np.array([2, 0, 3]))
    assert len(counting_encoder.encoded) == 1  # only chunk 3 is new
    np.testing.assert_array_equal(again[1], first[0])


def test_piece_vectors_read_far_apart_chunks_apart(counting_encoder):
    text = filler(3000)
    reads: list[tuple[int, int]] = []

    def read(key, lo, hi):
        reads.append((lo, hi))
        return text[lo:hi]

    # Two chunks of the block [0, 700), one of the block [9000, 9400).
    chunks = [("doc", 0, 400, 0, 700), ("doc", 300, 700, 0, 700), ("doc", 9000, 9400, 9000, 9400)]
    found = docqa.retrieve.piece_vectors(counting_encoder, chunks, read)
    assert sorted(reads) == [(0, 700), (9000, 9400)]
    # The block is cut together, exactly as the encoder cuts it at indexing.
    together, owners = counting_encoder.encode_chunks(text[:700], [(0, 400), (300, 700)])
    np.testing.assert_allclose(found[0], together[owners == 0], atol=1e-6)
    np.testing.assert_allclose(found[1], together[owners == 1], atol=1e-6)
    assert len(found[2]) >= 1


def test_a_chunks_vectors_do_not_depend_on_the_chunks_asked_with_it(counting_encoder):
    """Regression (issue 20): vectors made on demand were cut into pieces over the run of
    candidates that first needed them, so a chunk's vectors depended on the other chunks of
    the question that made them, and differed from those made at indexing (`encode_chunks`)
    or in a corpus: 7 of 58 manual answers changed between the two. Pieces are now cut over
    fixed blocks of `PIECE_BLOCK` chunks: the same vectors however the chunk is asked for."""
    from docqa.retrieve import PIECE_BLOCK, piece_blocks

    n = PIECE_BLOCK + 4
    starts = np.arange(0, n) * 900
    text = filler(200 * n)
    ends = np.minimum(starts + 1400, len(text))
    ranges = list(zip(starts.tolist(), ends.tolist(), strict=True))
    lo, hi = piece_blocks(np.zeros(n, dtype=np.int64), starts, ends)
    assert lo.tolist() == [0] * PIECE_BLOCK + [int(starts[PIECE_BLOCK])] * (n - PIECE_BLOCK)
    chunks = [(0, s, e, int(a), int(b)) for (s, e), a, b in zip(ranges, lo, hi, strict=True)]

    def read(_, a, b):
        return text[a:b]

    indexed, owners = counting_encoder.encode_chunks(text, ranges)
    second = PIECE_BLOCK + 1  # the second chunk of the second block
    for asked in ([3], [2, 3], [3, 4, second], list(range(n))):
        found = docqa.retrieve.piece_vectors(counting_encoder, [chunks[i] for i in asked], read)
        mine = found[asked.index(3)]
        np.testing.assert_allclose(mine, indexed[owners == 3], atol=1e-6, err_msg=str(asked))
        assert len(mine) >= 2
    # Asked alone, a chunk of the second block is cut from that block's start.
    [alone] = docqa.retrieve.piece_vectors(counting_encoder, [chunks[second]], read)
    np.testing.assert_allclose(alone, indexed[owners == second], atol=1e-6)


# --- fusion and ranking on hand-made scores (issue 21: mutation testing) ---------------------


def test_max_by_owner_keeps_each_owners_best_value_as_float32():
    found = max_by_owner(np.array([-3.0, -1.5, -2.0, 0.25]), np.array([0, 0, 2, 2]), 4)
    assert found.dtype == np.float32
    assert found.tolist() == [-1.5, -np.inf, 0.25, -np.inf]


def test_ranks_are_best_first_and_ties_share_the_best_rank():
    assert ranks(np.array([0.5, 2.0, 0.0, 0.0, 3.0])).tolist() == [2, 1, 3, 3, 0]
    assert ranks(np.array([-1.0, -np.inf, -2.0])).tolist() == [0, 2, 1]


def test_rrf_adds_one_over_k_plus_one_plus_rank():
    fused = rrf([np.array([0, 1, 2]), np.array([2, 0, 1])], k=3)
    np.testing.assert_allclose(fused, [1 / 4 + 1 / 6, 1 / 5 + 1 / 4, 1 / 6 + 1 / 5])
    np.testing.assert_allclose(rrf([np.array([0, 1])]), [1 / 11, 1 / 12])


def test_fuse_weights_the_dense_ranking():
    lexical, dense = np.array([3.0, 1.0, 2.0]), np.array([0.1, 0.9, 0.8])
    np.testing.assert_allclose(
        fuse(lexical, dense, dense_weight=0.5, k=2),
        [1 / 3 + 0.5 / 5, 1 / 5 + 0.5 / 3, 1 / 4 + 0.5 / 4],
    )
    np.testing.assert_allclose(
        fuse(lexical, dense), [1 / 11 + 0.75 / 13, 1 / 13 + 0.75 / 11, 1 / 12 + 0.75 / 12]
    )


def test_fuse_ranks_among_the_unmasked_texts_only():
    lexical, dense = np.array([9.0, 1.0, 2.0, 5.0]), np.array([0.9, 0.1, 0.8, 0.2])
    mask = np.array([False, True, True, False])
    fused = fuse(lexical, dense, mask, dense_weight=0.5, k=0)
    # Among texts 1 and 2, text 2 is first in both rankings: the masked ones do not count.
    np.testing.assert_allclose(fused, [-np.inf, 1 / 2 + 0.5 / 2, 1 + 0.5, -np.inf])


def test_fuse_candidates_scores_the_chosen_texts_only():
    lexical, dense = np.array([3.0, 1.0, 2.0, 4.0]), np.array([0.1, 0.9, 0.8, np.nan])
    fused = fuse_candidates(lexical, dense, np.array([0, 2]), dense_weight=2.0, k=1)
    # Text 0 is first lexically, text 2 first by dense similarity; text 1's and text 3's
    # dense scores (one not even computed) are never read.
    np.testing.assert_allclose(fused, [1 / 2 + 2 / 3, -np.inf, 1 / 3 + 2 / 2, -np.inf])
    np.testing.assert_allclose(
        fuse_candidates(lexical, dense, np.array([1, 2])),
        [-np.inf, 1 / 12 + 0.75 / 11, 1 / 11 + 0.75 / 12, -np.inf],
    )


def test_in_regions_adds_the_overlaps_of_every_region():
    starts, ends = np.array([0, 0, 40, 35, 5]), np.array([100, 2, 42, 45, 5])
    regions = [(0, 30), (60, 90), (500, 600)]
    # 30 + 30 of 100 characters; 2 of 2; none of 2 or of 10; an empty chunk is never inside.
    assert in_regions(starts, ends, regions).tolist() == [True, True, False, False, False]
    assert in_regions(np.array([0]), np.array([100]), [(0, 40)]).tolist() == [False]
    assert in_regions(np.array([0]), np.array([100]), [(0, 50)]).tolist() == [True]
    assert in_regions(np.array([0]), np.array([2]), [(500, 600)]).tolist() == [False]
    assert in_regions(np.array([0, 9]), np.array([100, 10]), []).tolist() == [False, False]


def test_skipped_chunks_are_inside_contents_or_index_regions_of_their_own_document():
    doc_of = np.array([0, 0, 1, 1, 2])
    starts, ends = np.array([0, 50, 0, 50, 0]), np.array([40, 90, 40, 90, 40])
    regions = {
        0: [(0, 45, "contents"), (45, 100, "footnotes")],
        1: [(40, 100, "index")],
        2: [(0, 40, "body")],
        7: [(0, 100, "contents")],  # a document without chunks here
    }
    skip = skipped_chunks(doc_of, starts, ends, regions)
    assert skip.dtype == bool
    assert skip.tolist() == [True, False, False, True, False]


def test_candidates_are_the_best_lexical_texts_never_masked_ones():
    lexical = np.array([0.5, 2.0, 0.0, 1.0])
    assert candidates(lexical, 3).tolist() == [1, 3, 0]
    mask = np.array([True, False, True, True])
    assert candidates(lexical, 5, mask).tolist() == [3, 0, 2]
    assert candidates(lexical, 2, mask).tolist() == [3, 0]


def test_ranking_order_is_stable_for_ties():
    scores = np.zeros(2000)
    scores[[1500, 5, 700]] = 1.0
    order = docqa.retrieve._order(scores)
    assert order[:3].tolist() == [5, 700, 1500]
    assert order[3:].tolist() == [i for i in range(2000) if i not in (5, 700, 1500)]


class FixedBm25:
    """Stands in for `Bm25`: fixed lexical scores, and the query terms it was asked for."""

    def __init__(self, scores):
        self.fixed = np.asarray(scores, dtype=np.float32)
        self.size = len(self.fixed)
        self.asked: list[list[str]] = []

    def scores(self, query_tokens):
        self.asked.append(list(query_tokens))
        return self.fixed.copy()


class FixedEncoder:
    """Stands in for the sentence encoder: the question's vector is (1, 0)."""

    def __init__(self):
        self.encoded: list[str] = []

    def encode(self, texts):
        self.encoded.extend(texts)
        return np.array([[1.0, 0.0]] * len(texts), dtype=np.float32)


def fixed_retriever(candidates=3, dense_weight=0.5):
    """Lexical scores [1, 4, 3, 0, 2]; text i's pieces score their first coordinate."""
    pieces = {
        0: np.array([[0.7, 0.0]]),
        1: np.array([[0.1, 0.0], [0.2, 5.0]]),
        2: np.array([[0.9, 0.0]]),
        3: np.array([[0.3, 0.0]]),
        4: np.zeros((0, 2)),
    }
    asked: list[list[int]] = []

    def vectors(indices):
        asked.append([int(i) for i in indices])
        return [pieces[int(i)] for i in indices]

    bm25 = FixedBm25([1.0, 4.0, 3.0, 0.0, 2.0])
    retriever = Retriever(bm25, FixedEncoder(), vectors, dense_weight, candidates)
    return retriever, bm25, asked


def test_retriever_scores_fuse_dense_similarity_of_bm25_candidates_only():
    retriever, bm25, asked = fixed_retriever()
    scores = retriever.scores("Which batteries does the sensor use?")
    assert bm25.asked == bm25_tokens(["Which batteries does the sensor use?"])
    assert retriever.encoder.encoded == ["Which batteries does the sensor use?"]
    assert asked == [[1, 2, 4]]
    # Candidates 1, 2, 4 (lexical ranks 0, 1, 2); dense: 2 (0.9), 1 (0.2, its best piece),
    # and 4, which has no pieces, last.
    np.testing.assert_allclose(
        scores, [-np.inf, 1 / 11 + 0.5 / 12, 1 / 12 + 0.5 / 11, -np.inf, 1 / 13 + 0.5 / 13]
    )
    # One candidate by default: k widens it.
    retriever, _, asked = fixed_retriever(candidates=1)
    assert np.isfinite(retriever.scores("batteries")).sum() == 1
    assert np.isfinite(retriever.scores("batteries", k=2)).sum() == 2
    assert asked == [[1], [1, 2]]


def test_retriever_scores_never_choose_a_masked_text():
    mask = np.array([True, False, True, True, True])
    retriever, _, asked = fixed_retriever(candidates=5)
    scores = retriever.scores("batteries", mask)
    assert asked == [[2, 4, 0, 3]]
    assert np.isneginf(scores[1]) and np.isfinite(scores[[0, 2, 3, 4]]).all()
    lexical = Retriever(FixedBm25([1.0, 4.0, 3.0])).scores("x", np.array([True, False, True]))
    assert lexical.tolist() == [1.0, -np.inf, 3.0]


def test_retriever_rank_reads_k_texts_with_their_fused_scores():
    retriever, _, _ = fixed_retriever(candidates=2)
    ranked = retriever.rank("batteries", k=4)
    # k above the candidates: all four texts asked for get a fused score.
    assert [i for i, _ in ranked] == [1, 2, 0, 4]
    assert all(np.isfinite(score) for _, score in ranked)
    mask = np.array([True, True, False, False, True])
    assert [i for i, _ in retriever.rank("batteries", k=5, mask=mask)] == [1, 0, 4]
    assert Retriever.build(["one lonely text"]).rank("lonely", k=3) == [
        (0, pytest.approx(Retriever.build(["one lonely text"]).scores("lonely")[0]))
    ]
    assert Retriever.build([]).rank("anything", k=2) == []
    with pytest.raises(InputError) as caught:
        retriever.rank("batteries", k=0)
    assert str(caught.value) == "The number of chunks to read must be at least 1."


def test_a_vector_source_that_loses_texts_is_an_error_not_missing_dense_scores():
    retriever, _, _ = fixed_retriever()
    retriever.vectors = lambda indices: [np.zeros((1, 2))]
    with pytest.raises(ValueError):
        retriever.scores("batteries")


def test_subset_bm25_scores_some_texts_as_bm25_over_all_of_them_does():
    """A corpus scores the candidates Lance found with `SubsetBm25` and the corpus's
    statistics: exactly the float32 scores `Bm25` over every text gives them, repeated query
    terms and terms absent from the candidates included (issue 20)."""
    import random

    from docqa.retrieve import Bm25, SubsetBm25, bm25_tokens

    rng = random.Random(3)
    words = ["cat", "dog", "bird", "fish", "heron", "river", "valve", "pressure", "manual"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))) for _ in range(200)]
    token_lists = bm25_tokens(texts)
    frequency: dict[str, int] = {}
    for tokens in token_lists:
        for t in set(tokens):
            frequency[t] = frequency.get(t, 0) + 1
    mean = sum(map(len, token_lists)) / len(token_lists)
    whole = Bm25(token_lists)
    some = [5, 17, 18, 99, 150]
    subset = SubsetBm25([token_lists[i] for i in some], frequency, len(token_lists), mean)
    for query in ("cat heron", "heron heron river", "valve pressure manual dog", "zebra"):
        q = bm25_tokens([query])[0]
        assert np.array_equal(subset.scores(q), whole.scores(q)[some]), query
    # The collection's statistics, not the subset's: scored alone, the texts score otherwise.
    alone = Bm25([token_lists[i] for i in some]).scores(["heron"])
    assert not np.array_equal(subset.scores(["heron"]), alone)
