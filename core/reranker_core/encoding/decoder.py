"""Token ids for the decoder (LLM) rerankers, built exactly as FlagEmbedding 1.4.2 builds them.

Families: "gemma" (FlagLLMReranker), "minicpm_layerwise" (LayerWiseFlagLLMReranker) and
"gemma2_lightweight" (LightWeightFlagLLMReranker). For one pair:

    query   = query_format.format(query_instruction, q)       (plain q when no instruction)
    passage = passage_format.format(passage_instruction, p)   (plain p when no instruction)
    q_ids   = tokenize(query)[:query_max_length]      p_ids = tokenize(passage)[:max_length]
    first   = [bos] + q_ids   (bos rule: see `adds_bos`)       second = sep + p_ids
    second  = only_second truncation of first + second to max_length + len(sep) + len(prompt_ids)
    ids     = first + second + sep + prompt_ids

with sep = tokenize("\\n") and every tokenization without special tokens. The lightweight
family also needs `query_length = len([bos] + q_ids + sep)` and
`prompt_length = len(sep + prompt_ids)`, counted as FlagEmbedding counts them (before the
pair truncation, which never touches the query).

Padding is not done here: the ids are returned unpadded (the transport pads, the server is
padding-independent). Dependencies: `tokenizers` and the standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tokenizers import Tokenizer

from reranker_core.encoding.base import EncodedPair, token_ids, truncate_only_second
from reranker_core.families import DECODER_FAMILIES, GEMMA, GEMMA2_LIGHTWEIGHT
from reranker_core.limits import default_query_max_length
from reranker_core.manifest import LLMSettings, ModelManifest

# FlagEmbedding's instruction defaults live in reranker_core.manifest.LLMSettings, the default
# prompts in reranker_core.families.
SEP_TEXT = "\n"
YES_TEXT = "Yes"


def adds_bos(family: str, bos_token_id: int | None, pad_token_id: int | None) -> bool:
    """FlagEmbedding's bos rule: v2-gemma prepends bos only when the tokenizer has one that differs
    from pad; the layerwise and lightweight rerankers always prepend it (and fail without one)."""
    _check_family(family)
    if family == GEMMA:
        return bos_token_id is not None and bos_token_id != pad_token_id
    if bos_token_id is None:
        raise ValueError(f"the {family} reranker needs a tokenizer with a bos token; this one has none")
    return True


def yes_token_id(tokenizer: Tokenizer) -> int:
    """The vocabulary id whose logit v2-gemma scores: the first id of tokenize('Yes')."""
    ids = tokenizer.encode(YES_TEXT, add_special_tokens=False).ids
    if not ids:
        raise ValueError("the tokenizer turns 'Yes' into no tokens; it cannot score v2-gemma")
    return ids[0]


def apply_instruction(instruction: str | None, instruction_format: str, text: str) -> str:
    """FlagEmbedding's get_detailed_instruct: a literal backslash-n in the format means newline."""
    if instruction is None:
        return text
    return instruction_format.replace("\\n", "\n").format(instruction, text)


