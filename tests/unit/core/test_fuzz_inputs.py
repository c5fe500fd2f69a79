"""Property-based fuzzing of the request builder (client) and of the server's token validation.

Client: whatever compute_score receives, ScoringCore.plan either raises InvalidInputError or builds
requests that cover every pair exactly once, respect the model's limits, and pass the server's
own validator. Server: validate_token_inputs either raises InputError (never anything else) or
returns exactly the unpadded rows of a well-formed request.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reranker_client.errors import InvalidInputError
from reranker_client.scoring import ScoringCore
from reranker_core.errors import InputError
from reranker_core.families import ENCODER, FAMILIES, family_spec
from reranker_core.manifest import ModelManifest
from reranker_core.options import COMMON_OPTIONS, parse_options
from reranker_server.token_requests import validate_token_inputs

MAX_POSITIONS = 40
MAX_BATCH = 5
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------ server: validate_token_inputs

VOCAB = 50

int_arrays = st.sampled_from([np.int64, np.int32, np.int8]).flatmap(
    lambda dtype: hnp.arrays(
        dtype=dtype,
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
        elements=st.integers(-3, VOCAB + 3) | st.sampled_from([0, 1]),
    )
) | hnp.arrays(
    np.uint64,
    hnp.array_shapes(min_dims=2, max_dims=2, max_side=4),
    elements=st.sampled_from([0, 1, 2**64 - 1]),
)
any_arrays = int_arrays | hnp.arrays(
    dtype=st.sampled_from([np.float32, np.bool_]), shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4)
)


@st.composite
def well_formed(draw):
    """A valid request: right- or left-padded rows of in-vocabulary ids."""
    pairs = draw(st.integers(1, MAX_BATCH))
    width = draw(st.integers(1, MAX_POSITIONS + 4))
    lengths = draw(st.lists(st.integers(1, width), min_size=pairs, max_size=pairs))
    left = draw(st.booleans())
    ids = draw(hnp.arrays(np.int64, (pairs, width), elements=st.integers(0, VOCAB - 1)))
    mask = np.zeros((pairs, width), np.int64)
    for r, n in enumerate(lengths):
        if left:
            mask[r, width - n :] = 1
        else:
            mask[r, :n] = 1
    return ids, mask


def _validate(ids, mask):
    return validate_token_inputs(
        ids, mask, vocab_size=VOCAB, max_positions=MAX_POSITIONS, max_pairs=MAX_BATCH
    )


@FUZZ
@given(ids=st.none() | any_arrays, mask=st.none() | any_arrays)
def test_validator_only_ever_raises_request_error(ids, mask):
    try:
        rows = _validate(ids, mask)
    except InputError as exc:
        assert str(exc)
        return
    # Accepted: then it really was a well-formed request.
    assert ids.ndim == 2 and ids.shape == mask.shape and 1 <= ids.shape[0] <= MAX_BATCH
    assert len(rows.rows) == ids.shape[0]
    for r, row in enumerate(rows.rows):
        assert row.dtype == np.int64 and 1 <= len(row) <= MAX_POSITIONS
        assert list(row) == list(ids[r][mask[r].astype(bool)])
        assert row.min() >= 0 and row.max() < VOCAB


@FUZZ
@given(request=well_formed())
def test_validator_accepts_well_formed_requests_and_returns_their_rows(request):
    ids, mask = request
    lengths = mask.sum(axis=1)
    if lengths.max() > MAX_POSITIONS:
        with pytest.raises(InputError, match="exceeds"):
            _validate(ids, mask)
        return
    rows = _validate(ids, mask)
    for r, row in enumerate(rows.rows):
        assert np.array_equal(row, ids[r][mask[r] == 1])


@FUZZ
@given(request=well_formed(), data=st.data())
def test_validator_rejects_each_single_corruption(request, data):
    ids, mask = request
    assume(mask.sum(axis=1).max() <= MAX_POSITIONS)
    r = data.draw(st.integers(0, ids.shape[0] - 1))
    real = np.flatnonzero(mask[r])
    c = int(data.draw(st.sampled_from(list(real))))
    kind = data.draw(st.sampled_from(["id<0", "id>=vocab", "mask=2", "hole", "zero row", "shape"]))
    ids, mask = ids.copy(), mask.copy()
    if kind == "id<0":
        ids[r, c] = data.draw(st.integers(-(2**62), -1))
    elif kind == "id>=vocab":
        ids[r, c] = data.draw(st.integers(VOCAB, 2**62))
    elif kind == "mask=2":
        mask[r, c] = data.draw(st.integers(2, 2**40) | st.integers(-(2**40), -1))
    elif kind == "hole":
        assume(len(real) >= 3 and real[0] < c < real[-1])
        mask[r, c] = 0
    elif kind == "zero row":
        mask[r] = 0
    else:
        mask = np.concatenate([mask, mask[:, :1]], axis=1)
    with pytest.raises(InputError):
        _validate(ids, mask)


# ------------------------------------------------------------------ client: ScoringCore.plan


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> ScoringCore:
    from tokenizers import Tokenizer

    from export.tiny.tokenizer_builder import build_xlmr_tokenizer
    from export.tokenizer_files import copy_tokenizer

    ckpt = build_xlmr_tokenizer(tmp_path_factory.mktemp("tok"))
    model_dir = tmp_path_factory.mktemp("model")
    info = copy_tokenizer(Path(ckpt), model_dir, "fuzz")
    tokenizer = Tokenizer.from_file(str(model_dir / info.file))
    manifest = ModelManifest(
        family=ENCODER,
        name="fuzz",
        tokenizer=info,
        max_positions=MAX_POSITIONS,
        default_max_length=MAX_POSITIONS,
        max_batch_size=MAX_BATCH,
        vocab_size=tokenizer.get_vocab_size(),
    )
    return ScoringCore(
        manifest, tokenizer, max_batch_size=MAX_BATCH, max_request_tokens=64, max_text_bytes=2000
    )


texts = (
    st.text(max_size=300)
    | st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
    | st.binary(max_size=10)
)
junk = st.none() | st.integers() | st.floats(allow_nan=True) | st.booleans()
pairs_strategy = st.one_of(
    st.lists(st.tuples(texts, texts) | st.lists(texts, min_size=2, max_size=2), max_size=14),
    st.lists(st.lists(texts | junk, max_size=3), max_size=4),
    st.tuples(texts, texts),
    texts,
    junk,
    st.dictionaries(st.text(max_size=3), texts, max_size=2),
)
lengths = st.none() | st.integers(-3, 80) | st.booleans() | st.floats(0, 10) | st.text(max_size=2)


@FUZZ
@given(pairs=pairs_strategy, max_length=lengths, query_max_length=lengths, batch_size=lengths)
def test_plan_is_invalid_input_or_requests_the_server_accepts(
    core, pairs, max_length, query_max_length, batch_size
):
    try:
        plan = core.plan(
            pairs, max_length=max_length, query_max_length=query_max_length, batch_size=batch_size
        )
    except InvalidInputError as exc:
        assert str(exc)
        return
    seen = np.concatenate([b.indices for b in plan.batches])
    assert sorted(seen.tolist()) == list(range(plan.count))  # every pair exactly once
    assert plan.parameters == {}
    for batch in plan.batches:
        assert batch.input_ids.dtype == np.int64 and batch.attention_mask.dtype == np.int64
        assert 1 <= len(batch.indices) <= min(MAX_BATCH, batch_size or MAX_BATCH)
        # what the client builds, the server's validator accepts
        validate_token_inputs(
            batch.input_ids,
            batch.attention_mask,
            vocab_size=core.manifest.vocab_size,
            max_positions=core.manifest.max_positions,
            max_pairs=MAX_BATCH,
        )


@FUZZ
@given(
    family=st.sampled_from(sorted(FAMILIES)),
    kwargs=st.dictionaries(
        st.sampled_from(
            ["prompt", "cutoff_layers", "compress_ratio", "compress_layers", "bogus", "normalize_x"]
        ),
        junk | texts | st.lists(st.integers() | st.booleans() | st.text(max_size=2), max_size=4),
        max_size=4,
    ),
)
def test_family_options_are_checked_or_encoded_as_ints(core, family, kwargs):
    manifest = ModelManifest(**{**core.manifest.__dict__, "family": family})
    try:
        options = parse_options(kwargs, manifest)
    except InputError as exc:
        assert str(exc)
        return
    assert set(k for k, v in kwargs.items() if v is not None) <= COMMON_OPTIONS | family_spec(family).options
    assert options.prompt is None or isinstance(options.prompt, str)
    params = options.token_parameters()
    for key in ("cutoff_layers", "compress_layers"):
        if key in params:
            values = json.loads(params[key])
            assert all(type(v) is int for v in values)
            assert values or key == "compress_layers"  # [] compress layers: compress nowhere
    if "compress_ratio" in params:
        assert type(params["compress_ratio"]) is int and params["compress_ratio"] >= 1
