#!/usr/bin/env python3
"""Convert torchvision's MobileNetV2 ImageNet weights (a legacy torch pickle)
into an ONNX model and a frameflow model card, without torch.

Usage: python scripts/mobilenet2onnx.py WEIGHTS.pth LABELS.txt OUT_DIR
Writes OUT_DIR/mobilenet/mobilenet_v2.onnx, OUT_DIR/mobilenet/labels.txt and
OUT_DIR/mobilenet.json.

The .pth is torch's pre-1.6 format: five pickles in a row (magic number,
protocol version, system info, the state dict with storages as persistent
ids, the storage keys), then each storage's raw data, prefixed by its element
count. Batch norms are folded into the convolutions before them. The network
is torchvision's MobileNetV2 (width 1.0): a 3x3 stem, 17 inverted residual
blocks, a 1x1 conv to 1280, global average pool, and one linear layer.

The converted graph is checked against a plain numpy forward pass of the
unfolded weights on a seeded random input, so a wrong fold, stride or
residual fails here and not in a test.
"""
import json
import os
import pickle
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
# torchvision's inverted residual settings: expansion t, channels c, repeats n, first stride s
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
BN_EPS = 1e-5
DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64, "IntStorage": np.int32, "DoubleStorage": np.float64}


class Storage:
    def __init__(self, kind, key, size):
        self.kind, self.key, self.size, self.data = kind, key, size, None


def rebuild_tensor(storage, offset, size, stride, *_):
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class LegacyUnpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return rebuild_tensor
        if module == "torch" and name in DTYPES:
            return name
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in the weights")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, size = pid[:5]
        assert kind == "storage", pid
        if key not in self.storages:
            self.storages[key] = Storage(storage_type, key, size)
        return self.storages[key]


def load_legacy(path):
    storages = {}
    with open(path, "rb") as f:
        for _ in range(3):  # magic number, protocol version, sys info
            pickle.load(f)
        state = LegacyUnpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            s = storages[key]
            dtype = np.dtype(DTYPES[s.kind])
            s.data = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
    tensors = {}
    for name, (_, storage, offset, size, stride) in state.items():
        base = storage.data[offset:]
        item = base.itemsize
        tensors[name] = np.lib.stride_tricks.as_strided(base, size, [s * item for s in stride]).copy()
    return tensors


def layers(w):
    """The network as a list of ("conv", prefix, stride, groups, relu6) and
    ("residual_start"/"residual_end") steps, from the weight names."""
    steps = [("conv", "features.0.0", "features.0.1", 2, 1, True)]
    inp, index = 32, 1
    for t, c, n, s in SETTINGS:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = inp * t
            p = f"features.{index}.conv"
            block = []
            if t != 1:
                block.append(("conv", f"{p}.0.0", f"{p}.0.1", 1, 1, True))
                dw, pw, bn = f"{p}.1", f"{p}.2", f"{p}.3"
            else:
                dw, pw, bn = f"{p}.0", f"{p}.1", f"{p}.2"
            block.append(("conv", f"{dw}.0", f"{dw}.1", stride, hidden, True))
            block.append(("conv", pw, bn, 1, 1, False))
            residual = stride == 1 and inp == c
            steps.append(("block", block, residual))
            inp, index = c, index + 1
    steps.append(("conv", f"features.{index}.0", f"features.{index}.1", 1, 1, True))
    return steps


def fold(w, conv, bn):
    scale = w[f"{bn}.weight"] / np.sqrt(w[f"{bn}.running_var"] + BN_EPS)
    kernel = w[f"{conv}.weight"] * scale[:, None, None, None]
    bias = w[f"{bn}.bias"] - w[f"{bn}.running_mean"] * scale
    return kernel.astype(np.float32), bias.astype(np.float32)


