"""A stand-in for Triton's `triton_python_backend_utils`, enough to run Python-backend models in
unit tests without a server (the real module only exists inside the backend stub).

    install()            # registers it as sys.modules["triton_python_backend_utils"]
    req = FakeRequest({"input_ids": ids, "attention_mask": mask}, {"cutoff_layers": "[4, 6]"})
"""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import numpy as np

MODULE_NAME = "triton_python_backend_utils"


class TritonError(Exception):
    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS, CANCELLED = range(8)

    def __init__(self, msg: str, code: int = 1) -> None:
        super().__init__(msg)
        self._msg = msg
        self._code = code

    def message(self) -> str:
        return self._msg

    def code(self) -> int:
        return self._code


class TritonModelException(Exception):
    pass


class Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        if not isinstance(array, np.ndarray):
            raise TritonModelException(f"output {name!r} must be a numpy array")
        self._name = name
        self._array = array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class InferenceResponse:
    def __init__(self, output_tensors: list[Tensor] | None = None, error: TritonError | None = None) -> None:
        self._outputs = list(output_tensors or [])
        self._error = error

    def output_tensors(self) -> list[Tensor]:
        return self._outputs

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error


class FakeRequest:
    """A request with named numpy inputs and a parameters dict (sent as JSON, like Triton)."""

    def __init__(
        self,
        inputs: dict[str, np.ndarray],
        parameters: dict[str, Any] | None = None,
        raw_parameters: str | None = None,
        requested_outputs: tuple[str, ...] = ("scores", "indices"),
    ) -> None:
        self._inputs = {k: Tensor(k, v) for k, v in inputs.items() if v is not None}
        self._params = raw_parameters if raw_parameters is not None else json.dumps(parameters or {})
        self._requested = requested_outputs

    def parameters(self) -> str:
        return self._params

    def requested_output_names(self) -> list[str]:
        """As Triton: every output of the model when the caller named none."""
        return list(self._requested)

    def inputs(self) -> list[Tensor]:
        return list(self._inputs.values())


def get_input_tensor_by_name(request: FakeRequest, name: str) -> Tensor | None:
    return request._inputs.get(name)


def get_output_tensor_by_name(response: InferenceResponse, name: str) -> Tensor | None:
    for tensor in response.output_tensors():
        if tensor.name() == name:
            return tensor
    return None


def get_output_config_by_name(model_config: dict, name: str) -> dict | None:
    for output in model_config.get("output") or []:
        if output.get("name") == name:
            return output
    return None


_NUMPY_TYPES = {
    "TYPE_FP32": np.float32,
    "TYPE_FP16": np.float16,
    "TYPE_INT64": np.int64,
    "TYPE_INT32": np.int32,
    "TYPE_BOOL": np.bool_,
    "TYPE_STRING": np.object_,
}


def triton_string_to_numpy(name: str):
    return _NUMPY_TYPES[name]


class Logger:
    """Records (level, message) in `Logger.records` instead of Triton's log."""

    records: list[tuple[str, str]] = []

    @classmethod
    def log_info(cls, message: str) -> None:
        cls.records.append(("info", message))

    @classmethod
    def log_warn(cls, message: str) -> None:
        cls.records.append(("warn", message))

    @classmethod
    def log_error(cls, message: str) -> None:
        cls.records.append(("error", message))

    @classmethod
    def log_verbose(cls, message: str) -> None:
        cls.records.append(("verbose", message))


class Metric:
    def __init__(self, family: MetricFamily, labels: dict[str, str]) -> None:
        self.family, self.labels, self.value = family, dict(labels), 0.0

    def increment(self, value: float) -> None:
        if self.family.kind == MetricFamily.COUNTER and value < 0:
            raise TritonModelException("a counter cannot decrease")
        self.value += value

    def set(self, value: float) -> None:
        self.value = value


class MetricFamily:
    """Custom metrics; every metric made is kept in `MetricFamily.registry[(name, labels)]`."""

    COUNTER, GAUGE = "counter", "gauge"
    registry: dict[tuple[str, tuple], Metric] = {}

    def __init__(self, name: str, description: str, kind: str) -> None:
        self.name, self.description, self.kind = name, description, kind

    def Metric(self, labels: dict[str, str] | None = None) -> Metric:  # noqa: N802 (Triton's name)
        key = (self.name, tuple(sorted((labels or {}).items())))
        return MetricFamily.registry.setdefault(key, Metric(self, labels or {}))


def metric_value(name: str, **labels: str) -> float:
    """The value of a metric made through MetricFamily (0 when it was never made)."""
    metric = MetricFamily.registry.get((name, tuple(sorted(labels.items()))))
    return 0.0 if metric is None else metric.value


def install() -> types.ModuleType:
    """Register this module as `triton_python_backend_utils` (idempotent); returns it."""
    module = sys.modules[__name__]
    sys.modules[MODULE_NAME] = module
    return module
