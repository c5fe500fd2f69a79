"""bge-reranker-v2.5-gemma2-lightweight (LightWeightFlagLLMReranker): Gemma2 blocks with
optional passage-token compression between layers; the score at the j-th requested cutoff
(ascending) is head[j] (hidden -> 1), then the final logit soft-cap tanh(x / cap) * cap."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from reranker_core.families import GEMMA2_LIGHTWEIGHT, family_spec
from reranker_server.llm.decoder import DecoderStack, LLMScorer, StackSpec
from reranker_server.llm.weights import CheckpointError, expect_shape


def compress_passages(
    h: torch.Tensor,
    lengths: torch.Tensor,
    ratio: int,
    query_lengths: torch.Tensor,
    prompt_lengths: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded rows [query][passage][sep+prompt] -> [query][passage groups][sep+prompt].

    Each group of `ratio` consecutive passage states is averaged (a short last group averages its
    real count); the result is right-padded with zeros. Returns (new h, new lengths)."""
    bsz, _, hidden = h.shape
    device = h.device
    passage = lengths - query_lengths - prompt_lengths
    kept = (passage + ratio - 1) // ratio
    new_lengths = query_lengths + kept + prompt_lengths
    width = int(new_lengths.max())
    pos = torch.arange(width, device=device)[None, :]  # [1, W]
    q, k, p_len = query_lengths[:, None], kept[:, None], passage[:, None]
    in_query = pos < q
    in_passage = (pos >= q) & (pos < q + k)
    in_prompt = (pos >= q + k) & (pos < new_lengths[:, None])
    offsets = torch.arange(ratio, device=device)[None, None, :]  # [1, 1, r]
    group_start = q + (pos - q) * ratio  # [B, W]
    src = group_start[:, :, None] + offsets  # [B, W, r]
    src_valid = in_passage[:, :, None] & (src < (q + p_len)[:, :, None])
    single = torch.where(in_query, pos, pos - k + p_len)  # query / prompt source
    src = torch.where(in_passage[:, :, None], src, single[:, :, None])
    weight = torch.where(
        in_passage[:, :, None], src_valid.to(h.dtype), torch.zeros((), dtype=h.dtype, device=device)
    )
    weight[..., 0] = torch.where(
        in_query | in_prompt, torch.ones((), dtype=h.dtype, device=device), weight[..., 0]
    )
    count = weight.sum(dim=-1, keepdim=True).clamp(min=1)
    weight = torch.where(in_passage[:, :, None], weight / count, weight)
    src = src.clamp(0, h.shape[1] - 1)
    gathered = torch.gather(h, 1, src.reshape(bsz, -1, 1).expand(-1, -1, hidden)).view(
        bsz, width, ratio, hidden
    )
    new_h = (gathered * weight[..., None]).sum(dim=2)
    return new_h, new_lengths


class Gemma2LightweightScorer(LLMScorer):
    family = GEMMA2_LIGHTWEIGHT
    supports_compression = True

    def __init__(self, checkpoint_dir: Path | str, **kwargs) -> None:
        super().__init__(checkpoint_dir, **kwargs)
        c = self.config
        if not c.get("layer_wise", False):
            raise CheckpointError("only layer_wise lightweight checkpoints (1-dim heads) are supported")
        heads, layers, hidden = c["num_attention_heads"], c["num_hidden_layers"], c["hidden_size"]
        # defaults as transformers' Gemma2Config
        spec = StackSpec(
            vocab_size=c["vocab_size"],
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_heads=heads,
            num_kv_heads=c.get("num_key_value_heads") or heads,
            head_dim=c.get("head_dim", 256),
            intermediate_size=c["intermediate_size"],
            rms_norm_eps=c.get("rms_norm_eps", 1e-6),
            rope_theta=c.get("rope_theta", 10000.0),
            act=c.get("hidden_activation") or "gelu_pytorch_tanh",
            norm_offset=True,
            rope_fp32=False,
            attn_scale=c.get("query_pre_attn_scalar", 256) ** -0.5,
            embed_scale=lambda dtype, h=hidden: torch.tensor(h**0.5, dtype=dtype),
            sandwich_norms=True,
            sliding_window=c.get("sliding_window", 4096),
            max_position_embeddings=c.get("max_position_embeddings", 0),
        )
        self.stack = DecoderStack(spec, self.reader, self.dtype, self.device)
        spec = family_spec(self.family)
        self.start_layer = int(c.get("start_layer", spec.default_start_layer))
        self.layer_sep = int(c.get("layer_sep", spec.default_layer_sep))
        if self.layer_sep < 1 or not 0 <= self.start_layer <= layers:
            raise CheckpointError(f"bad start_layer {self.start_layer} / layer_sep {self.layer_sep}")
        n_heads = len(self.allowed_cutoffs())
        self.heads = torch.stack(
            [
                expect_shape(
                    f"lm_head.{j}.linear_head.weight",
                    self.reader.get(f"lm_head.{j}.linear_head.weight"),
                    (1, hidden),
                )[0]
                for j in range(n_heads)
            ]
        ).to(device=self.device, dtype=self.dtype)
        self.softcap = c.get("final_logit_softcapping", spec.default_softcap)
        self.reader = None

    def allowed_cutoffs(self) -> list[int]:
        return list(range(self.start_layer, self.num_hidden_layers + 1, self.layer_sep))

    def head_scores(self, cutoff: int, ordinal: int, hidden: torch.Tensor) -> torch.Tensor:
        # FlagEmbedding pairs the j-th recorded (ascending) cutoff with head j, not with its layer
        logits = F.linear(hidden, self.heads[ordinal][None, :].to(hidden.dtype))[:, 0]
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits.float()

    def _compress(self, h, lengths, ratio, query_lengths, prompt_lengths):
        return compress_passages(h, lengths, int(ratio), query_lengths, prompt_lengths)
