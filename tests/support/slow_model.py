"""A Python-backend model that holds each request for a chosen time: requests that are in flight
for as long as a lifetime test needs (drain, rolling restart). Not a reranker; scores are not its job."""

from __future__ import annotations

from pathlib import Path

SLOW_MODEL = "slow-echo"
STARTED_FILE = "started.log"  # in the model directory: one line per request that began executing

_CONFIG = f"""name: "{SLOW_MODEL}"
backend: "python"
max_batch_size: 0
input [ {{ name: "hold_ms" data_type: TYPE_INT64 dims: [ 1 ] }} ]
output [ {{ name: "held_ms" data_type: TYPE_INT64 dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 4 }} ]
"""

_MODEL = '''import os
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Sleeps hold_ms, then answers hold_ms: one request in flight for a known time. Appends a
    line to STARTED_FILE in the model directory when a request starts executing."""

    def initialize(self, args):
        self.started = os.path.join(args["model_repository"], "STARTED_FILE")

    def execute(self, requests):
        responses = []
        for request in requests:
            hold = pb_utils.get_input_tensor_by_name(request, "hold_ms").as_numpy()
            with open(self.started, "a") as f:
                f.write(f"{os.getpid()} {int(hold[0])}\\n")
            time.sleep(float(hold[0]) / 1000.0)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("held_ms", hold)]))
        return responses
'''


def add_slow_model(repository: Path) -> str:
    """Write the slow model into `repository` (config for both config names); returns its name."""
    model = repository / SLOW_MODEL
    (model / "1").mkdir(parents=True, exist_ok=True)
    (model / "configs").mkdir(exist_ok=True)
    (model / "config.pbtxt").write_text(_CONFIG)
    (model / "configs" / "embedded.pbtxt").write_text(_CONFIG)
    (model / "1" / "model.py").write_text(_MODEL.replace("STARTED_FILE", STARTED_FILE))
    return SLOW_MODEL


def started_requests(repository: Path) -> int:
    """How many slow requests began executing (on any server of `repository`)."""
    try:
        return len((repository / SLOW_MODEL / STARTED_FILE).read_text().splitlines())
    except FileNotFoundError:
        return 0


def slow_input(hold_ms: int):
    """The gRPC input of one slow request."""
    import numpy as np
    import tritonclient.grpc as grpcclient

    tensor = grpcclient.InferInput("hold_ms", [1], "INT64")
    tensor.set_data_from_numpy(np.array([hold_ms], dtype=np.int64))
    return tensor
