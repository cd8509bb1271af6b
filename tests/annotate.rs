//! `ANNOTATE(src, operator => 'detect', into => ...)` in a job, on darknet's
//! photos: its rows are DETECT's, and each frame is written as a JPEG with
//! the boxes drawn in their label's colour, labels above them, and the rest
//! of the photo as it was.
//!
//! Tolerances (JPEG at quality 95 changes pixels a little): a box's edge
//! pixels are within 60 (sum over R, G, B) of its colour for 90% of the
//! points sampled along it; away from every box and label, the mean
//! difference from the original photo is under 3 levels.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::path::Path;

use engine::model::Pixels;
use operators::annotate::colour;

fn at(p: &Pixels, x: i64, y: i64) -> [u8; 3] {
    let i = 3 * (y as usize * p.width as usize + x as usize);
    [p.rgb[i], p.rgb[i + 1], p.rgb[i + 2]]
}

fn distance(a: [u8; 3], b: [u8; 3]) -> u32 {
    a.iter().zip(b).map(|(x, y)| u32::from(x.abs_diff(y))).sum()
}

#[test]
fn annotate_draws_detect_boxes_into_jpegs() {
    let dir = tempfile::tempdir().unwrap();
    let camera = dir.path().join("frames/yard");
    std::fs::create_dir_all(&camera).unwrap();
    let images = common::assets().join("images");
    let names = ["dog.jpg", "horses.jpg", "person.jpg"];
    for (i, name) in names.iter().enumerate() {
        std::fs::copy(images.join(name), camera.join(format!("{}.jpg", 1_767_225_600_000 + 1000 * i as u64))).unwrap();
    }
    let job = "CREATE SOURCE cams FROM DIRECTORY 'frames';
               CREATE STREAM seen AS SELECT * FROM ANNOTATE(cams, into => 'seen', quality => 95, min_confidence => 0.4);
               CREATE STREAM plain AS SELECT * FROM DETECT(cams, min_confidence => 0.4);
               CREATE SINK a FROM seen INTO FILE 'out/seen.jsonl';
               CREATE SINK b FROM plain INTO FILE 'out/plain.jsonl';";
    let output = common::run_job(dir.path(), job, &[]);
    assert!(output.status.success(), "{}", common::stderr(&output));

    // the rows are DETECT's, each naming its JPEG
    let key = |r: &serde_json::Value| format!("{} {} {} {} {}", r["frame_id"], r["label"], r["x"], r["y"], r["w"]);
    let seen = common::read_jsonl(&dir.path().join("out/seen.jsonl"));
    let plain = common::read_jsonl(&dir.path().join("out/plain.jsonl"));
    let (mut a, mut b): (Vec<String>, Vec<String>) = (seen.iter().map(key).collect(), plain.iter().map(key).collect());
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert!(seen.len() >= 6, "darknet's photos hold several objects: {seen:?}");

    let written: Vec<_> = walk(&dir.path().join("seen"));
    assert_eq!(written.len(), names.len(), "one JPEG per frame: {written:?}");
    for row in &seen {
        let path = dir.path().join(row["attributes"]["annotated"].as_str().unwrap());
        assert!(path.is_file(), "{path:?}");
    }

    for (i, name) in names.iter().enumerate() {
        let original = common::decoded_frame(&images.join(name)).pixels;
        let stem = format!("{}-", 1_767_225_600_000 + 1000 * i as u64);
        let jpeg = written.iter().find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&stem)).unwrap();
        let drawn = common::decoded_frame(jpeg).pixels;
        assert_eq!((drawn.width, drawn.height), (original.width, original.height));
        let rows: Vec<&serde_json::Value> =
            seen.iter().filter(|r| jpeg.ends_with(r["attributes"]["annotated"].as_str().unwrap())).collect();
        assert!(!rows.is_empty(), "{name} has detections");
        let boxes: Vec<[i64; 4]> =
            rows.iter().map(|r| ["x", "y", "w", "h"].map(|k| r[k].as_f64().unwrap().round() as i64)).collect();
        for (row, [x, y, w, h]) in rows.iter().zip(&boxes) {
            // sample the left and bottom edges, one pixel in: a later box may
            // be drawn over the top edge's label of another
            let colour = colour(row["label"].as_str().unwrap());
            let x0 = (*x).clamp(0, original.width as i64 - 1);
            let y1 = (y + h - 1).clamp(0, original.height as i64 - 1);
            let points: Vec<(i64, i64)> = (1..10)
                .map(|k| (x0, y + h * k / 10))
                .chain((1..10).map(|k| (x + w * k / 10, y1)))
                .filter(|(px, py)| *px >= 0 && *py >= 0 && *px < original.width as i64 && *py < original.height as i64)
                .collect();
            let close = points.iter().filter(|(px, py)| distance(at(&drawn, *px, *py), colour) <= 60).count();
            let covered_by_other = |px: i64, py: i64| {
                boxes.iter().filter(|b| px >= b[0] && px < b[0] + b[2] && py >= b[1] && py < b[1] + b[3]).count() > 1
            };
            let others = points.iter().filter(|(px, py)| covered_by_other(*px, *py)).count();
            assert!(close + others >= points.len() * 9 / 10, "{name}: {row}: {close} of {} edge points", points.len());
        }
        // a label band above each box: its colour with white text on it
        let labelled = rows
            .iter()
            .zip(&boxes)
            .filter(|(row, [x, y, ..])| {
                let colour = colour(row["label"].as_str().unwrap());
                let band: Vec<[u8; 3]> = ((y - 18).max(0)..*y)
                    .flat_map(|py| (*x..x + 50).map(move |px| (px, py)))
                    .filter(|(px, _)| *px >= 0 && *px < original.width as i64)
                    .map(|(px, py)| at(&drawn, px, py))
                    .collect();
                let coloured = band.iter().filter(|p| distance(**p, colour) <= 60).count();
                let white = band.iter().filter(|p| distance(**p, [255, 255, 255]) <= 90).count();
                coloured >= 200 && white >= 20
            })
            .count();
        let above = boxes.iter().filter(|b| b[1] >= 18).count();
        assert!(labelled * 2 >= above, "{name}: {labelled} of {above} boxes have a label band above them");
        // away from the boxes (and the label bands above them), the photo is unchanged
        let margin = 40;
        let untouched = |x: i64, y: i64| {
            boxes.iter().all(|[bx, by, bw, bh]| {
                x < bx - margin || x > bx + bw + margin || y < by - 2 * margin || y > by + bh + margin
            })
        };
        let (mut total, mut count) = (0u64, 0u64);
        for y in (0..original.height as i64).step_by(3) {
            for x in (0..original.width as i64).step_by(3) {
                if untouched(x, y) {
                    total += u64::from(distance(at(&drawn, x, y), at(&original, x, y)));
                    count += 1;
                }
            }
        }
        if count > 100 {
            let mean = total as f64 / count as f64 / 3.0;
            assert!(mean < 3.0, "{name}: the photo away from boxes differs by {mean:.2} levels");
        }
    }
}

#[test]
fn annotate_refuses_an_unknown_operator_or_no_folder() {
    for (call, expected) in [
        ("ANNOTATE(cams, operator => 'ocr', into => 'x')", "ANNOTATE cannot run operator `ocr`; it runs: "),
        ("ANNOTATE(cams)", "ANNOTATE needs into => 'FOLDER'"),
        ("ANNOTATE(cams, into => 'x', quality => 0)", "quality = 0 is not 1 to 100"),
        ("ANNOTATE(cams, operator => 'faces', into => 'x', min_face => 3)", "min_face = 3 is not"),
    ] {
        common::assert_refused(call, expected);
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
