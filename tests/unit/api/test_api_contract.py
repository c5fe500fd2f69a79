"""The rerank API speaks reranker_core's contract and stays small: its option fields are core
option names, and nothing it imports (read from the source, no process started) pulls in the
tokenizer, torch, the SDK or the server models."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from reranker_api.endpoint import EXTRA_OPTIONS
from reranker_core.families import FAMILIES, family_spec
from reranker_core.options import COMMON_OPTIONS

FORBIDDEN = ("tokenizers", "torch", "transformers", "reranker_client", "reranker_server", "onnxruntime")


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement in `path` names (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def reachable(start: str, packages: tuple[str, ...]) -> set[str]:
    """Modules reachable by imports from `start`, following only modules of `packages`."""
    seen, todo, outside = set(), [start], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        for module in imported_modules(Path(spec.origin)):
            if module.split(".")[0] in packages:
                if importlib.util.find_spec(module.rsplit(".", 1)[0]) and not _is_module(module):
                    module = module.rsplit(".", 1)[0]  # `from pkg.mod import name`
                todo.append(module)
            else:
                outside.add(module.split(".")[0])
    return outside


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def test_the_api_imports_neither_tokenizer_nor_torch_nor_sdk():
    outside = reachable("reranker_api.app", ("reranker_api", "reranker_core"))
    assert "fastapi" in outside and "numpy" in outside  # the walk does reach third-party imports
    assert not outside & set(FORBIDDEN), sorted(outside & set(FORBIDDEN))


def test_the_walk_would_see_a_tokenizer_import():
    outside = reachable("reranker_core.pipeline", ("reranker_core",))
    assert "tokenizers" in outside


def test_api_option_fields_are_core_option_names():
    core_names = COMMON_OPTIONS.union(*(family_spec(f).options for f in FAMILIES))
    assert set(EXTRA_OPTIONS) <= core_names
    assert {"max_length", "cutoff_layers", "prompt"} <= set(EXTRA_OPTIONS)
