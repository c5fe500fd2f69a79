"""export/llm_export.py: model directory, Triton configs, manifest, family detection, clear errors."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
from google.protobuf import text_format
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from tritonclient.grpc import model_config_pb2

from export.errors import ExportError
from export.llm_export import MODEL_PY, detect_llm_family, export_llm
from export.tiny.decoders import (
    build_gemma2_lightweight_reranker,
    build_gemma_reranker,
    build_minicpm_layerwise_reranker,
)
from reranker_core.encoding.decoder import encode_decoder_pair
from reranker_core.families import GEMMA, GEMMA2_LIGHTWEIGHT, MINICPM_LAYERWISE
from reranker_core.manifest import LLMSettings, ModelManifest, file_sha256
from reranker_core.tensors import MANIFEST_PARAMETER

BUILDERS = {
    GEMMA: build_gemma_reranker,
    MINICPM_LAYERWISE: build_minicpm_layerwise_reranker,
    GEMMA2_LIGHTWEIGHT: build_gemma2_lightweight_reranker,
}
FAMILIES = list(BUILDERS)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("llm_ckpts")
    return {family: build(root / family) for family, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory) -> dict[str, tuple[Path, ModelManifest]]:
    repo = tmp_path_factory.mktemp("llm_repo")
    out = {}
    for family, ckpt in checkpoints.items():
        model_dir = repo / f"m-{family}"
        manifest = export_llm(
            ckpt,
            model_dir,
            name=f"m-{family}",
            family=family,
            dtype="bfloat16",
            weights="link",
            max_batch_size=12,
            instance_count=2,
            gpus=(0, 1),
            max_queue_delay_us=1500,
            source=f"tiny/{family}",
        )
        out[family] = (model_dir, manifest)
    return out


def _parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _fresh_copy(checkpoint: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "ckpt"
    shutil.copytree(checkpoint, dest)
    return dest


def _export(ckpt: Path, tmp_path: Path, family: str, **kwargs) -> ModelManifest:
    return export_llm(ckpt, tmp_path / "out", name="m", family=family, max_batch_size=4, **kwargs)


# --- layout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_model_directory_layout(exported, checkpoints, family):
    model_dir, _ = exported[family]
    assert (model_dir / "1" / "model.py").read_text() == MODEL_PY
    assert MODEL_PY.strip() == "from reranker_server.llm_model import TritonPythonModel  # noqa: F401"
    assert sorted(p.name for p in (model_dir / "tokenizer").iterdir()) == [
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    weights = model_dir / "1" / "checkpoint"
    assert sorted(p.name for p in weights.iterdir()) == ["config.json", "model.safetensors"]
    link = weights / "model.safetensors"
    assert link.is_symlink() and link.resolve() == (checkpoints[family] / "model.safetensors").resolve()
    assert json.loads((weights / "config.json").read_text()) == json.loads(
        (checkpoints[family] / "config.json").read_text()
    )
    assert (model_dir / "config.pbtxt").is_file() and (model_dir / "configs" / "embedded.pbtxt").is_file()


def test_copy_mode_copies_weights_and_never_the_checkpoint_code(checkpoints, tmp_path):
    ckpt = checkpoints[MINICPM_LAYERWISE]
    assert list(ckpt.glob("*.py")), "the layerwise checkpoint carries FlagEmbedding's model code"
    _export(ckpt, tmp_path, MINICPM_LAYERWISE, weights="copy")
    weights = tmp_path / "out" / "1" / "checkpoint"
    copied = weights / "model.safetensors"
    assert not copied.is_symlink()
    assert copied.read_bytes() == (ckpt / "model.safetensors").read_bytes()
    assert [p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.py")] == [
        "1/model.py"
    ]


def test_sharded_checkpoint_links_index_and_every_shard(checkpoints, tmp_path):
    ckpt = _fresh_copy(checkpoints[GEMMA], tmp_path)
    state = load_file(str(ckpt / "model.safetensors"))
    keys = sorted(state)
    shards = {
        "model-00001-of-00002.safetensors": keys[: len(keys) // 2],
        "model-00002-of-00002.safetensors": keys[len(keys) // 2 :],
    }
    weight_map = {}
    for shard, names in shards.items():
        save_file({k: state[k] for k in names}, str(ckpt / shard), metadata={"format": "pt"})
        weight_map.update({k: shard for k in names})
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    _export(ckpt, tmp_path, GEMMA)
    weights = tmp_path / "out" / "1" / "checkpoint"
    assert sorted(p.name for p in weights.iterdir()) == sorted(
        ["config.json", "model.safetensors.index.json", *shards]
    )


# --- Triton configs ---------------------------------------------------------------------------


def _check_io(config: model_config_pb2.ModelConfig) -> None:
    inputs = {i.name: i for i in config.input}
    assert sorted(inputs) == ["attention_mask", "input_ids", "segment_lengths"]
    for name in ("input_ids", "attention_mask"):
        tensor = inputs[name]
        assert tensor.data_type == model_config_pb2.TYPE_INT64 and list(tensor.dims) == [-1]
        assert tensor.allow_ragged_batch and not tensor.optional
    segments = inputs["segment_lengths"]
    assert segments.data_type == model_config_pb2.TYPE_INT64 and list(segments.dims) == [2]
    assert segments.optional
    [scores] = config.output
    assert scores.name == "scores" and scores.data_type == model_config_pb2.TYPE_FP32
    assert list(scores.dims) == [-1]


@pytest.mark.parametrize("family", FAMILIES)
def test_gpu_config_is_a_python_backend_gpu_model(exported, family):
    model_dir, manifest = exported[family]
    config = _parse(model_dir / "config.pbtxt")
    assert config.name == f"m-{family}" and config.backend == "python"
    assert config.max_batch_size == 12
    assert config.dynamic_batching.max_queue_delay_microseconds == 1500
    [group] = config.instance_group
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert group.count == 2 and list(group.gpus) == [0, 1]
    _check_io(config)
    assert config.parameters["max_batch_tokens"].string_value == "16384"
    embedded = ModelManifest.from_json(config.parameters[MANIFEST_PARAMETER].string_value)
    assert embedded == manifest
    assert embedded.llm.dtype == "bfloat16" and embedded.precision == "bf16"


@pytest.mark.parametrize("family", FAMILIES)
def test_embedded_config_of_a_bfloat16_export_is_a_bfloat16_cpu_model(exported, family):
    model_dir, manifest = exported[family]
    config = _parse(model_dir / "configs" / "embedded.pbtxt")
    assert config.name == f"m-{family}" and config.backend == "python"
    assert config.max_batch_size == 12
    assert config.dynamic_batching.max_queue_delay_microseconds == 1500
    [group] = config.instance_group
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_CPU and group.count == 2
    assert list(group.gpus) == []
    _check_io(config)
    assert config.parameters["max_batch_tokens"].string_value == "4096"
    assert config.parameters["intra_op_threads"].string_value == "0"
    cpu = ModelManifest.from_json(config.parameters[MANIFEST_PARAMETER].string_value)
    assert cpu.llm.dtype == "bfloat16" and cpu.precision == "bf16"  # float32 where bf16 is not native
    assert cpu.llm == manifest.llm


@pytest.mark.parametrize("family", FAMILIES)
def test_cpu_nodes_serving_encoders_on_openvino_find_the_same_cpu_config(exported, family):
    """--model-config-name=openvino (the Kubernetes cpu overlay) must not fall back to the GPU
    config.pbtxt for an LLM reranker: it gets the CPU config under that name too."""
    model_dir, _ = exported[family]
    openvino = (model_dir / "configs" / "openvino.pbtxt").read_text()
    assert openvino == (model_dir / "configs" / "embedded.pbtxt").read_text()
    [group] = _parse(model_dir / "configs" / "openvino.pbtxt").instance_group
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_CPU


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_embedded_config_of_other_exports_runs_float32(checkpoints, tmp_path, dtype):
    manifest = _export(checkpoints[GEMMA], tmp_path, GEMMA, dtype=dtype)
    cpu = ModelManifest.from_json(
        _parse(tmp_path / "out" / "configs" / "embedded.pbtxt").parameters[MANIFEST_PARAMETER].string_value
    )
    assert cpu.llm.dtype == "float32" and cpu.precision == "fp32"
    assert dataclasses.replace(cpu.llm, dtype=manifest.llm.dtype) == manifest.llm


def test_gpu_config_without_gpu_list_uses_all_gpus(checkpoints, tmp_path):
    _export(checkpoints[GEMMA], tmp_path, GEMMA, dtype="float16", max_batch_tokens=2048, intra_op_threads=3)
    gpu = _parse(tmp_path / "out" / "config.pbtxt")
    [group] = gpu.instance_group
    assert list(group.gpus) == [] and group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    cpu = _parse(tmp_path / "out" / "configs" / "embedded.pbtxt")
    assert gpu.parameters["max_batch_tokens"].string_value == "2048"
    assert cpu.parameters["max_batch_tokens"].string_value == "2048"
    assert cpu.parameters["intra_op_threads"].string_value == "3"


def test_manifest_with_quotes_and_unicode_survives_the_config(checkpoints, tmp_path):
    manifest = _export(checkpoints[GEMMA], tmp_path, GEMMA, source='C:\\models\\"bge" — 中文\n')
    config = _parse(tmp_path / "out" / "config.pbtxt")
    assert ModelManifest.from_json(config.parameters[MANIFEST_PARAMETER].string_value) == manifest
    assert manifest.source == 'C:\\models\\"bge" — 中文\n'


# --- manifest ---------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_manifest_round_trips(exported, family):
    model_dir, manifest = exported[family]
    assert ModelManifest.load(model_dir) == manifest
    assert ModelManifest.from_json(manifest.to_json()) == manifest


@pytest.mark.parametrize("family", FAMILIES)
def test_manifest_describes_tokenizer_and_model(exported, checkpoints, family):
    model_dir, manifest = exported[family]
    config = json.loads((checkpoints[family] / "config.json").read_text())
    tok = manifest.tokenizer
    assert manifest.family == family and manifest.name == f"m-{family}"
    assert manifest.source == f"tiny/{family}" and manifest.max_batch_size == 12
    assert manifest.max_positions == config["max_position_embeddings"]
    assert manifest.vocab_size == config["vocab_size"] and manifest.default_max_length == 512
    assert tok.sha256 == file_sha256(model_dir / tok.file)
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id) == (0, 1, 2)
    tokenizer = Tokenizer.from_file(str(model_dir / tok.file))
    llm = manifest.llm
    assert llm.checkpoint_dir == "1/checkpoint" and (model_dir / llm.checkpoint_dir).is_dir()
    assert llm.yes_token_id == tokenizer.encode("Yes", add_special_tokens=False).ids[0]
    assert llm.query_instruction == "A: " and llm.passage_instruction == "B: "
    assert llm.query_instruction_format == llm.passage_instruction_format == "{}{}"
    assert llm.truncation_side == "right"
    assert llm.num_hidden_layers == config["num_hidden_layers"]
    # every key written is one the encoding or the server reads (LLMSettings' fields only)
    written = json.loads((model_dir / "reranker.json").read_text())["llm"]
    assert set(written) == {f.name for f in dataclasses.fields(LLMSettings)}


def test_manifest_layers_per_family(exported):
    gemma = exported[GEMMA][1].llm
    assert gemma.cutoff_layers == [] and gemma.default_cutoff_layers == []
    assert gemma.compress_ratios == [1]
    assert gemma.default_prompt.startswith("Given a query A and a passage B")
    layerwise = exported[MINICPM_LAYERWISE][1].llm  # 6 layers, start_layer 2
    assert layerwise.cutoff_layers == [2, 3, 4, 5, 6] and layerwise.default_cutoff_layers == [6]
    assert layerwise.compress_ratios == [1]
    assert layerwise.default_prompt == gemma.default_prompt
    light = exported[GEMMA2_LIGHTWEIGHT][1].llm  # 8 layers, start_layer 2, layer_sep 2, cap 3
    assert light.cutoff_layers == [2, 4, 6, 8] and light.default_cutoff_layers == [8]
    assert light.compress_ratios == [1, 2, 4, 8]
    assert light.default_compress_ratio == 1 and light.default_compress_layers == [8]
    assert light.default_prompt == "Predict whether passage B contains an answer to query A."


def test_yes_token_and_special_ids_match_transformers(exported, checkpoints):
    """An independent reading of the same tokenizer files (transformers' AutoTokenizer)."""
    from transformers import AutoTokenizer

    for family, (_, manifest) in exported.items():
        hf = AutoTokenizer.from_pretrained(str(checkpoints[family]))
        assert manifest.llm.yes_token_id == hf("Yes", add_special_tokens=False)["input_ids"][0]
        assert manifest.tokenizer.bos_token_id == hf.bos_token_id
        assert manifest.tokenizer.pad_token_id == hf.pad_token_id


def test_gemma_with_bos_equal_to_pad_adds_no_bos(checkpoints, tmp_path):
    ckpt = _fresh_copy(checkpoints[GEMMA], tmp_path)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        data = json.loads((ckpt / name).read_text())
        data["bos_token"] = "<pad>"
        (ckpt / name).write_text(json.dumps(data))
    manifest = _export(ckpt, tmp_path, GEMMA)
    tokenizer = Tokenizer.from_file(str(tmp_path / "out" / manifest.tokenizer.file))
    ids = encode_decoder_pair(tokenizer, manifest, "q", "p", max_length=32).input_ids
    assert (
        manifest.tokenizer.bos_token_id == manifest.tokenizer.pad_token_id
        and ids[0] != manifest.tokenizer.bos_token_id
    )


# --- family detection -------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_detects_the_tiny_checkpoints(checkpoints, family):
    assert detect_llm_family(json.loads((checkpoints[family] / "config.json").read_text())) == family


@pytest.mark.parametrize(
    "config, family",
    [
        ({"architectures": ["GemmaForCausalLM"], "model_type": "gemma"}, GEMMA),
        ({"model_type": "gemma"}, GEMMA),
        ({"architectures": ["LayerWiseMiniCPMForCausalLM"], "model_type": "minicpm"}, MINICPM_LAYERWISE),
        (
            {
                "model_type": "minicpm",
                "auto_map": {"AutoModelForCausalLM": "modeling_minicpm_reranker.LayerWiseMiniCPMForCausalLM"},
            },
            MINICPM_LAYERWISE,
        ),
        ({"model_type": "minicpm", "start_layer": 8, "head_multi": True}, MINICPM_LAYERWISE),
        (
            {"architectures": ["CostWiseGemmaForCausalLM"], "model_type": "cost_wise_gemma"},
            GEMMA2_LIGHTWEIGHT,
        ),
        ({"model_type": "cost_wise_gemma"}, GEMMA2_LIGHTWEIGHT),
        ({"model_type": "gemma2", "start_layer": 8, "layer_sep": 1}, GEMMA2_LIGHTWEIGHT),
        ({"architectures": ["MiniCPMForCausalLM"], "model_type": "minicpm"}, None),
        ({"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2"}, None),
        ({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}, None),
        ({"architectures": ["XLMRobertaForSequenceClassification"], "model_type": "xlm-roberta"}, None),
        ({}, None),
    ],
)
def test_detect_llm_family(config, family):
    assert detect_llm_family(config) == family


# --- bad checkpoints and options: one clear line ----------------------------------------------


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def _pickle_only(ckpt: Path) -> None:
    (ckpt / "model.safetensors").unlink()
    (ckpt / "pytorch_model.bin").write_bytes(b"not loaded")


def _lfs_pointer(ckpt: Path) -> None:
    (ckpt / "model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n"
    )


def _missing_shard(ckpt: Path) -> None:
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}})
    )


