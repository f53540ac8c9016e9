"""Read a .tflite file into a plain graph description (ops, tensor shapes, float32 constants).

Only what the face models need is understood; anything else is a clear `UnsupportedModelError` naming
the operator. Constant DEQUANTIZE ops (the mesh stores float16 weights) are folded here, so the torch
builder only sees float32 constants. Parsing uses the pure-Python `tflite` flatbuffer bindings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SUPPORTED_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "PRELU",
    "RELU",
    "RELU6",
    "ADD",
    "PAD",
    "MAX_POOL_2D",
    "RESHAPE",
    "CONCATENATION",
    "DEQUANTIZE",
    "LOGISTIC",
)
# tflite Padding enum and fused activations
PADDING_SAME, PADDING_VALID = 0, 1
ACTIVATIONS = {0: None, 1: "RELU", 3: "RELU6"}


class UnsupportedModelError(RuntimeError):
    """The .tflite file uses something this executor does not implement."""


@dataclass
class Op:
    """One operator: its name, input/output tensor indices (-1 = absent) and its options."""

    name: str
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TfliteGraph:
    """A model's first subgraph: shapes of every tensor, constants (float32 or int32), ops in order."""

    shapes: dict[int, tuple[int, ...]]
    names: dict[int, str]
    constants: dict[int, np.ndarray]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]


def _import_tflite() -> Any:
    try:
        import tflite
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Face analysis needs the pure-Python `tflite` package to read the model files: "
            "pip install -r requirements.txt (it installs tflite and flatbuffers)."
        ) from exc
    return tflite


def _op_names(tflite: Any) -> dict[int, str]:
    ops = tflite.BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


def _options(tflite: Any, name: str, op: Any) -> dict[str, Any]:
    table = op.BuiltinOptions()
    if table is None:
        return {}
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        o = tflite.Conv2DOptions() if name == "CONV_2D" else tflite.DepthwiseConv2DOptions()
        o.Init(table.Bytes, table.Pos)
        out = {
            "stride": (o.StrideH(), o.StrideW()),
            "dilation": (o.DilationHFactor(), o.DilationWFactor()),
            "padding": o.Padding(),
            "activation": o.FusedActivationFunction(),
        }
        if name == "DEPTHWISE_CONV_2D":
            out["depth_multiplier"] = o.DepthMultiplier()
        return out
    if name == "MAX_POOL_2D":
        o = tflite.Pool2DOptions()
        o.Init(table.Bytes, table.Pos)
        return {
            "kernel": (o.FilterHeight(), o.FilterWidth()),
            "stride": (o.StrideH(), o.StrideW()),
            "padding": o.Padding(),
            "activation": o.FusedActivationFunction(),
        }
    if name == "ADD":
        o = tflite.AddOptions()
        o.Init(table.Bytes, table.Pos)
        return {"activation": o.FusedActivationFunction()}
    if name == "CONCATENATION":
        o = tflite.ConcatenationOptions()
        o.Init(table.Bytes, table.Pos)
        return {"axis": o.Axis(), "activation": o.FusedActivationFunction()}
    return {}


def read_tflite(data: bytes, *, source: str = "model") -> TfliteGraph:
    """Parse `data` (the bytes of a .tflite file). `source` names the file in error messages."""
    tflite = _import_tflite()
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        graph = model.Subgraphs(0)
        n_tensors = graph.TensorsLength()
    except Exception as exc:
        raise UnsupportedModelError(f"{source} is not a readable .tflite file ({exc})") from exc
    names_of_ops = _op_names(tflite)
    dtypes = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16}
    dtypes[tflite.TensorType.INT32] = np.int32
    shapes: dict[int, tuple[int, ...]] = {}
    names: dict[int, str] = {}
    constants: dict[int, np.ndarray] = {}
    for t in range(n_tensors):
        tensor = graph.Tensors(t)
        shapes[t] = tuple(int(v) for v in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        names[t] = tensor.Name().decode("utf-8", "replace")
        buffer = model.Buffers(tensor.Buffer())
        if buffer is not None and buffer.DataLength() > 0:
            if tensor.Type() not in dtypes:
                raise UnsupportedModelError(
                    f"{source}: constant {names[t]!r} has unsupported type {tensor.Type()}"
                )
            raw = buffer.DataAsNumpy().tobytes()
            constants[t] = np.frombuffer(raw, dtype=dtypes[tensor.Type()]).reshape(shapes[t])
    ops: list[Op] = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names_of_ops.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        if name not in SUPPORTED_OPS:
            raise UnsupportedModelError(
                f"{source}: operator {name} (op #{i}) is not supported by the torch executor "
                f"(supported: {', '.join(SUPPORTED_OPS)})"
            )
        inputs = [int(v) for v in op.InputsAsNumpy()]
        outputs = [int(v) for v in op.OutputsAsNumpy()]
        if name == "DEQUANTIZE" and inputs[0] in constants:
            constants[outputs[0]] = constants[inputs[0]].astype(np.float32)
            continue
        ops.append(Op(name, inputs, outputs, _options(tflite, name, op)))
    for t, value in constants.items():
        if value.dtype == np.float16:
            constants[t] = value.astype(np.float32)
    return TfliteGraph(
        shapes=shapes,
        names=names,
        constants=constants,
        ops=ops,
        inputs=[int(v) for v in graph.InputsAsNumpy()],
        outputs=[int(v) for v in graph.OutputsAsNumpy()],
    )
