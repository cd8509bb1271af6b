//! Shared pieces of frameflow's benchmarks. Each benchmark is a binary in
//! `src/bin/` that runs frameflow and its baseline in one run and ends with
//! one line per figure:
//!
//! `P3 detect pipeline: frameflow 14.2 frames/s, baseline 10.1 frames/s, ratio 1.41x`
//!
//! `scripts/bench.sh` builds them in release mode, runs them all and writes
//! the table to BENCHMARKS.md.

use std::path::PathBuf;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// The set-up's assets folder (`FRAMEFLOW_ASSETS`, else `assets/`).
pub fn assets() -> PathBuf {
    std::env::var_os("FRAMEFLOW_ASSETS").map(PathBuf::from).unwrap_or_else(|| repo().join("assets"))
}

/// The quickstart frames (`FRAMEFLOW_FRAMES`, else `data/frames/`).
pub fn frames_dir() -> PathBuf {
    std::env::var_os("FRAMEFLOW_FRAMES").map(PathBuf::from).unwrap_or_else(|| repo().join("data/frames"))
}

/// Every frame file under the frames folder, camera by camera, in order.
pub fn frame_files() -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    let mut cameras: Vec<_> = std::fs::read_dir(frames_dir()).into_iter().flatten().filter_map(Result::ok).collect();
    cameras.sort_by_key(|e| e.file_name());
    for camera in cameras {
        let mut frames: Vec<_> =
            std::fs::read_dir(camera.path()).into_iter().flatten().filter_map(Result::ok).map(|e| e.path()).collect();
        frames.sort();
        let name = camera.file_name().to_string_lossy().into_owned();
        files.extend(frames.into_iter().map(|p| (name.clone(), p)));
    }
    files
}

/// The median of a few measurements.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The medians of seven runs of `ours` and seven of `theirs`, taking
/// turns, so that a change in the machine's load during the runs falls on
/// both. (With five, one slow turn on a shared host moved a median by 5%.)
pub fn side_by_side(mut ours: impl FnMut() -> f64, mut theirs: impl FnMut() -> f64) -> (f64, f64) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        a.push(ours());
        b.push(theirs());
    }
    (median(a), median(b))
}

/// The closing line of a figure.
pub fn figure(name: &str, ours: f64, baseline: f64, unit: &str) -> String {
    format!("{name}: frameflow {ours:.1} {unit}, baseline {baseline:.1} {unit}, ratio {:.2}x", ours / baseline)
}
