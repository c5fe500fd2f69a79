"""ReplicaSet's pure logic: ports, GPU pinning, URLs, argument checks. No server is started."""

from __future__ import annotations

import pytest

from reranker_server.replicas import ReplicaPorts, ReplicaSet, gpu_environment, replica_ports


def test_ports_from_a_base_are_three_consecutive_per_replica():
    assert replica_ports(3, 8000) == [
        ReplicaPorts(8000, 8001, 8002),
        ReplicaPorts(8003, 8004, 8005),
        ReplicaPorts(8006, 8007, 8008),
    ]


def test_free_ports_are_all_distinct():
    flat = [p for r in replica_ports(4) for p in (r.http, r.grpc, r.metrics)]
    assert len(set(flat)) == 12


@pytest.mark.parametrize(("count", "base", "message"), [(0, 8000, "at least 1"), (2, 65532, "outside")])
def test_bad_port_requests_are_named(count, base, message):
    with pytest.raises(ValueError, match=message):
        replica_ports(count, base)


def test_gpus_pin_one_replica_per_gpu():
    assert gpu_environment([0, "2"], 2) == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "2"}]
    assert gpu_environment(None, 2) == [{}, {}]


@pytest.mark.parametrize(
    ("gpus", "message"),
    [
        ([0], "need 2 GPUs"),
        ([0, 0], "one replica only"),
        (["0,1", "2"], "exactly one GPU"),
        (["", "1"], "exactly one"),
    ],
)
def test_bad_gpu_lists_are_named(gpus, message):
    with pytest.raises(ValueError, match=message):
        gpu_environment(gpus, 2)


def test_urls_and_environment_of_each_replica(tmp_path):
    replicas = ReplicaSet(tmp_path, 2, base_port=9100, gpus=["1", "3"], environment={"OMP_NUM_THREADS": "1"})
    assert replicas.grpc_urls == ["localhost:9101", "localhost:9104"]
    assert replicas.urls("http") == ["localhost:9100", "localhost:9103"]
    assert replicas.urls() == replicas.grpc_urls
    assert [s.environment for s in replicas.servers] == [
        {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "1"},
        {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "3"},
    ]
    assert [s.metrics_port for s in replicas.servers] == [9102, 9105]
    with pytest.raises(ValueError, match="protocol"):
        replicas.urls("udp")
    with pytest.raises(IndexError, match="replicas 0..1"):
        replicas.drain(2)


def test_drain_timeout_becomes_tritons_exit_timeout(tmp_path):
    replicas = ReplicaSet(tmp_path, 1, base_port=9200, drain_timeout_s=12.5)
    assert "--exit-timeout-secs=13" in replicas.servers[0].command()
    replicas.stop()  # removes the scratch directory command() prepared
