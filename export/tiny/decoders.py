"""Tiny deterministic checkpoints of the three decoder (LLM) reranker families.

Each builder writes a Hugging Face style directory that FlagEmbedding 1.4.2 loads like the hub
checkpoint it stands in for, and that the project's own plain-torch scorers
(server/reranker_server/llm/) load too:

- config.json (with `auto_map` for the two custom families),
- model.safetensors (state-dict keys written by hand with plain torch, no model classes),
- the decoder tokenizer of export/tiny/tokenizer_builder.py,
- for the layerwise / lightweight families, FlagEmbedding's model files copied AT BUILD TIME from
  a FlagEmbedding installation ($RERANKER_FLAGEMBEDDING_MODELS, else the repository's
  .venv-oracle), when there is one: FlagEmbedding needs them to load the checkpoint
  (trust_remote_code); this project's server never runs checkpoint code. They are never
  committed to this repository.

The weights are seeded normal draws with enough spread that different pairs get clearly
different scores.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from export.tiny.tokenizer_builder import build_decoder_tokenizer

REPO = Path(__file__).resolve().parents[2]  # the source checkout (export/tiny/ -> repository root)
_MODELS_SUBDIR = Path("FlagEmbedding/inference/reranker/decoder_only/models")

_NORMS = ("input_layernorm", "post_attention_layernorm")
MINICPM_FILES = ("configuration_minicpm_reranker.py", "modeling_minicpm_reranker.py")
GEMMA2_FILES = ("gemma_config.py", "gemma_model.py")


def flagembedding_models_dir() -> Path:
    """FlagEmbedding's decoder model files: $RERANKER_FLAGEMBEDDING_MODELS or .venv-oracle's."""
    env = os.environ.get("RERANKER_FLAGEMBEDDING_MODELS")
    if env:
        return Path(env)
    hits = sorted((REPO / ".venv-oracle" / "lib").glob(f"python3*/site-packages/{_MODELS_SUBDIR}"))
    if not hits:
        raise FileNotFoundError(
            "FlagEmbedding's model files not found under .venv-oracle; run `make oracle` "
            "or set RERANKER_FLAGEMBEDDING_MODELS"
        )
    return hits[0]


def _copy_model_files(out_dir: Path, names: tuple[str, ...]) -> None:
    """FlagEmbedding's model code next to the weights, for FlagEmbedding's trust_remote_code
    loading. Skipped when no FlagEmbedding installation is found (e.g. `make demo` on a fresh
    machine): this project's server never runs checkpoint code, so the checkpoint is complete
    without it."""
    try:
        src = flagembedding_models_dir()
    except FileNotFoundError:
        return
    for name in names:
        shutil.copyfile(src / name, out_dir / name)


class _Draw:
    """Seeded normal draws, one generator per checkpoint, in a fixed key order. numpy's generator
    gives the same numbers on every CPU (torch.randn's kernels differ between AVX2 and AVX-512)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def normal(self, *shape: int, std: float, mean: float = 0.0) -> torch.Tensor:
        return torch.from_numpy(mean + std * self.rng.standard_normal(shape)).to(torch.float32).contiguous()


def _vocab_size(out_dir: Path) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(out_dir / "tokenizer.json")).get_vocab_size()


def _attention_and_mlp(
    draw: _Draw, prefix: str, hidden: int, heads: int, kv_heads: int, head_dim: int, inter: int, std: float
) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.self_attn.q_proj.weight": draw.normal(heads * head_dim, hidden, std=std),
        f"{prefix}.self_attn.k_proj.weight": draw.normal(kv_heads * head_dim, hidden, std=std),
        f"{prefix}.self_attn.v_proj.weight": draw.normal(kv_heads * head_dim, hidden, std=std),
        f"{prefix}.self_attn.o_proj.weight": draw.normal(hidden, heads * head_dim, std=std),
        f"{prefix}.mlp.gate_proj.weight": draw.normal(inter, hidden, std=std),
        f"{prefix}.mlp.up_proj.weight": draw.normal(inter, hidden, std=std),
        f"{prefix}.mlp.down_proj.weight": draw.normal(hidden, inter, std=std),
    }


