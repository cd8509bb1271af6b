//! P3 detect pipeline: the quickstart job (directory source, JPEG decode,
//! YOLOv3-tiny through ONNX Runtime, NMS, windowed counts, JSONL sinks) in
//! frames/s, beside the Python pipeline a user would write for the same
//! work (OpenCV decode, the same ONNX Runtime build, numpy decode + NMS;
//! `benches/baselines/p3_detect.py`) on the same frames and cores.
//!
//! frameflow letterboxes each frame only to the network's stride multiple
//! (416×256 for these 640×360 frames) where the usual pipeline pads to the
//! full 416×416 square. The main figures compare against that usual
//! pipeline; a last figure gives the baseline the same rectangular
//! letterbox, to show how much of the gain is that choice.
//!
//! frameflow's figure is the whole job as its summary reports it, model
//! loading and start-up included; the baseline's excludes its model
//! loading and a warm-up frame, so the comparison leans against frameflow.
//! Each side runs three times; medians are reported.

use std::path::{Path, PathBuf};
use std::process::Command;

use frameflow_benches::{assets, figure, frames_dir, median, repo};

fn frameflow_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let binary = exe.with_file_name("frameflow");
    assert!(binary.is_file(), "{} not built: cargo build --release --workspace", binary.display());
    binary
}

fn frameflow_fps(workers: usize, out: &Path) -> f64 {
    let job = format!(
        "CREATE SOURCE cams FROM DIRECTORY '{frames}';
         CREATE STREAM detections AS SELECT * FROM DETECT(cams, model => 'objects', min_confidence => 0.3);
         CREATE VIEW counts AS SELECT source_id, label, window_start, window_end, count(*) AS n
           FROM TUMBLE(detections, event_time, INTERVAL '10' SECOND)
           GROUP BY source_id, label, window_start, window_end;
         CREATE SINK d FROM detections INTO FILE '{out}/detections.jsonl';
         CREATE SINK c FROM counts INTO FILE '{out}/counts.jsonl';",
        frames = frames_dir().display(),
        out = out.display()
    );
    let job_file = out.join("job.sql");
    std::fs::create_dir_all(out).expect("out dir");
    std::fs::write(&job_file, job).expect("job file");
    let output = Command::new(frameflow_binary())
        .args(["run", job_file.to_str().expect("utf-8 path"), "--progress", "none", "--workers", &workers.to_string()])
        .env("FRAMEFLOW_ASSETS", assets())
        .output()
        .expect("frameflow runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "frameflow failed: {stderr}");
    // "frameflow: done in 8.0 s: ... ; 29.9 frames/s"
    let summary = stderr.lines().find(|l| l.starts_with("frameflow: done")).expect("summary line");
    let rate = summary.rsplit("; ").next().and_then(|r| r.strip_suffix(" frames/s")).expect("rate");
    rate.parse().expect("number")
}

fn baseline_fps(threads: usize, letterbox: &str) -> f64 {
    let python = assets().join("venv/bin/python");
    let output = Command::new(python)
        .arg(repo().join("benches/baselines/p3_detect.py"))
        .arg(assets().join("models"))
        .arg(frames_dir())
        .args(["--threads", &threads.to_string(), "--min-confidence", "0.3", "--letterbox", letterbox])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "baseline failed: {}", String::from_utf8_lossy(&output.stderr));
    // "baseline frames=240 seconds=7.5 fps=32.0 detections=806"
    let fps = stdout.split_whitespace().find_map(|w| w.strip_prefix("fps=")).expect("fps");
    fps.parse().expect("number")
}

fn main() {
    let out = std::env::temp_dir().join(format!("frameflow-p3-{}", std::process::id()));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut lines = Vec::new();
    let mut all_cores = 0.0;
    for n in [cores, 1] {
        // frameflow: n workers with one ONNX Runtime thread each; the
        // baseline: one loop with n ONNX Runtime threads.
        let ours = median((0..3).map(|_| frameflow_fps(n, &out)).collect());
        let baseline = median((0..3).map(|_| baseline_fps(n, "square")).collect());
        println!("{n} core(s): frameflow {ours:.1} frames/s, baseline {baseline:.1} frames/s");
        lines.push(figure(&format!("P3 detect pipeline, {n} core(s)"), ours, baseline, "frames/s"));
        if n == cores {
            all_cores = ours;
        }
        if cores == 1 {
            break;
        }
    }
    let rect = median((0..3).map(|_| baseline_fps(cores, "rect")).collect());
    lines.push(figure(
        &format!("P3 detect pipeline, {cores} core(s), baseline also rectangular"),
        all_cores,
        rect,
        "frames/s",
    ));
    let _ = std::fs::remove_dir_all(&out);
    for line in lines {
        println!("{line}");
    }
}
