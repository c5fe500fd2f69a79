"""Small numeric building blocks of the decoder stacks (plain torch, no transformers).

Each op mirrors, operation by operation, the transformers 4.47 / FlagEmbedding 1.4.2 code the
reference scores come from, so fp32 results agree to rounding noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from reranker_server.llm.weights import CheckpointError

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "silu": F.silu,
    "swish": F.silu,
    "relu": F.relu,
}


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise CheckpointError(f"unsupported activation {name!r}; supported: {sorted(ACTIVATIONS)}") from None


def rms_norm_offset(x: torch.Tensor, weight_plus_one: torch.Tensor, eps: float) -> torch.Tensor:
    """Gemma / Gemma2 RMSNorm: computed in fp32, scaled by (1 + w), cast back."""
    xf = x.float()
    out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (out * weight_plus_one).type_as(x)


def rms_norm_plain(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """MiniCPM RMSNorm: variance in fp32, normalised value cast back, then times w."""
    variance = x.float().pow(2).mean(-1, keepdim=True)
    return (x * torch.rsqrt(variance + eps)).to(x.dtype) * weight


def rope_tables(
    head_dim: int, theta: float, length: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 cos/sin tables [length, head_dim] for positions 0..length-1 (HF half-split layout)."""
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim)
    )
    positions = torch.arange(length, device=device, dtype=torch.float32)
    freqs = positions[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, fp32: bool) -> torch.Tensor:
    """x [B, heads, L, D]; cos/sin broadcastable fp32 tables. fp32=True rotates in fp32 (MiniCPM),
    else in x's dtype with the tables cast to it (Gemma, Gemma2)."""
    if fp32:
        xf = x.float()
        return (xf * cos + _rotate_half(xf) * sin).to(x.dtype)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + _rotate_half(x) * sin


def attention_mask(lengths: torch.Tensor, length: int, sliding_window: int | None) -> torch.Tensor:
    """Boolean [B, 1, L, L] mask for right-padded rows: causal, real keys only, optional window
    (key j visible from query i when i - sliding_window < j <= i)."""
    device = lengths.device
    i = torch.arange(length, device=device)[:, None]
    j = torch.arange(length, device=device)[None, :]
    allowed = j <= i
    if sliding_window is not None:
        allowed = allowed & (i - j < sliding_window)
    keys = torch.arange(length, device=device)[None, :] < lengths[:, None]
    return (allowed[None, :, :] & keys[:, None, :]).unsqueeze(1)


def query_mask(
    lengths: torch.Tensor, positions: torch.Tensor, length: int, sliding_window: int | None
) -> torch.Tensor:
    """Boolean [B, 1, 1, L] mask for one query per row at `positions` (right-padded rows)."""
    j = torch.arange(length, device=lengths.device)[None, :]
    allowed = (j <= positions[:, None]) & (j < lengths[:, None])
    if sliding_window is not None:
        allowed = allowed & (positions[:, None] - j < sliding_window)
    return allowed[:, None, None, :]
