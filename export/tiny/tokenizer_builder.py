"""Small, deterministic tokenizers that behave like the real models' tokenizers.

A unigram (sentencepiece-style) tokenizer over a small multilingual corpus, saved as
`tokenizer.json` with the special-token layout of the family it stands in for.

The vocabulary is counted here in plain Python instead of by `tokenizers`' UnigramTrainer:
the trainer's parallel EM gives a different vocabulary from run to run, and tests need the
same tokenizer on every machine and every build.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections import Counter
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

CORPUS = [
    "what is panda?",
    "hi",
    "The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, "
    "is a bear species endemic to China.",
    "what is the capital of France? Paris is the capital and most populous city of France.",
    "Les élèves étudient à l'école; naïve café, crème brûlée, Ångström, señor, Zürich.",
    "大熊猫是中国特有的熊科动物，主要栖息在四川、陕西和甘肃的山区。",
    "北京是中华人民共和国的首都。熊猫喜欢吃竹子。",
    "Emoji test 🐼🎋😀👍🏽 and symbols ©®™ — “quotes” ‘single’ …",
    "Machine learning models rank passages by relevance to a query. Rerankers score pairs.",
    "Numbers 0123456789, dates 2024-01-31, prices $3.50 and €4,20, percentages 99.9%.",
    "Given a query A and a passage B, determine whether the passage contains an answer to the "
    "query by providing a prediction of either 'Yes' or 'No'. Predict whether passage B "
    "contains an answer to query A. Yes No A: B:",
    "Der schnelle braune Fuchs springt über den faulen Hund. Быстрая коричневая лиса. 東京タワー",
    "line one\nline two\n\nA: query\nB: passage\n",
]


MAX_PIECE_CHARS = 8


def _piece_counts(pre_tokenizer: pre_tokenizers.PreTokenizer) -> Counter[str]:
    """How often every substring (up to MAX_PIECE_CHARS) of every pre-tokenized corpus word occurs."""
    counts: Counter[str] = Counter()
    for text in CORPUS:
        for word, _ in pre_tokenizer.pre_tokenize_str(unicodedata.normalize("NFKC", text)):
            for start in range(len(word)):
                for end in range(start + 1, min(len(word), start + MAX_PIECE_CHARS) + 1):
                    counts[word[start:end]] += 1
    return counts


def _unigram_vocab(
    counts: Counter[str], special_tokens: list[str], vocab_size: int
) -> list[tuple[str, float]]:
    """Special tokens, every corpus character, then the multi-character pieces that cover most
    text (count x length, ties by the piece itself), each scored by its log frequency."""
    chars = sorted(p for p in counts if len(p) == 1)
    room = max(0, vocab_size - len(special_tokens) - len(chars))
    multi = sorted(
        (p for p in counts if len(p) > 1 and counts[p] > 1), key=lambda p: (-counts[p] * len(p), p)
    )
    pieces = chars + multi[:room]
    total = sum(counts[p] for p in pieces)
    scored = sorted(((p, math.log(counts[p] / total)) for p in pieces), key=lambda ps: (-ps[1], ps[0]))
    return [(t, 0.0) for t in special_tokens] + scored


def _build(special_tokens: list[str], vocab_size: int, unk: str, prepend: str = "always") -> Tokenizer:
    pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend)
    vocab = _unigram_vocab(_piece_counts(pre_tokenizer), special_tokens, vocab_size)
    tok = Tokenizer(models.Unigram(vocab, unk_id=special_tokens.index(unk), byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=prepend)
    tok.add_special_tokens(special_tokens)
    return tok


def build_xlmr_tokenizer(out_dir: Path, model_max_length: int = 512) -> Path:
    """An XLM-R style tokenizer: <s>=0 <pad>=1 </s>=2 <unk>=3 ... <mask> last."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = _build(["<s>", "<pad>", "</s>", "<unk>"], vocab_size=400, unk="<unk>")
    tok.add_special_tokens(["<mask>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    tok.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "XLMRobertaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "model_max_length": model_max_length,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (out_dir / "special_tokens_map.json").write_text(
        json.dumps({k: v for k, v in config.items() if k.endswith("_token")}, indent=2)
    )
    return out_dir


def build_decoder_tokenizer(
    out_dir: Path, padding_side: str = "left", bos_token: str = "<bos>", model_max_length: int = 4096
) -> Path:
    """A Gemma/MiniCPM style tokenizer: <pad>=0 <eos>=1 <bos>=2 <unk>=3; no post-processor
    template beyond an optional BOS (FlagEmbedding always tokenizes with add_special_tokens=False)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = _build(["<pad>", "<eos>", bos_token, "<unk>"], vocab_size=420, unk="<unk>", prepend="never")
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos_token} $A", pair=f"{bos_token} $A $B:1", special_tokens=[(bos_token, 2)]
    )
    tok.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos_token,
        "eos_token": "<eos>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "padding_side": padding_side,
        "model_max_length": model_max_length,
        "add_bos_token": True,
        "add_eos_token": False,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (out_dir / "special_tokens_map.json").write_text(
        json.dumps({k: v for k, v in config.items() if k.endswith("_token")}, indent=2)
    )
    return out_dir
