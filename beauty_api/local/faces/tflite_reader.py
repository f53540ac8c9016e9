"""Read a .tflite file into a plain graph description (ops, tensor shapes, float32 constants).

A .tflite file is a FlatBuffer (TensorFlow Lite's schema.fbs). The few tables the face models use are
read here directly with `struct`, so no parser package is needed and reading both models takes a few
milliseconds. Only the operators in `SUPPORTED_OPS` are understood; anything else is a clear
`UnsupportedModelError` naming the operator. Constant DEQUANTIZE ops (the mesh stores float16 weights)
are folded here, so the torch builder only sees float32 constants.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# BuiltinOperator codes from TensorFlow Lite's schema.fbs (checked against the `tflite` package in tests).
OPERATOR_CODES = {
    0: "ADD",
    2: "CONCATENATION",
    3: "CONV_2D",
    4: "DEPTHWISE_CONV_2D",
    6: "DEQUANTIZE",
    14: "LOGISTIC",
    17: "MAX_POOL_2D",
    19: "RELU",
    21: "RELU6",
    22: "RESHAPE",
    23: "RESIZE_BILINEAR",
    34: "PAD",
    54: "PRELU",
}
SUPPORTED_OPS = tuple(OPERATOR_CODES.values())
# Every BuiltinOperator name up to code 126, in code order, so an unsupported operator can be named.
_OPERATOR_NAMES_TEXT = """
ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE EMBEDDING_LOOKUP
FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D LOCAL_RESPONSE_NORMALIZATION LOGISTIC
LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX
SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD
UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE
UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT LOG_SOFTMAX
DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS NEG PADV2 GREATER
GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL
LOG SUM SQRT RSQRT SHAPE POW ARG_MIN FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT
LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE
RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N
GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF
WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL
"""
_ALL_OPERATOR_NAMES = tuple(_OPERATOR_NAMES_TEXT.split())


def operator_name(code: int, custom: str = "") -> str:
    """The schema's name of builtin operator `code` (or "CUSTOM <name>")."""
    if code == 32 and custom:
        return f"CUSTOM {custom}"
    return _ALL_OPERATOR_NAMES[code] if 0 <= code < len(_ALL_OPERATOR_NAMES) else f"builtin operator #{code}"


TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int32}  # TensorType: FLOAT32, FLOAT16, INT32
PADDING_SAME, PADDING_VALID = 0, 1  # Padding enum
ACTIVATIONS = {0: None, 1: "RELU", 3: "RELU6"}  # ActivationFunctionType


class UnsupportedModelError(RuntimeError):
    """The .tflite file uses something this executor does not implement, or is not a .tflite file."""


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


class _Table:
    """A FlatBuffer table: fields are looked up through its vtable; absent fields give the default."""

    __slots__ = ("buf", "pos", "vt_size", "vtable")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt_size = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, index: int) -> int:
        slot = 4 + 2 * index
        if slot >= self.vt_size:
            return 0
        off = struct.unpack_from("<H", self.buf, self.vtable + slot)[0]
        return self.pos + off if off else 0

    def scalar(self, index: int, fmt: str, default: int = 0) -> int:
        at = self._field(index)
        return struct.unpack_from("<" + fmt, self.buf, at)[0] if at else default

    def _target(self, index: int) -> int:
        at = self._field(index)
        return at + struct.unpack_from("<I", self.buf, at)[0] if at else 0

    def table(self, index: int) -> _Table | None:
        at = self._target(index)
        return _Table(self.buf, at) if at else None

    def vector(self, index: int) -> tuple[int, int]:
        """(start of the elements, length) of a vector field; (0, 0) when absent."""
        at = self._target(index)
        return (at + 4, struct.unpack_from("<I", self.buf, at)[0]) if at else (0, 0)

    def ints(self, index: int, fmt: str = "i") -> list[int]:
        start, n = self.vector(index)
        return list(struct.unpack_from(f"<{n}{fmt}", self.buf, start)) if n else []

    def tables(self, index: int) -> list[_Table]:
        start, n = self.vector(index)
        out = []
        for k in range(n):
            at = start + 4 * k
            out.append(_Table(self.buf, at + struct.unpack_from("<I", self.buf, at)[0]))
        return out

    def string(self, index: int) -> str:
        start, n = self.vector(index)
        return self.buf[start : start + n].decode("utf-8", "replace") if start else ""


