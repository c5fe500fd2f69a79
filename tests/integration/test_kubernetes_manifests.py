"""deploy/kubernetes checked offline: the renderer (against kubectl kustomize), Kubernetes schemas
(kubernetes-validate, strict), checkov, and ties to the code: docker/serve.sh, docker-compose.yml,
the export's CPU config, the rerank API's contract, the capacity plan's measured figure."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

from tests.support import k8s  # noqa: E402

REPO = k8s.REPO
SERVE = REPO / "docker" / "serve.sh"
KEY = "k" * 8 + "0123456789abcdef"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {overlay: k8s.render(overlay) for overlay in k8s.OVERLAYS}


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def compose_image(service: str) -> str | None:
    spec = compose()["services"].get(service)
    if spec is None:
        return None
    match = re.fullmatch(r"\$\{[A-Z_]+:-(.+)\}|(.+)", spec["image"])
    return match.group(1) or match.group(2)


# ---- rendering --------------------------------------------------------------------------------


def test_make_k8s_prints_the_chosen_overlay(rendered):
    for overlay in k8s.OVERLAYS:
        out = subprocess.run(
            ["make", "-s", "k8s", f"OVERLAY={overlay}", "K8S_RENDERER=python"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        docs = [d for d in yaml.safe_load_all(out.stdout) if d]
        assert docs == rendered[overlay]
        assert docs[0]["kind"] == "Namespace"
    bad = subprocess.run(
        ["make", "-s", "k8s", "OVERLAY=nope"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode != 0 and "no overlay 'nope'" in bad.stderr


@pytest.mark.parametrize("overlay", k8s.OVERLAYS)
def test_python_renderer_equals_kubectl_kustomize(overlay, rendered):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: render.py is checked against kustomize where it is")
    out = subprocess.run(
        [kubectl, "kustomize", str(k8s.K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert [d for d in yaml.safe_load_all(out.stdout) if d] == rendered[overlay]


def test_renderer_refuses_what_it_does_not_support(tmp_path):
    def kustomization(text: str, **files: str) -> Path:
        d = tmp_path / f"k{len(list(tmp_path.iterdir()))}"
        d.mkdir()
        (d / "kustomization.yaml").write_text(text)
        for name, body in files.items():
            (d / name).write_text(body)
        return d

    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
    with pytest.raises(k8s.renderer.RenderError, match="namePrefix"):
        k8s.renderer.render(kustomization("namePrefix: x-\nresources: [a.yaml]\n", **{"a.yaml": cm}))
    with pytest.raises(k8s.renderer.RenderError, match="disableNameSuffixHash"):
        k8s.renderer.render(kustomization("configMapGenerator: [{name: g, literals: [a=b]}]\n"))
    with pytest.raises(k8s.renderer.RenderError, match="matches 0 resources"):
        k8s.renderer.render(
            kustomization(
                "resources: [a.yaml]\npatches: [{path: p.yaml}]\n",
                **{"a.yaml": cm, "p.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n"},
            )
        )
    with pytest.raises(k8s.renderer.RenderError, match="not found"):
        k8s.renderer.render(kustomization("resources: [missing.yaml]\n"))
    assert k8s.renderer.main([str(tmp_path / "nowhere")]) == 2


def test_strategic_merge_follows_kubernetes_list_keys():
    merge = k8s.renderer.strategic_merge
    base = {
        "containers": [
            {
                "name": "a",
                "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                "args": ["--a"],
                "ports": [{"containerPort": 1, "name": "p"}],
            }
        ],
        "tolerations": [{"key": "t"}],
        "drop": 1,
    }
    patch = {
        "containers": [
            {
                "name": "a",
                "env": [{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}],
                "args": ["--b"],
                "ports": [{"containerPort": 1, "protocol": "TCP"}],
            }
        ],
        "tolerations": [{"key": "u"}],
        "drop": None,
    }
    out = merge(base, patch)
    c = out["containers"][0]
    assert c["env"] == [{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}, {"name": "X", "value": "1"}]
    assert c["args"] == ["--b"]  # no merge key: replaced
    assert c["ports"] == [{"containerPort": 1, "name": "p", "protocol": "TCP"}]
    assert out["tolerations"] == [{"key": "u"}] and "drop" not in out
    assert base["containers"][0]["args"] == ["--a"]  # inputs untouched


# ---- schemas and security ------------------------------------------------------------------


def _write(docs: list[dict], path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def test_every_document_validates_against_the_kubernetes_schemas(rendered, tmp_path):
    tool = k8s.deploy_tool("kubernetes-validate")
    files = []
    for overlay, docs in rendered.items():
        builtin = [d for d in docs if (d["apiVersion"], d["kind"]) not in k8s.CUSTOM_RESOURCES]
        assert len(builtin) >= len(docs) - 2
        files.append(_write(builtin, tmp_path / f"{overlay}.yaml"))
    out = subprocess.run(
        [tool, "--strict", "-k", k8s.KUBERNETES_VERSION, "--no-warn", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("passed for resource") == sum(len(_load(f)) for f in files)
    # strict validation rejects an unknown field and a wrong type (else this proves nothing)
    unknown = json.loads(json.dumps(k8s.find(rendered["gpu"], "Deployment", "triton")))
    unknown["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1
    wrong_type = json.loads(json.dumps(k8s.find(rendered["gpu"], "Deployment", "rerank-api")))
    wrong_type["spec"]["revisionHistoryLimit"] = "five"
    out = subprocess.run(
        [
            tool,
            "--strict",
            "-k",
            k8s.KUBERNETES_VERSION,
            "--no-warn",
            str(_write([unknown, wrong_type], tmp_path / "bad.yaml")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    errors = [line for line in out.stdout.splitlines() if "did not validate" in line]
    assert len(errors) == 2 and "gpus" in errors[0] and "five" in errors[1], out.stdout


def _load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# ServiceMonitor fields the manifests may use (Prometheus Operator CRD monitoring.coreos.com/v1);
# kubernetes-validate has no schema for custom resources.
SERVICE_MONITOR_FIELDS = {
    "": {"apiVersion", "kind", "metadata", "spec"},
    "spec": {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels"},
    "spec.selector": {"matchLabels", "matchExpressions"},
    "spec.endpoints[]": {
        "port",
        "path",
        "interval",
        "scrapeTimeout",
        "scheme",
        "honorLabels",
        "relabelings",
        "metricRelabelings",
        "tlsConfig",
        "bearerTokenSecret",
    },
}


def test_service_monitors_select_the_metrics_ports(rendered):
    for docs in rendered.values():
        monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
        assert {m["metadata"]["name"] for m in monitors} == {"triton", "rerank-api"}
        for m in monitors:
            assert set(m) <= SERVICE_MONITOR_FIELDS[""] and set(m["spec"]) <= SERVICE_MONITOR_FIELDS["spec"]
            assert set(m["spec"]["selector"]) <= SERVICE_MONITOR_FIELDS["spec.selector"]
            want = m["spec"]["selector"]["matchLabels"]
            services = [
                s for s in docs if s["kind"] == "Service" and want.items() <= s["metadata"]["labels"].items()
            ]
            assert len(services) == 1, m["metadata"]["name"]
            for ep in m["spec"]["endpoints"]:
                assert set(ep) <= SERVICE_MONITOR_FIELDS["spec.endpoints[]"]
                assert ep["port"] in {p["name"] for p in services[0]["spec"]["ports"]}
                assert ep["path"] == "/metrics"
        triton = k8s.find(docs, "ServiceMonitor", "triton")
        assert triton["spec"]["endpoints"][0]["port"] == "metrics"


def test_checkov_reports_nothing_unjustified(rendered, tmp_path):
    tool = k8s.deploy_tool("checkov")
    scan = tmp_path / "scan"
    scan.mkdir()
    for overlay, docs in rendered.items():
        _write(docs, scan / f"{overlay}.yaml")
    # a privileged, root, writable container must be reported (else the scan proves nothing)
    bad = json.loads(json.dumps(k8s.find(rendered["cpu"], "Deployment", "rerank-api")))
    bad["metadata"]["name"] = "bad"
    bad["metadata"].pop("annotations")
    bad["spec"]["template"]["spec"]["securityContext"] = {"runAsUser": 0}
    bad["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    _write([bad], scan / "bad.yaml")
    out = subprocess.run(
        [tool, "-d", str(scan), "--framework", "kubernetes", "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(out.stdout)
    results = report["results"]
    failed = [(c["check_id"], c["file_path"], c["resource"]) for c in results["failed_checks"]]
    ours = [f for f in failed if not f[1].endswith("bad.yaml")]
    assert ours == [], ours
    assert {"CKV_K8S_16", "CKV_K8S_23"} & {f[0] for f in failed}  # privileged / root: caught
    # every skip carries its reason (checkov.io/skipN: CHECK=reason in the manifests)
    skipped = results.get("skipped_checks", [])
    assert skipped
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]


# ---- ties to the code -----------------------------------------------------------------------


def test_images_carry_the_release_tag_of_docker_compose(rendered):
    triton_image = compose_image("triton")
    assert triton_image and triton_image.startswith("bge-reranker-triton:")
    tag = triton_image.split(":")[1]
    api_image = compose_image("rerank-api")
    assert api_image == f"bge-reranker-api:{tag}"  # one release tag for both images
    for docs in rendered.values():
        images = {c["image"] for d in docs for c in k8s.pod_containers(d)}
        assert images <= {triton_image, api_image}, images
        assert k8s.container(docs, "triton")["image"] == triton_image
        assert k8s.container(docs, "rerank-api")["image"] == api_image


def _serve_flags() -> dict[str, str]:
    text = SERVE.read_text()
    return {name: value for name, value in re.findall(r"--(http-port|grpc-port|metrics-port)=(\d+)", text)}


def test_triton_ports_probes_and_services_match_serve_sh_and_compose(rendered):
    flags = _serve_flags()
    want = {
        "http": int(flags["http-port"]),
        "grpc": int(flags["grpc-port"]),
        "metrics": int(flags["metrics-port"]),
    }
    published = {int(p.split(":")[-1]) for p in compose()["services"]["triton"]["ports"]}
    assert set(want.values()) == published
    for docs in rendered.values():
        c = k8s.container(docs, "triton")
        assert {p["name"]: p["containerPort"] for p in c["ports"]} == want
        assert c["startupProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
        # the startup probe gives a slow model load at least the compose healthcheck's 600 s
        start = c["startupProbe"]
        assert start["periodSeconds"] * start["failureThreshold"] >= 600
        for service in ("triton", "triton-metrics"):
            for port in k8s.find(docs, "Service", service)["spec"]["ports"]:
                assert port["targetPort"] in want and port["port"] == want[port["targetPort"]]
        ports = {
            p["name"]
            for s in ("triton", "triton-metrics")
            for p in k8s.find(docs, "Service", s)["spec"]["ports"]
        }
        assert ports == set(want)
        # /dev/shm as large as compose's shm_size
        shm = next(
            v
            for v in k8s.find(docs, "Deployment", "triton")["spec"]["template"]["spec"]["volumes"]
            if v["name"] == "dshm"
        )
        assert shm["emptyDir"]["medium"] == "Memory"
        assert shm["emptyDir"]["sizeLimit"].rstrip("Gi") == compose()["services"]["triton"][
            "shm_size"
        ].rstrip("gb")


def _container_env(c: dict, tmp: Path) -> dict[str, str]:
    """The container's environment with its mounts moved under `tmp` (secrets written out)."""
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    mounts = sorted(c["volumeMounts"], key=lambda m: -len(m["mountPath"]))  # deepest first
    for name, value in env.items():
        for mount in mounts:
            if value.startswith(mount["mountPath"] + "/") or value == mount["mountPath"]:
                local = tmp / mount["name"]
                local.mkdir(exist_ok=True)
                env[name] = str(local) + value[len(mount["mountPath"]) :]
                break
    for mount in mounts:
        (tmp / mount["name"]).mkdir(exist_ok=True)
    return env