@dataclass(frozen=True)
class DecoderEncoder:
    """The per-model constants of the encoding (tokenized once, reused for every pair)."""

    tokenizer: Tokenizer
    family: str
    bos_ids: tuple[int, ...]
    sep_ids: tuple[int, ...]
    query_instruction: str | None
    query_instruction_format: str
    passage_instruction: str | None
    passage_instruction_format: str
    default_prompt: str
    truncation_side: str

    @classmethod
    def from_manifest(cls, tokenizer: Tokenizer, manifest: ModelManifest) -> DecoderEncoder:
        family = manifest.family
        _check_family(family)
        llm = manifest.llm or LLMSettings.for_family(family)
        tok = manifest.tokenizer
        add_bos = adds_bos(family, tok.bos_token_id, tok.pad_token_id)
        side = llm.truncation_side
        if side not in ("right", "left"):
            raise ValueError(f"manifest llm.truncation_side must be 'right' or 'left', not {side!r}")
        return cls(
            tokenizer=tokenizer,
            family=family,
            bos_ids=(int(tok.bos_token_id),) if add_bos else (),
            sep_ids=tuple(_tokenize(tokenizer, [SEP_TEXT])[0]),
            query_instruction=llm.query_instruction,
            query_instruction_format=llm.query_instruction_format,
            passage_instruction=llm.passage_instruction,
            passage_instruction_format=llm.passage_instruction_format,
            default_prompt=llm.default_prompt,
            truncation_side=side,
        )

    def prompt_ids(self, prompt: str | None) -> list[int]:
        """Ids of the prompt (None: the family's default prompt; "" is an empty prompt)."""
        return _tokenize(self.tokenizer, [self.default_prompt if prompt is None else prompt])[0]

    def encode(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        max_length: int,
        query_max_length: int | None = None,
        prompt: str | None = None,
    ) -> list[EncodedPair]:
        """Encode every (query, passage) pair; see the module docstring for the layout."""
        if query_max_length is None:
            query_max_length = default_query_max_length(max_length)
        queries = [
            apply_instruction(self.query_instruction, self.query_instruction_format, q) for q, _ in pairs
        ]
        passages = [
            apply_instruction(self.passage_instruction, self.passage_instruction_format, p) for _, p in pairs
        ]
        q_all = self._cut(_tokenize(self.tokenizer, queries), query_max_length)
        p_all = self._cut(_tokenize(self.tokenizer, passages), max_length)
        prompt_ids = self.prompt_ids(prompt)
        sep = list(self.sep_ids)
        pair_limit = max_length + len(sep) + len(prompt_ids)
        lightweight = self.family == GEMMA2_LIGHTWEIGHT
        out = []
        for q_ids, p_ids in zip(q_all, p_all):
            first = list(self.bos_ids) + q_ids
            second = sep + p_ids
            overflow = len(first) + len(second) - pair_limit
            if self.truncation_side == "left":
                second = _truncate_only_second_left(second, overflow)
            else:
                second = truncate_only_second(first, second, overflow)
            ids = tuple(first + second + sep + prompt_ids)
            if lightweight:
                out.append(
                    EncodedPair(
                        ids, query_length=len(first) + len(sep), prompt_length=len(sep) + len(prompt_ids)
                    )
                )
            else:
                out.append(EncodedPair(ids))
        return out

    def passage_budgets(
        self, queries: Sequence[str], *, max_length: int, query_max_length: int, prompt: str | None = None
    ) -> list[int]:
        """Raw passage tokens that fit next to each query before truncation cuts the passage
        (the passage instruction's tokens are taken off)."""
        formatted = [
            apply_instruction(self.query_instruction, self.query_instruction_format, q) for q in queries
        ]
        q_all = self._cut(_tokenize(self.tokenizer, formatted), query_max_length)
        prompt_length = len(self.prompt_ids(prompt))
        instruction = apply_instruction(self.passage_instruction, self.passage_instruction_format, "")
        overhead = len(_tokenize(self.tokenizer, [instruction])[0]) if instruction else 0
        return [
            min(max_length, max_length + prompt_length - len(self.bos_ids) - len(q)) - overhead for q in q_all
        ]

    def _cut(self, ids: list[list[int]], limit: int) -> list[list[int]]:
        """HF `truncation=True, max_length=limit` on a single sequence, honouring truncation_side."""
        if self.truncation_side == "left":
            return [x[len(x) - limit :] if len(x) > limit else x for x in ids]
        return [x[:limit] for x in ids]


def encode_decoder_pair(
    tokenizer: Tokenizer,
    manifest: ModelManifest,
    query: str,
    passage: str,
    *,
    max_length: int,
    query_max_length: int | None = None,
    prompt: str | None = None,
) -> EncodedPair:
    """FlagEmbedding's token ids for one pair of a decoder reranker (unpadded).

    `query_max_length` None means FlagEmbedding's default `max_length * 3 // 4`; `prompt` None
    means the family's default prompt (from the manifest)."""
    return encode_decoder_pairs(
        tokenizer,
        manifest,
        [(query, passage)],
        max_length=max_length,
        query_max_length=query_max_length,
        prompt=prompt,
    )[0]


def encode_decoder_pairs(
    tokenizer: Tokenizer,
    manifest: ModelManifest,
    pairs: Iterable[tuple[str, str]],
    *,
    max_length: int,
    query_max_length: int | None = None,
    prompt: str | None = None,
) -> list[EncodedPair]:
    """Batch variant of `encode_decoder_pair`: one EncodedPair per pair, in input order."""
    encoder = DecoderEncoder.from_manifest(tokenizer, manifest)
    return encoder.encode(
        list(pairs), max_length=max_length, query_max_length=query_max_length, prompt=prompt
    )


def _check_family(family: str) -> None:
    if family not in DECODER_FAMILIES:
        raise ValueError(
            f"{family!r} is not a decoder reranker family; expected one of {', '.join(DECODER_FAMILIES)}"
        )


def _tokenize(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Ids without special tokens (HF `add_special_tokens=False`), nothing cut."""
    return token_ids(tokenizer, texts) if texts else []


def _truncate_only_second_left(second: list[int], overflow: int) -> list[int]:
    """only_second truncation with truncation_side='left' (cut from the start of the second part);
    as on the right, nothing is cut when the overflow is not smaller than the second part."""
    if overflow <= 0 or overflow >= len(second):
        return second
    return second[overflow:]
