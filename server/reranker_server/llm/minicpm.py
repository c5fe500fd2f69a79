"""bge-reranker-v2-minicpm-layerwise (LayerWiseFlagLLMReranker): MiniCPM blocks; the score at
cutoff c is head[c - start_layer] (hidden -> 1) on the final-normed state after c layers."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from reranker_core.families import MINICPM_LAYERWISE, family_spec
from reranker_server.llm.decoder import DecoderStack, LLMScorer, StackSpec
from reranker_server.llm.weights import CheckpointError, expect_shape


class MiniCPMLayerwiseScorer(LLMScorer):
    family = MINICPM_LAYERWISE

    def __init__(self, checkpoint_dir: Path | str, **kwargs) -> None:
        super().__init__(checkpoint_dir, **kwargs)
        c = self.config
        if c.get("head_type", "simple") != "simple":
            raise CheckpointError(f"head_type {c.get('head_type')!r} is not supported (only 'simple')")
        if c.get("pretraining_tp", 1) != 1:
            raise CheckpointError("pretraining_tp > 1 is not supported")
        heads, layers, hidden = c["num_attention_heads"], c["num_hidden_layers"], c["hidden_size"]
        spec = StackSpec(
            vocab_size=c["vocab_size"],
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_heads=heads,
            num_kv_heads=c.get("num_key_value_heads") or heads,
            head_dim=hidden // heads,
            intermediate_size=c["intermediate_size"],
            rms_norm_eps=c.get("rms_norm_eps", 1e-6),
            rope_theta=c.get("rope_theta", 10000.0),
            act=c.get("hidden_act", "silu"),
            norm_offset=False,
            rope_fp32=True,
            attn_scale=(hidden // heads) ** -0.5,
            embed_scale=lambda dtype, s=c.get("scale_emb", 1): s,
            residual_scale=c.get("scale_depth", 1) / math.sqrt(layers),
            max_position_embeddings=c.get("max_position_embeddings", 0),
        )
        self.stack = DecoderStack(spec, self.reader, self.dtype, self.device)
        self.start_layer = int(c.get("start_layer", family_spec(self.family).default_start_layer))
        if not 0 <= self.start_layer <= layers:
            raise CheckpointError(f"start_layer {self.start_layer} outside [0, {layers}]")
        if c.get("head_multi", True):
            names = [f"lm_head.{j}.linear_head.weight" for j in range(layers + 1 - self.start_layer)]
        else:
            names = ["lm_head.linear_head.weight"]
        self.heads = torch.stack([expect_shape(n, self.reader.get(n), (1, hidden))[0] for n in names]).to(
            device=self.device, dtype=self.dtype
        )
        self.head_multi = bool(c.get("head_multi", True))
        self.reader = None

    def allowed_cutoffs(self) -> list[int]:
        return list(range(self.start_layer, self.num_hidden_layers + 1))

    def head_scores(self, cutoff: int, ordinal: int, hidden: torch.Tensor) -> torch.Tensor:
        row = self.heads[cutoff - self.start_layer if self.head_multi else 0]
        return F.linear(hidden, row[None, :].to(hidden.dtype))[:, 0].float()
