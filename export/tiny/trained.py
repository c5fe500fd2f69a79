"""Tiny rerankers TRAINED on the synthetic relevance task, so that their scores mean something.

Random-weight checkpoints score every pair within rounding noise of the others, so any change of
precision reorders them. These two are trained (seeded, one thread, deterministic algorithms) on
export/tiny/relevance_task.py until relevant and irrelevant passages get clearly separated
scores; they are the fixture for judging reduced-precision rankings (bf16, fp16, int8):

    from export.tiny.trained import trained_encoder_checkpoint, trained_gemma_checkpoint
    ckpt = trained_encoder_checkpoint()    # an XLM-R checkpoint directory, `python -m export` loads it

Each starts from the seeded random checkpoint of export/tiny (numpy draws: the same bytes on every
machine) and is cached under a key of everything that determines it (this package's sources, the
training settings, torch's version). Training runs on one thread with deterministic algorithms,
so two runs on one machine give identical bytes; machines whose CPUs take different kernel paths
(AVX2 vs AVX-512) can end a few ulps apart, so tests compare precisions of the same checkpoint
and never hard-code its scores.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from export.tiny import relevance_task
from export.tiny.decoders import build_gemma_reranker
from export.tiny.encoder import build_xlmr_reranker, save_sequence_classifier

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO / ".cache" / "tiny-trained"
DONE_FILE = "trained.json"


@dataclass(frozen=True)
class TrainingSettings:
    """Everything besides the sources that determines a trained checkpoint."""

    seed: int
    steps: int
    batch_size: int
    learning_rate: float
    init_std: float
    weight_decay: float = 0.0
    warmup_steps: int = 0  # > 0: linear warm-up over these steps, then a cosine decay to 0
    label_smoothing: float = 0.0  # targets eps + (1 - 2 eps) * relevance / MAX_RELEVANCE
    auxiliary_weight: float = 0.0  # the Gemma's training-only losses (_GemmaLoss)


# A wide initializer (BERT's 0.02 leaves a small cross-encoder on a loss plateau for thousands of
# steps) and weight decay, which keeps the weights small: the trained encoder then scores the three
# grades about 7 units apart and is not over-sensitive to rounding (bf16 moves its scores by ~1% of
# their spread). The graded targets' entropy puts the best possible loss near 0.17.
ENCODER_SETTINGS = TrainingSettings(
    seed=11, steps=5000, batch_size=32, learning_rate=1e-3, init_std=0.2, weight_decay=0.05
)
# The Gemma's score is read at its last position, behind a 55-token prompt: trained on that score
# alone it sits on a loss plateau for 1,500-2,500 steps (seed-dependent) and ends weakly separated.
# Two training-only losses give the layers below a direct signal: the relevance read at the
# passage's last token too, and for every passage token whether it is a query word (a linear probe
# that is not saved). With them it leaves the plateau within ~800 steps; smoothed targets bound
# the scores (about -3 / 0 / +3 for the three grades) so that training tightens each grade
# instead of growing the weights. bf16 then keeps its scores within 2.1-2.8% of their spread for
# training seeds 12-14 (docs/benchmarks.md). Key heads start as copies of query heads
# (_align_query_keys).
GEMMA_SETTINGS = TrainingSettings(
    seed=12,
    steps=2400,
    batch_size=32,
    learning_rate=5e-3,
    init_std=0.2,
    weight_decay=0.05,
    warmup_steps=120,
    label_smoothing=0.05,
    auxiliary_weight=1.0,
)


def cache_root(cache_dir: Path | str | None = None) -> Path:
    """`cache_dir`, else $RERANKER_TINY_CACHE, else .cache/tiny-trained in the checkout."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("RERANKER_TINY_CACHE")
    return Path(env) if env else DEFAULT_CACHE


def content_key(kind: str, settings: TrainingSettings) -> str:
    """A hash of the sources of export/tiny, the settings and torch's version."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(json.dumps({"kind": kind, **asdict(settings), "torch": torch.__version__}).encode())
    return h.hexdigest()[:16]


def _cached(kind: str, settings: TrainingSettings, cache_dir, build: Callable[[Path], None]) -> Path:
    """The cached checkpoint for `kind`, trained into a temporary directory and renamed once done."""
    out = cache_root(cache_dir) / f"{kind}-{content_key(kind, settings)}"
    if (out / DONE_FILE).exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=out.parent))
    try:
        build(work)
        (work / DONE_FILE).write_text(json.dumps({"kind": kind, **asdict(settings)}, indent=2))
        try:
            work.rename(out)
        except OSError:  # another process finished the same checkpoint first
            if not (out / DONE_FILE).exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


class _Deterministic:
    """One torch thread, deterministic algorithms and seeded generators, restored on exit."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> _Deterministic:
        self.threads = torch.get_num_threads()
        self.deterministic = torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(self.seed)
        return self

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(self.deterministic)


