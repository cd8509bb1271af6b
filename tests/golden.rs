//! SQL behaviour as golden files: each `tests/golden/NAME.sql` is a job
//! (reading the real detections in `tests/golden/data/`, writing to
//! STDOUT), and `NAME.out` its expected output: the rows it prints, sorted
//! (other output as printed), or the error it stops with. Each file is one test. When behaviour changes
//! on purpose, regenerate the expected files with
//!
//! ```sh
//! FRAMEFLOW_BLESS=1 cargo test --test golden
//! ```
//!
//! Jobs run with two workers, so results must not depend on which worker
//! computed what.

use std::path::{Path, PathBuf};
use std::process::Command;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// What a job printed: its rows sorted, or its error.
fn run_case(sql: &Path) -> String {
    // A job that hangs fails its case instead of the whole run (coreutils'
    // `timeout` ends it).
    let output = Command::new("timeout")
        .arg("120")
        .arg(env!("CARGO_BIN_EXE_frameflow"))
        .current_dir(golden_dir())
        .args(["run", sql.file_name().and_then(|n| n.to_str()).unwrap_or_default(), "--progress", "none"])
        .args(["--workers", "2", "--tick-ms", "100"])
        .output()
        .expect("frameflow runs");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return stderr
            .lines()
            .filter(|l| l.starts_with("error") || l.contains("caused by"))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines: Vec<&str> = stdout.lines().collect();
    // Rows come in any order from several workers; other output (EXPLAIN)
    // is kept as printed.
    if lines.iter().all(|l| l.starts_with('{')) {
        lines.sort();
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn main() {
    let bless = std::env::var_os("FRAMEFLOW_BLESS").is_some();
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/golden")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .filter(|p| filter.as_ref().is_none_or(|f| p.to_string_lossy().contains(f.as_str())))
        .collect();
    cases.sort();
    let (mut passed, mut failed) = (0, 0);
    for case in &cases {
        let name = case.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let expected_path = case.with_extension("out");
        let actual = run_case(case);
        if bless {
            std::fs::write(&expected_path, &actual).expect("write .out");
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual == expected {
            passed += 1;
            println!("test golden::{name} ... ok");
        } else {
            failed += 1;
            println!("test golden::{name} ... FAILED");
            println!("--- expected ({})\n{expected}--- actual\n{actual}", expected_path.display());
        }
    }
    println!();
    println!("golden: {passed} passed, {failed} failed");
    if failed > 0 || cases.is_empty() {
        std::process::exit(1);
    }
}
