"""Python-backend stubs of a tritonserver process tree (the tree itself:
reranker_server.process_tree)."""

from __future__ import annotations

from pathlib import Path

from reranker_server.process_tree import (
    cmdline,
    is_alive,
    process_tree,
    rss_kib,
)

STUB_NAME = "triton_python_backend_stub"


def stub_pids(server_pid: int, model: str | None = None, *, alive_only: bool = True) -> list[int]:
    """Python-backend stub processes of the server (of one model when `model` is given).
    A stub's argv is: stub, <repo>/<model>/<version>/model.py, shm region, ..."""
    out = []
    for pid in process_tree(server_pid):
        argv = cmdline(pid)
        if len(argv) < 2 or not argv[0].endswith(STUB_NAME):
            continue
        if model is not None and Path(argv[1]).parent.parent.name != model:
            continue
        if alive_only and not is_alive(pid):
            continue
        out.append(pid)
    return out


def rss_by_model_mib(server_pid: int) -> dict[str, float]:
    """RSS per process: "tritonserver" and one entry per model's stub(s)."""
    out = {"tritonserver": rss_kib(server_pid) / 1024}
    for pid in stub_pids(server_pid):
        argv = cmdline(pid)
        model = Path(argv[1]).parent.parent.name if len(argv) > 1 else str(pid)
        out[model] = out.get(model, 0.0) + rss_kib(pid) / 1024
    return {k: round(v, 1) for k, v in sorted(out.items())}
