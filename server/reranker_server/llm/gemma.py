"""bge-reranker-v2-gemma (FlagLLMReranker): a Gemma causal LM; the score is the logit of the
token 'Yes' at the scored position, computed as one dot product with that lm_head row."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from reranker_core.families import GEMMA
from reranker_server.llm.decoder import DecoderStack, LLMScorer, StackSpec
from reranker_server.llm.weights import CheckpointError, expect_shape


def yes_token_from_tokenizer(checkpoint_dir: Path) -> int:
    """tokenize('Yes', add_special_tokens=False)[0] with the checkpoint's tokenizer.json."""
    path = Path(checkpoint_dir) / "tokenizer.json"
    if not path.is_file():
        raise CheckpointError(f"yes_token_id not given and no tokenizer.json in {checkpoint_dir}")
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(path)).encode("Yes", add_special_tokens=False).ids
    if not ids:
        raise CheckpointError("the tokenizer maps 'Yes' to no token")
    return ids[0]


class GemmaScorer(LLMScorer):
    family = GEMMA

    def __init__(self, checkpoint_dir: Path | str, *, yes_token_id: int | None = None, **kwargs) -> None:
        super().__init__(checkpoint_dir, **kwargs)
        c = self.config
        heads = c["num_attention_heads"]
        head_dim = c.get("head_dim") or c["hidden_size"] // heads
        spec = StackSpec(
            vocab_size=c["vocab_size"],
            hidden_size=c["hidden_size"],
            num_hidden_layers=c["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=c.get("num_key_value_heads") or heads,
            head_dim=head_dim,
            intermediate_size=c["intermediate_size"],
            rms_norm_eps=c.get("rms_norm_eps", 1e-6),
            rope_theta=c.get("rope_theta", 10000.0),
            # transformers' GemmaMLP ignores hidden_act and defaults to the tanh GELU
            act=c.get("hidden_activation") or "gelu_pytorch_tanh",
            norm_offset=True,
            rope_fp32=False,
            attn_scale=head_dim**-0.5,
            embed_scale=lambda dtype, h=c["hidden_size"]: torch.tensor(h**0.5, dtype=dtype),
            max_position_embeddings=c.get("max_position_embeddings", 0),
        )
        self.stack = DecoderStack(spec, self.reader, self.dtype, self.device)
        self.yes_token_id = int(
            yes_token_id if yes_token_id is not None else yes_token_from_tokenizer(self.checkpoint_dir)
        )
        if not 0 <= self.yes_token_id < spec.vocab_size:
            raise CheckpointError(
                f"yes_token_id {self.yes_token_id} outside the vocabulary ({spec.vocab_size})"
            )
        if c.get("tie_word_embeddings", True):
            row = self.stack.embed[self.yes_token_id]
        else:
            head = expect_shape(
                "lm_head.weight", self.reader.get("lm_head.weight"), (spec.vocab_size, spec.hidden_size)
            )
            row = head[self.yes_token_id].to(device=self.device, dtype=self.dtype)
        self.yes_row = row.clone().contiguous()[None, :]
        self.reader = None

    def allowed_cutoffs(self) -> list[int]:
        return [self.num_hidden_layers]

    def head_scores(self, cutoff: int, ordinal: int, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self.yes_row.to(hidden.dtype))[:, 0].float()