@pytest.mark.parametrize("overlay", k8s.OVERLAYS)
def test_the_deployment_environment_makes_serve_sh_build_the_production_command(overlay, rendered, tmp_path):
    docs = rendered[overlay]
    c = k8s.container(docs, "triton")
    pod = k8s.find(docs, "Deployment", "triton")["spec"]["template"]["spec"]
    secret = next(v for v in pod["volumes"] if v["name"] == "admin-key")["secret"]
    env = _container_env(c, tmp_path)
    (item,) = secret["items"]
    (tmp_path / "admin-key" / item["path"]).write_text(KEY + "\n")
    fake = tmp_path / "tritonserver"
    fake.write_text("#!/usr/bin/env bash\nprintf '%s\\n' \"$@\"\n")
    fake.chmod(0o755)
    out = subprocess.run(
        ["bash", str(SERVE)],
        env={**env, "TRITONSERVER": str(fake), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    args = out.stdout.splitlines()
    restricted = f"model-repository,shared-memory,trace,logging:admin-key={KEY}"
    for flag in (
        "--model-control-mode=none",
        "--strict-readiness=true",
        f"--model-repository={env['MODEL_REPOSITORY']}",
        f"--http-restricted-api={restricted}",
        f"--grpc-restricted-protocol={restricted}",
        "--allow-metrics=true",
        "--allow-gpu-metrics=true",
        f"--exit-timeout-secs={env['TRITON_DRAIN_TIMEOUT_S']}",
    ):
        assert flag in args, flag
    config = [a for a in args if a.startswith("--model-config-name=")]
    if overlay == "cpu":
        # the config the overlay's export Job writes (test_kubernetes_metrics.py exports it)
        assert config == ["--model-config-name=openvino"]
        assert env["MODEL_REPOSITORY"].startswith(str(tmp_path))  # the PVC mount
    else:
        assert config == []
        assert re.fullmatch(r"s3://[\w.-]+/\S+", env["MODEL_REPOSITORY"])


def test_admin_key_secret_matches_compose_and_serve_sh(rendered):
    compose_secret = compose()["services"]["triton"]["secrets"][0]
    serve = SERVE.read_text()
    assert 'ADMIN_KEY_FILE="${TRITON_ADMIN_KEY_FILE:-' in serve
    for docs in rendered.values():
        pod = k8s.find(docs, "Deployment", "triton")["spec"]["template"]["spec"]
        c = k8s.container(docs, "triton")
        secret = next(v for v in pod["volumes"] if v["name"] == "admin-key")["secret"]
        assert secret["secretName"] == compose_secret.replace("_", "-")  # triton-admin-key
        assert secret["items"] == [{"key": compose_secret, "path": compose_secret}]
        mount = next(m for m in c["volumeMounts"] if m["name"] == "admin-key")
        assert mount["readOnly"] is True
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["TRITON_ADMIN_KEY_FILE"] == f"{mount['mountPath']}/{compose_secret}"
        assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in c["env"])  # files, not env


def test_security_context_is_restricted(rendered):
    for docs in rendered.values():
        assert (
            k8s.find(docs, "Namespace", docs[0]["metadata"]["name"])["metadata"]["labels"][
                "pod-security.kubernetes.io/enforce"
            ]
            == "restricted"
        )
        for doc in docs:
            if doc["kind"] not in ("Deployment", "Job"):
                continue
            pod = doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] == 10001  # the user of docker/Dockerfile
            assert pod["automountServiceAccountToken"] is False
            for c in k8s.pod_containers(doc):
                sc = c["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
                assert sc["capabilities"] == {"drop": ["ALL"]}
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r"^USER 10001$", dockerfile, re.M)


