"""Write a Triton model directory for a decoder (LLM) reranker: v2-gemma, MiniCPM layerwise,
Gemma2 lightweight.

<repository>/<name>/
  config.pbtxt            Python backend on GPU (float16 / bfloat16 / float32 as exported)
  configs/embedded.pbtxt  Python backend on CPU, float32 (bfloat16 when exported --dtype bfloat16)
  configs/openvino.pbtxt  the same CPU config under the name CPU nodes serve encoders with
                          (--model-config-name=openvino: encoders exported --cpu-graph bf16 run on
                          Triton's openvino backend, LLM rerankers on the Python backend)
  reranker.json           the model contract (also inside every config as "reranker_manifest",
                          each copy with the dtype that config runs)
  tokenizer/              tokenizer.json, tokenizer_config.json, special_tokens_map.json
  1/model.py              imports reranker_server.llm_model.TritonPythonModel
  1/checkpoint/           config.json + the safetensors weights (+ index), linked or copied;
                          never the checkpoint's Python code
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from export.checkpoint import read_config
from export.errors import ExportError, require_ints
from export.fill_template import fill_template, pbtxt_string
from export.tokenizer_files import copy_tokenizer
from reranker_core.encoding.decoder import adds_bos, yes_token_id
from reranker_core.families import DECODER_FAMILIES, GEMMA, GEMMA2_LIGHTWEIGHT, MINICPM_LAYERWISE, family_spec
from reranker_core.files import CHECKPOINT_SUBDIR, SAFETENSORS_FILE, SAFETENSORS_INDEX
from reranker_core.limits import (
    DEFAULT_MAX_LENGTH,
    LLM_CPU_MAX_BATCH_TOKENS,
    LLM_GPU_MAX_BATCH_TOKENS,
    LLM_MAX_BATCH_SIZE,
)
from reranker_core.manifest import LLMSettings, ModelManifest, TokenizerInfo
from reranker_core.tensors import text_model_name

MODEL_PY = "from reranker_server.llm_model import TritonPythonModel  # noqa: F401\n"
CPU_CONFIG_NAMES = ("embedded", "openvino")  # every --model-config-name a CPU node may serve with
DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}  # -> manifest precision
_MAX_HEADER = 100 * 1024 * 1024


def detect_llm_family(config: dict[str, Any]) -> str | None:
    """The decoder family of a checkpoint's config.json, or None when it is none of the three."""
    archs = set(config.get("architectures") or [])
    model_type = config.get("model_type")
    auto_lm = str((config.get("auto_map") or {}).get("AutoModelForCausalLM", ""))
    if (
        "CostWiseGemmaForCausalLM" in archs
        or model_type == "cost_wise_gemma"
        or auto_lm.endswith("CostWiseGemmaForCausalLM")
        or (model_type == "gemma2" and "start_layer" in config and "layer_sep" in config)
    ):
        return GEMMA2_LIGHTWEIGHT
    if (
        "LayerWiseMiniCPMForCausalLM" in archs
        or auto_lm.endswith("LayerWiseMiniCPMForCausalLM")
        or (model_type == "minicpm" and "start_layer" in config and "head_multi" in config)
    ):
        return MINICPM_LAYERWISE
    if "GemmaForCausalLM" in archs or (model_type == "gemma" and not archs):
        return GEMMA
    return None


