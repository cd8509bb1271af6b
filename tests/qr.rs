//! `QR(src)` against OpenCV's QR reader (tests/reference/qr.py) on real
//! photos with printed codes pasted in (tests/reference/qr_scenes.py:
//! codes made by segno, scaled, rotated, in slight perspective, saved as
//! JPEG).
//!
//! Tolerances: every code OpenCV reads, frameflow reads too, with the same
//! text and a box of IoU ≥ 0.8 (the two decoders place corners a module
//! apart at most). frameflow may read codes OpenCV misses (OpenCV misses a
//! clean code on a white sky), but only codes that are there: their text
//! is one the scene maker pasted into that photo.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use engine::registry::VisionOperator;
use operators::qr::QrReader;
use operators::yolo::iou;

struct Scenes {
    _dir: tempfile::TempDir,
    images: Vec<PathBuf>,
    /// What was pasted into each image, by file name.
    payloads: BTreeMap<String, Vec<String>>,
}

fn scenes() -> Scenes {
    let dir = tempfile::tempdir().unwrap();
    let images = common::assets().join("images");
    common::run_python("tests/reference/qr_scenes.py", &[images.to_str().unwrap(), dir.path().to_str().unwrap()]);
    let payloads = serde_json::from_str(&std::fs::read_to_string(dir.path().join("payloads.json")).unwrap()).unwrap();
    let mut images: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    images.sort();
    assert!(images.len() >= 6, "the set-up's photos are there");
    Scenes { _dir: dir, images, payloads }
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_owned()
}

type Codes = Vec<(String, [f32; 4])>;

fn frameflow_codes(path: &Path) -> Codes {
    let rows = QrReader.process(&common::decoded_frame(path)).unwrap();
    rows.into_iter()
        .map(|d| {
            assert_eq!((&*d.label, d.attributes.contains_key("corners")), ("qr", true));
            (d.text.unwrap(), [d.x, d.y, d.w, d.h])
        })
        .collect()
}

fn reference_codes(images: &[PathBuf]) -> BTreeMap<String, Codes> {
    let args: Vec<&str> = images.iter().map(|p| p.to_str().unwrap()).collect();
    let out = common::run_python("tests/reference/qr.py", &args);
    out.lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let codes = row["codes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let b: Vec<f32> = c["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
                    (c["text"].as_str().unwrap().to_owned(), [b[0], b[1], b[2], b[3]])
                })
                .collect();
            (name(Path::new(row["image"].as_str().unwrap())), codes)
        })
        .collect()
}

#[test]
fn qr_reads_what_opencv_reads_on_real_photos() {
    let scenes = scenes();
    let reference = reference_codes(&scenes.images);
    let (mut read_by_both, mut read_by_frameflow) = (0, 0);
    for path in &scenes.images {
        let image = name(path);
        let ours = frameflow_codes(path);
        let pasted = &scenes.payloads[&image];
        for (text, _) in &ours {
            assert!(pasted.contains(text), "{image}: frameflow read `{text}`, which is not in the photo");
        }
        for (text, theirs) in &reference[&image] {
            let found = ours.iter().find(|(t, _)| t == text);
            let (_, bbox) = found.unwrap_or_else(|| panic!("{image}: OpenCV read `{text}`; frameflow did not"));
            let overlap = iou(bbox, theirs);
            assert!(overlap >= 0.8, "{image}: `{text}` at {bbox:?}, OpenCV {theirs:?} (IoU {overlap:.2})");
            read_by_both += 1;
        }
        read_by_frameflow += ours.len();
    }
    eprintln!("QR: frameflow read {read_by_frameflow} codes, OpenCV {read_by_both}");
    assert!(read_by_both >= 5, "the scenes hold readable codes");
}

/// The operator as a table function in a job: one row per code, with its
/// text, from a folder of frames.
#[test]
fn qr_runs_as_a_table_function() {
    let scenes = scenes();
    let dir = tempfile::tempdir().unwrap();
    let camera = dir.path().join("frames/door");
    std::fs::create_dir_all(&camera).unwrap();
    for (i, path) in scenes.images.iter().enumerate() {
        std::fs::copy(path, camera.join(format!("{}.jpg", 1_767_225_600_000 + 1000 * i as u64))).unwrap();
    }
    let job = "CREATE SOURCE cams FROM DIRECTORY 'frames';
               CREATE STREAM codes AS SELECT source_id, event_time, text FROM QR(cams);
               CREATE SINK o FROM codes INTO FILE 'out/codes.jsonl';";
    let output = common::run_job(dir.path(), job, &[]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let mut texts: Vec<String> = common::read_jsonl(&dir.path().join("out/codes.jsonl"))
        .iter()
        .map(|row| row["text"].as_str().unwrap().to_owned())
        .collect();
    texts.sort();
    let mut expected: Vec<String> = scenes.images.iter().flat_map(|p| frameflow_codes(p)).map(|(t, _)| t).collect();
    expected.sort();
    assert_eq!(texts, expected);
}
