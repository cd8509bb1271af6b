#!/usr/bin/env python3
"""Convert Darknet YOLOv3(-tiny) cfg + weights into an ONNX model and a frameflow model manifest.

Usage: python scripts/darknet2onnx.py CFG WEIGHTS NAMES OUT_DIR
Writes OUT_DIR/yolov3-tiny.onnx and OUT_DIR/objects.json.

Our own converter, because no converter package can be fetched offline and
because the graph must stay small and plain (Conv, LeakyRelu, MaxPool, Resize,
Concat) so that every ONNX engine we use (ONNX Runtime, tract) runs it the same.
The [yolo] layers are not in the graph: their raw (pre-sigmoid) inputs are the
outputs, and decoding is done by the caller using objects.json.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13

# The stock yolov3-tiny.cfg says `mask = 0,1,2` for the stride-16 head, but the
# official weights were trained with `mask = 1,2,3` (the original upstream cfg
# had 1,2,3; a later cfg revision changed it without retraining). With 0,1,2 the
# 26x26 head's boxes come out visibly too small; with 1,2,3 they fit the objects
# (checked on real photos). So, for the 6-anchor tiny model only, we override.
TINY_MASK_OVERRIDE = {16: [1, 2, 3]}  # stride -> anchor indices


def parse_cfg(path):
    """Return [(section_name, {key: value_str})] in file order; darknet cfgs are INI-like but repeat sections."""
    sections = []
    with open(path) as f:
        for raw in f:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("["):
                sections.append((line.strip("[]").strip(), {}))
            else:
                key, value = line.split("=", 1)
                sections[-1][1][key.strip()] = value.strip()
    return sections


def read_weights(path):
    """Return the float32 weight stream after the header (whose `seen` field changed width in darknet 0.2)."""
    with open(path, "rb") as f:
        major, minor, _revision = np.fromfile(f, dtype=np.int32, count=3)
        np.fromfile(f, dtype=np.int64 if major * 10 + minor >= 2 else np.int32, count=1)
        return np.fromfile(f, dtype=np.float32)


def convert(cfg_path, weights_path):
    """Build the ONNX model; returns (model, heads) where heads lists each [yolo] layer's output/stride/anchors."""
    sections = parse_cfg(cfg_path)
    net, layers = sections[0][1], sections[1:]
    width, height, channels = int(net["width"]), int(net["height"]), int(net["channels"])
    weights = read_weights(weights_path)
    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > weights.size:
            raise ValueError("weights file is shorter than the cfg needs")
        out = weights[pos:pos + n]
        pos += n
        return out

    nodes, inits, heads = [], [], []
    outs = []  # per layer: (tensor name, channels, h, w)
    cur = ("images", channels, height, width)
    for i, (kind, opt) in enumerate(layers):
        name, c, h, w = cur
        if kind == "convolutional":
            filters, size, stride = int(opt["filters"]), int(opt["size"]), int(opt.get("stride", 1))
            pad = size // 2 if int(opt.get("pad", 0)) else int(opt.get("padding", 0))
            if int(opt.get("batch_normalize", 0)):
                bias, scales, mean, var = (take(filters) for _ in range(4))
                kernel = take(filters * c * size * size).reshape(filters, c, size, size)
                # darknet normalises with (x - mean) / (sqrt(var) + .000001), not sqrt(var + eps)
                k = scales / (np.sqrt(var) + 0.000001)
                kernel = kernel * k[:, None, None, None]
                bias = bias - mean * k
            else:
                bias = take(filters)
                kernel = take(filters * c * size * size).reshape(filters, c, size, size)
            inits += [numpy_helper.from_array(kernel.astype(np.float32), f"conv{i}.w"),
                      numpy_helper.from_array(bias.astype(np.float32), f"conv{i}.b")]
            out = f"conv{i}"
            nodes.append(helper.make_node("Conv", [name, f"conv{i}.w", f"conv{i}.b"], [out],
                                          kernel_shape=[size, size], strides=[stride, stride],
                                          pads=[pad, pad, pad, pad]))
            act = opt.get("activation", "linear")
            if act == "leaky":
                nodes.append(helper.make_node("LeakyRelu", [out], [f"leaky{i}"], alpha=0.1))
                out = f"leaky{i}"
            elif act != "linear":
                raise ValueError(f"layer {i}: unsupported activation {act}")
            h, w = (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1
            cur = (out, filters, h, w)
        elif kind == "maxpool":
            size, stride = int(opt["size"]), int(opt.get("stride", 1))
            # darknet pads size-1 in total, offset -pad/2: for size 2 all of it lands bottom/right,
            # which keeps 13x13 for the stride-1 pool
            total = int(opt.get("padding", size - 1))
            begin = total // 2
            end = total - begin
            out = f"pool{i}"
            nodes.append(helper.make_node("MaxPool", [name], [out], kernel_shape=[size, size],
                                          strides=[stride, stride], pads=[begin, begin, end, end]))
            cur = (out, c, (h + total - size) // stride + 1, (w + total - size) // stride + 1)
        elif kind == "upsample":
            s = int(opt.get("stride", 2))
            inits += [numpy_helper.from_array(np.zeros(0, np.float32), f"up{i}.roi"),
                      numpy_helper.from_array(np.array([1, 1, s, s], np.float32), f"up{i}.scales")]
            out = f"up{i}"
            nodes.append(helper.make_node("Resize", [name, f"up{i}.roi", f"up{i}.scales"], [out], mode="nearest",
                                          coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
            cur = (out, c, h * s, w * s)
        elif kind == "route":
            srcs = [outs[j if j >= 0 else i + j] for j in (int(v) for v in opt["layers"].split(","))]
            if len(srcs) == 1:
                cur = srcs[0]
            else:
                out = f"route{i}"
                nodes.append(helper.make_node("Concat", [s[0] for s in srcs], [out], axis=1))
                cur = (out, sum(s[1] for s in srcs), srcs[0][2], srcs[0][3])
        elif kind == "yolo":
            anchors = [int(v) for v in opt["anchors"].split(",")]
            anchors = [anchors[k:k + 2] for k in range(0, len(anchors), 2)]
            mask = [int(v) for v in opt["mask"].split(",")]
            stride = height // h
            if len(anchors) == 6 and mask == [0, 1, 2] and stride in TINY_MASK_OVERRIDE:
                mask = TINY_MASK_OVERRIDE[stride]
            # name the head after its grid and re-point the producing node at that name
            head = f"head_{h}"
            if nodes[-1].output[0] != name:
                raise ValueError(f"layer {i}: [yolo] must follow the layer that feeds it")
            nodes[-1].output[0] = head
            cur = (head, c, h, w)
            outs[-1] = cur
            heads.append({"output": head, "stride": stride, "anchors": [anchors[m] for m in mask],
                          "classes": int(opt["classes"]), "shape": [c, h, w]})
        else:
            raise ValueError(f"layer {i}: unsupported section [{kind}]")
        outs.append(cur)

    if pos != weights.size:
        raise ValueError(f"weights file has {weights.size - pos} floats left over: cfg and weights disagree")

    graph = helper.make_graph(
        nodes, "yolov3-tiny",
        # Height and width are dynamic: the network is fully convolutional, so a
        # frame may be letterboxed to any multiple of the largest stride
        # ("rectangular" inference: less grey padding, less compute).
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", channels, "H", "W"])],
        [helper.make_tensor_value_info(hd["output"], TensorProto.FLOAT,
                                       ["N", hd["shape"][0], f"{hd['output']}_h", f"{hd['output']}_w"])
         for hd in heads],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="frameflow-darknet2onnx")
    model.ir_version = 8  # readable by older runtimes too; opset 13 needs no newer IR
    return model, heads, (width, height)


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    cfg, weights, names, out_dir = sys.argv[1:]
    model, heads, (width, height) = convert(cfg, weights)
    onnx.checker.check_model(model, full_check=True)
    with open(names) as f:
        labels = [line.strip() for line in f if line.strip()]
    for hd in heads:
        if hd["classes"] != len(labels) or hd["shape"][0] != 3 * (5 + len(labels)):
            sys.exit(f"{hd['output']}: {hd['classes']} classes / {hd['shape'][0]} channels vs {len(labels)} labels")
    os.makedirs(out_dir, exist_ok=True)
    onnx.save(model, os.path.join(out_dir, "yolov3-tiny.onnx"))
    manifest = {
        "name": "objects", "architecture": "yolov3", "onnx": "yolov3-tiny.onnx",
        "input": {"name": "images", "width": width, "height": height, "letterbox_fill": 0.5,
                  "size_multiple": max(hd["stride"] for hd in heads)},
        "labels": labels,
        "heads": [{k: hd[k] for k in ("output", "stride", "anchors")} for hd in heads],
    }
    # one line per key (and per head) keeps the file short and diffable
    heads_txt = ",\n  ".join(json.dumps(hd) for hd in manifest.pop("heads"))
    body = ",\n ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in manifest.items())
    with open(os.path.join(out_dir, "objects.json"), "w") as f:
        f.write(f'{{{body},\n "heads": [\n  {heads_txt}\n ]\n}}\n')
    print(f"wrote {out_dir}/yolov3-tiny.onnx ({len(model.graph.node)} nodes) and objects.json "
          f"({len(labels)} labels, heads {[hd['output'] for hd in heads]})")


if __name__ == "__main__":
    main()
