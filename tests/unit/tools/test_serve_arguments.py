"""`make serve` (tools/serve.py) arguments: replicas on offset ports, the API in front of all of
them, one GPU per replica, and bad combinations named. Nothing is started."""

from __future__ import annotations

import pytest

from tools.serve import children, parse_args


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_three_replicas_on_offset_ports_with_the_api_in_front_of_all():
    kids = children(parse_args(["--replicas", "3", "--drain-timeout-s", "7"]))
    assert [k.name for k in kids] == ["triton-0", "triton-1", "triton-2", "api"]
    replicas, api = kids[:3], kids[3]
    assert [_flag(k.argv, "--grpc-port") for k in replicas] == ["8001", "8004", "8007"]
    assert [_flag(k.argv, "--http-port") for k in replicas] == ["8000", "8003", "8006"]
    assert [_flag(k.argv, "--metrics-port") for k in replicas] == ["8002", "8005", "8008"]
    assert all(_flag(k.argv, "--drain-timeout-s") == "7" for k in replicas)
    assert _flag(api.argv, "--triton-url") == "127.0.0.1:8001,127.0.0.1:8004,127.0.0.1:8007"
    assert _flag(api.argv, "--graceful-timeout-s") == "7"
    assert all(k.env == {} for k in kids)


def test_gpus_pin_one_replica_each():
    kids = children(parse_args(["--replicas", "2", "--gpus", "1, 3", "--api-port", "0"]))
    assert [k.env for k in kids] == [{"CUDA_VISIBLE_DEVICES": "1"}, {"CUDA_VISIBLE_DEVICES": "3"}]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--replicas", "0"], "at least 1"),
        (["--replicas", "2", "--gpus", "0"], "need 2 GPUs"),
        (["--replicas", "2", "--gpus", "0,0"], "one replica only"),
        (["--replicas", "2", "--http-port", "8000", "--grpc-port", "8003"], "share ports"),
        (["--replicas", "2", "--api-port", "8004"], "--api-port 8004"),
        (["--drain-timeout-s", "0"], "--drain-timeout-s must be positive"),
    ],
)
def test_bad_combinations_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message in capsys.readouterr().err
