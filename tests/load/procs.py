"""The tritonserver process tree read from /proc (Linux): Python-backend stubs, their state, RSS."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

STUB_NAME = "triton_python_backend_stub"


def _ppid_and_state(pid: int) -> Optional[tuple[int, str]]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ..." where comm may contain spaces or parentheses.
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), fields[0]


def children(pid: int) -> list[int]:
    """Direct children of `pid` (any state)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _ppid_and_state(int(entry))
            if info and info[0] == pid:
                out.append(int(entry))
    return sorted(out)


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children(p))
    return tree


def is_alive(pid: int) -> bool:
    """Running or sleeping (not gone, not a zombie)."""
    info = _ppid_and_state(pid)
    return info is not None and info[1] not in ("Z", "X")


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mib(pid: int) -> float:
    """Resident memory of tritonserver plus every stub process, in MiB."""
    return sum(rss_kib(p) for p in process_tree(pid) if is_alive(p)) / 1024


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def stub_pids(server_pid: int, model: Optional[str] = None, *, alive_only: bool = True) -> list[int]:
    """Python-backend stub processes of the server (of one model when `model` is given).
    A stub's argv is: stub, <repo>/<model>/<version>/model.py, shm region, ..."""
    out = []
    for pid in children(server_pid):
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