def right_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask of `rows`, right-padded with `pad`."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def left_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask of `rows`, left-padded with `pad` (as the decoders pad)."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids, mask


def learning_rate_factor(settings: TrainingSettings, step: int) -> float:
    """The learning rate at `step` as a fraction of settings.learning_rate: constant without
    warm-up, else a linear warm-up over warmup_steps followed by a cosine decay to 0."""
    if settings.warmup_steps <= 0:
        return 1.0
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    done = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * done))


def smoothed_targets(settings: TrainingSettings, relevance: np.ndarray) -> torch.Tensor:
    """relevance / MAX_RELEVANCE in [0, 1], pulled towards 1/2 by settings.label_smoothing."""
    targets = torch.from_numpy(relevance)
    eps = settings.label_smoothing
    return targets if eps == 0 else eps + (1 - 2 * eps) * targets


def _train(
    model: torch.nn.Module,
    settings: TrainingSettings,
    loss_of: Callable[[list[tuple[str, str]], torch.Tensor], torch.Tensor],
    progress: Callable[[int, float], None] | None = None,
    extra_parameters: tuple[torch.nn.Parameter, ...] = (),
) -> None:
    """AdamW on `loss_of(pairs, targets)` over fresh batches of the relevance task (targets from
    `smoothed_targets`), for the model's parameters and `extra_parameters` (training-only heads),
    the model in train mode meanwhile."""
    rng = np.random.default_rng(settings.seed)
    model.train()
    parameters = [*model.parameters(), *extra_parameters]
    opt = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: learning_rate_factor(settings, step))
    for step in range(settings.steps):
        pairs, relevance = relevance_task.training_batch(rng, settings.batch_size)
        loss = loss_of(pairs, smoothed_targets(settings, relevance))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if progress is not None:
            progress(step, float(loss.detach()))
    model.eval()


def encoder_input_ids(tokenizer, pairs: list[tuple[str, str]]) -> list[list[int]]:
    """`<s> q </s></s> p </s>` as FlagReranker builds it (XLM-R ids: <s>=0, </s>=2)."""
    out = []
    for q, p in pairs:
        q_ids = tokenizer.encode(q, add_special_tokens=False).ids
        p_ids = tokenizer.encode(p, add_special_tokens=False).ids
        out.append([0, *q_ids, 2, 2, *p_ids, 2])
    return out


def _bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)


def _initialize(model: torch.nn.Module, seed: int, std: float) -> None:
    """Matrices ~ N(0, std) from numpy (the same draws on every CPU), norms 1, biases 0."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if param.dim() == 2:
                param.copy_(torch.from_numpy(std * rng.standard_normal(tuple(param.shape))))
            elif "LayerNorm" in name and name.endswith("weight"):
                param.fill_(1.0)
            else:
                param.zero_()


def _build_encoder(out: Path, settings: TrainingSettings, progress=None) -> None:
    from tokenizers import Tokenizer
    from transformers import XLMRobertaForSequenceClassification

    build_xlmr_reranker(out, seed=settings.seed)
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    with _Deterministic(settings.seed):
        model = XLMRobertaForSequenceClassification.from_pretrained(str(out), attn_implementation="eager")
        _initialize(model, settings.seed, settings.init_std)

        def loss_of(pairs: list[tuple[str, str]], targets: torch.Tensor) -> torch.Tensor:
            ids, mask = right_padded(encoder_input_ids(tokenizer, pairs), pad=1)
            return _bce(model(input_ids=ids, attention_mask=mask).logits[:, 0], targets)

        _train(model, settings, loss_of, progress)
    save_sequence_classifier(model, out)


def gemma_hidden_and_yes_row(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, yes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The final hidden states [batch, seq, hidden] and the "yes" token's embedding row:
    hidden @ row is logits[..., yes] without the [batch, seq, vocab] projection (the Gemma
    reranker's lm_head is tied to the embeddings; FlagLLMReranker scores logits[:, -1, yes])."""
    if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
        raise ValueError("the yes logit needs lm_head tied to the embeddings")
    hidden = model.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return hidden, model.get_input_embeddings().weight[yes]


