"""Render a kustomization (the subset these manifests use) to one multi-document YAML stream.

`make k8s` uses `kubectl kustomize` where kubectl is installed and this renderer otherwise; the
test suite checks that both give the same documents. Supported kustomization fields: resources
(files and directories), namespace, images (newName, newTag, digest), patches (strategic-merge
patch files given by `path`, matched by kind and name), configMapGenerator (files and literals,
with options.disableNameSuffixHash: true). Anything else is refused with an error naming it.

    python deploy/kubernetes/render.py deploy/kubernetes/overlays/gpu > gpu.yaml
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "patches", "configMapGenerator"}
# Kinds without a namespace (the ones a reranker deployment could meet).
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
}
# kustomize's "legacy" output order: these kinds first, in this order, the webhooks last, every
# other kind in between by group/version/kind; then by namespace and name.
ORDER_FIRST = [
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
]
ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
# Strategic-merge keys of the Kubernetes list fields these manifests patch; other lists are replaced.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
    "hostAliases": "ip",
}


class RenderError(ValueError):
    """A kustomization this renderer cannot render, with the reason."""


def render(directory: Path) -> list[Doc]:
    """The documents of the kustomization in `directory`, transformed and in kustomize's order."""
    return sorted(_build(Path(directory)), key=_order_key)


class _Dumper(yaml.SafeDumper):
    """Prints multi-line strings as literal blocks, as kustomize does."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not any(c in value for c in "\t\r") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump(docs: Iterable[Doc]) -> str:
    """Multi-document YAML, keys sorted (as kustomize prints them)."""
    return yaml.dump_all(list(docs), Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=1 << 16)


def _build(directory: Path) -> list[Doc]:
    kustomization = _read_kustomization(directory)
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            docs.extend(_build(path))
        elif path.is_file():
            docs.extend(_load_documents(path))
        else:
            raise RenderError(f"{directory}: resource {entry!r} not found")
    docs.extend(_generate_config_maps(directory, kustomization.get("configMapGenerator", [])))
    for patch in kustomization.get("patches", []):
        _apply_patch_file(directory, patch, docs)
    if "namespace" in kustomization:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    for image in kustomization.get("images", []):
        for doc in docs:
            _set_image(doc, image)
    return docs


def _read_kustomization(directory: Path) -> Doc:
    for name in KUSTOMIZATION_FILES:
        path = directory / name
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            unsupported = sorted(set(data) - SUPPORTED_FIELDS)
            if unsupported:
                raise RenderError(
                    f"{path}: fields not supported by this renderer: "
                    f"{', '.join(unsupported)} (use kubectl kustomize)"
                )
            return data
    raise RenderError(f"{directory}: no kustomization.yaml")


def _load_documents(path: Path) -> list[Doc]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
            raise RenderError(f"{path}: every document needs kind and metadata")
    return docs


def _generate_config_maps(directory: Path, generators: list[Doc]) -> list[Doc]:
    maps = []
    for gen in generators:
        options = gen.get("options", {})
        if not options.get("disableNameSuffixHash"):
            raise RenderError(
                f"{directory}: configMapGenerator {gen.get('name')!r}: name hash "
                "suffixes are not supported here; set options.disableNameSuffixHash"
            )
        data: dict[str, str] = {}
        for entry in gen.get("files", []):
            key, _, file = entry.partition("=") if "=" in entry else (Path(entry).name, "", entry)
            data[key] = (directory / file).read_text()
        for literal in gen.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        metadata: Doc = {"name": gen["name"]}
        for field in ("labels", "annotations"):
            if options.get(field):
                metadata[field] = dict(options[field])
        maps.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    return maps


def _apply_patch_file(directory: Path, patch: Doc, docs: list[Doc]) -> None:
    unsupported = sorted(set(patch) - {"path"})
    if unsupported:
        raise RenderError(f"{directory}: patch fields not supported: {', '.join(unsupported)}")
    for change in _load_documents(directory / patch["path"]):
        targets = [
            d
            for d in docs
            if d["kind"] == change["kind"] and d["metadata"].get("name") == change["metadata"].get("name")
        ]
        if len(targets) != 1:
            raise RenderError(
                f"{directory / patch['path']}: {change['kind']}/"
                f"{change['metadata'].get('name')} matches {len(targets)} resources"
            )
        merged = strategic_merge(targets[0], change)
        targets[0].clear()
        targets[0].update(merged)


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """Kubernetes strategic merge of `patch` into `base`: maps merge, null deletes, lists with a
    merge key (containers by name, env by name, ...) merge item by item, other lists are replaced
    (tolerations, args, command)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list):
        key = _list_merge_key(field, base + patch)
        if key is None:
            return copy.deepcopy(patch)
        # kustomize's order: the patch's items first (merged with their base item), then the
        # base items the patch does not name, in base order.
        patched = {item.get(key) for item in patch}
        merged = []
        for item in patch:
            old = next((o for o in base if o.get(key) == item.get(key)), None)
            merged.append(copy.deepcopy(item) if old is None else strategic_merge(old, item))
        return merged + [copy.deepcopy(o) for o in base if o.get(key) not in patched]
    return copy.deepcopy(patch)


def _list_merge_key(field: str, items: list[Any]) -> str | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    if field == "ports":
        return "containerPort" if "containerPort" in items[0] else "port"
    return MERGE_KEYS.get(field)


def _set_image(doc: Doc, image: Doc) -> None:
    for container in _containers(doc):
        ref = container.get("image", "")
        name, tag, digest = _split_image(ref)
        if name != image["name"]:
            continue
        name = image.get("newName", name)
        if "digest" in image:
            container["image"] = f"{name}@{image['digest']}"
        elif "newTag" in image:
            container["image"] = f"{name}:{image['newTag']}"
        else:
            container["image"] = name + (f"@{digest}" if digest else f":{tag}" if tag else "")


def _containers(doc: Doc) -> list[Doc]:
    spec = doc.get("spec", {})
    pod_specs = [spec] if doc["kind"] == "Pod" else []
    if "template" in spec:
        pod_specs.append(spec["template"].get("spec", {}))
    if "jobTemplate" in spec:
        pod_specs.append(spec["jobTemplate"]["spec"]["template"].get("spec", {}))
    return [c for pod in pod_specs for f in ("initContainers", "containers") for c in pod.get(f, [])]


def _split_image(ref: str) -> tuple[str, str, str]:
    name, _, digest = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest
    return name, "", digest


def _order_key(doc: Doc) -> tuple:
    kind = doc["kind"]
    if kind in ORDER_FIRST:
        rank = ORDER_FIRST.index(kind)
    elif kind in ORDER_LAST:
        rank = len(ORDER_FIRST) + 1 + ORDER_LAST.index(kind)
    else:
        rank = len(ORDER_FIRST)
    group, _, version = doc.get("apiVersion", "").rpartition("/")
    meta = doc.get("metadata", {})
    return rank, f"{group or '~G'}_{version}_{kind}", meta.get("namespace", ""), meta.get("name", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a directory with a kustomization.yaml")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(dump(render(args.directory)))
    except (RenderError, OSError, yaml.YAMLError) as err:
        print(f"render.py: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