def _decoder_state(
    draw: _Draw,
    *,
    vocab: int,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    inter: int,
    std: float,
    embed_std: float,
    norms: tuple[str, ...],
    norm_mean: float,
) -> dict[str, torch.Tensor]:
    """Embeddings, every decoder layer (attention, MLP, its norms) and the final norm."""
    state = {"model.embed_tokens.weight": draw.normal(vocab, hidden, std=embed_std)}
    for i in range(layers):
        p = f"model.layers.{i}"
        state.update(_attention_and_mlp(draw, p, hidden, heads, kv_heads, head_dim, inter, std))
        for norm in norms:
            state[f"{p}.{norm}.weight"] = draw.normal(hidden, std=0.1, mean=norm_mean)
    state["model.norm.weight"] = draw.normal(hidden, std=0.1, mean=norm_mean)
    return state


def _add_layer_heads(state: dict[str, torch.Tensor], draw: _Draw, count: int, hidden: int) -> None:
    """The 1-dim score heads of the layerwise families, one per allowed cutoff layer."""
    for j in range(count):
        state[f"lm_head.{j}.linear_head.weight"] = draw.normal(1, hidden, std=0.5)


def _auto_map(config_class: str, model_prefix: str) -> dict[str, str]:
    """config.json's auto_map for FlagEmbedding's remote-code model files."""
    return {
        "AutoConfig": config_class,
        "AutoModel": f"{model_prefix}Model",
        "AutoModelForCausalLM": f"{model_prefix}ForCausalLM",
    }


def _dims(vocab: int, hidden: int, inter: int, layers: int, heads: int, kv_heads: int) -> dict[str, int]:
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
    }


def _save(out_dir: Path, state: dict[str, torch.Tensor], config: dict) -> Path:
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    return out_dir


def _special_ids() -> dict[str, int]:
    # build_decoder_tokenizer's layout: <pad>=0 <eos>=1 <bos>=2 <unk>=3
    return {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}


def build_gemma_reranker(
    out_dir: Path,
    *,
    seed: int = 0,
    hidden_size: int = 32,
    num_hidden_layers: int = 3,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    head_dim: int = 16,
    intermediate_size: int = 64,
    rope_theta: float = 10000.0,
    padding_side: str = "left",
    std: float = 0.2,
) -> Path:
    """A GemmaForCausalLM reranker (bge-reranker-v2-gemma layout; lm_head tied to the embeddings).

    head_dim * heads != hidden_size on purpose (Gemma takes head_dim from the config), and
    grouped-query attention (kv heads < heads).
    """
    out_dir = Path(out_dir)
    build_decoder_tokenizer(out_dir, padding_side=padding_side)
    vocab = _vocab_size(out_dir)
    draw = _Draw(seed)
    state = _decoder_state(
        draw,
        vocab=vocab,
        hidden=hidden_size,
        layers=num_hidden_layers,
        heads=num_attention_heads,
        kv_heads=num_key_value_heads,
        head_dim=head_dim,
        inter=intermediate_size,
        std=std,
        embed_std=0.5,
        norms=_NORMS,
        norm_mean=0.0,
    )
    config = {
        "architectures": ["GemmaForCausalLM"],
        "model_type": "gemma",
        **_dims(
            vocab, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads
        ),
        "head_dim": head_dim,
        "hidden_act": "gelu",
        "hidden_activation": "gelu_pytorch_tanh",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": rope_theta,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "tie_word_embeddings": True,
        "use_cache": True,
        "torch_dtype": "float32",
        **_special_ids(),
    }
    return _save(out_dir, state, config)


