//! frameflow's YOLOv3-tiny path against an independent Python reference
//! (numpy + OpenCV + ONNX Runtime, tests/reference/yolo.py) on real photos
//! and film frames.
//!
//! Tolerances: boxes of the same label are matched greedily by IoU, and
//! every match must have IoU ≥ 0.9 and confidences within 0.05. A box only
//! one side found is allowed only if its confidence is within 0.05 of the
//! threshold. The slack is for JPEG decoding: frameflow decodes with
//! zune-jpeg, OpenCV with libjpeg-turbo, and their IDCT and chroma
//! upsampling differ by a level or two per pixel, which moves the scores
//! of small objects by a few hundredths.

mod common;

use std::sync::Arc;

use engine::model::{DecodedFrame, Frame, MediaType};
use engine::registry::Decoder;
use operators::decode::FrameDecoder;
use operators::detect::{DetectConfig, PreparedDetect};
use operators::onnx::ModelStore;
use operators::yolo::iou;

const MIN_CONFIDENCE: f32 = 0.3;
const MARGIN: f32 = 0.05;

#[derive(Debug, Clone)]
struct Found {
    label: String,
    confidence: f32,
    bbox: [f32; 4],
}

fn frameflow_detections(paths: &[String]) -> Vec<Vec<Found>> {
    let store = ModelStore::in_assets(&common::assets());
    let config = DetectConfig { min_confidence: MIN_CONFIDENCE, nms_iou: 0.45, threads: 1 };
    let prepared = PreparedDetect::load(&store, "objects", config).expect("model loads");
    let mut detector = prepared.detector().expect("session");
    let decoder = FrameDecoder::default();
    paths
        .iter()
        .map(|path| {
            let frame = Frame {
                frame_id: path.as_str().into(),
                tenant: "t".into(),
                source_id: "cam".into(),
                seq: 0,
                event_time: 0,
                ingest_time: 0,
                media_type: MediaType::Jpeg,
                bytes: Arc::from(std::fs::read(path).unwrap()),
                late: false,
                refused: None,
            };
            let pixels = decoder.decode(&frame).expect("decodes");
            let decoded = DecodedFrame { frame, pixels };
            let found = engine::registry::VisionOperator::process(&mut detector, &decoded).expect("detects");
            found.into_iter().map(|d| Found { label: d.label.to_string(), confidence: d.confidence, bbox: [d.x, d.y, d.w, d.h] }).collect()
        })
        .collect()
}

fn reference_detections(paths: &[String]) -> Vec<Vec<Found>> {
    let models = common::assets().join("models");
    let mut args = vec![models.to_str().unwrap(), "--min-confidence", "0.3"];
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
fn yolo_boxes_match_the_python_reference() {
    let paths = test_images();
    assert!(paths.len() >= 8, "too few test images: {paths:?}");
    let ours = frameflow_detections(&paths);
    let theirs = reference_detections(&paths);
    assert_eq!(ours.len(), theirs.len());
    let (mut matched, mut worst) = (0, 0.0f32);
    for ((path, mut ours), mut theirs) in paths.iter().zip(ours).zip(theirs) {
        // Greedy matching: best IoU pair of the same label first.
        let mut pairs = Vec::new();
        for (i, a) in ours.iter().enumerate() {
            for (j, b) in theirs.iter().enumerate() {
                if a.label == b.label {
                    pairs.push((iou(&a.bbox, &b.bbox), i, j));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut used_ours, mut used_theirs) = (vec![false; ours.len()], vec![false; theirs.len()]);
        for (overlap, i, j) in pairs {
            if used_ours[i] || used_theirs[j] || overlap < 0.5 {
                continue;
            }
            used_ours[i] = true;
            used_theirs[j] = true;
            matched += 1;
            assert!(overlap >= 0.9, "{path}: {:?} vs {:?}: IoU {overlap}", ours[i], theirs[j]);
            worst = worst.max((ours[i].confidence - theirs[j].confidence).abs());
            assert!((ours[i].confidence - theirs[j].confidence).abs() <= MARGIN, "{path}: {:?} vs {:?}", ours[i], theirs[j]);
        }
        let mut index = 0;
        ours.retain(|_| (!used_ours[index], index += 1).0);
        index = 0;
        theirs.retain(|_| (!used_theirs[index], index += 1).0);
        for unmatched in ours.iter().chain(&theirs) {
            assert!(unmatched.confidence < MIN_CONFIDENCE + MARGIN, "{path}: unmatched {unmatched:?}\nours {ours:?}\ntheirs {theirs:?}");
        }
    }
    eprintln!("{matched} boxes matched, largest confidence difference {worst:.4}");
    assert!(matched >= 20, "only {matched} boxes matched: the test images should hold more objects");
}
