"""reranker_eval configurations: command-line specs, YAML, sweeps, labels, the fullest reference."""

from __future__ import annotations

import pytest

from reranker_eval.configs import check_unique, from_spec, from_yaml
from reranker_eval.errors import EvalError


def test_spec_with_a_sweep_gives_one_configuration_per_value():
    configs = from_spec("grpc://localhost:8001?model=tiny-layerwise&cutoff_layers=2|4|6&max_length=64")
    assert [c.option_dict for c in configs] == [{"cutoff_layers": [n], "max_length": 64} for n in (2, 4, 6)]
    assert [c.label for c in configs] == [
        f"tiny-layerwise cutoff_layers={n} max_length=64 (grpc)" for n in (2, 4, 6)
    ]
    assert len({c.key for c in configs}) == 3 and configs[0].url == "localhost:8001"
    assert max(configs, key=lambda c: c.fullness()) is configs[2]


def test_http_endpoints_get_their_default_paths():
    (tei,) = from_spec("tei://localhost:8080?model=m")
    (cohere,) = from_spec("cohere+https://api.example:443?model=m&label=hosted")
    (custom,) = from_spec("tei://h:1/prefix/rerank")
    assert tei.url == "http://localhost:8080/rerank" and tei.model == "m"
    assert cohere.url == "https://api.example:443/v1/rerank" and cohere.label == "hosted"
    assert custom.url == "http://h:1/prefix/rerank" and custom.model is None


def test_lists_and_fullness_ordering():
    a, b = from_spec("grpc://h:1?model=m&compress_ratio=1|4&compress_layers=2,4&cutoff_layers=[4,6]")
    assert a.option_dict["compress_layers"] == [2, 4] and a.option_dict["cutoff_layers"] == [4, 6]
    assert a.fullness() > b.fullness()  # ratio 1 compresses nothing
    (default,) = from_spec("grpc://h:1?model=m")
    assert default.fullness() > a.fullness()  # no cutoff: the deepest layer


def test_yaml_defaults_and_sweeps(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "defaults: {via: grpc, url: 'localhost:8001'}\n"
        "configurations:\n"
        "  - model: tiny-layerwise\n"
        "    sweep: {cutoff_layers: [2, 3]}\n"
        "  - {model: tiny-encoder, via: tei, url: 'localhost:8080', label: enc, group: e}\n"
    )
    configs = from_yaml(path)
    assert [c.label for c in configs] == [
        "tiny-layerwise cutoff_layers=2 (grpc)",
        "tiny-layerwise cutoff_layers=3 (grpc)",
        "enc",
    ]
    assert configs[2].url == "http://localhost:8080/rerank" and configs[2].group == "e"
    check_unique(configs)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("ftp://h:1?model=m", "start with one of"),
        ("grpc://h:1", "needs a model name"),
        ("grpc://h:1?model=m&cutof_layers=2", "unknown key.*cutof_layers"),
        ("grpc://h:1?model=m&cutoff_layers=x", "cutoff_layers must be a positive integer"),
        ("grpc://h:1?model=m&long_passages=wrap", "long_passages must be one of"),
        ("grpc://h:1?model=m&tokenize=maybe", "tokenize must be one of"),
        ("grpc://h:1?model=m&label=x&max_length=8|16", "takes no label"),
    ],
)
def test_bad_specs_are_named(spec, message):
    with pytest.raises(EvalError, match=message):
        from_spec(spec)


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("configurations:\n  - model: [unclosed\n")
    with pytest.raises(EvalError, match=r"bad\.yaml:\d+: malformed YAML"):
        from_yaml(bad)
    bad.write_text("configurations:\n  - {model: m, sweep: {model: [a]}}\n")
    with pytest.raises(EvalError, match=r"bad\.yaml: configurations\[0\]: cannot sweep 'model'"):
        from_yaml(bad)


def test_duplicates_are_refused():
    with pytest.raises(EvalError, match="are the same"):
        check_unique(from_spec("grpc://h:1?model=m&label=a") + from_spec("grpc://h:1?model=m&label=b"))
    with pytest.raises(EvalError, match="two configurations are labelled 'a'"):
        check_unique(from_spec("grpc://h:1?model=m&label=a") + from_spec("grpc://h:1?model=n&label=a"))
    with pytest.raises(EvalError, match="no configuration"):
        check_unique([])
