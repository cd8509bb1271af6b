//! `MOTION(src)` against OpenCV's MOG2 (tests/reference/motion.py) on the
//! first 120 frames of `vtest.avi` (PETS 2009: a fixed camera, people
//! walking; from Debian's opencv-doc), as PNG so both read the same pixels.
//!
//! frameflow's model is its own (two Gaussians per pixel where MOG2 keeps
//! up to five), so regions are compared, not pixels. From frame 20 on
//! (both models have learnt the scene), regions of at least 400 pixels,
//! two overlapping when their intersection is at least half the smaller:
//! - at least 90% of MOG2's regions overlap one of frameflow's (all 330 did
//!   when this was written);
//! - at least 70% of frameflow's overlap one of MOG2's (76% did): frameflow
//!   keeps a person who stands still a few frames longer than MOG2, and
//!   splits a few people where MOG2 sees one.
//!
//! The same frames through a job (`MOTION(cams)` over a folder, two
//! workers) give the same rows as the operator run directly.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::path::PathBuf;

use operators::motion::{Motion, MotionConfig};

type Boxes = Vec<[f32; 4]>;

fn overlaps(a: &[f32; 4], b: &[f32; 4]) -> bool {
    let iw = ((a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0])).max(0.0);
    let ih = ((a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1])).max(0.0);
    iw * ih >= 0.5 * (a[2] * a[3]).min(b[2] * b[3])
}

/// Share of `these` that overlap one of `those`, over all frames.
fn matched(these: &[Boxes], those: &[Boxes]) -> (usize, usize) {
    let mut hits = 0;
    let mut total = 0;
    for (a, b) in these.iter().zip(those) {
        total += a.len();
        hits += a.iter().filter(|x| b.iter().any(|y| overlaps(x, y))).count();
    }
    (hits, total)
}

#[test]
fn motion_finds_what_mog2_finds_in_a_real_video() {
    let dir = tempfile::tempdir().unwrap();
    let video = common::assets().join("opencv-doc/vtest.avi");
    assert!(video.is_file(), "{} is missing; run scripts/fetch_assets.sh", video.display());
    let out = common::run_python(
        "tests/reference/motion.py",
        &[video.to_str().unwrap(), dir.path().to_str().unwrap(), "120", "--min-area", "400"],
    );
    let mut frames: Vec<PathBuf> = Vec::new();
    let mut theirs: Vec<Boxes> = Vec::new();
    for line in out.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        frames.push(PathBuf::from(row["image"].as_str().unwrap()));
        theirs.push(
            row["regions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let v: Vec<f32> = r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
                    [v[0], v[1], v[2], v[3]]
                })
                .collect(),
        );
    }
    assert_eq!(frames.len(), 120);
    let mut motion = Motion::new(MotionConfig { min_area: 400, ..MotionConfig::default() });
    let ours: Vec<Boxes> = frames
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let decoded = common::decoded_frame(path);
            let camera = ("t".into(), "vtest".into());
            motion
                .regions(camera, 100 * i as i64, &decoded.pixels)
                .into_iter()
                .map(|r| [r.x0 as f32, r.y0 as f32, (r.x1 - r.x0 + 1) as f32, (r.y1 - r.y0 + 1) as f32])
                .collect()
        })
        .collect();
    let all_ours = ours.clone();
    let (ours, theirs) = (&ours[20..], &theirs[20..]);
    let (found, of_theirs) = matched(theirs, ours);
    let (confirmed, of_ours) = matched(ours, theirs);
    eprintln!("MOG2 regions matched: {found}/{of_theirs}; frameflow regions matched: {confirmed}/{of_ours}");
    assert!(of_theirs >= 100 && of_ours >= 100, "people walk through every frame");
    assert!(found * 10 >= of_theirs * 9, "{found} of MOG2's {of_theirs} regions found");
    assert!(confirmed * 10 >= of_ours * 7, "{confirmed} of frameflow's {of_ours} regions confirmed");

    // The same through a job: frames of the camera reach one instance, in
    // order, though two workers decode them.
    let job_dir = tempfile::tempdir().unwrap();
    let camera = job_dir.path().join("frames/hall");
    std::fs::create_dir_all(&camera).unwrap();
    for path in &frames {
        std::fs::copy(path, camera.join(path.file_name().unwrap())).unwrap();
    }
    let job = "CREATE SOURCE cams FROM DIRECTORY 'frames';
               CREATE STREAM moving AS SELECT * FROM MOTION(cams, min_area => 400);
               CREATE SINK o FROM moving INTO FILE 'out/motion.jsonl';";
    let output = common::run_job(job_dir.path(), job, &["--workers", "2"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let rows = common::read_jsonl(&job_dir.path().join("out/motion.jsonl"));
    let mut from_job: Vec<(i64, [i64; 4])> = rows
        .iter()
        .map(|r| {
            let t = engine::time::parse_rfc3339_ms(r["event_time"].as_str().unwrap()).unwrap() - 1_767_225_600_000;
            let b = ["x", "y", "w", "h"].map(|k| r[k].as_f64().unwrap() as i64);
            (t / 100, b)
        })
        .collect();
    from_job.sort_unstable();
    let mut direct: Vec<(i64, [i64; 4])> = all_ours
        .iter()
        .enumerate()
        .flat_map(|(i, boxes)| boxes.iter().map(move |b| (i as i64, b.map(|v| v as i64))))
        .collect();
    direct.sort_unstable();
    assert_eq!(from_job, direct);
}
