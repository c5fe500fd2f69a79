"""A pre-norm decoder stack (Gemma, Gemma2, MiniCPM variants) that computes only what a reranker
score needs, and the scorer base class shared by the three LLM reranker families.

What is never computed: layers past the deepest requested cutoff, the last executed layer for
positions other than the scored one, and any vocabulary projection (the heads are single rows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from reranker_core.families import family_spec
from reranker_core.layers import describe_layers
from reranker_server.llm import ops
from reranker_server.llm.weights import (
    CheckpointError,
    WeightReader,
    expect_shape,
    load_config,
    resolve_dtype,
)


@dataclass
class StackSpec:
    """Architecture of one decoder stack, read from config.json by the family classes."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    rms_norm_eps: float
    rope_theta: float
    act: str
    norm_offset: bool  # Gemma (1 + w) norms in fp32, else MiniCPM plain w
    rope_fp32: bool  # MiniCPM rotates in fp32
    attn_scale: float
    embed_scale: Callable[[torch.dtype], torch.Tensor | float]
    residual_scale: float = 1.0  # MiniCPM scale_depth / sqrt(num_hidden_layers)
    sandwich_norms: bool = False  # Gemma2 post-attention / pre- and post-feed-forward norms
    sliding_window: int | None = None  # Gemma2: applied on even layers
    max_position_embeddings: int = 0


@dataclass
class LayerWeights:
    qkv: torch.Tensor
    o: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor
    norms: dict[str, torch.Tensor] = field(default_factory=dict)