def _no_bos(ckpt: Path) -> None:
    _edit_json(ckpt / "tokenizer_config.json", bos_token=None)
    _edit_json(ckpt / "special_tokens_map.json", bos_token=None)


BAD_CHECKPOINTS = [
    (GEMMA, GEMMA, _pickle_only, r"only pickle \(\*\.bin\) weights"),
    (GEMMA, GEMMA, lambda c: (c / "model.safetensors").unlink(), "has no model.safetensors"),
    (GEMMA, GEMMA, _lfs_pointer, "not a readable safetensors file"),
    (GEMMA, GEMMA, _missing_shard, "names missing shards: model-00001-of-00002.safetensors"),
    (
        GEMMA,
        GEMMA,
        lambda c: (c / "tokenizer.json").unlink(),
        r"has no tokenizer.json \(nor a tokenizer.model",
    ),
    (
        GEMMA,
        GEMMA,
        lambda c: [(c / "tokenizer.json").unlink(), (c / "tokenizer.model").write_bytes(b"x")],
        "has no tokenizer.json and no convertible tokenizer",
    ),
    (GEMMA, GEMMA, lambda c: (c / "config.json").write_text("{"), "cannot read"),
    (
        GEMMA,
        GEMMA,
        lambda c: _edit_json(c / "config.json", max_position_embeddings=None),
        "max_position_embeddings must be a positive integer",
    ),
    (GEMMA, GEMMA2_LIGHTWEIGHT, lambda c: None, "is a gemma checkpoint, not gemma2_lightweight"),
    (
        MINICPM_LAYERWISE,
        MINICPM_LAYERWISE,
        lambda c: _edit_json(c / "config.json", start_layer=1),
        r"weights lack 1 tensor\(s\) the score needs, e\.g\. lm_head\.5\.linear_head\.weight",
    ),
    (
        MINICPM_LAYERWISE,
        MINICPM_LAYERWISE,
        lambda c: _edit_json(c / "config.json", head_type="raw"),
        "only head_type 'simple'",
    ),
    (MINICPM_LAYERWISE, MINICPM_LAYERWISE, _no_bos, "needs a tokenizer with a bos token"),
    (
        GEMMA2_LIGHTWEIGHT,
        GEMMA2_LIGHTWEIGHT,
        lambda c: _edit_json(c / "config.json", layer_wise=False),
        "without layer_wise: true",
    ),
    (
        GEMMA2_LIGHTWEIGHT,
        GEMMA2_LIGHTWEIGHT,
        lambda c: _edit_json(c / "config.json", start_layer=9),
        "start_layer 9 is past num_hidden_layers 8",
    ),
]


