"""The demo's offline fallback choices."""

from reranker_core.manifest import LLMSettings
from tools.demo import family_from_name, scaled_arguments


def test_family_from_hub_name():
    assert family_from_name("BAAI/bge-reranker-v2-m3") == "encoder"
    assert family_from_name("BAAI/bge-reranker-v2-gemma") == "gemma"
    assert family_from_name("BAAI/bge-reranker-v2-minicpm-layerwise") == "minicpm_layerwise"
    assert family_from_name("BAAI/bge-reranker-v2.5-gemma2-lightweight") == "gemma2_lightweight"


def test_seed_arguments_kept_for_real_depth_and_scaled_for_tiny_models():
    real = LLMSettings(num_hidden_layers=40, cutoff_layers=list(range(8, 41)))
    assert scaled_arguments("minicpm_layerwise", real) == {"cutoff_layers": [28]}
    tiny = LLMSettings(num_hidden_layers=8, cutoff_layers=[2, 4, 6, 8])
    args = scaled_arguments("gemma2_lightweight", tiny)
    assert args["cutoff_layers"] == [6] and args["compress_ratio"] == 2
    assert args["compress_layers"] == [5, 8]


def test_encoder_models_get_no_layer_arguments():
    assert scaled_arguments("encoder", None) == {}
