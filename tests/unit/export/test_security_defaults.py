"""Security defaults of model loading (see docs/security.md): safetensors only unless
--allow-pickle, pickle never able to run code, a checkpoint's own Python files never imported."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest

from export.__main__ import main as export_main
from export.checkpoint import require_safetensors
from export.errors import ExportError

REPO = Path(__file__).resolve().parents[3]


class _Payload:
    """Unpickling this runs `marker.write_text(...)` (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from export.tiny.encoder import build_xlmr_reranker

    return build_xlmr_reranker(tmp_path_factory.mktemp("sec") / "ckpt", seed=3)


def _pickle_only(src: Path, dst: Path, marker: Path) -> Path:
    """A copy of `src` whose only weights are a malicious pytorch_model.bin."""
    shutil.copytree(src, dst)
    for f in dst.glob("*.safetensors"):
        f.unlink()
    with open(dst / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"weight": _Payload(marker)}, fh)
    return dst


def test_require_safetensors_refuses_pickle_only_checkpoints(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ExportError, match="--allow-pickle"):
        require_safetensors(tmp_path)
    require_safetensors(tmp_path, allow_pickle=True)
    (tmp_path / "pytorch_model.bin").unlink()
    with pytest.raises(ExportError, match="no weights"):
        require_safetensors(tmp_path, allow_pickle=True)


def test_export_cli_refuses_pickle_weights_by_default(tiny_checkpoint, tmp_path, capsys):
    marker = tmp_path / "marker"
    ckpt = _pickle_only(tiny_checkpoint, tmp_path / "pickled", marker)
    code = export_main(["--model", str(ckpt), "--name", "p", "--repository", str(tmp_path / "repo")])
    assert code == 2 and "--allow-pickle" in capsys.readouterr().err
    assert not (tmp_path / "repo" / "p").exists() and not marker.exists()


def test_allow_pickle_is_wired_and_still_never_runs_pickled_code(tiny_checkpoint, tmp_path, capsys):
    """With --allow-pickle the safetensors check is passed, but weights are loaded with
    torch.load(weights_only=True): the payload is refused, never executed."""
    marker = tmp_path / "marker"
    ckpt = _pickle_only(tiny_checkpoint, tmp_path / "pickled", marker)
    code = export_main(
        ["--model", str(ckpt), "--name", "p", "--repository", str(tmp_path / "repo"), "--allow-pickle"]
    )
    err = capsys.readouterr().err
    assert "--allow-pickle" not in err and "cannot load" in err  # past require_safetensors, refused by torch
    assert code != 0 and not marker.exists()
    assert not (tmp_path / "repo" / "p").exists()


def test_export_never_imports_a_checkpoints_own_code(tiny_checkpoint, tmp_path):
    """A checkpoint whose config points (auto_map) at its own modeling file: the export uses
    transformers' built-in class and never imports that file."""
    marker = tmp_path / "marker"
    ckpt = tmp_path / "remote"
    shutil.copytree(tiny_checkpoint, ckpt)
    (ckpt / "evil_modeling.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('pwned')\n"
        "from transformers import XLMRobertaForSequenceClassification as EvilModel\n"
    )
    config = json.loads((ckpt / "config.json").read_text())
    config["auto_map"] = {
        "AutoModelForSequenceClassification": "evil_modeling.EvilModel",
        "AutoConfig": "evil_modeling.EvilModel",
    }
    (ckpt / "config.json").write_text(json.dumps(config))
    code = export_main(["--model", str(ckpt), "--name", "r", "--repository", str(tmp_path / "repo")])
    assert not marker.exists(), "the checkpoint's own Python code was executed"
    assert code == 0


def test_product_code_never_enables_remote_code_or_unsafe_pickle():
    """No trust_remote_code=True and no torch.load without weights_only=True outside the oracle."""
    offenders = []
    scanned = 0
    for root in ("core", "client", "server", "api", "export", "tools", "bench"):
        for path in (REPO / root).rglob("*.py"):
            scanned += 1
            text = path.read_text(errors="replace")
            if re.search(r"trust_remote_code\s*=\s*True", text):
                offenders.append(f"{path}: trust_remote_code=True")
            for call in re.findall(r"torch\.load\([^)]*\)", text):
                if "weights_only=True" not in call:
                    offenders.append(f"{path}: {call}")
    assert scanned > 50, f"found only {scanned} product files under {REPO}"
    assert not offenders, offenders


def test_hub_download_fetches_no_pickle_and_no_code():
    """`python -m export --model org/name` downloads only config, safetensors and tokenizer files."""
    from fnmatch import fnmatch

    from export.checkpoint import HUB_FILES

    for name in ("pytorch_model.bin", "model.pt", "modeling_evil.py", "tf_model.h5", "flax_model.msgpack"):
        assert not any(fnmatch(name, pattern) for pattern in HUB_FILES), name
    assert any(fnmatch("model-00001-of-00002.safetensors", p) for p in HUB_FILES)