def _options(name: str, t: _Table | None) -> dict[str, Any]:
    if t is None:
        return {}
    if name == "CONV_2D":  # padding, stride_w, stride_h, activation, dilation_w, dilation_h
        return {
            "padding": t.scalar(0, "b"),
            "stride": (t.scalar(2, "i"), t.scalar(1, "i")),
            "activation": t.scalar(3, "b"),
            "dilation": (t.scalar(5, "i", 1), t.scalar(4, "i", 1)),
        }
    if name == "DEPTHWISE_CONV_2D":  # padding, stride_w, stride_h, depth_multiplier, activation, dil_w, dil_h
        return {
            "padding": t.scalar(0, "b"),
            "stride": (t.scalar(2, "i"), t.scalar(1, "i")),
            "depth_multiplier": t.scalar(3, "i"),
            "activation": t.scalar(4, "b"),
            "dilation": (t.scalar(6, "i", 1), t.scalar(5, "i", 1)),
        }
    if name == "MAX_POOL_2D":  # padding, stride_w, stride_h, filter_width, filter_height, activation
        return {
            "padding": t.scalar(0, "b"),
            "stride": (t.scalar(2, "i"), t.scalar(1, "i")),
            "kernel": (t.scalar(4, "i"), t.scalar(3, "i")),
            "activation": t.scalar(5, "b"),
        }
    if name == "ADD":
        return {"activation": t.scalar(0, "b")}
    if name == "RESIZE_BILINEAR":  # new_height, new_width (deprecated), align_corners, half_pixel_centers
        return {"align_corners": bool(t.scalar(2, "b")), "half_pixel_centers": bool(t.scalar(3, "b"))}
    if name == "CONCATENATION":
        return {"axis": t.scalar(0, "i"), "activation": t.scalar(1, "b")}
    return {}


def read_tflite(data: bytes, *, source: str = "model") -> TfliteGraph:
    """Parse `data` (the bytes of a .tflite file). `source` names the file in error messages."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UnsupportedModelError(f"{source} is not a .tflite file (no TFL3 identifier)")
    try:
        model = _Table(data, struct.unpack_from("<I", data, 0)[0])
        opcodes = model.tables(1)
        codes = [max(c.scalar(0, "b"), c.scalar(3, "i")) for c in opcodes]
        customs = [c.string(1) for c in opcodes]
        buffers = model.tables(4)
        graph = model.tables(2)[0]
        tensors = graph.tables(0)
    except (struct.error, IndexError) as exc:
        raise UnsupportedModelError(f"{source} is not a readable .tflite file ({exc})") from exc
    shapes: dict[int, tuple[int, ...]] = {}
    names: dict[int, str] = {}
    constants: dict[int, np.ndarray] = {}
    for t, tensor in enumerate(tensors):
        shapes[t] = tuple(tensor.ints(0))
        names[t] = tensor.string(3)
        buffer = buffers[tensor.scalar(2, "I")]
        start, n = buffer.vector(0)
        if not n and buffer.scalar(1, "Q") > 1:  # data stored after the flatbuffer (models > 2 GB)
            start, n = buffer.scalar(1, "Q"), buffer.scalar(2, "Q")
        if n:
            dtype = TENSOR_TYPES.get(tensor.scalar(1, "b"))
            if dtype is None:
                raise UnsupportedModelError(
                    f"{source}: constant {names[t]!r} has unsupported tensor type {tensor.scalar(1, 'b')}"
                )
            constants[t] = np.frombuffer(data, dtype=dtype, count=n // np.dtype(dtype).itemsize, offset=start)
            constants[t] = constants[t].reshape(shapes[t])
    ops: list[Op] = []
    for i, op in enumerate(graph.tables(3)):
        index = op.scalar(0, "I")
        name = OPERATOR_CODES.get(codes[index])
        if name is None:
            raise UnsupportedModelError(
                f"{source}: operator {operator_name(codes[index], customs[index])} (op #{i}) is not "
                f"supported by the torch executor (supported: {', '.join(SUPPORTED_OPS)})"
            )
        inputs, outputs = op.ints(1), op.ints(2)
        if name == "DEQUANTIZE" and inputs[0] in constants:
            constants[outputs[0]] = constants[inputs[0]].astype(np.float32)
            continue
        ops.append(Op(name, inputs, outputs, _options(name, op.table(4))))
    for t, value in constants.items():
        if value.dtype == np.float16:
            constants[t] = value.astype(np.float32)
    return TfliteGraph(shapes, names, constants, ops, graph.ints(1), graph.ints(2))
