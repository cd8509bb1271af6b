//! The binary on real frames: detections and window counts are written,
//! bad files are dead-lettered with reasons while the rest go through, and
//! a bad job starts nothing.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::fs;
use std::path::Path;

const JOB: &str = "
CREATE SOURCE cams FROM DIRECTORY 'frames';
CREATE STREAM detections AS SELECT * FROM DETECT(cams, model => 'objects', min_confidence => 0.3);
CREATE VIEW counts AS
  SELECT source_id, label, window_start, window_end, count(*) AS n
  FROM TUMBLE(detections, event_time, INTERVAL '1' SECOND)
  GROUP BY source_id, label, window_start, window_end;
CREATE SINK d FROM detections INTO FILE 'out/detections.jsonl';
CREATE SINK c FROM counts INTO FILE 'out/counts.jsonl';
CREATE SINK o FROM outcomes INTO STDOUT;
";

/// Ten real frames per camera, named by event time, plus in `cam1` a
/// truncated JPEG and an empty file.
fn make_frames(root: &Path) {
    for (camera, from) in [("cam1", "market-a"), ("cam2", "market-b")] {
        let dir = root.join("frames").join(camera);
        fs::create_dir_all(&dir).unwrap();
        for (i, frame) in common::camera_frames(from).iter().take(10).enumerate() {
            fs::copy(frame, dir.join(format!("{}.jpg", 1_767_225_600_000 + i as u64 * 200))).unwrap();
        }
    }
    let real = fs::read(&common::camera_frames("market-a")[20]).unwrap();
    fs::write(root.join("frames/cam1/1767225602000.jpg"), &real[..real.len() / 3]).unwrap();
    fs::write(root.join("frames/cam1/1767225602200.jpg"), b"").unwrap();
}

#[test]
fn corrupt_and_empty_frames_are_dead_lettered_and_the_rest_processed() {
    let dir = tempfile::tempdir().unwrap();
    make_frames(dir.path());
    let output = common::run_job(dir.path(), JOB, &["--workers", "2"]);
    let stderr = common::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("22 frames (20 processed, 0 degraded, 2 rejected, 0 late)"), "{stderr}");

    let out = dir.path().join("out");
    let detections = common::read_jsonl(&out.join("detections.jsonl"));
    let frames: std::collections::BTreeSet<_> =
        detections.iter().map(|d| d["frame_id"].as_str().unwrap().to_owned()).collect();
    assert!(frames.len() >= 15, "most street frames have people in them: {} frames with detections", frames.len());
    assert!(detections.iter().any(|d| d["label"] == "person"));
    for d in &detections {
        for key in
            ["frame_id", "tenant", "source_id", "event_time", "operator", "label", "confidence", "x", "y", "w", "h"]
        {
            assert!(!d[key].is_null(), "detection without {key}: {d}");
        }
    }
    let counts = common::read_jsonl(&out.join("counts.jsonl"));
    let total: i64 = counts.iter().map(|c| c["n"].as_i64().unwrap()).sum();
    assert_eq!(total, detections.len() as i64, "every detection is counted in exactly one window");

    let mut dead: Vec<(String, String)> = common::read_jsonl(&out.join("dead_letter.jsonl"))
        .iter()
        .map(|r| (r["outcome"].as_str().unwrap().to_owned(), r["reason"].as_str().unwrap().to_owned()))
        .collect();
    dead.sort();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead.iter().all(|(outcome, _)| outcome == "rejected"));
    assert!(dead[0].1.contains("corrupt"), "{dead:?}");
    assert_eq!(dead[1].1, "file is empty");

    // Every frame's outcome, on standard output.
    let stdout = String::from_utf8(output.stdout).unwrap();
    let outcomes: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(outcomes.len(), 22);
    assert_eq!(outcomes.iter().filter(|o| o["outcome"] == "processed").count(), 20);
}

/// A job summed each stream's outcomes as if they were frames: two
/// streams on 22 frames read as 44.
#[test]
fn a_job_with_two_streams_counts_each_frame_once() {
    let dir = tempfile::tempdir().unwrap();
    make_frames(dir.path());
    let job = "
        CREATE SOURCE cams FROM DIRECTORY 'frames';
        CREATE STREAM detections AS SELECT * FROM DETECT(cams, model => 'objects');
        CREATE STREAM hashes AS SELECT * FROM HASH(cams);
        CREATE SINK d FROM detections INTO FILE 'out/detections.jsonl';
        CREATE SINK h FROM hashes INTO FILE 'out/hashes.jsonl';
    ";
    let output = common::run_job(dir.path(), job, &["--workers", "2"]);
    let stderr = common::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    // The two undecodable files are refused before either stream reads
    // them; each stream processes the other 20.
    let counts = "22 frames (2 rejected, 0 late; detections: 20 processed, 0 degraded, 0 rejected; \
                  hashes: 20 processed, 0 degraded, 0 rejected)";
    assert!(stderr.contains(counts), "{stderr}");
    assert_eq!(common::read_jsonl(&dir.path().join("out/hashes.jsonl")).len(), 20);
}