def build_minicpm_layerwise_reranker(
    out_dir: Path,
    *,
    seed: int = 0,
    hidden_size: int = 32,
    num_hidden_layers: int = 6,
    start_layer: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    intermediate_size: int = 64,
    scale_emb: float = 3.0,
    scale_depth: float = 1.4,
    rope_theta: float = 10000.0,
    padding_side: str = "left",
    std: float = 0.2,
) -> Path:
    """A LayerWiseMiniCPMForCausalLM reranker (bge-reranker-v2-minicpm-layerwise layout):
    `head_type` "simple", `head_multi` true, one 1-dim head per layer start_layer..num_hidden_layers."""
    out_dir = Path(out_dir)
    build_decoder_tokenizer(out_dir, padding_side=padding_side)
    vocab = _vocab_size(out_dir)
    head_dim = hidden_size // num_attention_heads
    draw = _Draw(seed)
    state = _decoder_state(
        draw,
        vocab=vocab,
        hidden=hidden_size,
        layers=num_hidden_layers,
        heads=num_attention_heads,
        kv_heads=num_key_value_heads,
        head_dim=head_dim,
        inter=intermediate_size,
        std=std,
        embed_std=0.3,
        norms=_NORMS,
        norm_mean=1.0,
    )
    _add_layer_heads(state, draw, num_hidden_layers + 1 - start_layer, hidden_size)
    config = {
        "architectures": ["LayerWiseMiniCPMForCausalLM"],
        "model_type": "minicpm",
        "auto_map": _auto_map(
            "configuration_minicpm_reranker.LayerWiseMiniCPMConfig",
            "modeling_minicpm_reranker.LayerWiseMiniCPM",
        ),
        **_dims(
            vocab, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads
        ),
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": rope_theta,
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.1,
        "pretraining_tp": 1,
        "scale_emb": scale_emb,
        "scale_depth": scale_depth,
        "dim_model_base": 256,
        "start_layer": start_layer,
        "head_multi": True,
        "head_type": "simple",
        "tie_word_embeddings": False,
        "use_cache": False,
        "torch_dtype": "float32",
        **_special_ids(),
    }
    _copy_model_files(out_dir, MINICPM_FILES)
    return _save(out_dir, state, config)


def build_gemma2_lightweight_reranker(
    out_dir: Path,
    *,
    seed: int = 0,
    hidden_size: int = 32,
    num_hidden_layers: int = 8,
    start_layer: int = 2,
    layer_sep: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    head_dim: int = 16,
    intermediate_size: int = 64,
    sliding_window: int = 6,
    query_pre_attn_scalar: int = 24,
    final_logit_softcapping: float = 3.0,
    attn_logit_softcapping: float = 5.0,
    rope_theta: float = 10000.0,
    std: float = 0.2,
) -> Path:
    """A CostWiseGemmaForCausalLM reranker (bge-reranker-v2.5-gemma2-lightweight layout):
    `layer_wise` true, 1-dim heads for the cutoffs range(start_layer, num_hidden_layers + 1, layer_sep).

    A small sliding window (sliding layers are the even ones) and a final logit soft-cap that
    bites (scores of a few units against cap 3) make both visible in the scores;
    `attn_logit_softcapping` is set but, as FlagEmbedding runs it (SDPA), not applied.
    """
    out_dir = Path(out_dir)
    build_decoder_tokenizer(out_dir, padding_side="right")
    vocab = _vocab_size(out_dir)
    draw = _Draw(seed)
    state = _decoder_state(
        draw,
        vocab=vocab,
        hidden=hidden_size,
        layers=num_hidden_layers,
        heads=num_attention_heads,
        kv_heads=num_key_value_heads,
        head_dim=head_dim,
        inter=intermediate_size,
        std=std,
        embed_std=0.5,
        norms=(*_NORMS, "pre_feedforward_layernorm", "post_feedforward_layernorm"),
        norm_mean=0.0,
    )
    _add_layer_heads(state, draw, len(range(start_layer, num_hidden_layers + 1, layer_sep)), hidden_size)
    config = {
        "architectures": ["CostWiseGemmaForCausalLM"],
        "model_type": "cost_wise_gemma",
        "auto_map": _auto_map("gemma_config.CostWiseGemmaConfig", "gemma_model.CostWiseGemma"),
        **_dims(
            vocab, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads
        ),
        "head_dim": head_dim,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": rope_theta,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "query_pre_attn_scalar": query_pre_attn_scalar,
        "sliding_window": sliding_window,
        "final_logit_softcapping": final_logit_softcapping,
        "attn_logit_softcapping": attn_logit_softcapping,
        "cache_implementation": "hybrid",
        "start_layer": start_layer,
        "layer_sep": layer_sep,
        "layer_wise": True,
        "tie_word_embeddings": False,
        "use_cache": False,
        "torch_dtype": "float32",
        **_special_ids(),
    }
    _copy_model_files(out_dir, GEMMA2_FILES)
    return _save(out_dir, state, config)
