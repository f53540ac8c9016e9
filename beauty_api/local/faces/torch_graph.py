"""Turn a `TfliteGraph` into a torch module, once, at load time.

The result is a `torch.fx.GraphModule`: straight-line generated Python that calls `F.conv2d`, `F.prelu`
and friends on weights held as the module's buffers, with no per-op dispatch or dict look-ups when it
runs (and no nn.Module per layer, which made building cost 0.2 s).
Activations are kept NCHW (TFLite is NHWC): weights are transposed once here, axes of concatenations,
pads and reshapes are remapped, and 4-D graph outputs are returned NHWC as TFLite returns them.
While building it fuses what is exact to fuse: a following RELU/PRELU is applied to the conv's fresh
output (in place for ReLU), residual ADDs write in place into a fresh operand, symmetric zero pads before a VALID conv become the conv's padding, and SAME padding
that is symmetric is the conv's own padding (only asymmetric SAME padding needs an explicit pad).
The module accepts any batch size (the models' batch of 1 is generalised).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from .tflite_reader import ACTIVATIONS, PADDING_SAME, Op, TfliteGraph, UnsupportedModelError

_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}
_LINEAR_MIN_CHANNELS = 16  # narrower 1x1 convs stay convolutions (a matmul was slower there)
_ELEMENTWISE: dict[str, Callable[..., Any]] = {"RELU": F.relu, "RELU6": F.relu6, "LOGISTIC": torch.sigmoid}


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _check_activation(code: int, source: str) -> str | None:
    name = ACTIVATIONS.get(code, f"#{code}")
    if name not in (None, "RELU", "RELU6"):
        raise UnsupportedModelError(f"{source}: fused activation {name} is not supported")
    return name


def _source_positions(size_in: int, size_out: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """TFLite's RESIZE_BILINEAR sampling positions along one axis (its three coordinate conventions)."""
    dst = np.arange(size_out, dtype=np.float64)
    if align_corners and size_out > 1:
        return dst * (size_in - 1) / (size_out - 1)
    scale = size_in / size_out
    if half_pixel:
        return np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    return dst * scale  # the legacy convention: no half-pixel offset


def _lerp_axis(x: torch.Tensor, dim: int, low: torch.Tensor, high: torch.Tensor, frac: torch.Tensor):
    a, b = x.index_select(dim, low), x.index_select(dim, high)
    return torch.lerp(a, b, frac)