def test_gpu_overlay_schedules_one_gpu_per_triton_pod(rendered):
    docs = rendered["gpu"]
    c = k8s.container(docs, "triton")
    assert c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    pod = k8s.find(docs, "Deployment", "triton")["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    spread = {t["topologyKey"] for t in pod["topologySpreadConstraints"]}
    assert spread == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert "replicas" not in k8s.find(docs, "Deployment", "triton")["spec"]  # the HPA owns it
    for doc in rendered["cpu"]:
        for c in k8s.pod_containers(doc):
            assert "nvidia.com/gpu" not in json.dumps(c.get("resources", {}))


def test_cpu_overlay_fills_a_pvc_with_the_export_job(rendered):
    docs = rendered["cpu"]
    job = k8s.find(docs, "Job", "export-model")
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["python3", "-m", "export"]
    args = c["args"]
    repo = args[args.index("--repository") + 1]
    assert {"name": "models", "mountPath": repo} in c["volumeMounts"]
    # the arguments parse with the exporter's own CLI
    from export.__main__ import parse_args

    parsed = parse_args(args)
    assert parsed.repository == repo
    pvc = k8s.find(docs, "PersistentVolumeClaim", "model-repository")
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for d in docs
        if d["kind"] in ("Deployment", "Job")
        for v in d["spec"]["template"]["spec"].get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    assert claims == {pvc["metadata"]["name"]}
    triton = k8s.container(docs, "triton")
    env = {e["name"]: e.get("value") for e in triton["env"]}
    assert {"name": "models", "mountPath": env["MODEL_REPOSITORY"], "readOnly": True} in triton[
        "volumeMounts"
    ]
    # the image carries export/ (the Job runs it) and ONNX Runtime (the CPU configs need it)
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r"^COPY export/ export/$", dockerfile, re.M)
    product = (REPO / "requirements" / "server.txt").read_text()
    want = re.search(r"^onnxruntime\S*", product, re.M).group(0)
    assert re.search(rf"^{re.escape(want)}$", (REPO / "docker" / "requirements-gpu.txt").read_text(), re.M)


