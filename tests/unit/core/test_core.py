"""The shared core: option validation at every boundary, layer resolution, windows, packing into
length buckets, the pipeline's score collection, and the text model's request validation."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from export.tiny.tokenizer_builder import build_xlmr_tokenizer
from reranker_core.encoding import EncodedPair
from reranker_core.encoding.encoder import encode_encoder_pairs, encoder_passage_budgets
from reranker_core.errors import InputError
from reranker_core.families import ENCODER, GEMMA2_LIGHTWEIGHT, MINICPM_LAYERWISE
from reranker_core.layers import LayerLimits, resolve_layers
from reranker_core.limits import LENGTH_BUCKETS
from reranker_core.manifest import LLMSettings, ModelManifest, TokenizerInfo
from reranker_core.options import parse_options
from reranker_core.packing import bucket_width, plan_requests
from reranker_core.pipeline import PreparedPairs, prepare_pairs
from reranker_core.scores import normalized, ranking
from reranker_core.texts import normalize_pairs
from reranker_core.windows import default_stride, window_texts
from reranker_server.text_requests import parse_text_request

ENCODER_MANIFEST = ModelManifest(
    family=ENCODER,
    name="m",
    tokenizer=TokenizerInfo(sha256="x", pad_token_id=1),
    max_positions=64,
    vocab_size=100,
)
LIGHT_MANIFEST = ModelManifest(
    family=GEMMA2_LIGHTWEIGHT,
    name="l",
    tokenizer=TokenizerInfo(sha256="x", pad_token_id=0, bos_token_id=2),
    max_positions=64,
    vocab_size=100,
    llm=LLMSettings.for_family(
        GEMMA2_LIGHTWEIGHT,
        num_hidden_layers=8,
        cutoff_layers=[2, 4, 6, 8],
        default_cutoff_layers=[8],
        compress_ratios=[1, 2, 4, 8],
        default_compress_layers=[8],
    ),
)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"max_length": 0}, "max_length must be a positive integer"),
        ({"max_length": "512"}, "max_length must be a positive integer"),
        ({"max_length": 1}, "leaves no room for the query"),
        ({"max_length": 8, "query_max_length": 0}, "query_max_length must be a positive integer"),
        ({"normalize": "yes"}, "normalize must be true or false"),
        ({"long_passages": "chunk"}, "long_passages must be one of truncate, max_window"),
        ({"prompt": "p"}, "unknown option(s) prompt: encoder models accept long_passages"),
        ({"window_stride": -1}, "window_stride must be a positive integer"),
    ],
)
def test_bad_options_are_clear_errors(raw, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_options(raw, ENCODER_MANIFEST)


def test_options_defaults_and_text_forms():
    options = parse_options({}, ENCODER_MANIFEST)
    assert (options.max_length, options.query_max_length, options.normalize) == (512, 384, False)
    text = parse_options(
        {"max_length": "20", "normalize": "true", "top_n": "3", "priority": 1, "triton_x": "ignored"},
        ENCODER_MANIFEST,
        from_text=True,
    )
    assert (text.max_length, text.query_max_length, text.normalize, text.top_n) == (20, 15, True, 3)
    with pytest.raises(InputError, match="unknown option"):
        parse_options({"priority": 1}, ENCODER_MANIFEST)  # reserved names only skipped for text


def test_llm_options_are_resolved_against_the_manifest_and_sent_as_json():
    options = parse_options(
        {"cutoff_layers": "[6, 4]", "compress_ratio": "2", "compress_layers": "2,4"},
        LIGHT_MANIFEST,
        from_text=True,
    )
    assert options.token_parameters() == {
        "cutoff_layers": json.dumps([6, 4]),
        "compress_ratio": 2,
        "compress_layers": json.dumps([2, 4]),
    }
    with pytest.raises(
        InputError, match=r"cutoff layer\(s\) \[5\] not available .* allowed layers: 2..8 step 2"
    ):
        parse_options({"cutoff_layers": 5}, LIGHT_MANIFEST)
    with pytest.raises(InputError, match="compress_ratio 3 not supported"):
        parse_options({"compress_ratio": 3}, LIGHT_MANIFEST)
    layerwise = replace(LIGHT_MANIFEST, family=MINICPM_LAYERWISE)
    with pytest.raises(InputError, match="unknown option.*compress_ratio"):
        parse_options({"compress_ratio": 2}, layerwise)


def test_resolve_layers_sorts_defaults_and_drops_compress_layers_that_change_nothing():
    limits = LayerLimits.from_manifest(LIGHT_MANIFEST)
    assert resolve_layers(None, None, None, limits).cutoff_layers == (8,)
    settings = resolve_layers([6, 2, 6], 2, [0, 4, 6, 8], limits)
    assert (
        settings.cutoff_layers == (2, 6) and settings.compress_layers == (4,) and settings.compress_ratio == 2
    )
    assert resolve_layers([4], 2, [6], limits).compress_ratio == 1  # compression after the cutoff: none
    with pytest.raises(InputError, match="cutoff_layers is empty"):
        resolve_layers([], None, None, limits)


def test_boundary_text_checks():
    with pytest.raises(InputError, match=r"pair 0 must be a \[query, passage\]"):
        normalize_pairs([("q",)])
    with pytest.raises(InputError, match="pair 1 passage must be a str"):
        normalize_pairs([("q", "p"), ("q", None)])
    assert normalize_pairs(["q", "p"]) == [("q", "p")]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from tokenizers import Tokenizer

    out = tmp_path_factory.mktemp("tok")
    build_xlmr_tokenizer(out)
    return Tokenizer.from_file(str(out / "tokenizer.json"))


def test_windows_cover_the_passage_with_overlap(tokenizer):
    passage = " ".join(f"word{i % 7} bamboo panda" for i in range(40))
    count = len(tokenizer.encode(passage, add_special_tokens=False).ids)
    texts = window_texts(tokenizer, passage, 16)
    assert len(texts) > 2 and passage.startswith(texts[0]) and passage.endswith(texts[-1])
    sizes = [len(tokenizer.encode(t, add_special_tokens=False).ids) for t in texts]
    assert max(sizes) <= 16
    assert sum(sizes) > count  # windows overlap
    assert window_texts(tokenizer, "short one", 16) == ["short one"]
    assert default_stride(16) == 12 and default_stride(1) == 1
    assert len(window_texts(tokenizer, passage, 16, stride=16)) < len(texts)


@pytest.mark.parametrize("max_length, query_max_length", [(24, 18), (32, 5), (20, 3)])
def test_max_window_passages_get_what_flagembedding_keeps_next_to_the_query(
    tokenizer, max_length, query_max_length
):
    """FlagReranker lays a pair out as <s> query </s></s> passage </s> and cuts only the passage:
    the query keeps min(its tokens, query_max_length), the passage the rest of max_length. Each
    window is that long (never more, so FlagEmbedding would not cut it again) and the rows the
    text model sends are exactly the windows' encodings."""
    query = "what is the giant panda eating all day long"
    passage = " ".join(f"word{i % 7} bamboo panda" for i in range(30))
    query_tokens = min(len(tokenizer.encode(query, add_special_tokens=False).ids), query_max_length)
    budget = max_length - query_tokens - 4
    assert encoder_passage_budgets(
        tokenizer, [query], max_length=max_length, query_max_length=query_max_length
    ) == [budget]
    manifest = replace(
        ENCODER_MANIFEST,
        tokenizer=TokenizerInfo(sha256="x", pad_token_id=1, cls_token_id=0, sep_token_id=2),
    )
    options = parse_options(
        {"max_length": max_length, "query_max_length": query_max_length, "long_passages": "max_window"},
        manifest,
    )
    prepared = prepare_pairs(tokenizer, manifest, [(query, passage), (query, "hi")], options)
    windows = window_texts(tokenizer, passage, budget)
    want = encode_encoder_pairs(
        tokenizer,
        manifest,
        [(query, w) for w in windows] + [(query, "hi")],
        max_length=max_length,
        query_max_length=query_max_length,
    )
    assert [r.input_ids for r in prepared.rows] == [r.input_ids for r in want]
    assert prepared.owners.tolist() == [0] * len(windows) + [1]
    lengths = [len(r.input_ids) for r in want[:-1]]
    assert max(lengths) <= max_length and lengths[0] >= max_length - 1  # full windows, never cut