#[test]
fn a_job_with_a_mistake_says_where_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    make_frames(dir.path());
    let typo = JOB.replace("DETECT(cams", "DETECT(camz");
    let output = common::run_job(dir.path(), &typo, &[]);
    let stderr = common::stderr(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("job.sql:3:50: unknown source `camz` (hint: did you mean `cams`?)"), "{stderr}");
    assert!(!dir.path().join("out").exists(), "outputs were created by a job that did not start");

    let no_model = JOB.replace("'objects'", "'objets'");
    let output = common::run_job(dir.path(), &no_model, &[]);
    let stderr = common::stderr(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("model `objets` not found") && stderr.contains("known models: objects"), "{stderr}");
    assert!(!dir.path().join("out").exists());
}

/// Regression: with `watch = true` every worker without a camera held its
/// capability at zero, so no window ever closed.
#[test]
fn a_watched_folder_closes_windows_as_frames_arrive_with_more_workers_than_cameras() {
    let dir = tempfile::tempdir().unwrap();
    let camera = dir.path().join("frames/cam1");
    fs::create_dir_all(&camera).unwrap();
    let job = "CREATE SOURCE cams FROM DIRECTORY 'frames' WITH (watch = true, poll_interval = '50ms', lateness = '1s');
               CREATE STREAM d AS SELECT * FROM DETECT(cams, model => 'objects');
               CREATE VIEW c AS SELECT source_id, window_start, count(*) AS n
                 FROM TUMBLE(d, event_time, INTERVAL '1' SECOND) GROUP BY source_id, window_start;
               CREATE SINK o FROM c INTO FILE 'out/c.jsonl';";
    fs::write(dir.path().join("job.sql"), job).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_frameflow"))
        .current_dir(dir.path())
        .args(["run", "job.sql", "--progress", "none", "--workers", "2"])
        .env("FRAMEFLOW_ASSETS", common::assets())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Frames arrive while the job runs, written atomically (hidden name, then rename).
    for (i, frame) in common::camera_frames("market-a").iter().take(20).enumerate() {
        let hidden = camera.join(".incoming");
        fs::copy(frame, &hidden).unwrap();
        fs::rename(&hidden, camera.join(format!("{}.jpg", 1_767_225_600_000 + i as u64 * 200))).unwrap();
    }
    // Wait for the condition (closed windows written), with a deadline; a
    // watched job never ends by itself.
    let out = dir.path().join("out/c.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut rows = Vec::new();
    while rows.len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        rows = fs::read_to_string(&out).map(|t| t.lines().map(str::to_owned).collect()).unwrap_or_default();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(rows.len() >= 2, "windows 0 s and 1 s should have closed (frames up to 3.8 s, lateness 1 s): {rows:?}");
}

#[test]
fn generated_frames_go_through_detection_like_a_camera() {
    let dir = tempfile::tempdir().unwrap();
    let job = "
        CREATE SOURCE g FROM GENERATOR WITH (output = 'frames', count = 12, cameras = 3, rate = 6, width = 320, height = 180);
        CREATE STREAM found AS SELECT * FROM DETECT(g, model => 'objects');
        CREATE SINK o FROM outcomes INTO FILE 'out/outcomes.jsonl';";
    let output = common::run_job(dir.path(), job, &["--workers", "2"]);
    let stderr = common::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("12 frames (12 processed, 0 degraded, 0 rejected, 0 late)"), "{stderr}");
    let outcomes = common::read_jsonl(&dir.path().join("out/outcomes.jsonl"));
    let mut ids: Vec<&str> = outcomes.iter().map(|o| o["frame_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12, "one outcome per frame");
    let cameras: std::collections::BTreeSet<&str> = outcomes.iter().map(|o| o["source_id"].as_str().unwrap()).collect();
    assert_eq!(cameras.into_iter().collect::<Vec<_>>(), ["cam0", "cam1", "cam2"]);
    let last = outcomes.iter().map(|o| o["event_time"].as_str().unwrap()).max().unwrap();
    assert_eq!(last, "2026-01-01T00:00:01.833Z", "frame 11 at 6 frames/s");
}

#[test]
fn a_byte_budget_smaller_than_one_frame_still_finishes_the_job() {
    let dir = tempfile::tempdir().unwrap();
    make_frames(dir.path());
    // Every frame is larger than the budget: sources take one frame at a
    // time, and only once the dataflow has nothing it could finish.
    let output = common::run_job(dir.path(), JOB, &["--workers", "2", "--max-in-flight-bytes", "1KiB"]);
    let stderr = common::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("22 frames (20 processed, 0 degraded, 2 rejected, 0 late)"), "{stderr}");
    let bad = common::run_job(dir.path(), JOB, &["--max-in-flight-bytes", "lots"]);
    assert!(common::stderr(&bad).contains("is not a size like '32MiB'"), "{}", common::stderr(&bad));
}