@pytest.mark.parametrize("built, family, damage, message", BAD_CHECKPOINTS)
def test_bad_checkpoints_fail_with_one_clear_line(checkpoints, tmp_path, built, family, damage, message):
    ckpt = _fresh_copy(checkpoints[built], tmp_path)
    damage(ckpt)
    with pytest.raises(ExportError, match=message) as info:
        _export(ckpt, tmp_path, family)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dtype": "int8"}, "dtype 'int8' is not supported"),
        ({"weights": "move"}, "weights must be 'link' or 'copy'"),
        ({"max_batch_size": 0}, "max_batch_size must be an integer >= 1"),
        ({"instance_count": 0}, "instance_count must be an integer >= 1"),
        ({"max_queue_delay_us": -1}, "max_queue_delay_us must be an integer >= 0"),
        ({"max_batch_tokens": 0}, "max_batch_tokens must be an integer >= 1"),
        ({"intra_op_threads": -2}, "intra_op_threads must be an integer >= 0"),
        ({"family": "encoder"}, "'encoder' is not an LLM reranker family"),
    ],
)
def test_bad_options_fail_with_one_clear_line(checkpoints, tmp_path, kwargs, message):
    args = {"name": "m", "family": GEMMA, "max_batch_size": 4, **kwargs}
    with pytest.raises(ExportError, match=message) as info:
        export_llm(checkpoints[GEMMA], tmp_path / "out", **args)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_cli_exports_an_llm_reranker(checkpoints, tmp_path):
    from export.__main__ import main

    repo = tmp_path / "repo"
    assert (
        main(
            [
                "--model",
                str(checkpoints[GEMMA2_LIGHTWEIGHT]),
                "--name",
                "light",
                "--repository",
                str(repo),
                "--dtype",
                "bfloat16",
                "--max-batch-size",
                "8",
            ]
        )
        == 0
    )
    manifest = ModelManifest.load(repo / "light")
    assert manifest.family == GEMMA2_LIGHTWEIGHT and manifest.llm.dtype == "bfloat16"
    assert _parse(repo / "light" / "config.pbtxt").max_batch_size == 8
    assert os.path.islink(repo / "light" / "1" / "checkpoint" / "model.safetensors")
