//! YOLO (v3 family) post-processing: decode the raw heads into boxes, then
//! class-wise non-maximum suppression.
//!
//! The model card (`objects.json`, written by the set-up's converter beside
//! the ONNX file) says which output is which head, its stride and anchors,
//! and the labels, so the code holds no model constants.

use serde::Deserialize;

use crate::letterbox::Letterbox;

#[derive(Clone, Debug, Deserialize)]
pub struct ModelCard {
    pub name: String,
    pub architecture: String,
    /// The ONNX file, relative to the card.
    pub onnx: String,
    pub input: InputSpec,
    pub labels: Vec<String>,
    pub heads: Vec<HeadSpec>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct InputSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub letterbox_fill: f32,
    /// When set, the model takes any input size that is a multiple of this
    /// (rectangular letterbox); otherwise only `width` × `height`.
    #[serde(default)]
    pub size_multiple: Option<u32>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct HeadSpec {
    pub output: String,
    pub stride: u32,
    /// Anchor (width, height) in network-input pixels, one per box slot.
    pub anchors: Vec<[f32; 2]>,
}

/// A box before suppression, in pixels of the original frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub class: usize,
    pub score: f32,
    /// x, y (top-left), w, h.
    pub bbox: [f32; 4],
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Decodes one head's raw output, `[anchors × (5 + classes), grid, grid]`
/// for one image, keeping each (box, class) whose score reaches
/// `min_confidence` — a box may carry several labels, as in Darknet.
pub fn decode_head(
    raw: &[f32],
    (grid_w, grid_h): (usize, usize),
    head: &HeadSpec,
    classes: usize,
    letterbox: &Letterbox,
    min_confidence: f32,
    out: &mut Vec<Candidate>,
) {
    let cells = grid_w * grid_h;
    let per_anchor = 5 + classes;
    for (a, [anchor_w, anchor_h]) in head.anchors.iter().enumerate() {
        let channel = |k: usize| &raw[(a * per_anchor + k) * cells..][..cells];
        let objectness = channel(4);
        for (cell, &logit) in objectness.iter().enumerate() {
            let obj = sigmoid(logit);
            // A class score is obj × p(class) ≤ obj: skip hopeless cells early.
            if obj < min_confidence {
                continue;
            }
            let (row, col) = (cell / grid_w, cell % grid_w);
            let cx = (col as f32 + sigmoid(channel(0)[cell])) / grid_w as f32 * letterbox.net_w as f32;
            let cy = (row as f32 + sigmoid(channel(1)[cell])) / grid_h as f32 * letterbox.net_h as f32;
            let w = channel(2)[cell].exp() * anchor_w;
            let h = channel(3)[cell].exp() * anchor_h;
            let bbox = letterbox.to_original(cx, cy, w, h);
            // A box clipped to nothing lies wholly outside the frame.
            if bbox[2] <= 0.0 || bbox[3] <= 0.0 {
                continue;
            }
            for class in 0..classes {
                let score = obj * sigmoid(channel(5 + class)[cell]);
                if score >= min_confidence {
                    out.push(Candidate { class, score, bbox });
                }
            }
        }
    }
}

pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let h = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    if w <= 0.0 || h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    inter / (a[2] * a[3] + b[2] * b[3] - inter)
}

/// Greedy non-maximum suppression within each class: the best box wins, and
/// boxes of its class overlapping it by more than `max_iou` go.
pub fn nms_per_class(mut candidates: Vec<Candidate>, max_iou: f32) -> Vec<Candidate> {
    candidates.sort_by(|a, b| a.class.cmp(&b.class).then(b.score.total_cmp(&a.score)));
    let mut kept: Vec<Candidate> = Vec::with_capacity(candidates.len());
    let mut class_start = 0;
    for candidate in candidates {
        if kept.last().is_some_and(|k| k.class != candidate.class) {
            class_start = kept.len();
        }
        if kept[class_start..].iter().all(|k| iou(&k.bbox, &candidate.bbox) <= max_iou) {
            kept.push(candidate);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(class: usize, score: f32, x: f32) -> Candidate {
        Candidate { class, score, bbox: [x, 0.0, 10.0, 10.0] }
    }

    #[test]
    fn nms_suppresses_overlaps_within_a_class_only() {
        let kept = nms_per_class(
            vec![candidate(0, 0.6, 1.0), candidate(0, 0.9, 0.0), candidate(1, 0.5, 0.0), candidate(0, 0.4, 50.0)],
            0.45,
        );
        assert_eq!(kept, vec![candidate(0, 0.9, 0.0), candidate(0, 0.4, 50.0), candidate(1, 0.5, 0.0)]);
    }

    #[test]
    fn decode_places_a_confident_cell_where_its_offsets_say() {
        // One anchor, one class, a 2x2 grid; only cell (row 1, col 0) fires.
        let head = HeadSpec { output: "h".into(), stride: 208, anchors: vec![[100.0, 50.0]] };
        let mut raw = vec![-20.0f32; 6 * 4];
        let cell = 2;
        raw[cell] = 0.0; // x offset sigmoid(0) = 0.5
        raw[4 + cell] = 0.0; // y offset 0.5
        raw[8 + cell] = 0.0; // w = anchor
        raw[12 + cell] = 0.0; // h = anchor
        raw[16 + cell] = 20.0; // objectness ~1
        raw[20 + cell] = 20.0; // class ~1
        let letterbox = Letterbox::new(416, 416, 416, 416);
        let mut out = Vec::new();
        decode_head(&raw, (2, 2), &head, 1, &letterbox, 0.5, &mut out);
        assert_eq!(out.len(), 1);
        let [x, y, w, h] = out[0].bbox;
        assert!((x - (104.0 - 50.0)).abs() < 1e-3 && (y - (312.0 - 25.0)).abs() < 1e-3, "{x} {y}");
        assert!((w - 100.0).abs() < 1e-3 && (h - 50.0).abs() < 1e-3);
    }
}
