//! Windowed counts against a batch recomputation (DuckDB over the
//! detections file), with 1 and 2 workers, frames out of order within the
//! allowed lateness, and one late frame.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use engine::time::parse_rfc3339_ms;

const BASE_MS: u64 = 1_767_225_603_000;
const WINDOW_MS: u64 = 5_000;

const JOB: &str = "
CREATE SOURCE cams FROM DIRECTORY '../frames' WITH (event_time = 'mtime', lateness = '2s');
CREATE STREAM detections AS SELECT * FROM DETECT(cams, model => 'objects', min_confidence => 0.3);
CREATE VIEW counts AS
  SELECT source_id, label, window_start, window_end, count(*) AS n
  FROM TUMBLE(detections, event_time, INTERVAL '5' SECOND)
  GROUP BY source_id, label, window_start, window_end;
CREATE SINK d FROM detections INTO FILE 'out/detections.jsonl';
CREATE SINK c FROM counts INTO FILE 'out/counts.jsonl';
";

/// Copies a real frame to `camera/name` with `ms` as its modification time.
fn place(root: &Path, camera: &str, name: &str, from: &Path, ms: u64) {
    let dir = root.join(camera);
    fs::create_dir_all(&dir).unwrap();
    fs::copy(from, dir.join(name)).unwrap();
    let file = fs::File::options().write(true).open(dir.join(name)).unwrap();
    file.set_modified(UNIX_EPOCH + Duration::from_millis(ms)).unwrap();
}

/// Camera `a`: 30 frames 400 ms apart, three neighbour pairs swapped (out of
/// order by 400 ms, inside the 2 s lateness), then one frame 10.6 s behind
/// the newest: late. Camera `b`: 25 frames in order, 500 ms apart.
fn make_frames(root: &Path) -> &'static str {
    let a = common::camera_frames("market-a");
    let b = common::camera_frames("market-b");
    let mut order: Vec<u64> = (0..30).collect();
    for i in [3, 10, 20] {
        order.swap(i, i + 1);
    }
    for (i, step) in order.iter().enumerate() {
        place(root, "a", &format!("{i:03}.jpg"), &a[i], BASE_MS + step * 400);
    }
    place(root, "a", "030.jpg", &a[40], BASE_MS + 1_000);
    for (i, frame) in b.iter().take(25).enumerate() {
        place(root, "b", &format!("{i:03}.jpg"), frame, BASE_MS + 100 + i as u64 * 500);
    }
    "a/030.jpg"
}

type CountRow = (String, String, i64, i64);

fn frameflow_counts(out: &Path) -> Vec<CountRow> {
    let mut rows: Vec<CountRow> = common::read_jsonl(&out.join("counts.jsonl"))
        .iter()
        .map(|r| {
            let start = parse_rfc3339_ms(r["window_start"].as_str().unwrap()).unwrap();
            let end = parse_rfc3339_ms(r["window_end"].as_str().unwrap()).unwrap();
            assert_eq!(end - start, WINDOW_MS as i64);
            (
                r["source_id"].as_str().unwrap().into(),
                r["label"].as_str().unwrap().into(),
                start,
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn batch_counts(out: &Path) -> Vec<CountRow> {
    let detections = out.join("detections.jsonl");
    let text =
        common::run_python("tests/reference/window_counts.py", &[detections.to_str().unwrap(), &WINDOW_MS.to_string()]);
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn run_with_workers(root: &Path, workers: &str) -> Vec<CountRow> {
    let dir = root.join(format!("workers-{workers}"));
    fs::create_dir_all(&dir).unwrap();
    let output = common::run_job(&dir, JOB, &["--workers", workers, "--tick-ms", "100"]);
    let stderr = common::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("56 frames (55 processed, 0 degraded, 0 rejected, 1 late)"), "{stderr}");

    let out = dir.join("out");
    let streamed = frameflow_counts(&out);
    assert_eq!(
        streamed,
        batch_counts(&out),
        "incremental windows differ from the batch recomputation ({workers} workers)"
    );
    let mut keys: Vec<_> = streamed.iter().map(|(s, l, w, _)| (s, l, w)).collect();
    keys.dedup();
    assert_eq!(keys.len(), streamed.len(), "a window row was emitted twice");
    assert!(
        streamed.iter().map(|r| r.2).collect::<std::collections::BTreeSet<_>>().len() >= 3,
        "expected several windows"
    );

    let dead = common::read_jsonl(&out.join("dead_letter.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["outcome"], "late");
    assert_eq!(dead[0]["source_id"], "a");
    assert!(dead[0]["reason"].as_str().unwrap().contains("watermark"));
    streamed
}

#[test]
fn window_counts_equal_batch_recomputation_with_one_and_two_workers() {
    let root = tempfile::tempdir().unwrap();
    let late = make_frames(&root.path().join("frames"));
    let one = run_with_workers(root.path(), "1");
    let two = run_with_workers(root.path(), "2");
    assert_eq!(one, two, "results depend on the number of workers");
    let late_event_time = "2026-01-01T00:00:04.000Z";
    let dead = common::read_jsonl(&root.path().join("workers-1/out/dead_letter.jsonl"));
    assert_eq!(dead[0]["event_time"], late_event_time, "the late frame is {late}");
}