class DecoderStack:
    """Weights and forward pieces of the stack. Rows are always right-padded here."""

    def __init__(
        self,
        spec: StackSpec,
        reader: WeightReader,
        dtype: torch.dtype,
        device: torch.device,
        prefix: str = "model.",
    ) -> None:
        self.spec = spec
        self.dtype = dtype
        self.device = device
        s = spec
        if s.num_heads % s.num_kv_heads:
            raise CheckpointError(
                f"num_attention_heads {s.num_heads} is not a multiple of num_key_value_heads {s.num_kv_heads}"
            )
        self.act = ops.activation(s.act)

        def load(name: str, shape: tuple[int, ...]) -> torch.Tensor:
            return expect_shape(name, reader.get(prefix + name), shape)

        self.embed = self._cast(load("embed_tokens.weight", (s.vocab_size, s.hidden_size)))
        self.final_norm = self._norm_weight(load("norm.weight", (s.hidden_size,)))
        norm_names = ["input_layernorm", "post_attention_layernorm"]
        if s.sandwich_norms:
            norm_names += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
        q_out, kv_out = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
        self.layers: list[LayerWeights] = []
        for i in range(s.num_hidden_layers):
            p = f"layers.{i}."
            qkv = torch.cat(
                [
                    load(p + "self_attn.q_proj.weight", (q_out, s.hidden_size)),
                    load(p + "self_attn.k_proj.weight", (kv_out, s.hidden_size)),
                    load(p + "self_attn.v_proj.weight", (kv_out, s.hidden_size)),
                ]
            )
            for bias in ("q_proj", "k_proj", "v_proj", "o_proj"):
                if f"{prefix}{p}self_attn.{bias}.bias" in reader:
                    raise CheckpointError("attention biases are not supported (attention_bias must be false)")
            gate_up = torch.cat(
                [
                    load(p + "mlp.gate_proj.weight", (s.intermediate_size, s.hidden_size)),
                    load(p + "mlp.up_proj.weight", (s.intermediate_size, s.hidden_size)),
                ]
            )
            self.layers.append(
                LayerWeights(
                    qkv=self._cast(qkv),
                    o=self._cast(load(p + "self_attn.o_proj.weight", (s.hidden_size, q_out))),
                    gate_up=self._cast(gate_up),
                    down=self._cast(load(p + "mlp.down_proj.weight", (s.hidden_size, s.intermediate_size))),
                    norms={
                        n: self._norm_weight(load(p + n + ".weight", (s.hidden_size,))) for n in norm_names
                    },
                )
            )

    def _cast(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(device=self.device, dtype=self.dtype).contiguous()

    def _norm_weight(self, w: torch.Tensor) -> torch.Tensor:
        if self.spec.norm_offset:  # (1 + w) in fp32, exactly as Gemma computes it per call
            return (1.0 + w.to(self.device).float()).contiguous()
        return self._cast(w)

    def norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.spec.norm_offset:
            return ops.rms_norm_offset(x, weight, self.spec.rms_norm_eps)
        return ops.rms_norm_plain(x, weight, self.spec.rms_norm_eps)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.embed) * self.spec.embed_scale(self.dtype)

    def sliding(self, idx: int) -> int | None:
        return self.spec.sliding_window if (self.spec.sliding_window is not None and idx % 2 == 0) else None

    def layer(
        self,
        idx: int,
        h: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run layer idx on right-padded h [B, L, H]. With positions [B] only those rows' outputs
        are computed (queries at those positions; keys and values from the whole row): [B, 1, H]."""
        s, w = self.spec, self.layers[idx]
        bsz, length, _ = h.shape
        x = self.norm(h, w.norms["input_layernorm"])
        q_out, kv_out = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
        cos, sin = rope
        if positions is None:
            qkv = F.linear(x, w.qkv)
            q, k, v = qkv.split([q_out, kv_out, kv_out], dim=-1)
            residual = h
            q_cos, q_sin = cos[:length], sin[:length]
        else:
            rows = torch.arange(bsz, device=h.device)
            kv = F.linear(x, w.qkv[q_out:])
            k, v = kv.split([kv_out, kv_out], dim=-1)
            q = F.linear(x[rows, positions].unsqueeze(1), w.qkv[:q_out])
            residual = h[rows, positions].unsqueeze(1)
            q_cos, q_sin = cos[positions][:, None, None, :], sin[positions][:, None, None, :]
        q = q.view(bsz, -1, s.num_heads, s.head_dim).transpose(1, 2)
        k = k.view(bsz, length, s.num_kv_heads, s.head_dim).transpose(1, 2)
        v = v.view(bsz, length, s.num_kv_heads, s.head_dim).transpose(1, 2)
        q = ops.apply_rope(q, q_cos, q_sin, s.rope_fp32)
        k = ops.apply_rope(k, cos[:length], sin[:length], s.rope_fp32)
        attn = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, scale=s.attn_scale, enable_gqa=s.num_kv_heads != s.num_heads
        )
        attn = F.linear(attn.transpose(1, 2).reshape(bsz, -1, q_out), w.o)
        if s.sandwich_norms:
            attn = self.norm(attn, w.norms["post_attention_layernorm"])
        h = residual + attn * s.residual_scale if s.residual_scale != 1.0 else residual + attn
        x = self.norm(
            h, w.norms["pre_feedforward_layernorm" if s.sandwich_norms else "post_attention_layernorm"]
        )
        gate, up = F.linear(x, w.gate_up).chunk(2, dim=-1)
        x = F.linear(self.act(gate) * up, w.down)
        if s.sandwich_norms:
            x = self.norm(x, w.norms["post_feedforward_layernorm"])
        return h + x * s.residual_scale if s.residual_scale != 1.0 else h + x


def repack_right(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move every row's tokens to the left (right padding), trimmed to the longest row.

    The mask's ones must be one contiguous run per row (left, right or no padding). Returns
    (ids [B, L'], lengths [B])."""
    if input_ids.dim() != 2 or input_ids.shape != attention_mask.shape:
        raise ValueError(
            f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)} "
            "must both be [batch, length]"
        )
    mask = attention_mask != 0
    lengths = mask.sum(dim=1)
    if bool((lengths == 0).any()):
        raise ValueError("every row needs at least one token (attention_mask row of zeros)")
    width = mask.shape[1]
    cols = torch.arange(width, device=mask.device)
    first = torch.where(mask, cols, width).amin(dim=1)
    last = torch.where(mask, cols, -1).amax(dim=1)
    if bool((last - first + 1 != lengths).any()):
        raise ValueError("attention_mask ones must be contiguous in each row (left or right padding only)")
    longest = int(lengths.max())
    if bool((first == 0).all()):
        ids = input_ids[:, :longest]
    else:
        index = (first[:, None] + torch.arange(longest, device=mask.device)[None, :]).clamp(max=width - 1)
        ids = torch.gather(input_ids, 1, index)
    keep = torch.arange(longest, device=mask.device)[None, :] < lengths[:, None]
    return torch.where(keep, ids, torch.zeros_like(ids)), lengths