@pytest.mark.parametrize("window", [3, 5, 7, 16])
def test_every_window_fits_on_its_own_and_no_token_is_skipped(tokenizer, window):
    """Windows cut inside words re-encode to more tokens than their slice; they are shortened to fit."""
    passage = "Les élèves étudient à l'école; the giant panda is a bear species endemic to China. " * 3
    texts = window_texts(tokenizer, passage, window)
    assert len(texts) > 1
    for text in texts:
        assert len(tokenizer.encode(text, add_special_tokens=False).ids) <= window, text
    position = 0
    for text in texts:  # each window starts inside or right after the previous one
        found = passage.find(text, max(0, position - len(text)))
        assert 0 <= found <= position, (text, position)
        position = max(position, found + len(text))
    assert position >= len(passage.rstrip())


def test_bucketed_requests_have_bucket_widths_and_respect_limits():
    rows = [EncodedPair(tuple(range(1, n + 1))) for n in (3, 40, 33, 70, 5, 64, 64)]
    batches = plan_requests(rows, max_pairs=2, pad_id=0, max_tokens=130, buckets=True, max_positions=100)
    seen = sorted(int(i) for b in batches for i in b.indices)
    assert seen == list(range(len(rows)))
    for b in batches:
        width = b.input_ids.shape[1]
        assert width in LENGTH_BUCKETS or width == 100
        assert len(b.indices) <= 2 and len(b.indices) * width <= max(130, width)
        assert all(len(rows[i].input_ids) <= width for i in b.indices)
    assert bucket_width(70, 100) == 100 and bucket_width(64) == 64 and bucket_width(9000) == 9000


