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
/// Per image: its path, imagehash's dhash, and the frame it duplicates.
type Hashed = Vec<(PathBuf, u64, Option<String>)>;

fn reference(args: &[&str]) -> Hashed {
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

/// A camera that sticks: the film's frames as PNGs, every fifth sent again
/// three times, 50 ms apart. Returns every frame's path and the event
/// times the dedup rule (1 s, 4 bits), applied in Python over imagehash's
/// hashes, calls duplicates, with the reference hashes.
fn sticking_camera(camera: &Path) -> (Vec<PathBuf>, Vec<u64>, Hashed) {
    std::fs::create_dir_all(camera).unwrap();
    let film = film_pngs(camera);
    let mut stuck = 0;
    for path in film.iter().step_by(5) {
        let at: u64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        for k in 1..=3 {
            std::fs::copy(path, camera.join(format!("{}.png", at + 50 * k))).unwrap();
            stuck += 1;
        }
    }
    let mut all: Vec<PathBuf> = std::fs::read_dir(camera).unwrap().map(|e| e.unwrap().path()).collect();
    all.sort();
    let mut args = vec!["--dedup-ms", "1000", "--max-distance", "4"];
    args.extend(all.iter().map(|p| p.to_str().unwrap()));
    let expected = reference(&args);
    let mut duplicates: Vec<u64> = expected.iter().filter(|(_, _, d)| d.is_some()).map(|(p, ..)| time(p)).collect();
    duplicates.sort_unstable();
    assert!(duplicates.len() >= stuck, "every resent copy is a duplicate, and some film frames too");
    (all, duplicates, expected)
}

fn time(p: &Path) -> u64 {
    p.file_stem().unwrap().to_str().unwrap().parse::<u64>().unwrap()
}

fn ms(v: &serde_json::Value) -> u64 {
    u64::try_from(engine::time::parse_rfc3339_ms(v["event_time"].as_str().unwrap()).unwrap()).unwrap()
}

/// The frames refused as duplicates, from the job's outcomes.
fn duplicate_outcomes(dir: &Path) -> Vec<u64> {
    let outcomes = common::read_jsonl(&dir.join("out/outcomes.jsonl"));
    for o in outcomes.iter().filter(|o| o["outcome"] == "duplicate") {
        assert!(o["reason"].as_str().unwrap().starts_with("a near duplicate of frame "), "{o}");
    }
    let mut found: Vec<u64> = outcomes.iter().filter(|o| o["outcome"] == "duplicate").map(ms).collect();
    found.sort_unstable();
    found
}

#[test]
fn dedup_drops_what_the_rule_calls_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let (all, duplicates, expected) = sticking_camera(&dir.path().join("frames/gate"));
    let job = "CREATE SOURCE cams FROM DIRECTORY 'frames';
               CREATE STREAM hashes AS SELECT * FROM HASH(cams, dedup => '1s', max_distance => 4);
               CREATE SINK h FROM hashes INTO FILE 'out/hashes.jsonl';
               CREATE SINK o FROM outcomes INTO FILE 'out/outcomes.jsonl';";
    let output = common::run_job(dir.path(), job, &["--workers", "2"]);
    let stderr = common::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("{} duplicate", duplicates.len())), "{stderr}");
    assert_eq!(duplicate_outcomes(dir.path()), duplicates);
    let rows = common::read_jsonl(&dir.path().join("out/hashes.jsonl"));
    assert_eq!(rows.len(), all.len() - duplicates.len(), "one row per frame kept");
    for row in &rows {
        let (_, theirs, _) = expected.iter().find(|(p, ..)| time(p) == ms(row)).unwrap();
        assert_eq!(row["text"].as_str().unwrap(), format!("{theirs:016x}"));
    }
}

/// `dedup` on the source: duplicates are dropped before every stream, so
/// an expensive model never sees them; each is one `duplicate` outcome.
#[test]
fn source_dedup_drops_duplicates_before_every_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (all, duplicates, _) = sticking_camera(&dir.path().join("frames/gate"));
    let job = "CREATE SOURCE cams FROM DIRECTORY 'frames' WITH (dedup = '1s', max_distance = 4);
               CREATE STREAM hashes AS SELECT * FROM HASH(cams);
               CREATE STREAM classes AS SELECT * FROM CLASSIFY(cams, top_k => 1);
               CREATE SINK h FROM hashes INTO FILE 'out/hashes.jsonl';
               CREATE SINK c FROM classes INTO FILE 'out/classes.jsonl';
               CREATE SINK o FROM outcomes INTO FILE 'out/outcomes.jsonl';";
    let output = common::run_job(dir.path(), job, &["--workers", "2"]);
    let stderr = common::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(duplicate_outcomes(dir.path()), duplicates);
    let kept: Vec<u64> = all.iter().map(|p| time(p)).filter(|t| duplicates.binary_search(t).is_err()).collect();
    for stream in ["hashes", "classes"] {
        let mut seen: Vec<u64> =
            common::read_jsonl(&dir.path().join(format!("out/{stream}.jsonl"))).iter().map(ms).collect();
        seen.sort_unstable();
        assert_eq!(seen, kept, "{stream}: one row for each frame kept, none for a duplicate");
    }
}
