#!/usr/bin/env python3
"""Convert an OpenCV Haar cascade (the XML of cv2/data, new format) into the
JSON frameflow's FACES(model => 'haar') reads, and write its model card.

Usage: python scripts/haar2json.py CASCADE.xml OUT_DIR NAME
Writes OUT_DIR/haar/NAME.json (the cascade) and OUT_DIR/NAME.json (the card).

The cascade: {"window": [w, h], "stages": [{"threshold": t, "stumps":
[[feature, threshold, left, right], ...]}, ...], "features": [[[x, y, w, h,
weight], ...], ...]}. Only stump cascades of upright Haar features (what
cv2's frontal face cascades are) are accepted.
"""
import json
import os
import sys
import xml.etree.ElementTree as ET


def numbers(text):
    return [float(v) for v in text.split()]


def main():
    xml, out, name = sys.argv[1:4]
    cascade = ET.parse(xml).getroot().find("cascade")
    if cascade is None or cascade.findtext("featureType").strip() != "HAAR":
        sys.exit(f"haar2json: {xml} is not a Haar cascade in OpenCV's new format")
    stages = []
    for stage in cascade.find("stages"):
        stumps = []
        for weak in stage.find("weakClassifiers"):
            nodes = numbers(weak.findtext("internalNodes"))
            leaves = numbers(weak.findtext("leafValues"))
            if len(nodes) != 4 or len(leaves) != 2:
                sys.exit(f"haar2json: {xml} has trees deeper than stumps")
            stumps.append([int(nodes[2]), nodes[3], leaves[0], leaves[1]])
        stages.append({"threshold": float(stage.findtext("stageThreshold")), "stumps": stumps})
    features = []
    for feature in cascade.find("features"):
        if int(feature.findtext("tilted") or 0):
            sys.exit(f"haar2json: {xml} has tilted features")
        features.append([numbers(r.text) for r in feature.find("rects")])
    window = [int(cascade.findtext("width")), int(cascade.findtext("height"))]
    os.makedirs(os.path.join(out, "haar"), exist_ok=True)
    with open(os.path.join(out, "haar", name + ".json"), "w") as f:
        json.dump({"window": window, "stages": stages, "features": features}, f)
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump({"name": name, "architecture": "haar", "cascade": f"haar/{name}.json"}, f, indent=1)
    print(f"haar2json: {name}: {len(stages)} stages, {sum(len(s['stumps']) for s in stages)} stumps")


if __name__ == "__main__":
    main()