def test_pair_scores_take_the_best_window_and_keep_input_order():
    rows = [EncodedPair((1, 2)), EncodedPair((1, 2, 3)), EncodedPair((4,)), EncodedPair((5, 6, 7, 8))]
    prepared = PreparedPairs(count=2, rows=rows, owners=np.array([0, 0, 1, 0]))
    batches = plan_requests(rows, max_pairs=2, pad_id=0)
    outputs = [np.array([[{0: 0.1, 1: 0.9, 2: -1.0, 3: 0.3}[int(i)]] for i in b.indices]) for b in batches]
    assert prepared.pair_scores(batches, outputs)[:, 0].tolist() == [0.9, -1.0]
    assert ranking([0.1, 0.5, 0.5, -2.0], top_n=3) == [1, 2, 0]


def _bytes(*texts):
    return np.array([t if isinstance(t, bytes) else t.encode() for t in texts], dtype=np.object_)


def test_text_request_shapes_and_errors():
    parse = lambda q, qs, ps, params=None: parse_text_request(  # noqa: E731
        q, qs, ps, params or {}, ENCODER_MANIFEST, max_pairs=3, max_text_bytes=20
    )
    rerank = parse(_bytes("q"), None, _bytes("a", "b"), {"top_n": 1})
    assert rerank.rerank and rerank.pairs == [("q", "a"), ("q", "b")] and rerank.options.top_n == 1
    pairs = parse(None, _bytes("q1", "q2"), _bytes("a", "b"))
    assert not pairs.rerank and pairs.pairs == [("q1", "a"), ("q2", "b")]
    # The ranking is computed only when asked for: a top_n, or the indices output requested.
    assert rerank.wants_indices and not pairs.wants_indices
    assert not parse(_bytes("q"), None, _bytes("a")).wants_indices
    for outputs, wanted in [(("scores",), False), (("scores", "indices"), True), (("indices",), True)]:
        request = parse_text_request(
            _bytes("q"), None, _bytes("a"), {}, ENCODER_MANIFEST, max_pairs=3, max_text_bytes=20,
            requested_outputs=outputs,
        )  # fmt: skip
        assert request.wants_indices is wanted
    for args, message in [
        ((None, None, _bytes("a")), "exactly one of query"),
        ((_bytes("q"), None, None), "passages input is required"),
        ((_bytes("q"), None, _bytes("a", "b", "c", "d")), "4 passages in one request; the limit is 3"),
        ((_bytes("q"), None, _bytes(b"\xff")), r"passages\[0\] is not valid UTF-8"),
        ((_bytes("q"), None, _bytes("x" * 21)), r"passages\[0\] is 21 bytes; the limit is 20"),
        ((_bytes(" "), None, _bytes("a")), r"query\[0\] is empty"),
        ((None, _bytes("q"), _bytes("a", "b")), "one query per passage"),
        ((_bytes("q"), None, np.array([1, 2])), "must be a BYTES"),
    ]:
        with pytest.raises(InputError, match=message):
            parse(*args)
    with pytest.raises(InputError, match="top_n applies to the rerank shape"):
        parse(None, _bytes("q"), _bytes("a"), {"top_n": 1})
    with pytest.raises(InputError, match="request parameters must be a JSON object"):
        parse(_bytes("q"), None, _bytes("a"), ["x"])


def test_normalize_is_the_logistic_sigmoid_at_every_logit():
    """FlagEmbedding's normalize=True, 1 / (1 + e^-x), written out here: its value, slope and
    symmetry over the range of real logits, not only at 0."""
    logits = np.array([-30.0, -8.5, -2.0, -0.5, 0.0, 0.25, 1.0, 3.7, 12.0], dtype=np.float64)
    got = normalized(logits, True)
    assert got.tolist() == pytest.approx([1.0 / (1.0 + math.exp(-x)) for x in logits], rel=1e-12, abs=0)
    assert np.all(np.diff(got) > 0) and got[4] == 0.5
    np.testing.assert_allclose(got + normalized(-logits, True), 1.0, atol=1e-15)
    assert normalized(logits, False) is logits


def test_ranking_is_best_first_with_stable_ties():
    scores = [0.1, 0.5, 0.5, -2.0, 0.5]
    assert ranking(scores) == [1, 2, 4, 0, 3]
    assert ranking(scores, ties_high_index_first=True) == [4, 2, 1, 0, 3]
    assert ranking(np.array(scores), 2) == [1, 2] and ranking([], 3) == []


@pytest.mark.parametrize(
    "source, hub_id",
    [
        ("BAAI/bge-reranker-base", "BAAI/bge-reranker-base"),
        ("/srv/checkpoints/bge", ""),
        ("./checkpoints/bge", ""),
        ("~/bge", ""),
        ("models/bge/v2", ""),
        ("", ""),
    ],
)
def test_only_a_hub_id_is_shown_as_one(source, hub_id):
    assert replace(ENCODER_MANIFEST, source=source).hub_id == hub_id
