"""Find the tokenizer a served model was exported with, and refuse any other."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tokenizers import Tokenizer

from reranker_client.errors import TokenizerMismatchError
from reranker_core.manifest import ModelManifest


def _candidate_files(
    manifest: ModelManifest, tokenizer_path: str | None, model_repository: str | None
) -> list[Path]:
    found: list[Path] = []
    if tokenizer_path:
        p = Path(tokenizer_path).expanduser()
        found += [p] if p.is_file() else [p / "tokenizer.json", p / "tokenizer" / "tokenizer.json"]
    if model_repository:
        found.append(Path(model_repository).expanduser() / manifest.name / manifest.tokenizer.file)
    source = manifest.tokenizer.source or manifest.source
    if source and Path(source).expanduser().is_dir():
        found.append(Path(source).expanduser() / "tokenizer.json")
    return found


def _from_hub(repo_id: str, local_only: bool) -> Path | None:
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id, "tokenizer.json", local_files_only=local_only))
    except Exception:
        return None


def load_tokenizer(
    manifest: ModelManifest,
    *,
    tokenizer_path: str | None = None,
    model_repository: str | None = None,
    hub: str = "download",
) -> Tokenizer:
    """The model's tokenizer: from `tokenizer_path`, the model repository, the export source
    directory, or the hub id the model was exported from (`hub`: "download", "cache" = only the
    local hub cache, "off"); its sha256 must match the manifest."""
    candidates = _candidate_files(manifest, tokenizer_path, model_repository)
    source = manifest.tokenizer.source or manifest.source
    tried: list[str] = []
    for path in candidates:
        if not path.is_file():
            tried.append(f"{path} (missing)")
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest.tokenizer.sha256:
            if tokenizer_path:
                raise TokenizerMismatchError(
                    f"{path} is not the tokenizer model {manifest.name!r} was exported with "
                    f"(sha256 differs); scores would be wrong"
                )
            tried.append(f"{path} (different tokenizer)")
            continue
        return Tokenizer.from_str(data.decode("utf-8"))
    if hub != "off" and source and not Path(source).expanduser().exists() and "/" in source:
        hub_file = _from_hub(source, local_only=hub == "cache")
        if hub_file is not None:
            if hashlib.sha256(hub_file.read_bytes()).hexdigest() == manifest.tokenizer.sha256:
                return Tokenizer.from_file(str(hub_file))
            tried.append(f"hub {source} (different tokenizer)")
        else:
            tried.append(f"hub {source} ({'not in the local cache' if hub == 'cache' else 'unreachable'})")
    raise TokenizerMismatchError(
        f"no tokenizer matching model {manifest.name!r} (sha256 {manifest.tokenizer.sha256[:12]}...) "
        f"found; pass tokenizer_path= or model_repository=. Tried: {'; '.join(tried) or 'nothing'}"
    )
