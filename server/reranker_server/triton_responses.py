"""What the Python-backend models share around `triton_python_backend_utils`: the output tensor as
the model config declares it, error responses, and failures logged (pb_utils.Logger) and counted
by kind in a Triton custom metric.

Metric (on Triton's metrics port, next to nv_inference_request_failure):

    reranker_request_failures_total{model="<name>", kind="<kind>"}   counter

kinds: `invalid_argument` (a bad request, answered INVALID_ARG), `out_of_memory` (a batch that
did not fit even one row at a time), `internal` (any other failure, answered INTERNAL).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

FAILURES_METRIC = "reranker_request_failures_total"
INVALID_ARGUMENT = "invalid_argument"
OUT_OF_MEMORY = "out_of_memory"
INTERNAL = "internal"
FAILURE_KINDS = (INVALID_ARGUMENT, OUT_OF_MEMORY, INTERNAL)


class OutputSpec:
    """One output tensor with the name and data type the model config declares."""

    def __init__(self, model_config: dict[str, Any], name: str) -> None:
        config = pb_utils.get_output_config_by_name(model_config, name)
        if config is None:
            declared = [o.get("name") for o in model_config.get("output") or []]
            raise ValueError(
                f"model config declares no output {name!r} (outputs: {declared}); re-export the model"
            )
        self.name = name
        self.dtype = np.dtype(pb_utils.triton_string_to_numpy(config["data_type"]))

    def tensor(self, values: np.ndarray):
        return pb_utils.Tensor(self.name, np.ascontiguousarray(values, dtype=self.dtype))


class Failures:
    """Logs a failed request and counts it in FAILURES_METRIC under its kind."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.logger = pb_utils.Logger
        family = pb_utils.MetricFamily(
            name=FAILURES_METRIC,
            description="Reranker requests answered with an error, by kind",
            kind=pb_utils.MetricFamily.COUNTER,
        )
        self._family = family  # keeps the family alive as long as its metrics
        self._counters = {
            kind: family.Metric(labels={"model": model_name, "kind": kind}) for kind in FAILURE_KINDS
        }

    def record(self, kind: str, message: str, count: int = 1) -> None:
        """Count `count` failed requests of `kind`; bad requests are logged only when verbose."""
        self._counters[kind].increment(count)
        line = f"{self.model_name}: {count} request(s) failed ({kind}): {message}"
        if kind == INVALID_ARGUMENT:
            self.logger.log_verbose(line)
        else:
            self.logger.log_error(line)


def failure_kind(exc: BaseException, *, invalid: bool) -> str:
    """The metric kind of a failure: a bad request, an out-of-memory, or anything else."""
    if invalid:
        return INVALID_ARGUMENT
    return OUT_OF_MEMORY if "out of memory" in str(exc).lower() else INTERNAL


def error_response(message: str, *, invalid: bool):
    """An InferenceResponse carrying INVALID_ARG (bad request) or INTERNAL."""
    code = pb_utils.TritonError.INVALID_ARG if invalid else pb_utils.TritonError.INTERNAL
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))