def resize_bilinear(x: torch.Tensor, positions_h: torch.Tensor, positions_w: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of NCHW `x` at the given source positions (rows, then columns), as TFLite does."""
    for dim, pos, size in ((2, positions_h, x.shape[2]), (3, positions_w, x.shape[3])):
        low = pos.floor().long().clamp(0, size - 1)
        high = (low + 1).clamp(max=size - 1)
        shape = [1, 1, 1, 1]
        shape[dim] = -1
        x = _lerp_axis(x, dim, low, high, (pos - low).to(x.dtype).reshape(shape))
    return x


class _Builder:
    def __init__(self, graph: TfliteGraph, source: str, pointwise_as_linear: bool) -> None:
        self.g = graph
        self.pointwise_as_linear = pointwise_as_linear
        self.source = source
        self.root = nn.Module()
        self.fx = fx.Graph()
        self.values: dict[int, fx.Node] = {}
        self.nchw: set[int] = set()  # tensors held as NCHW in torch
        self.consumers = Counter(t for op in graph.ops for t in op.inputs if t >= 0)
        self.consumers.update(graph.outputs)
        self.producer: dict[int, Op] = {t: op for op in graph.ops for t in op.outputs}
        self.skip: set[int] = set()  # ids of ops folded into another one
        self.count = 0
        self.owned_nodes: set[fx.Node] = set()

    # -- helpers -----------------------------------------------------------------------------------------
    def weight(self, value: np.ndarray, prefix: str) -> fx.Node:
        """Register `value` as a buffer of the module (moves with .to()) and return a node reading it."""
        self.count += 1
        name = f"{prefix}{self.count}"
        self.root.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))
        return self.fx.get_attr(name)

    def fresh(self, node: fx.Node) -> fx.Node:
        """Mark `node` as a newly allocated result (an in-place op may overwrite it)."""
        self.owned_nodes.add(node)
        return node

    def const(self, t: int) -> np.ndarray:
        if t not in self.g.constants:
            raise UnsupportedModelError(f"{self.source}: tensor {self.g.names[t]!r} should be a constant")
        return self.g.constants[t]

    def single_consumer(self, t: int) -> Op | None:
        if self.consumers[t] != 1 or t in self.g.outputs:
            return None
        for op in self.g.ops:
            if t in op.inputs:
                return op
        return None

    # -- ops -----------------------------------------------------------------------------------------
    def conv(self, op: Op) -> None:
        x_id, w_id = op.inputs[0], op.inputs[1]
        weight = self.const(w_id)
        bias = self.const(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        depthwise = op.name == "DEPTHWISE_CONV_2D"
        in_shape = self.g.shapes[x_id]
        channels = in_shape[3]
        if depthwise:  # [1, kh, kw, C*m] -> [C*m, 1, kh, kw]
            w = np.ascontiguousarray(weight.transpose(3, 0, 1, 2))
            groups = channels
        else:  # [O, kh, kw, I] -> [O, I, kh, kw]
            w = np.ascontiguousarray(weight.transpose(0, 3, 1, 2))
            groups = 1
        kh, kw = w.shape[2], w.shape[3]
        (sh, sw), (dh, dw) = op.options["stride"], op.options["dilation"]
        x_node = self.values[x_id]
        pad = [0, 0, 0, 0]  # top, bottom, left, right
        if op.options["padding"] == PADDING_SAME:
            pad[0:2] = _same_padding(in_shape[1], kh, sh, dh)
            pad[2:4] = _same_padding(in_shape[2], kw, sw, dw)
        else:
            folded = self.foldable_pad(x_id)
            if folded is not None:
                pad_op, (top, bottom, left, right) = folded
                self.skip.add(id(pad_op))
                x_node = self.values[pad_op.inputs[0]]
                pad = [top, bottom, left, right]
        if pad[0] == pad[1] and pad[2] == pad[3]:
            padding = (pad[0], pad[2])
        else:
            x_node = self.fx.call_function(F.pad, (x_node, (pad[2], pad[3], pad[0], pad[1])))
            padding = (0, 0)
        pointwise = (kh, kw, sh, sw, groups) == (1, 1, 1, 1, 1) and padding == (0, 0)
        if pointwise and self.pointwise_as_linear and w.shape[0] >= _LINEAR_MIN_CHANNELS:
            # A 1x1 convolution is a matmul over channels: on channels-last activations the NHWC view
            # is contiguous, and a matmul measured faster than oneDNN's 1x1 conv at these sizes.
            w_node = self.weight(w.reshape(w.shape[0], w.shape[1]), "w")
            b_node = self.weight(bias, "b") if bias is not None else None
            nhwc = self.fx.call_method("permute", (x_node, 0, 2, 3, 1))
            y = self.fx.call_function(F.linear, (nhwc, w_node, b_node))
            node = self.fresh(self.fx.call_method("permute", (y, 0, 3, 1, 2)))
        else:
            w_node = self.weight(w, "w")
            b_node = self.weight(bias, "b") if bias is not None else None
            args = (x_node, w_node, b_node, (sh, sw), padding, (dh, dw), groups)
            node = self.fresh(self.fx.call_function(F.conv2d, args))
        out = op.outputs[0]
        act = _check_activation(op.options["activation"], self.source)
        follower = self.single_consumer(out)
        if act is None and follower is not None and follower.name in ("RELU", "RELU6", "PRELU"):
            self.skip.add(id(follower))
            out = follower.outputs[0]
            act = follower.name
            if act == "PRELU":
                node = self.fresh(self.fx.call_function(F.prelu, (node, self.prelu_weight(follower))))
        if act in ("RELU", "RELU6"):  # in place: the conv's output is fresh
            fn = F.relu if act == "RELU" else F.relu6
            node = self.fresh(self.fx.call_function(fn, (node,), {"inplace": True}))
        self.set(out, node, nchw=True)

    def foldable_pad(self, t: int) -> tuple[Op, tuple[int, int, int, int]] | None:
        op = self.producer.get(t)
        if op is None or op.name != "PAD" or self.consumers[t] != 1 or t in self.g.outputs:
            return None
        p = self.const(op.inputs[1]).tolist()
        if p[0] != [0, 0] or p[3] != [0, 0]:
            return None
        return op, (p[1][0], p[1][1], p[2][0], p[2][1])

    def prelu_weight(self, op: Op) -> fx.Node:
        alpha = self.const(op.inputs[1])
        if alpha.ndim == 0 or any(d != 1 for d in alpha.shape[:-1]):
            raise UnsupportedModelError(f"{self.source}: PRELU with alpha of shape {alpha.shape}")
        return self.weight(alpha.reshape(-1), "alpha")

    def owned(self, t: int) -> bool:
        """Whether tensor `t` is a fresh result read only once (safe to overwrite in place)."""
        return self.values[t] in self.owned_nodes and self.consumers[t] == 1 and t not in self.g.outputs

    def set(self, t: int, node: fx.Node, *, nchw: bool) -> None:
        self.values[t] = node
        if nchw:
            self.nchw.add(t)

    def plain(self, t: int) -> fx.Node:
        """Tensor `t` in TFLite's own layout (NHWC for 4-D)."""
        node = self.values[t]
        if t in self.nchw:
            return self.fx.call_method("permute", (node, 0, 2, 3, 1))
        return node

    def elementwise(self, op: Op) -> None:
        a, b = op.inputs[0], op.inputs[1]
        if a in self.g.constants or b in self.g.constants:
            raise UnsupportedModelError(f"{self.source}: ADD with a constant operand is not supported")
        if (a in self.nchw) != (b in self.nchw):
            raise UnsupportedModelError(f"{self.source}: ADD of tensors in different layouts")
        # Add in place into an operand nothing else reads (a fresh conv output): no new buffer.
        if self.owned(b):
            node = self.fx.call_method("add_", (self.values[b], self.values[a]))
        elif self.owned(a):
            node = self.fx.call_method("add_", (self.values[a], self.values[b]))
        else:
            node = self.fx.call_function(torch.add, (self.values[a], self.values[b]))
        node = self.fresh(node)
        act = _check_activation(op.options.get("activation", 0), self.source)
        if act is not None:
            node = self.fx.call_function(F.relu if act == "RELU" else F.relu6, (node,), {"inplace": True})
        self.set(op.outputs[0], node, nchw=a in self.nchw)

    def run(self, op: Op) -> None:
        name, ins, out = op.name, op.inputs, op.outputs[0]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            self.conv(op)
        elif name == "ADD":
            self.elementwise(op)
        elif name in ("RELU", "RELU6", "LOGISTIC"):
            fn: Callable[..., Any] = _ELEMENTWISE[name]
            self.set(out, self.fx.call_function(fn, (self.values[ins[0]],)), nchw=ins[0] in self.nchw)
        elif name == "PRELU":
            node = self.fresh(self.fx.call_function(F.prelu, (self.values[ins[0]], self.prelu_weight(op))))
            self.set(out, node, nchw=ins[0] in self.nchw)
        elif name == "PAD":
            p = self.const(ins[1]).tolist()
            if p[0] != [0, 0] or ins[0] not in self.nchw:
                raise UnsupportedModelError(f"{self.source}: PAD of the batch axis or a non-image tensor")
            # NCHW order for F.pad: (W left, W right, H top, H bottom, C front, C back)
            widths = (p[2][0], p[2][1], p[1][0], p[1][1], p[3][0], p[3][1])
            self.set(out, self.fx.call_function(F.pad, (self.values[ins[0]], widths)), nchw=True)
        elif name == "MAX_POOL_2D":
            kh, kw = op.options["kernel"]
            sh, sw = op.options["stride"]
            node = self.values[ins[0]]
            if op.options["padding"] == PADDING_SAME:
                shape = self.g.shapes[ins[0]]
                t, b = _same_padding(shape[1], kh, sh, 1)
                left, right = _same_padding(shape[2], kw, sw, 1)
                if t or b or left or right:
                    node = self.fx.call_function(F.pad, (node, (left, right, t, b)), {"value": -math.inf})
            self.set(out, self.fx.call_function(F.max_pool2d, (node, (kh, kw), (sh, sw))), nchw=True)
        elif name == "RESIZE_BILINEAR":
            if ins[0] not in self.nchw:
                raise UnsupportedModelError(f"{self.source}: RESIZE_BILINEAR of a non-image tensor")
            (_, in_h, in_w, _), (out_h, out_w) = self.g.shapes[ins[0]], self.const(ins[1]).tolist()
            flags = (op.options["align_corners"], op.options["half_pixel_centers"])
            rows = self.weight(_source_positions(in_h, out_h, *flags).astype(np.float32), "rows")
            cols = self.weight(_source_positions(in_w, out_w, *flags).astype(np.float32), "cols")
            node = self.fresh(self.fx.call_function(resize_bilinear, (self.values[ins[0]], rows, cols)))
            self.set(out, node, nchw=True)
        elif name == "RESHAPE":
            target = list(self.g.shapes[out])
            if target and target[0] == 1:
                target[0] = -1  # any batch size
            self.set(out, self.fx.call_method("reshape", (self.plain(ins[0]), *target)), nchw=False)
        elif name == "CONCATENATION":
            axis = op.options["axis"]
            rank = len(self.g.shapes[out])
            axis = axis % rank
            layouts = {t in self.nchw for t in ins}
            if len(layouts) != 1:
                raise UnsupportedModelError(f"{self.source}: CONCATENATION of mixed layouts")
            nchw = ins[0] in self.nchw
            if nchw:
                axis = _NHWC_TO_NCHW_AXIS[axis]
            node = self.fx.call_function(torch.cat, ([self.values[t] for t in ins], axis))
            self.set(out, node, nchw=nchw)
        else:
            raise UnsupportedModelError(f"{self.source}: operator {name} is not supported by the executor")

    def build(self) -> fx.GraphModule:
        if len(self.g.inputs) != 1:
            raise UnsupportedModelError(f"{self.source}: expected one input, found {len(self.g.inputs)}")
        x = self.fx.placeholder("x")  # NCHW float32
        self.set(self.g.inputs[0], x, nchw=True)
        for op in self.g.ops:
            if id(op) not in self.skip:
                self.run(op)
        self.fx.output(tuple(self.plain(t) for t in self.g.outputs))
        module = fx.GraphModule(self.root, self.fx)
        return module.eval()


def build_torch_module(
    graph: TfliteGraph, *, source: str = "model", pointwise_as_linear: bool = True
) -> fx.GraphModule:
    """A torch module that takes NCHW float32 input and returns the model's outputs (TFLite layouts)."""
    return _Builder(graph, source, pointwise_as_linear).build()
