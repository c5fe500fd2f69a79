"""XLM-RoBERTa reranker -> ONNX (opset 17, dynamic batch and sequence, one FP32 score per pair)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from export.errors import ExportError
from reranker_core.tensors import ENCODER_INPUTS, SCORES

OPSET = 17
# ONNX protobufs cannot exceed 2 GB: bigger models (large, v2-m3) keep weights in an external file.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000
EXTERNAL_DATA_FILE = "model.onnx.data"
# Ops whose fp16 versions overflow or lose too much in transformers: kept in fp32 by the fp16 export.
FP16_KEEP_FP32_OPS = [
    "LayerNormalization",
    "Softmax",
    "ReduceMean",
    "Pow",
    "Sqrt",
    "Erf",
    "CumSum",
    "Equal",
    "Not",
    "Cast",
    "Tanh",
]

Progress = Callable[[str], None]


def _load_model(checkpoint: Path, allow_pickle: bool = False):
    import torch
    from transformers import AutoModelForSequenceClassification

    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(checkpoint),
            attn_implementation="eager",
            dtype=torch.float32,
            use_safetensors=None if allow_pickle else True,
        )
    except Exception as exc:
        raise ExportError(f"cannot load {checkpoint} as a sequence-classification model: {exc}") from exc
    return model.eval()


class _ScoreHead:
    """Wraps the HF model so the graph has exactly (input_ids, attention_mask) -> scores[B, 1]."""

    def __new__(cls, model):
        import torch

        class ScoreModel(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask):
                logits = self.inner(input_ids=input_ids, attention_mask=attention_mask).logits
                return logits[:, :1].float()

        return ScoreModel(model)


def _sample_inputs(pad_id: int, vocab_size: int):
    import torch

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, max(4, vocab_size), (2, 16), generator=gen)
    ids[:, 0] = 0
    mask = torch.ones_like(ids)
    ids[1, 10:] = pad_id
    mask[1, 10:] = 0
    return ids, mask


def export_encoder_onnx(
    checkpoint: Path, out_path: Path, *, progress: Progress = print, allow_pickle: bool = False
) -> Path:
    """Export the fp32 ONNX graph of an XLM-R reranker to `out_path` (plus external data if big)."""
    import onnx
    import torch

    progress("loading checkpoint weights")
    model = _load_model(checkpoint, allow_pickle)
    config = model.config
    wrapper = _ScoreHead(model)
    ids, mask = _sample_inputs(
        config.pad_token_id if config.pad_token_id is not None else 1, config.vocab_size
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as tmp:
        tmp_path = Path(tmp) / "model.onnx"
        progress(f"tracing the graph (opset {OPSET}, dynamic batch and sequence axes)")
        import warnings

        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (ids, mask),
                str(tmp_path),
                input_names=list(ENCODER_INPUTS),
                output_names=[SCORES],
                opset_version=OPSET,
                dynamo=False,
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    SCORES: {0: "batch"},
                },
            )
        progress("writing the ONNX model")
        proto = onnx.load(str(tmp_path))
        save_onnx(proto, out_path)
    return out_path


def save_onnx(proto, out_path: Path) -> None:
    """Save inline, or with one external data file when the model is over the protobuf limit."""
    import onnx

    out_path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (out_path, out_path.parent / EXTERNAL_DATA_FILE):
        if stale.exists():
            stale.unlink()
    if proto.ByteSize() > EXTERNAL_DATA_THRESHOLD or _has_external_data(proto):
        onnx.save_model(
            proto,
            str(out_path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=EXTERNAL_DATA_FILE,
            size_threshold=1024,
        )
    else:
        onnx.save_model(proto, str(out_path))


def _has_external_data(proto) -> bool:
    from onnx.external_data_helper import uses_external_data

    return any(uses_external_data(t) for t in proto.graph.initializer)


def convert_to_fp16(fp32_path: Path, out_path: Path) -> Path:
    """fp16 weights and compute, fp32 inputs/outputs, overflow-prone ops kept in fp32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = onnx.load(str(fp32_path))
    fp16 = convert_float_to_float16(proto, keep_io_types=True, op_block_list=FP16_KEEP_FP32_OPS)
    save_onnx(fp16, out_path)
    return out_path


def onnx_scores(path: Path, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Run the exported model with ONNX Runtime on CPU (used to verify exports)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session.run(
        [SCORES],
        {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)},
    )[0]