def _int_field(config: dict[str, Any], key: str, default: Any = None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ExportError(f"config.json: {key} must be a non-negative integer, not {value!r}")
    return value


def layer_settings(config: dict[str, Any], family: str) -> dict[str, Any]:
    """Cutoff layers and compression as FlagEmbedding reads them from the config."""
    spec = family_spec(family)
    layers = _int_field(config, "num_hidden_layers")
    if layers < 1:
        raise ExportError("config.json: num_hidden_layers must be at least 1")
    settings: dict[str, Any] = {
        "num_hidden_layers": layers,
        "cutoff_layers": [],
        "default_cutoff_layers": [],
        "compress_ratios": list(spec.compress_ratios),
        "default_compress_ratio": 1,
        "default_compress_layers": list(spec.default_compress_layers),
    }
    if family == MINICPM_LAYERWISE:
        if config.get("head_type", "simple") != "simple" or not config.get("head_multi", True):
            raise ExportError(
                "MiniCPM layerwise checkpoint: only head_type 'simple' with head_multi "
                f"true is a reranker (got head_type={config.get('head_type')!r}, "
                f"head_multi={config.get('head_multi')!r})"
            )
        start = _int_field(config, "start_layer", spec.default_start_layer)
        allowed = list(range(start, layers + 1))
    elif family == GEMMA2_LIGHTWEIGHT:
        if not config.get("layer_wise", False):
            raise ExportError(
                "Gemma2 lightweight checkpoint without layer_wise: true has no per-layer "
                "score heads; it is not a reranker"
            )
        start = _int_field(config, "start_layer", spec.default_start_layer)
        sep = _int_field(config, "layer_sep", spec.default_layer_sep)
        if sep < 1:
            raise ExportError("config.json: layer_sep must be at least 1")
        allowed = list(range(start, layers + 1, sep))
    else:
        return settings
    if not allowed:
        raise ExportError(
            f"config.json: start_layer {start} is past num_hidden_layers {layers}; no layer can score"
        )
    settings.update(cutoff_layers=allowed, default_cutoff_layers=[layers])
    return settings


def expected_head_keys(family: str, settings: dict[str, Any]) -> list[str]:
    """Weight names the score needs beyond the transformer body."""
    if family == GEMMA:
        return ["model.embed_tokens.weight"]  # the lm_head is tied to the embeddings
    return [f"lm_head.{j}.linear_head.weight" for j in range(len(settings["cutoff_layers"]))]


def read_safetensors_keys(path: Path) -> set[str]:
    """Tensor names in a safetensors file (header only); ExportError when it is not one."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise ValueError("file too short")
            (size,) = struct.unpack("<Q", raw)
            if size > _MAX_HEADER:
                raise ValueError("implausible header size")
            header = json.loads(fh.read(size))
    except (OSError, ValueError) as exc:
        raise ExportError(
            f"{path.name} is not a readable safetensors file (a git-lfs pointer?): {exc}"
        ) from exc
    return {k for k in header if k != "__metadata__"}


def weight_files(checkpoint: Path) -> list[str]:
    """The safetensors files transformers would load, index first; ExportError for .bin-only."""
    index = checkpoint / SAFETENSORS_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ExportError(f"cannot read {index}: {exc}") from exc
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (checkpoint / s).is_file()]
        if missing:
            raise ExportError(
                f"{checkpoint}: {SAFETENSORS_INDEX} names missing shards: {', '.join(missing[:3])}"
            )
        return [SAFETENSORS_INDEX, *shards]
    if (checkpoint / SAFETENSORS_FILE).is_file():
        return [SAFETENSORS_FILE]
    if any(checkpoint.glob("*.bin")) or any(checkpoint.glob("*.pt")):
        raise ExportError(
            f"{checkpoint} has only pickle (*.bin) weights; LLM rerankers are served "
            "from safetensors only: convert them (save_pretrained(safe_serialization=True))"
        )
    raise ExportError(f"{checkpoint} has no {SAFETENSORS_FILE} or {SAFETENSORS_INDEX}")


def check_weights(checkpoint: Path, files: Sequence[str], required: Sequence[str]) -> None:
    """Every file is real safetensors and the score's weights are present."""
    keys: set[str] = set()
    for name in files:
        if name.endswith(".safetensors"):
            keys |= read_safetensors_keys(checkpoint / name)
    missing = [k for k in required if k not in keys]
    if missing:
        raise ExportError(
            f"{checkpoint}: weights lack {len(missing)} tensor(s) the score needs, "
            f"e.g. {missing[0]} (layer heads do not match config.json?)"
        )


def place_weights(checkpoint: Path, dest: Path, files: Sequence[str], mode: str) -> None:
    """config.json copied; weights symlinked (absolute) or copied into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint / "config.json", dest / "config.json")
    for name in files:
        src = (checkpoint / name).resolve()
        if mode == "link":
            os.symlink(src, dest / name)
        else:
            shutil.copyfile(src, dest / name)


def render_config(
    manifest: ModelManifest,
    *,
    gpu: bool,
    max_batch_size: int,
    instance_count: int,
    max_queue_delay_us: int,
    max_batch_tokens: int,
    gpus: Sequence[int] = (),
    intra_op_threads: int = 0,
) -> str:
    """config.pbtxt text (export/templates/python_llm.pbtxt) with the manifest embedded."""
    return fill_template(
        "python_llm",
        {
            "name": manifest.name,
            "family": manifest.family,
            "dtype": manifest.llm.dtype,
            "instance_kind": "KIND_GPU" if gpu else "KIND_CPU",
            "instance_count": instance_count,
            "gpus": [int(g) for g in gpus] if gpu else [],
            "max_batch_size": max_batch_size,
            "max_queue_delay_us": max_queue_delay_us,
            "max_batch_tokens": max_batch_tokens,
            "intra_op_threads": intra_op_threads,
            "manifest": pbtxt_string(manifest.to_json()),
        },
    )


def build_llm_manifest(
    config: dict[str, Any],
    tokenizer: Tokenizer,
    tok_info: TokenizerInfo,
    *,
    name: str,
    family: str,
    dtype: str,
    max_batch_size: int,
    source: str,
    truncation_side: str = "right",
) -> ModelManifest:
    """The manifest of a decoder reranker; `llm` holds what the encoding and the server read."""
    try:
        adds_bos(family, tok_info.bos_token_id, tok_info.pad_token_id)  # fails without a needed bos
        yes_id = yes_token_id(tokenizer)
    except ValueError as exc:
        raise ExportError(str(exc)) from exc
    llm = LLMSettings.for_family(
        family,
        checkpoint_dir=CHECKPOINT_SUBDIR,
        dtype=dtype,
        truncation_side=truncation_side,
        yes_token_id=yes_id,
        **layer_settings(config, family),
    )
    vocab = config.get("vocab_size") or tokenizer.get_vocab_size()
    if not 0 <= yes_id < int(vocab):
        raise ExportError(f"'Yes' token id {yes_id} is outside the model's vocabulary ({vocab})")
    max_positions = config.get("max_position_embeddings")
    if isinstance(max_positions, bool) or not isinstance(max_positions, int) or max_positions < 1:
        raise ExportError(
            f"config.json: max_position_embeddings must be a positive integer, not {max_positions!r}"
        )
    return ModelManifest(
        family=family,
        name=name,
        tokenizer=tok_info,
        max_positions=max_positions,
        default_max_length=DEFAULT_MAX_LENGTH,
        max_batch_size=max_batch_size,
        vocab_size=int(vocab),
        precision=DTYPES[dtype],
        source=source,
        llm=llm,
        text_model=text_model_name(name),
    )


def _tokenizer_truncation_side(model_dir: Path) -> str:
    path = model_dir / "tokenizer" / "tokenizer_config.json"
    side = json.loads(path.read_text()).get("truncation_side", "right") if path.is_file() else "right"
    if side not in ("right", "left"):
        raise ExportError(f"tokenizer_config.json: truncation_side {side!r} is neither right nor left")
    return side


def _check_options(
    family: str,
    dtype: str,
    weights: str,
    max_batch_size: int,
    instance_count: int,
    max_queue_delay_us: int,
    max_batch_tokens: int | None,
    intra_op_threads: int,
) -> None:
    if family not in DECODER_FAMILIES:
        raise ExportError(f"{family!r} is not an LLM reranker family ({', '.join(DECODER_FAMILIES)})")
    if dtype not in DTYPES:
        raise ExportError(f"dtype {dtype!r} is not supported: {', '.join(DTYPES)}")
    if weights not in ("link", "copy"):
        raise ExportError(f"weights must be 'link' or 'copy', not {weights!r}")
    require_ints(
        (
            ("max_batch_size", max_batch_size, 1),
            ("instance_count", instance_count, 1),
            ("max_queue_delay_us", max_queue_delay_us, 0),
            ("max_batch_tokens", 1 if max_batch_tokens is None else max_batch_tokens, 1),
            ("intra_op_threads", intra_op_threads, 0),
        )
    )


def cpu_compute_dtype(dtype: str) -> str:
    """The embedded (KIND_CPU) config's dtype: bfloat16 when exported as bfloat16 (the runner falls
    back to float32, saying so, on a CPU without native bf16), float32 otherwise (FlagEmbedding
    turns fp16 off on CPU)."""
    return "bfloat16" if dtype == "bfloat16" else "float32"


def export_llm(
    checkpoint: Path,
    out_dir: Path,
    *,
    name: str,
    family: str,
    dtype: str = "float16",
    weights: str = "link",
    max_batch_size: int = LLM_MAX_BATCH_SIZE,
    instance_count: int = 1,
    gpus: Sequence[int] = (),
    max_queue_delay_us: int = 2000,
    source: str = "",
    max_batch_tokens: int | None = None,
    intra_op_threads: int = 0,
) -> ModelManifest:
    """Export a local decoder-reranker checkpoint into the model directory `out_dir`.

    `max_batch_tokens` None: the LLM GPU / CPU defaults of reranker_core.limits."""
    checkpoint = Path(checkpoint)
    out_dir = Path(out_dir)
    _check_options(
        family,
        dtype,
        weights,
        max_batch_size,
        instance_count,
        max_queue_delay_us,
        max_batch_tokens,
        intra_op_threads,
    )
    config = read_config(checkpoint)
    detected = detect_llm_family(config)
    if detected != family:
        raise ExportError(f"{checkpoint} is a {detected or 'non-reranker'} checkpoint, not {family}")
    files = weight_files(checkpoint)
    settings = layer_settings(config, family)
    check_weights(checkpoint, files, expected_head_keys(family, settings))

    if not any((checkpoint / f).is_file() for f in ("tokenizer.json", "tokenizer.model")):
        raise ExportError(f"{checkpoint} has no tokenizer.json (nor a tokenizer.model to convert)")
    try:
        tok_info = copy_tokenizer(checkpoint, out_dir, source or str(checkpoint))
    except ExportError as exc:  # keep the CLI's error to one line
        raise ExportError(" ".join(str(exc).split())) from exc
    tokenizer = Tokenizer.from_file(str(out_dir / tok_info.file))
    manifest = build_llm_manifest(
        config,
        tokenizer,
        tok_info,
        name=name,
        family=family,
        dtype=dtype,
        max_batch_size=max_batch_size,
        source=source or str(checkpoint),
        truncation_side=_tokenizer_truncation_side(out_dir),
    )
    version = out_dir / "1"
    version.mkdir(parents=True, exist_ok=True)
    (version / "model.py").write_text(MODEL_PY)
    place_weights(checkpoint, out_dir / CHECKPOINT_SUBDIR, files, weights)

    (out_dir / "config.pbtxt").write_text(
        render_config(
            manifest,
            gpu=True,
            max_batch_size=max_batch_size,
            instance_count=instance_count,
            max_queue_delay_us=max_queue_delay_us,
            gpus=gpus,
            max_batch_tokens=max_batch_tokens or LLM_GPU_MAX_BATCH_TOKENS,
        )
    )
    cpu_dtype = cpu_compute_dtype(dtype)
    cpu_manifest = ModelManifest.from_dict(json.loads(manifest.to_json()))
    cpu_manifest.precision = DTYPES[cpu_dtype]
    cpu_manifest.llm = replace(cpu_manifest.llm, dtype=cpu_dtype)
    cpu_config = render_config(
        cpu_manifest,
        gpu=False,
        max_batch_size=max_batch_size,
        instance_count=instance_count,
        max_queue_delay_us=max_queue_delay_us,
        max_batch_tokens=max_batch_tokens or LLM_CPU_MAX_BATCH_TOKENS,
        intra_op_threads=intra_op_threads,
    )
    (out_dir / "configs").mkdir(parents=True, exist_ok=True)
    for name in CPU_CONFIG_NAMES:
        (out_dir / "configs" / f"{name}.pbtxt").write_text(cpu_config)
    manifest.save(out_dir)
    return manifest