def build(w):
    nodes, inits = [], []
    counter = [0]

    def conv(x, conv_name, bn_name, stride, groups, relu6):
        counter[0] += 1
        i = counter[0]
        kernel, bias = fold(w, conv_name, bn_name)
        k = kernel.shape[-1]
        inits.extend([numpy_helper.from_array(kernel, f"c{i}.w"), numpy_helper.from_array(bias, f"c{i}.b")])
        out = f"c{i}"
        nodes.append(helper.make_node("Conv", [x, f"c{i}.w", f"c{i}.b"], [out], kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4, group=groups))
        if relu6:
            nodes.append(helper.make_node("Clip", [out, "zero", "six"], [f"r{i}"]))
            out = f"r{i}"
        return out

    inits.extend([numpy_helper.from_array(np.array(0, np.float32), "zero"),
                  numpy_helper.from_array(np.array(6, np.float32), "six")])
    x = "input"
    for step in layers(w):
        if step[0] == "conv":
            x = conv(x, *step[1:])
        else:
            _, block, residual = step
            y = x
            for s in block:
                y = conv(y, *s[1:])
            if residual:
                nodes.append(helper.make_node("Add", [x, y], [f"{y}.add"]))
                y = f"{y}.add"
            x = y
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], axis=1))
    inits.extend([numpy_helper.from_array(w["classifier.1.weight"].astype(np.float32), "fc.w"),
                  numpy_helper.from_array(w["classifier.1.bias"].astype(np.float32), "fc.b")])
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1))
    graph = helper.make_graph(
        nodes, "mobilenet_v2", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="frameflow")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def numpy_forward(w, x):
    """The unfolded network in numpy (NCHW, batch 1): the independent check."""
    def conv(x, name, bn, stride, groups, relu6):
        kernel = w[f"{name}.weight"].astype(np.float64)
        out_c, in_per_group, k, _ = kernel.shape
        pad = k // 2
        c, h, wd = x.shape
        xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
        oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
        out = np.zeros((out_c, oh, ow))
        per_out = out_c // groups
        for dy in range(k):
            for dx in range(k):
                patch = xp[:, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride]
                if groups == 1:
                    out += np.einsum("oc,chw->ohw", kernel[:, :, dy, dx], patch)
                else:  # depthwise
                    out += kernel[:, 0, dy, dx][:, None, None] * patch.repeat(per_out, axis=0)
        g, b, m, v = (w[f"{bn}.{p}"] for p in ("weight", "bias", "running_mean", "running_var"))
        out = (out - m[:, None, None]) / np.sqrt(v[:, None, None] + BN_EPS) * g[:, None, None] + b[:, None, None]
        return np.clip(out, 0, 6) if relu6 else out

    for step in layers(w):
        if step[0] == "conv":
            x = conv(x, *step[1:])
        else:
            _, block, residual = step
            y = x
            for s in block:
                y = conv(y, *s[1:])
            x = x + y if residual else y
    pooled = x.mean(axis=(1, 2))
    return w["classifier.1.weight"] @ pooled + w["classifier.1.bias"]


def main():
    weights, labels, out = sys.argv[1:4]
    w = load_legacy(weights)
    model = build(w)
    os.makedirs(os.path.join(out, "mobilenet"), exist_ok=True)
    onnx_path = os.path.join(out, "mobilenet", "mobilenet_v2.onnx")
    onnx.save(model, onnx_path)

    import onnxruntime
    x = np.random.default_rng(7).normal(size=(1, 3, 224, 224)).astype(np.float32)
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})[0][0]
    want = numpy_forward(w, x[0].astype(np.float64))
    err = float(np.abs(got - want).max())
    if err > 1e-3 or got.argmax() != want.argmax():
        sys.exit(f"mobilenet2onnx: converted graph differs from the numpy forward pass (max error {err})")

    names = [line.strip() for line in open(labels) if line.strip()]
    if len(names) != 1000:
        sys.exit(f"mobilenet2onnx: {labels} has {len(names)} labels, not 1000")
    with open(os.path.join(out, "mobilenet", "labels.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    # torchvision's ImageNet evaluation transform: shorter side to 256 (bilinear),
    # centre crop 224, scale to 0..1, normalise per channel (RGB)
    card = {"name": "mobilenet", "architecture": "imagenet-classifier", "model": "mobilenet/mobilenet_v2.onnx",
            "labels": "mobilenet/labels.txt", "resize": 256, "crop": 224,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    with open(os.path.join(out, "mobilenet.json"), "w") as f:
        json.dump(card, f, indent=1)
    print(f"mobilenet2onnx: {onnx_path} (max error against numpy {err:.1e})")


if __name__ == "__main__":
    main()
