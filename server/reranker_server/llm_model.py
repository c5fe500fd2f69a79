"""Triton Python-backend model serving the LLM (decoder) BGE rerankers: bge-reranker-v2-gemma,
bge-reranker-v2-minicpm-layerwise and bge-reranker-v2.5-gemma2-lightweight.

The served model's `1/model.py` is just `from reranker_server.llm_model import TritonPythonModel`.

Tensors (per request; the client sends FlagEmbedding's token ids):
  input_ids        INT64 [n, L]   left- or right-padded rows
  attention_mask   INT64 [n, L]   0/1, the ones contiguous in each row
  segment_lengths  INT64 [n, 2]   optional: (query_len, prompt_len) per pair; needed by the
                                  lightweight family when a request compresses (compress_ratio != 1)
  scores           FP32  [n, k]   output: one column per cutoff layer, ascending (k = 1 for gemma)

Per-request parameters: see reranker_server.llm.requests (cutoff_layers, compress_ratio,
compress_layers).

Model config parameters:
  reranker_manifest   the ModelManifest JSON (client/reranker_client/manifest.py); its `llm` dict:
      checkpoint_dir           config.json + safetensors: absolute, or relative to the model
                               directory (export writes "1/checkpoint"), or to the version directory
      dtype                    float32 | float16 | bfloat16 (float16 falls back to float32 on CPU,
                               as FlagEmbedding does; bfloat16 too on a CPU without native bf16)
      cutoff_layers            allowed cutoffs (checked against the checkpoint)
      default_cutoff_layers    used when a request names none (default: the last layer)
      compress_ratios, default_compress_ratio, default_compress_layers   (lightweight)
      yes_token_id             gemma: the 'Yes' logit row (default: from the checkpoint's tokenizer.json)
      allow_pickle             load pytorch_model.bin checkpoints (default false)
      max_batch_tokens         optional token budget (overridden by the config parameter)
  max_batch_tokens    padded tokens per forward pass (rows x longest row); default 16384 on GPU,
                      4096 on CPU
  intra_op_threads    torch CPU threads (0 = torch's default)
The device follows the instance kind: KIND_GPU -> cuda:<model_instance_device_id>, else CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from reranker_core.cpu_features import Bf16Support, bf16_fallback_message, bf16_support
from reranker_core.errors import InputError
from reranker_core.families import GEMMA
from reranker_core.layers import LayerLimits, LayerSettings
from reranker_core.limits import LLM_CPU_MAX_BATCH_TOKENS, LLM_GPU_MAX_BATCH_TOKENS
from reranker_core.packing import pad_rows, plan_chunks
from reranker_core.tensors import ATTENTION_MASK, INPUT_IDS, SCORES, SEGMENT_LENGTHS
from reranker_server.llm.requests import (
    ParsedRequest,
    ServingLimits,
    parse_settings,
    validate_rows,
    validate_segments,
)
from reranker_server.triton_inputs import input_array, load_manifest, request_parameters
from reranker_server.triton_responses import Failures, OutputSpec, error_response, failure_kind


def resolve_checkpoint(args: dict[str, Any], checkpoint_dir: str) -> Path:
    """Absolute path, else relative to the model directory, else to the version directory."""
    path = Path(checkpoint_dir)
    if path.is_absolute():
        return path
    model_dir = Path(args["model_repository"])
    for base in (model_dir, model_dir / str(args.get("model_version", "1"))):
        if (base / path / "config.json").is_file():
            return base / path
    raise FileNotFoundError(f"checkpoint_dir {checkpoint_dir!r} (no config.json) under {model_dir}")


def instance_device(args: dict[str, Any]) -> str:
    kind = str(args.get("model_instance_kind", "CPU")).upper()
    if kind in ("GPU", "KIND_GPU"):
        return f"cuda:{int(args.get('model_instance_device_id', 0) or 0)}"
    return "cpu"


@dataclass
class _Pending:
    index: int  # request position in the batch
    request: ParsedRequest


class LLMServing:
    """Scoring of validated requests with one scorer; independent of Triton for unit tests."""

    def __init__(self, scorer, limits: ServingLimits, *, max_batch_tokens: int, pad_id: int = 0) -> None:
        self.scorer = scorer
        self.limits = limits
        self.max_batch_tokens = max_batch_tokens
        self.pad_id = pad_id

    def parse(
        self,
        ids: np.ndarray | None,
        mask: np.ndarray | None,
        segments: np.ndarray | None,
        params: dict[str, Any],
    ) -> ParsedRequest:
        settings = parse_settings(params, self.limits)
        rows = validate_rows(ids, mask, self.limits)
        segs = validate_segments(segments, rows, needed=settings.compress_ratio != 1)
        return ParsedRequest(rows, segs, settings)

    def score_group(self, settings: LayerSettings, requests: list[ParsedRequest]) -> list[np.ndarray]:
        """Scores [n, k] per request; all requests share `settings`."""
        import torch

        rows = [row for req in requests for row in req.rows]
        segs = None
        if settings.compress_ratio != 1:
            segs = np.concatenate([req.segments for req in requests], axis=0)
        out = np.empty((len(rows), len(settings.cutoff_layers)), dtype=np.float32)

        def run(chunk: list[int]) -> None:
            ids, _ = pad_rows([rows[i] for i in chunk], self.pad_id)
            lengths = torch.tensor([len(rows[i]) for i in chunk], dtype=torch.long)
            segments: tuple = ()
            if segs is not None:
                segments = (torch.from_numpy(segs[chunk, 0].copy()), torch.from_numpy(segs[chunk, 1].copy()))
            try:
                scores = self.scorer.score_rows(
                    torch.from_numpy(ids),
                    lengths,
                    list(settings.cutoff_layers),
                    settings.compress_ratio,
                    list(settings.compress_layers),
                    *segments,
                )
            except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is a RuntimeError
                if "out of memory" not in str(exc) or len(chunk) == 1:
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                half = len(chunk) // 2  # retry in halves; a single row that does not fit fails
                run(chunk[:half])
                run(chunk[half:])
                return
            out[chunk] = scores.cpu().numpy()

        for chunk in plan_chunks([len(r) for r in rows], self.max_batch_tokens):
            run(chunk)
        results, start = [], 0
        for req in requests:
            results.append(out[start : start + len(req.rows)])
            start += len(req.rows)
        return results

    def run(self, parsed: list[ParsedRequest | Exception]) -> list[np.ndarray | Exception]:
        """Score every parsed request, grouped by settings; an exception stays per request or group."""
        results: list[np.ndarray | Exception] = list(parsed)
        groups: dict[LayerSettings, list[_Pending]] = {}
        for i, item in enumerate(parsed):
            if isinstance(item, ParsedRequest):
                groups.setdefault(item.settings, []).append(_Pending(i, item))
        for settings, pending in groups.items():
            try:
                scores = self.score_group(settings, [p.request for p in pending])
            except Exception as exc:  # one group's failure (e.g. out of memory) spares the others
                for p in pending:
                    results[p.index] = RuntimeError(f"scoring failed: {type(exc).__name__}: {exc}")
                continue
            for p, s in zip(pending, scores):
                results[p.index] = s
        return results


def build_limits(manifest, scorer, model_config: dict[str, Any]) -> ServingLimits:
    """Serving limits from the manifest, checked against what the checkpoint really has."""
    llm = manifest.llm
    allowed = tuple(scorer.allowed_cutoffs())
    if llm.cutoff_layers and tuple(llm.cutoff_layers) != allowed:
        raise ValueError(
            f"manifest cutoff_layers {llm.cutoff_layers} do not match the checkpoint "
            f"({list(allowed)}); re-export the model"
        )
    if manifest.vocab_size and int(manifest.vocab_size) != scorer.vocab_size:
        raise ValueError(
            f"manifest vocab_size {manifest.vocab_size} does not match the checkpoint ({scorer.vocab_size})"
        )
    ratios = tuple(llm.compress_ratios or [1])
    if not scorer.supports_compression and ratios != (1,):
        raise ValueError(f"{manifest.family} models cannot compress; compress_ratios must be [1]")
    defaults = tuple(llm.default_cutoff_layers or scorer.default_cutoffs())
    if any(c not in allowed for c in defaults):
        raise ValueError(
            f"default_cutoff_layers {list(defaults)} not among the allowed layers {list(allowed)}"
        )
    if llm.default_compress_ratio not in ratios:
        raise ValueError(
            f"default_compress_ratio {llm.default_compress_ratio} not in compress_ratios {list(ratios)}"
        )
    layers = LayerLimits(
        manifest.family,
        scorer.num_hidden_layers,
        allowed,
        defaults,
        ratios,
        llm.default_compress_ratio,
        tuple(llm.default_compress_layers),
    )
    return ServingLimits(
        layers,
        vocab_size=scorer.vocab_size,
        max_positions=int(manifest.max_positions or 0),
        max_pairs=int(model_config.get("max_batch_size") or manifest.max_batch_size),
    )


def cpu_dtype(dtype: str, name: str, support: Bf16Support | None = None) -> str:
    """The dtype a CPU instance computes in: float16 runs float32 (as in FlagEmbedding), bfloat16
    runs float32 on a CPU without native bf16 (logged: emulated bf16 is slower than fp32)."""
    if dtype in ("float16", "fp16"):
        return "float32"
    if dtype in ("bfloat16", "bf16"):
        support = support or bf16_support()
        if not support.native:
            print(bf16_fallback_message(name, support), flush=True)
            return "float32"
    return dtype


class TritonPythonModel:
    """Entry point imported by the served model's 1/model.py."""

    def initialize(self, args: dict) -> None:
        import torch

        from reranker_server.llm import load_scorer

        model_config, params, manifest = load_manifest(args)
        self.output = OutputSpec(model_config, SCORES)
        self.failures = Failures(str(model_config.get("name") or manifest.name))
        llm = manifest.llm
        if llm is None or not llm.checkpoint_dir:
            raise ValueError("manifest llm.checkpoint_dir is missing; re-export the model")
        device = instance_device(args)
        threads = int(params.get("intra_op_threads") or llm.intra_op_threads or 0)
        if threads > 0:
            torch.set_num_threads(threads)
        dtype = cpu_dtype(llm.dtype, manifest.name) if device == "cpu" else llm.dtype
        kwargs: dict[str, Any] = {"dtype": dtype, "device": device, "allow_pickle": bool(llm.allow_pickle)}
        if manifest.family == GEMMA and llm.yes_token_id is not None:
            kwargs["yes_token_id"] = int(llm.yes_token_id)
        checkpoint = resolve_checkpoint(args, llm.checkpoint_dir)
        scorer = load_scorer(manifest.family, checkpoint, **kwargs)
        limits = build_limits(manifest, scorer, model_config)
        default_budget = LLM_GPU_MAX_BATCH_TOKENS if device.startswith("cuda") else LLM_CPU_MAX_BATCH_TOKENS
        budget = int(params.get("max_batch_tokens") or llm.max_batch_tokens or default_budget)
        self.serving = LLMServing(scorer, limits, max_batch_tokens=budget, pad_id=manifest.pad_id)
        # warm up (and fail at load, not at the first request, if the device or weights are broken)
        self.serving.scorer.score(
            torch.ones(1, 4, dtype=torch.long),
            torch.ones(1, 4, dtype=torch.long),
            cutoff_layers=list(limits.layers.default_cutoffs),
        )

    def _parse(self, request) -> ParsedRequest:
        return self.serving.parse(
            input_array(request, INPUT_IDS),
            input_array(request, ATTENTION_MASK),
            input_array(request, SEGMENT_LENGTHS),
            request_parameters(request),
        )

    def execute(self, requests: list) -> list:
        parsed: list[ParsedRequest | Exception] = []
        for request in requests:
            try:
                parsed.append(self._parse(request))
            except InputError as exc:
                parsed.append(exc)
            except Exception as exc:  # never let one request fail the batch
                parsed.append(InputError(f"invalid request: {type(exc).__name__}: {exc}"))
        responses = []
        for result in self.serving.run(parsed):
            if isinstance(result, Exception):
                invalid = isinstance(result, InputError)
                self.failures.record(failure_kind(result, invalid=invalid), str(result))
                responses.append(error_response(str(result), invalid=invalid))
            else:
                responses.append(pb_utils.InferenceResponse(output_tensors=[self.output.tensor(result)]))
        return responses

    def finalize(self) -> None:
        self.serving = None
