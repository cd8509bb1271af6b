//! `TEXT(src)` (PP-OCRv4) against the rapidocr-onnxruntime package itself
//! (tests/reference/text.py), on the scene-text photos of Debian's
//! opencv-doc and Messi's photo, written as PNGs first so that both sides
//! read the same pixels.
//!
//! frameflow ports OpenCV's resize and perspective crop and Clipper's offset
//! exactly, but finds regions its own way and its minimum-area rectangles
//! lack OpenCV's float noise (see operators/src/text.rs), so a corner may
//! be a pixel off and its crop with it. On these photos all 27 lines come
//! out identical. Tolerances: the same lines; each line's text identical
//! where the package's score is 0.8 or more; corners within 2 pixels;
//! scores within 0.02.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::path::PathBuf;

use operators::onnx::ModelStore;
use operators::text::{Line, PreparedText};

const PHOTOS: [&str; 9] = [
    "scenetext01.jpg",
    "scenetext02.jpg",
    "scenetext03.jpg",
    "scenetext04.jpg",
    "scenetext05.jpg",
    "scenetext_segmented_word01.jpg",
    "scenetext_segmented_word03.jpg",
    "scenetext_segmented_word05.jpg",
    "messi5.jpg",
];

fn reference(photos: &[PathBuf], png: &std::path::Path) -> Vec<(PathBuf, Vec<Line>)> {
    let mut args = vec!["--png", png.to_str().unwrap()];
    args.extend(photos.iter().map(|p| p.to_str().unwrap()));
    common::run_python("tests/reference/text.py", &args)
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let lines = row["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    let q: Vec<[f32; 2]> = l["quad"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| [p[0].as_f64().unwrap() as f32, p[1].as_f64().unwrap() as f32])
                        .collect();
                    Line {
                        quad: [q[0], q[1], q[2], q[3]],
                        text: l["text"].as_str().unwrap().to_owned(),
                        score: l["score"].as_f64().unwrap(),
                    }
                })
                .collect();
            (PathBuf::from(row["image"].as_str().unwrap()), lines)
        })
        .collect()
}

fn corner_distance(a: &Line, b: &Line) -> f32 {
    a.quad.iter().zip(&b.quad).map(|(p, q)| (p[0] - q[0]).abs().max((p[1] - q[1]).abs())).fold(0.0, f32::max)
}

#[test]
fn text_matches_rapidocr_on_scene_photos() {
    let doc = common::assets().join("opencv-doc");
    let photos: Vec<PathBuf> = PHOTOS.iter().map(|n| doc.join(n)).collect();
    for p in &photos {
        assert!(p.is_file(), "{} is missing; run scripts/fetch_assets.sh", p.display());
    }
    let png = tempfile::tempdir().unwrap();
    let theirs = reference(&photos, png.path());
    assert_eq!(theirs.len(), photos.len());
    let store = ModelStore::in_assets(&common::assets());
    let mut reader = PreparedText::load(&store, "ppocr", 0.5, 1).unwrap().reader().unwrap();
    let mut total = 0;
    for (path, expected) in &theirs {
        let name = path.file_name().unwrap().to_string_lossy();
        let ours = reader.read(&common::decoded_frame(path).pixels).unwrap();
        let texts = |lines: &[Line]| lines.iter().map(|l| l.text.clone()).collect::<Vec<_>>();
        assert_eq!(ours.len(), expected.len(), "{name}: {:?} vs {:?}", texts(&ours), texts(expected));
        for line in expected {
            let found =
                ours.iter().min_by(|a, b| corner_distance(a, line).total_cmp(&corner_distance(b, line))).unwrap();
            let moved = corner_distance(found, line);
            assert!(moved <= 2.0, "{name}: `{}` at {:?}, the package's at {:?}", found.text, found.quad, line.quad);
            if line.score >= 0.8 {
                assert_eq!(found.text, line.text, "{name}");
            }
            assert!(
                (found.score - line.score).abs() <= 0.02,
                "{name}: `{}` {} vs {}",
                line.text,
                found.score,
                line.score
            );
        }
        total += expected.len();
    }
    assert!(total >= 25, "the photos hold {total} lines");
}

/// TEXT as a table function: the lines of a sign, in reading order.
#[test]
fn text_runs_as_a_table_function() {
    let dir = tempfile::tempdir().unwrap();
    let camera = dir.path().join("frames/street");
    std::fs::create_dir_all(&camera).unwrap();
    std::fs::copy(common::assets().join("opencv-doc/scenetext01.jpg"), camera.join("1767225600000.jpg")).unwrap();
    let job = "CREATE SOURCE cams FROM DIRECTORY 'frames';
               CREATE STREAM signs AS SELECT * FROM TEXT(cams);
               CREATE SINK o FROM signs INTO FILE 'out/signs.jsonl';";
    let output = common::run_job(dir.path(), job, &[]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let rows = common::read_jsonl(&dir.path().join("out/signs.jsonl"));
    let texts: Vec<&str> = rows.iter().map(|r| r["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["NOTICE", "DOUBLE", "PARKING", "PROHIBITED", "AT ALLTIMES"]);
    for row in &rows {
        assert_eq!(row["label"], "text");
        assert_eq!(row["attributes"]["quad"].as_array().unwrap().len(), 4, "{row}");
    }
}

/// Frames of odd sizes (a dot, a thin strip, a very wide or tall one, a
/// blank one) are read without error: each gives its lines or none.
#[test]
fn text_takes_frames_of_any_size() {
    let store = ModelStore::in_assets(&common::assets());
    let mut reader = PreparedText::load(&store, "ppocr", 0.5, 1).unwrap().reader().unwrap();
    let sign = common::decoded_frame(&common::assets().join("opencv-doc/scenetext04.jpg")).pixels;
    for (w, h) in [(1, 1), (300, 10), (1200, 60), (30, 2100), (64, 64), (4000, 30), (2000, 1)] {
        let rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                // the sign's pixels tiled, so there is something like text to find
                let (x, y) = (i % w, i / w);
                let at = 3 * ((y % sign.height as usize) * sign.width as usize + x % sign.width as usize);
                [sign.rgb[at], sign.rgb[at + 1], sign.rgb[at + 2]]
            })
            .collect();
        let pixels = engine::model::Pixels { width: w as u32, height: h as u32, rgb: rgb.into() };
        reader.read(&pixels).unwrap_or_else(|e| panic!("{w}x{h}: {e}"));
    }
}
