//! `CLASSIFY(src)` (torchvision's MobileNetV2, converted by
//! scripts/mobilenet2onnx.py) against torchvision's evaluation transform on
//! PIL and the same network on ONNX Runtime (tests/reference/classify.py),
//! on real photos from scikit-image, darknet and opencv-doc.
//!
//! Tolerances:
//! - PNG photos decode to the same pixels in both, and frameflow's resize
//!   is Pillow's: the same five classes in the same order, probabilities
//!   within 1e-4.
//! - JPEG photos: frameflow decodes with zune-jpeg, Pillow with
//!   libjpeg-turbo, a level or two apart per pixel. The same best class
//!   where the reference's best leads its second by 0.05 or more, and every
//!   class both report within 0.03.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::path::PathBuf;

use engine::model::Pixels;
use operators::classify::{ClassifyConfig, PreparedClassify};
use operators::onnx::ModelStore;

fn photos() -> Vec<PathBuf> {
    let doc = common::assets().join("opencv-doc");
    let images = common::assets().join("images");
    let mut photos: Vec<PathBuf> = ["coffee.png", "astronaut.png", "dog.jpg", "eagle.jpg", "giraffe.jpg", "kite.jpg"]
        .iter()
        .map(|n| images.join(n))
        .collect();
    photos.extend(["basketball1.png", "messi5.jpg", "facereg.jpg"].map(|n| doc.join(n)));
    for p in &photos {
        assert!(p.is_file(), "{} is missing; run scripts/fetch_assets.sh", p.display());
    }
    photos
}

/// Per photo, the best five as (class, probability).
fn reference(photos: &[PathBuf]) -> Vec<Vec<(usize, f32)>> {
    let models = common::assets().join("models");
    let mut args = vec![models.to_str().unwrap(), "5"];
    args.extend(photos.iter().map(|p| p.to_str().unwrap()));
    common::run_python("tests/reference/classify.py", &args)
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let top = row["top"].as_array().unwrap();
            top.iter().map(|t| (t["class"].as_u64().unwrap() as usize, t["p"].as_f64().unwrap() as f32)).collect()
        })
        .collect()
}

#[test]
fn classes_match_torchvision_preprocessing_on_onnx_runtime() {
    let photos = photos();
    let store = ModelStore::in_assets(&common::assets());
    let config = ClassifyConfig { top_k: 5, min_confidence: 0.0, threads: 1 };
    let mut classifier = PreparedClassify::load(&store, "mobilenet", config).unwrap().classifier().unwrap();
    let frames: Vec<Pixels> = photos.iter().map(|p| common::decoded_frame(p).pixels).collect();
    // one batch of all photos: batching must not change a result
    let ours = classifier.classify(&frames.iter().collect::<Vec<_>>()).unwrap();
    let theirs = reference(&photos);
    assert_eq!(theirs.len(), photos.len(), "the reference classified every photo");
    for ((path, ours), theirs) in photos.iter().zip(&ours).zip(&theirs) {
        let name = path.file_name().unwrap().to_string_lossy();
        let ours: Vec<(usize, f32)> = ours.iter().map(|c| (c.index, c.probability)).collect();
        if path.extension().is_some_and(|e| e == "png") {
            let classes = |v: &[(usize, f32)]| v.iter().map(|c| c.0).collect::<Vec<_>>();
            assert_eq!(classes(&ours), classes(theirs), "{name}: {ours:?} vs {theirs:?}");
            for (a, b) in ours.iter().zip(theirs) {
                assert!((a.1 - b.1).abs() < 1e-4, "{name}: {ours:?} vs {theirs:?}");
            }
        } else {
            if theirs[0].1 - theirs[1].1 >= 0.05 {
                assert_eq!(ours[0].0, theirs[0].0, "{name}: {ours:?} vs {theirs:?}");
            }
            for (class, p) in &ours {
                if let Some((_, q)) = theirs.iter().find(|t| t.0 == *class) {
                    assert!((p - q).abs() <= 0.03, "{name}: class {class}: {p} vs {q}");
                }
            }
        }
    }
    // and the network is the real one: what these photos show
    let best = |name: &str| ours[photos.iter().position(|p| p.ends_with(name)).unwrap()][0].index;
    assert_eq!(best("coffee.png"), 967, "espresso");
    assert_eq!(best("messi5.jpg"), 805, "soccer ball");
    assert_eq!(best("eagle.jpg"), 22, "bald eagle");
}

/// CLASSIFY as a table function: top_k rows per frame, best first, named.
#[test]
fn classify_runs_as_a_table_function() {
    let dir = tempfile::tempdir().unwrap();
    let camera = dir.path().join("frames/kitchen");
    std::fs::create_dir_all(&camera).unwrap();
    let images = common::assets().join("images");
    for (i, name) in ["coffee.png", "eagle.jpg", "dog.jpg"].iter().enumerate() {
        let ext = name.rsplit('.').next().unwrap();
        std::fs::copy(images.join(name), camera.join(format!("{}.{ext}", 1_767_225_600_000 + 1000 * i as u64)))
            .unwrap();
    }
    let job = "CREATE SOURCE cams FROM DIRECTORY 'frames';
               CREATE STREAM classes AS SELECT * FROM CLASSIFY(cams, top_k => 3);
               CREATE SINK o FROM classes INTO FILE 'out/classes.jsonl';";
    let output = common::run_job(dir.path(), job, &[]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let rows = common::read_jsonl(&dir.path().join("out/classes.jsonl"));
    assert_eq!(rows.len(), 9, "three classes for each of three frames: {rows:?}");
    let espresso = rows.iter().find(|r| r["attributes"]["rank"] == 1 && r["label"] == "espresso");
    assert!(espresso.is_some_and(|r| r["attributes"]["class"] == 967 && r["confidence"].as_f64().unwrap() > 0.9));
    for frame in rows.chunk_by(|a, b| a["frame_id"] == b["frame_id"]) {
        let ranks: Vec<u64> = frame.iter().map(|r| r["attributes"]["rank"].as_u64().unwrap()).collect();
        assert_eq!(ranks, [1, 2, 3], "{frame:?}");
    }
}

#[test]
fn bad_classify_arguments_are_refused_at_start() {
    for (call, expected) in [
        ("CLASSIFY(cams, top_k => 0)", "top_k = 0 is not a positive integer"),
        ("CLASSIFY(cams, model => 'objects')", "model `objects` is a `yolov3` model; CLASSIFY runs"),
        ("CLASSIFY(cams, model => 'resnet')", "model `resnet` not found"),
    ] {
        common::assert_refused(call, expected);
    }
}
