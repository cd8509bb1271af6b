//! frameflow's YOLOv3-tiny path against an independent Python reference
//! (numpy + OpenCV + ONNX Runtime, tests/reference/yolo.py) on real photos
//! and film frames.
//!
//! Tolerances: boxes of the same label with IoU ≥ 0.9 are matched greedily,
//! and matched confidences must agree within 0.05. A box only one side found
//! is allowed only as a near-tie (see `explains_unmatched`), and such boxes
//! may be at most a tenth of the matched ones. The slack is for JPEG decoding: frameflow decodes with
//! zune-jpeg, OpenCV with libjpeg-turbo, and their IDCT and chroma
//! upsampling differ by a level or two per pixel, which moves the scores
//! of small objects by a few hundredths.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use operators::detect::{DetectConfig, PreparedDetect};
use operators::onnx::ModelStore;
use operators::yolo::iou;

const MIN_CONFIDENCE: f32 = 0.3;
const MARGIN: f32 = 0.05;
const NMS_IOU: f32 = 0.45;

#[derive(Debug, Clone)]
struct Found {
    label: String,
    confidence: f32,
    bbox: [f32; 4],
}

fn frameflow_detections(paths: &[String], rectangular: bool) -> Vec<Vec<Found>> {
    let store = ModelStore::in_assets(&common::assets());
    let config = DetectConfig { min_confidence: MIN_CONFIDENCE, nms_iou: NMS_IOU, threads: 1, rectangular };
    let prepared = PreparedDetect::load(&store, "objects", config).expect("model loads");
    let mut detector = prepared.detector().expect("session");
    paths
        .iter()
        .map(|path| {
            let decoded = common::decoded_frame(std::path::Path::new(path));
            let found = engine::registry::VisionOperator::process(&mut detector, &decoded).expect("detects");
            found
                .into_iter()
                .map(|d| Found { label: d.label.to_string(), confidence: d.confidence, bbox: [d.x, d.y, d.w, d.h] })
                .collect()
        })
        .collect()
}

fn reference_detections(paths: &[String], rectangular: bool) -> Vec<Vec<Found>> {
    let models = common::assets().join("models");
    let letterbox = if rectangular { "rect" } else { "square" };
    let mut args = vec![models.to_str().unwrap(), "--min-confidence", "0.3", "--letterbox", letterbox];
    args.extend(paths.iter().map(String::as_str));
    let out = common::run_python("tests/reference/yolo.py", &args);
    out.lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            row["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| Found {
                    label: d["label"].as_str().unwrap().to_owned(),
                    confidence: d["confidence"].as_f64().unwrap() as f32,
                    bbox: ["x", "y", "w", "h"].map(|k| d[k].as_f64().unwrap() as f32),
                })
                .collect()
        })
        .collect()
}

fn test_images() -> Vec<String> {
    let mut paths: Vec<String> = std::fs::read_dir(common::assets().join("images"))
        .expect("assets/images")
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    paths.sort();
    // Film frames too: small, grainy, crowded street scenes.
    for camera in ["market-a", "market-b"] {
        paths.extend(common::camera_frames(camera).iter().step_by(40).map(|p| p.display().to_string()));
    }
    paths
}

#[test]
fn yolo_boxes_match_the_python_reference_with_darknets_square_letterbox() {
    compare_with_reference(false);
}

#[test]
fn yolo_boxes_match_the_python_reference_with_the_rectangular_letterbox() {
    compare_with_reference(true);
}

fn compare_with_reference(rectangular: bool) {
    let paths = test_images();
    assert!(paths.len() >= 8, "too few test images: {paths:?}");
    let ours = frameflow_detections(&paths, rectangular);
    let theirs = reference_detections(&paths, rectangular);
    assert_eq!(ours.len(), theirs.len());
    let (mut matched, mut flipped, mut worst) = (0, 0, 0.0f32);
    for ((path, ours), theirs) in paths.iter().zip(ours).zip(theirs) {
        // Greedy matching: the best-overlapping pair of the same label first.
        let mut pairs = Vec::new();
        for (i, a) in ours.iter().enumerate() {
            for (j, b) in theirs.iter().enumerate() {
                let overlap = iou(&a.bbox, &b.bbox);
                if a.label == b.label && overlap >= 0.9 {
                    pairs.push((overlap, i, j));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut used_ours, mut used_theirs) = (vec![false; ours.len()], vec![false; theirs.len()]);
        for (_, i, j) in pairs {
            if used_ours[i] || used_theirs[j] {
                continue;
            }
            used_ours[i] = true;
            used_theirs[j] = true;
            matched += 1;
            let difference = (ours[i].confidence - theirs[j].confidence).abs();
            worst = worst.max(difference);
            assert!(difference <= MARGIN, "{path}: {:?} vs {:?}", ours[i], theirs[j]);
        }
        let leftovers = ours.iter().zip(&used_ours).map(|(f, used)| (f, used, &theirs));
        let leftovers = leftovers.chain(theirs.iter().zip(&used_theirs).map(|(f, used)| (f, used, &ours)));
        for (found, _, other_side) in leftovers.filter(|(_, used, _)| !**used) {
            flipped += 1;
            assert!(
                explains_unmatched(found, other_side),
                "{path}: {found:?} has no counterpart\nours {ours:?}\ntheirs {theirs:?}"
            );
        }
    }
    eprintln!("{matched} boxes matched (largest confidence difference {worst:.4}), {flipped} explained by near-ties");
    assert!(matched >= 20, "only {matched} boxes matched: the test images should hold more objects");
    assert!(flipped * 10 <= matched, "{flipped} unmatched boxes against {matched} matched: too many to be ties");
}

/// A box one side found and the other did not is acceptable only as a
/// near-tie: its confidence is within the margin of the threshold, or the
/// other side kept an overlapping box of the same label with nearly the
/// same confidence instead (class-wise NMS picked the other of two boxes
/// that scored within the decoder's noise).
fn explains_unmatched(found: &Found, other_side: &[Found]) -> bool {
    found.confidence < MIN_CONFIDENCE + MARGIN
        || other_side.iter().any(|o| {
            o.label == found.label
                && iou(&o.bbox, &found.bbox) > NMS_IOU
                && (o.confidence - found.confidence).abs() <= MARGIN
        })
}