def _align_query_keys(model: torch.nn.Module) -> None:
    """Start each key head as a copy of the first query head it serves (grouped-query attention),
    so that attention at initialization already favours earlier copies of a token: the task is
    to find the query's words in the passage."""
    head_dim = model.config.head_dim
    with torch.no_grad():
        for layer in model.model.layers:
            q, k = layer.self_attn.q_proj.weight, layer.self_attn.k_proj.weight
            group = q.shape[0] // k.shape[0]
            for j in range(k.shape[0] // head_dim):
                k[j * head_dim : (j + 1) * head_dim] = q[j * group * head_dim : (j * group + 1) * head_dim]


class _GemmaLoss:
    """The Gemma's training loss on FlagLLMReranker's input (`<bos>A: q` `\nB: p` `\n<prompt>`,
    left-padded): binary cross-entropy of the score at the last position, plus
    settings.auxiliary_weight x (the same at the passage's last token + a linear probe's guess,
    for every passage token, of whether it is a query word). Every word is one token
    (relevance_task), so a passage token is a query word when its id is among the query's."""

    def __init__(self, model: torch.nn.Module, tokenizer, settings: TrainingSettings) -> None:
        from reranker_core.encoding.decoder import SEP_TEXT, yes_token_id
        from reranker_core.families import GEMMA, family_spec

        self.model, self.tokenizer, self.weight = model, tokenizer, settings.auxiliary_weight
        self.yes = yes_token_id(tokenizer)
        self.separator = SEP_TEXT
        self.tail = self._ids(SEP_TEXT + family_spec(GEMMA).default_prompt)
        self.probe = torch.nn.Linear(model.config.hidden_size, 1)
        with torch.no_grad():
            self.probe.weight.zero_()
            self.probe.bias.zero_()

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def row(self, query: str, passage: str) -> tuple[list[int], list[float]]:
        """A pair's input ids and, per position, 1/0 for a passage word that is / is not a query
        word, -1 elsewhere."""
        first = [2, *self._ids("A: " + query)]  # <bos>, "A:", the query words
        second = self._ids(self.separator + "B: " + passage)  # "\n", "B:", the passage words
        query_words = set(first[2:])
        words = [float(t in query_words) for t in second[2:]]
        labels = [-1.0] * (len(first) + 2) + words + [-1.0] * len(self.tail)
        return first + second + self.tail, labels

    def __call__(self, pairs: list[tuple[str, str]], targets: torch.Tensor) -> torch.Tensor:
        rows = [self.row(q, p) for q, p in pairs]
        ids, mask = left_padded([r for r, _ in rows], pad=0)
        hidden, yes_row = gemma_hidden_and_yes_row(self.model, ids, mask, self.yes)
        loss = _bce(hidden[:, -1] @ yes_row, targets)
        if self.weight == 0:
            return loss
        width = ids.shape[1]
        labels = torch.tensor([[-1.0] * (width - len(r)) + lab for r, lab in rows])
        words = labels >= 0
        passage_end = hidden[:, -len(self.tail) - 1] @ yes_row
        word_guess = self.probe(hidden[words])[:, 0]
        return loss + self.weight * (_bce(passage_end, targets) + _bce(word_guess, labels[words]))


def _build_gemma(out: Path, settings: TrainingSettings, progress=None) -> None:
    from safetensors.torch import save_file
    from tokenizers import Tokenizer
    from transformers import GemmaForCausalLM

    build_gemma_reranker(out, seed=settings.seed, std=settings.init_std)
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    with _Deterministic(settings.seed):
        model = GemmaForCausalLM.from_pretrained(str(out), attn_implementation="eager")
        _align_query_keys(model)
        loss_of = _GemmaLoss(model, tokenizer, settings)
        _train(model, settings, loss_of, progress, extra_parameters=tuple(loss_of.probe.parameters()))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})


def trained_encoder_checkpoint(cache_dir: Path | str | None = None) -> Path:
    """The trained tiny XLM-R reranker (built and cached on first use, ~a minute on one core)."""
    return _cached("xlmr", ENCODER_SETTINGS, cache_dir, lambda d: _build_encoder(d, ENCODER_SETTINGS))


def trained_gemma_checkpoint(cache_dir: Path | str | None = None, seed: int | None = None) -> Path:
    """The trained tiny Gemma (bge-reranker-v2-gemma layout) reranker, cached like the encoder
    (~2 minutes on one core). `seed` trains the same recipe from other draws (bench.precision
    --gemma-seeds: how much the fixture's figures owe to its seed)."""
    settings = GEMMA_SETTINGS if seed is None else replace(GEMMA_SETTINGS, seed=seed)
    return _cached("gemma", settings, cache_dir, lambda d: _build_gemma(d, settings))