def test_network_policies_admit_only_the_api_and_prometheus(rendered):
    for docs in rendered.values():
        deny = k8s.find(docs, "NetworkPolicy", "default-deny-ingress")["spec"]
        assert deny["podSelector"] == {} and "ingress" not in deny
        policy = k8s.find(docs, "NetworkPolicy", "triton")["spec"]
        assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "triton"}
        api_labels = k8s.find(docs, "Deployment", "rerank-api")["spec"]["template"]["metadata"]["labels"]
        rules = {}
        for rule in policy["ingress"]:
            (peer,) = rule["from"]
            rules[json.dumps(peer, sort_keys=True)] = {p["port"] for p in rule["ports"]}
        api_peer = json.dumps(
            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "rerank-api"}}}, sort_keys=True
        )
        assert rules.pop(api_peer) == {8001}
        assert api_labels["app.kubernetes.io/name"] == "rerank-api"
        ((prom_peer, prom_ports),) = rules.items()
        assert "prometheus" in prom_peer and "namespaceSelector" in prom_peer and prom_ports == {8002}
        # the API reaches Triton on the port its --triton-url names
        args = k8s.container(docs, "rerank-api")["args"]
        host, port = args[args.index("--triton-url") + 1].removeprefix("dns:///").rsplit(":", 1)
        assert host.split(".")[0] == "triton-headless"
        assert int(port) in {
            p["port"]
            for p in k8s.find(docs, "Service", "triton-headless")["spec"]["ports"]
            if p["name"] == "grpc"
        }


