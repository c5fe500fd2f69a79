"""LLM reranker workloads for `make bench --llm`: random-weight checkpoints of the real shapes.

- gemma: bge-reranker-v2-gemma shape (Gemma-2B: 18 layers, hidden 2048, 8 heads, 1 KV head,
  head_dim 256, intermediate 16384, vocab 256000; lm_head tied) - a few pairs.
- layerwise: bge-reranker-v2-minicpm-layerwise shape (MiniCPM-2B: 40 layers, hidden 2304,
  36 heads, intermediate 5760, vocab 122753, start_layer 8) at cutoffs 28 and 40.

FlagEmbedding fp32 CPU (oracle env) vs client -> embedded Triton (the project's torch scorer,
float32 on CPU). Weights are written shard by shard (one layer at a time) so building a 10 GB
checkpoint never holds it in memory twice. These models need ~10-11 GB of RAM each (fp32); the
run refuses to start when MemAvailable is below `need_gb`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import procstats
from bench.common import CACHE, RESULTS, Log, embedded_server, export_once, run_flag_runner, sdk_client
from bench.workloads import WORDS


@dataclass(frozen=True)
class DecoderShape:
    name: str
    family: str  # oracle kind: llm | layerwise
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    inter: int
    vocab: int
    start_layer: int = 0
    cutoffs: tuple[int, ...] = ()
    extra: dict = field(default_factory=dict)

    def params(self) -> int:
        attn = self.hidden * self.head_dim * (2 * self.heads + 2 * self.kv_heads)
        return self.vocab * self.hidden + self.layers * (attn + 3 * self.hidden * self.inter)


GEMMA_2B = DecoderShape("gemma-2b-shape", "llm", 2048, 18, 8, 1, 256, 16384, 256000)
MINICPM_2B = DecoderShape(
    "minicpm-layerwise-shape",
    "layerwise",
    2304,
    40,
    36,
    36,
    64,
    5760,
    122753,
    start_layer=8,
    cutoffs=(28, 40),
)
QUICK_GEMMA = DecoderShape("quick-gemma", "llm", 64, 2, 4, 1, 16, 128, 2000)
QUICK_MINICPM = DecoderShape(
    "quick-layerwise", "layerwise", 64, 6, 4, 4, 16, 128, 2000, start_layer=2, cutoffs=(4, 6)
)


def mem_available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def build_decoder_checkpoint(shape: DecoderShape, std: float = 0.02, seed: int = 0) -> Path:
    """Tiny checkpoint from the tests' builders (tokenizer, config, model code), re-dimensioned to
    `shape` and filled with sharded random weights (idempotent: reused when already built)."""
    import torch
    from safetensors.torch import save_file

    from export.tiny.decoders import build_gemma_reranker, build_minicpm_layerwise_reranker

    out = CACHE / shape.name
    meta = {**asdict(shape), "std": std, "seed": seed}
    if (out / "bench_shape.json").exists() and json.loads((out / "bench_shape.json").read_text()) == meta:
        return out
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.safetensors*"):
        old.unlink()
    if shape.family == "llm":
        build_gemma_reranker(out, seed=seed)
    else:
        build_minicpm_layerwise_reranker(out, seed=seed)
    (out / "model.safetensors").unlink()
    cfg = json.loads((out / "config.json").read_text())
    cfg.update(
        {
            "vocab_size": shape.vocab,
            "hidden_size": shape.hidden,
            "num_hidden_layers": shape.layers,
            "num_attention_heads": shape.heads,
            "num_key_value_heads": shape.kv_heads,
            "intermediate_size": shape.inter,
        }
    )
    if shape.family == "llm":
        cfg["head_dim"] = shape.head_dim
    else:
        cfg["start_layer"] = shape.start_layer
    (out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))

    gen = torch.Generator().manual_seed(seed)

    def normal(*dims: int, s: float = std, mean: float = 0.0) -> torch.Tensor:
        return (mean + s * torch.randn(dims, generator=gen)).contiguous()

    h, hd = shape.hidden, shape.head_dim
    norm_mean = 0.0 if shape.family == "llm" else 1.0  # Gemma RMSNorm uses (1 + w)
    weight_map: dict[str, str] = {}
    shards: list[dict[str, torch.Tensor]] = [{"model.embed_tokens.weight": normal(shape.vocab, h, s=0.5)}]
    for i in range(shape.layers):
        p = f"model.layers.{i}"
        shards.append(
            {
                f"{p}.self_attn.q_proj.weight": normal(shape.heads * hd, h),
                f"{p}.self_attn.k_proj.weight": normal(shape.kv_heads * hd, h),
                f"{p}.self_attn.v_proj.weight": normal(shape.kv_heads * hd, h),
                f"{p}.self_attn.o_proj.weight": normal(h, shape.heads * hd),
                f"{p}.mlp.gate_proj.weight": normal(shape.inter, h),
                f"{p}.mlp.up_proj.weight": normal(shape.inter, h),
                f"{p}.mlp.down_proj.weight": normal(h, shape.inter),
                f"{p}.input_layernorm.weight": normal(h, s=0.1, mean=norm_mean),
                f"{p}.post_attention_layernorm.weight": normal(h, s=0.1, mean=norm_mean),
            }
        )
    last = {"model.norm.weight": normal(h, s=0.1, mean=norm_mean)}
    if shape.family == "layerwise":
        for j in range(shape.layers + 1 - shape.start_layer):
            last[f"lm_head.{j}.linear_head.weight"] = normal(1, h, s=0.5)
    shards.append(last)
    total = 0
    for k, shard in enumerate(shards):
        name = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out / name), metadata={"format": "pt"})
        total += sum(t.numel() * 4 for t in shard.values())
        weight_map.update({key: name for key in shard})
        shards[k] = {}
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1)
    )
    (out / "bench_shape.json").write_text(json.dumps(meta))
    return out


def pairs(n: int, words: int, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    q = " ".join(rng.choice(WORDS, 8))
    return [[q, " ".join(rng.choice(WORDS, words))] for _ in range(n)]


def _flag(ckpt: Path, shape: DecoderShape, work: list[list[str]], calls: list[dict], timeout: float) -> dict:
    job = {
        "kind": shape.family,
        "model": str(ckpt),
        "warmup_pairs": work[:1],
        "warmup_score": calls[0],
        "workloads": [{"name": json.dumps(c), "pairs": work, "score": c, "reps": 1} for c in calls],
    }
    return run_flag_runner(job, timeout)


def _served(ckpt: Path, shape: DecoderShape, work: list[list[str]], calls: list[dict], log: Log) -> dict:
    repo = CACHE / f"repo-{shape.name}"
    name = f"llm-{shape.family}"
    export_once(ckpt, repo, name)
    server = embedded_server(repo, [name], RESULTS / f"server-{name}.log.tmp")
    t0 = time.perf_counter()
    server.start(timeout=900)
    out: dict[str, Any] = {"startup_s": time.perf_counter() - t0, "calls": {}}
    with (
        server,
        procstats.PeakRss(server.server_pid) as rss,
        sdk_client(server.grpc_url, name, ckpt, timeout_s=1800) as client,
    ):
        client.compute_score(work[:1], **calls[0])
        for c in calls:
            t0 = time.perf_counter()
            scores = client.compute_score(work, **c)
            out["calls"][json.dumps(c)] = {"wall_s": time.perf_counter() - t0, "scores": scores}
            log(f"  served {shape.name} {c}: {len(work) / (time.perf_counter() - t0):.3f} pairs/s")
    out["peak_rss_mb"] = rss.peak_mb
    return out


def run_shape(
    shape: DecoderShape,
    n_pairs: int,
    words: int,
    log: Log,
    need_gb: float = 0.0,
    timeout: float = 1800,
) -> dict:
    avail = mem_available_gb()
    if avail < need_gb:
        return {"skipped": f"needs ~{need_gb:.0f} GB free RAM, {avail:.1f} GB available"}
    log(f"LLM {shape.name}: building checkpoint ({shape.params() / 1e9:.2f} B params)")
    ckpt = build_decoder_checkpoint(shape)
    work = pairs(n_pairs, words)
    calls = [{"cutoff_layers": [c]} for c in shape.cutoffs] or [{}]
    log(f"LLM {shape.name}: FlagEmbedding fp32")
    flag = _flag(ckpt, shape, work, calls, timeout)
    log(f"LLM {shape.name}: client -> embedded Triton")
    served = _served(ckpt, shape, work, calls, log)
    result: dict[str, Any] = {
        "shape": asdict(shape),
        "params_b": shape.params() / 1e9,
        "pairs": len(work),
        "flagembedding": {"load_s": flag["load_s"], "peak_rss_mb": flag["peak_rss_mb"]},
        "served": {k: v for k, v in served.items() if k != "calls"},
        "calls": {},
    }
    for r in flag["results"]:
        key = r["name"]
        f_wall, s = float(np.median(r["wall_s"])), served["calls"][key]
        ref, got = np.asarray(r["scores"], dtype=np.float64), np.asarray(s["scores"], dtype=np.float64)
        result["calls"][key] = {
            "flag_pairs_per_s": len(work) / f_wall,
            "served_pairs_per_s": len(work) / s["wall_s"],
            "x_flagembedding": f_wall / s["wall_s"],
            "max_abs_diff_vs_flagembedding": float(np.abs(ref - got).max()),
        }
    return result


def run(quick: bool, log: Log = print) -> dict:
    if quick:
        return {s.name: run_shape(s, 4, 24, log) for s in (QUICK_GEMMA, QUICK_MINICPM)}
    return {s.name: run_shape(s, 4, 80, log, need_gb=14.0) for s in (GEMMA_2B, MINICPM_2B)}