class LLMScorer:
    """Base class of the family scorers. Subclasses set up `self.stack` and implement the heads."""

    family: str = ""
    config: dict[str, Any]
    stack: DecoderStack

    def __init__(
        self,
        checkpoint_dir: Path | str,
        *,
        dtype: str | torch.dtype = "fp32",
        device: str | torch.device = "cpu",
        allow_pickle: bool = False,
    ) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.dtype = resolve_dtype(dtype)
        self.device = torch.device(device)
        self.config = load_config(self.checkpoint_dir)
        if self.config.get("rope_scaling"):
            raise CheckpointError(f"rope_scaling {self.config['rope_scaling']} is not supported")
        self.reader = WeightReader(self.checkpoint_dir, allow_pickle=allow_pickle)
        self._rope: tuple[torch.Tensor, torch.Tensor] | None = None

    # --- family hooks -------------------------------------------------------------------------
    @property
    def num_hidden_layers(self) -> int:
        return self.stack.spec.num_hidden_layers

    @property
    def vocab_size(self) -> int:
        return self.stack.spec.vocab_size

    def allowed_cutoffs(self) -> list[int]:
        """Cutoff layers the model has heads for (ascending)."""
        raise NotImplementedError

    def default_cutoffs(self) -> list[int]:
        return [self.num_hidden_layers]

    def head_scores(self, cutoff: int, ordinal: int, hidden: torch.Tensor) -> torch.Tensor:
        """Score [B] (fp32) from the final-normed hidden state [B, H] at the scored position."""
        raise NotImplementedError

    def _compress(
        self,
        h: torch.Tensor,
        lengths: torch.Tensor,
        ratio: int,
        query_lengths: torch.Tensor,
        prompt_lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    supports_compression: bool = False

    # --- shared machinery ---------------------------------------------------------------------
    def resolve_cutoffs(self, cutoff_layers: Sequence[int] | int | None) -> list[int]:
        """Ascending unique cutoffs, each checked against allowed_cutoffs() (ValueError if not)."""
        if cutoff_layers is None:
            return self.default_cutoffs()
        if isinstance(cutoff_layers, int):
            cutoff_layers = [cutoff_layers]
        cutoffs = sorted({int(c) for c in cutoff_layers})
        if not cutoffs:
            raise ValueError("cutoff_layers is empty")
        allowed = self.allowed_cutoffs()
        bad = [c for c in cutoffs if c not in allowed]
        if bad:
            raise ValueError(f"cutoff layers {bad} not available; allowed: {describe_layers(allowed)}")
        return cutoffs

    def rope(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._rope is None or self._rope[0].shape[0] < length:
            size = max(length, 512)
            self._rope = ops.rope_tables(
                self.stack.spec.head_dim, self.stack.spec.rope_theta, size, self.device
            )
        return self._rope

    @torch.inference_mode()
    def score(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        cutoff_layers: Sequence[int] | int | None = None,
        compress_ratio: int = 1,
        compress_layers: Sequence[int] | None = None,
        query_lengths: torch.Tensor | None = None,
        prompt_lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores [B, n_cutoffs] (fp32, ascending cutoff order) for left- or right-padded rows,
        every argument checked (library use; the served model validates once and calls score_rows)."""
        cutoffs = self.resolve_cutoffs(cutoff_layers)
        ids, lengths = repack_right(input_ids.to(self.device), attention_mask.to(self.device))
        if bool((ids < 0).any()) or bool((ids >= self.vocab_size).any()):
            raise ValueError(f"token ids must be in [0, {self.vocab_size})")
        compress_at = self._compress_plan(compress_ratio, compress_layers, cutoffs[-1])
        if compress_at:
            query_lengths, prompt_lengths = self._segments(query_lengths, prompt_lengths, lengths)
        return self.score_rows(
            ids, lengths, cutoffs, compress_ratio, sorted(compress_at), query_lengths, prompt_lengths
        )

    @torch.inference_mode()
    def score_rows(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        cutoffs: Sequence[int],
        compress_ratio: int = 1,
        compress_layers: Sequence[int] = (),
        query_lengths: torch.Tensor | None = None,
        prompt_lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores [B, len(cutoffs)] for validated input: right-padded `ids` [B, L] with `lengths`
        [B], allowed ascending `cutoffs`, and compression layers strictly inside the deepest cutoff
        (with every row's query and prompt lengths) or none."""
        ids, lengths = ids.to(self.device), lengths.to(self.device)
        deepest = cutoffs[-1]
        compress_at = set(compress_layers) if compress_ratio != 1 else set()
        if compress_at:
            query_lengths, prompt_lengths = query_lengths.to(self.device), prompt_lengths.to(self.device)
        h = self.stack.embed_tokens(ids)
        rope = self.rope(h.shape[1])
        results: list[torch.Tensor] = []
        rows = torch.arange(ids.shape[0], device=self.device)
        mask_cache: dict[int | None, torch.Tensor] = {}
        for idx in range(deepest):
            if idx in cutoffs:
                results.append(self._head(idx, len(results), h[rows, lengths - 1]))
            if idx in compress_at:
                h, lengths = self._compress(h, lengths, compress_ratio, query_lengths, prompt_lengths)
                mask_cache.clear()
            window = self.stack.sliding(idx)
            if idx == deepest - 1:
                positions = lengths - 1
                mask = ops.query_mask(lengths, positions, h.shape[1], window)
                h = self.stack.layer(idx, h, rope, mask, positions=positions)
                results.append(self._head(deepest, len(results), h[:, 0]))
            else:
                if window not in mask_cache:
                    mask_cache[window] = ops.attention_mask(lengths, h.shape[1], window)
                h = self.stack.layer(idx, h, rope, mask_cache[window])
        if deepest == 0:
            results.append(self._head(0, 0, h[rows, lengths - 1]))
        return torch.stack(results, dim=1)

    def _head(self, cutoff: int, ordinal: int, hidden: torch.Tensor) -> torch.Tensor:
        # The final norm and the one-row head run in fp32 whatever the stack's dtype: a bf16/fp16
        # score would be rounded to 8/11 bits (a few hundredths on scores of a few units); the
        # cost is one row per pair.
        return self.head_scores(cutoff, ordinal, self.stack.norm(hidden.float(), self.stack.final_norm))

    def _compress_plan(self, ratio: int, layers: Sequence[int] | None, deepest: int) -> set[int]:
        if ratio in (None, 1):
            return set()
        if not self.supports_compression:
            raise ValueError(f"{self.family} models do not support compress_ratio (only 1)")
        ratios = family_spec(self.family).compress_ratios
        if int(ratio) not in ratios:
            raise ValueError(f"compress_ratio must be one of {', '.join(map(str, ratios))} (got {ratio})")
        return {int(c) for c in (layers or []) if 0 < int(c) < deepest}

    def _segments(
        self,
        query_lengths: torch.Tensor | None,
        prompt_lengths: torch.Tensor | None,
        lengths: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if query_lengths is None or prompt_lengths is None:
            raise ValueError("compression needs query_lengths and prompt_lengths for every row")
        q = torch.as_tensor(query_lengths, device=self.device).long().reshape(-1)
        p = torch.as_tensor(prompt_lengths, device=self.device).long().reshape(-1)
        if q.shape != lengths.shape or p.shape != lengths.shape:
            raise ValueError("query_lengths and prompt_lengths need one value per row")
        if bool((q < 0).any()) or bool((p < 0).any()) or bool((q + p > lengths).any()):
            raise ValueError("query_length + prompt_length must not exceed the row's token count")
        return q, p