UNLOAD_MARGIN_S = 10  # after the drain: models unload, the process exits
API_EXIT_MARGIN_S = 5
COREDNS_TTL_S = 5  # CoreDNS's kubernetes plugin answers with a 5 s TTL by default


def _pre_stop_sleep(c: dict) -> int:
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    return int(command[1])


def test_stopping_pods_drain_within_their_grace_period(rendered):
    """Triton: preStop + drain (TRITON_DRAIN_TIMEOUT_S, Triton's --exit-timeout-secs) + unloading
    fit the grace period, and preStop outlasts the API's DNS refresh; the API: preStop +
    --graceful-timeout-s + exit fit its own."""
    from reranker_api.settings import parse_settings

    for docs in rendered.values():
        triton = k8s.container(docs, "triton")
        env = {e["name"]: e["value"] for e in triton["env"] if "value" in e}
        drain = int(env["TRITON_DRAIN_TIMEOUT_S"])
        pod = k8s.find(docs, "Deployment", "triton")["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= _pre_stop_sleep(triton) + drain + UNLOAD_MARGIN_S
        api = k8s.container(docs, "rerank-api")
        namespace = k8s.find(docs, "Deployment", "rerank-api")["metadata"]["namespace"]
        settings = parse_settings([a.replace("$(POD_NAMESPACE)", namespace) for a in api["args"]], env={})
        # a stopping Triton pod keeps accepting until every API pod has re-resolved the headless name
        assert _pre_stop_sleep(triton) >= settings.dns_refresh_s + COREDNS_TTL_S
        api_pod = k8s.find(docs, "Deployment", "rerank-api")["spec"]["template"]["spec"]
        assert api_pod["terminationGracePeriodSeconds"] >= (
            _pre_stop_sleep(api) + settings.graceful_timeout_s + API_EXIT_MARGIN_S
        )


def test_the_api_reaches_every_triton_pod_through_the_headless_service(rendered):
    for docs in rendered.values():
        triton = k8s.find(docs, "Deployment", "triton")
        headless = k8s.find(docs, "Service", "triton-headless")["spec"]
        assert headless["clusterIP"] == "None" and not headless.get("publishNotReadyAddresses", False)
        labels = triton["spec"]["template"]["metadata"]["labels"]
        assert headless["selector"].items() <= labels.items()
        grpc = next(p for p in k8s.container(docs, "triton")["ports"] if p["name"] == "grpc")
        (port,) = headless["ports"]
        assert (port["name"], port["port"], port["targetPort"]) == ("grpc", grpc["containerPort"], "grpc")
        api = k8s.container(docs, "rerank-api")
        args = api["args"]
        url = args[args.index("--triton-url") + 1]
        assert url == f"dns:///triton-headless.$(POD_NAMESPACE).svc.cluster.local:{grpc['containerPort']}"
        namespace = next(e for e in api["env"] if e["name"] == "POD_NAMESPACE")
        assert namespace["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
        assert api["env"].index(namespace) == 0  # defined before anything that could refer to it


def test_api_deployment_follows_the_api_contract(rendered):
    for docs in rendered.values():
        c = k8s.container(docs, "rerank-api")
        assert c["command"] == k8s.API_COMMAND
        args = c["args"]
        assert args[args.index("--port") + 1] == str(k8s.API_PORT)
        assert args[args.index("--host") + 1] == "0.0.0.0"
        assert c["ports"] == [{"name": "http", "containerPort": k8s.API_PORT, "protocol": "TCP"}]
        assert c["readinessProbe"]["httpGet"] == {"path": k8s.API_READY_PATH, "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": k8s.API_LIVE_PATH, "port": "http"}
        env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
        mount = next(m for m in c["volumeMounts"] if m["name"] == "api-keys")
        assert env[k8s.API_KEYS_FILE_ENV].startswith(mount["mountPath"] + "/")
        monitor = k8s.find(docs, "ServiceMonitor", "rerank-api")["spec"]["endpoints"][0]
        assert monitor["path"] == k8s.API_METRICS_PATH
        service = k8s.find(docs, "Service", "rerank-api")["spec"]["ports"]
        assert service == [{"name": "http", "port": k8s.API_PORT, "targetPort": "http", "protocol": "TCP"}]
        hpa = k8s.find(docs, "HorizontalPodAutoscaler", "rerank-api")["spec"]
        assert {m["type"] for m in hpa["metrics"]} == {"Resource", "Pods"}


# ---- autoscaling, adapter rules, dashboard ---------------------------------------------------


def _measured_fp16_512() -> float:
    """The H200 figure the plan starts from (a stand-in program's, so labelled in the docs):
    docs/deployment.md, fp16 row, 512 tokens."""
    text = (REPO / "docs" / "deployment.md").read_text()
    header = re.search(
        r"^\| precision( \(stand-in program\))? \| 128 tokens \| 512 tokens \| 2048 tokens \|$", text, re.M
    )
    assert header, "the H200 throughput table is gone from docs/deployment.md"
    row = re.search(r"^\| fp16 \| [^|]+\| (\d+) \(", text[header.end() :], re.M)
    return float(row.group(1))


def test_hpa_bounds_and_target_follow_the_capacity_plan(rendered):
    plan = k8s.capacity.plan(_measured_fp16_512())
    hpa = k8s.find(rendered["gpu"], "HorizontalPodAutoscaler", "triton")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (plan.min_replicas, plan.max_replicas)
    (metric,) = hpa["metrics"]
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": str(plan.hpa_target_queue_us)}
    assert plan.p99_latency_ms <= 300  # the objective holds in the model
    doc = (REPO / "docs" / "kubernetes.md").read_text()
    for figure in (
        f"{plan.gpus} GPUs",
        f"maxReplicas {plan.max_replicas}",
        f"{plan.hpa_target_queue_us // 1000} ms",
        f"${plan.usd_per_million_pairs:.2f}",
    ):
        assert figure in doc, figure
    cpu = k8s.find(rendered["cpu"], "HorizontalPodAutoscaler", "triton")["spec"]
    assert cpu["minReplicas"] == 1 and cpu["maxReplicas"] >= 1


def test_capacity_plan_arithmetic_and_errors():
    cap = k8s.capacity
    p = cap.plan(
        1000,
        requests_per_s=10,
        pairs_per_request=100,
        utilization=0.5,
        spare_fraction=0.5,
        usd_per_gpu_hour=3.6,
    )
    assert p.gpus == 2 and p.max_replicas == 3
    assert p.service_ms == pytest.approx(100) and p.mean_queue_ms == pytest.approx(50)
    assert p.hpa_target_queue_us == 50_000 and p.usd_per_million_pairs == pytest.approx(2.0)
    with pytest.raises(ValueError, match="utilization"):
        cap.plan(1000, utilization=1.0)
    with pytest.raises(ValueError, match="positive"):
        cap.plan(0)


def test_hpa_metrics_are_served_by_the_adapter_rules(rendered):
    rules = {r["name"]["as"]: r for r in k8s.adapter_rules()}
    for docs in rendered.values():
        for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
            target = hpa["spec"]["scaleTargetRef"]
            assert k8s.find(docs, target["kind"], target["name"])
            for metric in hpa["spec"]["metrics"]:
                if metric["type"] == "Pods":
                    assert metric["pods"]["metric"]["name"] in rules
    for rule in rules.values():
        (series,) = k8s.metric_names(rule["seriesQuery"])
        assert re.fullmatch(rule["name"]["matches"], series)
        assert series in k8s.metric_names(rule["metricsQuery"])
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
        assert "<<.LabelMatchers>>" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]
    queue = rules["triton_queue_time_per_request_us"]["metricsQuery"]
    assert k8s.metric_names(queue) == {"nv_inference_queue_duration_us", "nv_inference_request_success"}


def test_dashboard_has_the_operator_panels_and_uses_known_metrics():
    dash = k8s.dashboard()
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    exprs = " ".join(k8s.dashboard_exprs())
    for needed in (
        "nv_inference_queue_duration_us",
        "reranker_api_pairs_total",
        "histogram_quantile(0.50",
        "histogram_quantile(0.99",
        "nv_gpu_utilization",
        "reranker_api_errors_total",
        "nv_inference_request_failure",
    ):
        assert needed in exprs, needed
    for expr in k8s.dashboard_exprs():
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
        assert k8s.metric_names(expr), expr
    used = k8s.used_metric_names()
    assert {n for n in used if n.startswith("reranker_api_")} <= k8s.API_METRICS
    assert {n for n in used if n.startswith("kube_")} <= k8s.KUBE_STATE_METRICS
    # the generated ConfigMap carries the file unchanged, labelled for Grafana's sidecar
    for overlay in k8s.OVERLAYS:
        cm = k8s.find(k8s.render(overlay), "ConfigMap", "reranker-grafana-dashboard")
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(cm["data"]["reranker-dashboard.json"]) == dash


def test_serve_sh_accepts_object_storage_repositories_only_as_urls(tmp_path):
    fake = tmp_path / "tritonserver"
    fake.write_text("#!/usr/bin/env bash\nprintf '%s\\n' \"$@\"\n")
    fake.chmod(0o755)
    base = {"TRITONSERVER": str(fake), "TRITON_ADMIN_KEY": KEY, "PATH": "/usr/bin:/bin"}
    for url in ("s3://bucket/models", "gs://bucket/a/b", "as://account/container/models"):
        out = subprocess.run(
            ["bash", str(SERVE)],
            env={**base, "MODEL_REPOSITORY": url},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        assert f"--model-repository={url}" in out.stdout.splitlines()
    for bad in ("s3://", "http://bucket/models", str(tmp_path / "missing"), "s3://bucket/with space"):
        out = subprocess.run(
            ["bash", str(SERVE)],
            env={**base, "MODEL_REPOSITORY": bad},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 64 and "model repository" in out.stderr, bad


def test_the_api_deployment_matches_the_api_package_and_compose(rendered):
    """The contract comes from the package (tests/support/k8s.py); check that it is the one the
    issue's dashboard and rules were written for, and that the keys secret is compose's."""
    assert k8s.API_COMMAND == ["python", "-m", "reranker_api"]
    assert {
        "reranker_api_requests_total",
        "reranker_api_request_duration_seconds",
        "reranker_api_pairs_total",
        "reranker_api_errors_total",
    } <= k8s.API_METRICS
    api = compose()["services"]["rerank-api"]
    (compose_secret,) = api["secrets"]
    for docs in rendered.values():
        pod = k8s.find(docs, "Deployment", "rerank-api")["spec"]["template"]["spec"]
        secret = next(v for v in pod["volumes"] if v["name"] == "api-keys")["secret"]
        assert secret["secretName"] == compose_secret.replace("_", "-")
        assert secret["items"] == [{"key": compose_secret, "path": compose_secret}]
        mount = next(m for m in k8s.container(docs, "rerank-api")["volumeMounts"] if m["name"] == "api-keys")
        env = {e["name"]: e["value"] for e in k8s.container(docs, "rerank-api")["env"] if "value" in e}
        assert env[k8s.API_KEYS_FILE_ENV] == f"{mount['mountPath']}/{compose_secret}"
        assert api["environment"][k8s.API_KEYS_FILE_ENV].endswith("/" + compose_secret)
