//! `HASH(src)` against imagehash's `dhash` on Pillow (tests/reference/hash.py)
//! on real images, and `dedup` against the same rule applied in Python.
//!
//! Tolerances: none where both read the same pixels (PNG): every hash is
//! equal, bit for bit. For JPEG photos, decoded by zune-jpeg here and by
//! Pillow's libjpeg there, a hash may differ in at most 3 of 64 bits.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::path::{Path, PathBuf};

use operators::hash::dhash;

fn frameflow_hash(path: &Path) -> u64 {
    dhash(&common::decoded_frame(path).pixels)
}

/// Reference rows: image, hash, and the image it duplicates.
fn reference(args: &[&str]) -> Vec<(PathBuf, u64, Option<String>)> {
    common::run_python("tests/reference/hash.py", args)
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                PathBuf::from(row["image"].as_str().unwrap()),
                u64::from_str_radix(row["dhash"].as_str().unwrap(), 16).unwrap(),
                row["duplicate_of"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// 40 frames of the film, 200 ms apart, as PNG files named by time, in
/// `dir`; returns their paths in time order.
fn film_pngs(dir: &Path) -> Vec<PathBuf> {
    let frames: Vec<PathBuf> = common::camera_frames("market-a").into_iter().take(40).collect();
    let mut args = vec!["--png", dir.to_str().unwrap()];
    args.extend(frames.iter().map(|p| p.to_str().unwrap()));
    reference(&args).into_iter().map(|(path, ..)| path).collect()
}

#[test]
fn hashes_equal_imagehash() {
    let dir = tempfile::tempdir().unwrap();
    let mut pngs = film_pngs(dir.path());
    pngs.push(common::assets().join("images/astronaut.png"));
    pngs.push(common::assets().join("opencv-doc/basketball1.png"));
    let args: Vec<&str> = pngs.iter().map(|p| p.to_str().unwrap()).collect();
    for (path, theirs, _) in reference(&args) {
        assert_eq!(frameflow_hash(&path), theirs, "{}", path.display());
    }
    let jpegs: Vec<PathBuf> =
        ["dog", "horses", "person", "kite"].iter().map(|n| common::assets().join(format!("images/{n}.jpg"))).collect();
    let args: Vec<&str> = jpegs.iter().map(|p| p.to_str().unwrap()).collect();
    for (path, theirs, _) in reference(&args) {
        let bits = (frameflow_hash(&path) ^ theirs).count_ones();
        assert!(bits <= 3, "{}: {bits} bits apart", path.display());
    }
}

/// A camera that repeats itself (a stuck encoder resending frames, a
/// scene with nothing moving): near duplicates within the span are
/// dropped, counted, and name the frame they repeat; the rest get a row.
#[test]
fn dedup_drops_what_the_rule_calls_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let camera = dir.path().join("frames/gate");
    std::fs::create_dir_all(&camera).unwrap();
    let film = film_pngs(&camera);
    // The camera sticks: every fifth frame is sent again, three times,
    // 50 ms apart, before the next.
    let mut stuck = Vec::new();
    for (i, path) in film.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
        let at: u64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        for k in 1..=3 {
            let copy = camera.join(format!("{}.png", at + 50 * k));
            std::fs::copy(path, &copy).unwrap();
            stuck.push((i, copy));
        }
    }
    let mut all: Vec<PathBuf> = std::fs::read_dir(&camera).unwrap().map(|e| e.unwrap().path()).collect();
    all.sort();
    let mut args = vec!["--dedup-ms", "1000", "--max-distance", "4"];
    args.extend(all.iter().map(|p| p.to_str().unwrap()));
    let expected = reference(&args);
    let time = |p: &Path| p.file_stem().unwrap().to_str().unwrap().parse::<u64>().unwrap();
    let mut duplicates: Vec<u64> = expected.iter().filter(|(_, _, d)| d.is_some()).map(|(p, ..)| time(p)).collect();
    assert!(duplicates.len() >= stuck.len(), "every resent copy is a duplicate, and some film frames too");

    let job = "CREATE SOURCE cams FROM DIRECTORY 'frames';
               CREATE STREAM hashes AS SELECT * FROM HASH(cams, dedup => '1s', max_distance => 4);
               CREATE SINK h FROM hashes INTO FILE 'out/hashes.jsonl';
               CREATE SINK o FROM outcomes INTO FILE 'out/outcomes.jsonl';";
    let output = common::run_job(dir.path(), job, &["--workers", "2"]);
    let stderr = common::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("{} duplicate", duplicates.len())), "{stderr}");
    let ms = |v: &serde_json::Value| {
        u64::try_from(engine::time::parse_rfc3339_ms(v["event_time"].as_str().unwrap()).unwrap()).unwrap()
    };
    let outcomes = common::read_jsonl(&dir.path().join("out/outcomes.jsonl"));
    let mut found: Vec<u64> = outcomes.iter().filter(|o| o["outcome"] == "duplicate").map(ms).collect();
    found.sort_unstable();
    duplicates.sort_unstable();
    assert_eq!(found, duplicates);
    for o in outcomes.iter().filter(|o| o["outcome"] == "duplicate") {
        assert!(o["reason"].as_str().unwrap().starts_with("a near duplicate of frame "), "{o}");
    }
    let rows = common::read_jsonl(&dir.path().join("out/hashes.jsonl"));
    assert_eq!(rows.len(), all.len() - duplicates.len(), "one row per frame kept");
    for row in &rows {
        let at = ms(row);
        let (_, theirs, _) = expected.iter().find(|(p, ..)| time(p) == at).unwrap();
        assert_eq!(row["text"].as_str().unwrap(), format!("{theirs:016x}"));
    }
}
