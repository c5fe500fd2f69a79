"""`make demo` offline: the hub is unreachable, so a tiny local model is exported, served and scored."""

from tests.support.ports import free_ports
from tools.demo import main


def test_demo_runs_offline_with_a_tiny_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    http, grpc, metrics = free_ports(3)
    code = main(
        [
            "--model",
            "BAAI/bge-reranker-v2-m3",
            "--repository",
            str(tmp_path / "repo"),
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "NOTICE" in out and "MEANINGLESS" in out
    assert out.count("(sigmoid ") == 4
    assert "rerank(" in out
    assert (tmp_path / "repo" / "bge-reranker-v2-m3-tiny" / "1" / "model.onnx").is_file()
