//! What the end-to-end tests share: where the set-up put things, running
//! the real binary, reading JSONL, and the Python references.
//!
//! The tests need the set-up's assets (`scripts/fetch_assets.sh`); without them
//! they fail with that instruction rather than pass vacuously.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn assets() -> PathBuf {
    let dir = std::env::var_os("FRAMEFLOW_ASSETS").map(PathBuf::from).unwrap_or_else(|| repo().join("assets"));
    assert!(
        dir.join("models/objects.json").is_file(),
        "no model under {}: run scripts/fetch_assets.sh first",
        dir.display()
    );
    dir
}

/// The quickstart frames of one camera, in capture order.
pub fn camera_frames(camera: &str) -> Vec<PathBuf> {
    let root = std::env::var_os("FRAMEFLOW_FRAMES").map(PathBuf::from).unwrap_or_else(|| repo().join("data/frames"));
    let mut frames: Vec<PathBuf> = std::fs::read_dir(root.join(camera))
        .unwrap_or_else(|e| panic!("no frames for {camera} under {}: {e}; run scripts/fetch_assets.sh", root.display()))
        .map(|e| e.unwrap().path())
        .collect();
    frames.sort();
    frames
}

/// The Python of the set-up's venv, with numpy, OpenCV, ONNX Runtime and
/// DuckDB.
pub fn python() -> PathBuf {
    let python = assets().join("venv/bin/python");
    assert!(python.is_file(), "no venv at {}: run scripts/fetch_assets.sh first", python.display());
    python
}

pub fn run_python(script: &str, args: &[&str]) -> String {
    let output = Command::new(python()).arg(repo().join(script)).args(args).output().expect("python runs");
    assert!(output.status.success(), "{script} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Runs `frameflow run JOB` in `dir` with the repo's assets.
pub fn run_job(dir: &Path, job: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("job.sql"), job).unwrap();
    Command::new(env!("CARGO_BIN_EXE_frameflow"))
        .current_dir(dir)
        .args(["run", "job.sql", "--progress", "none"])
        .args(extra)
        .env("FRAMEFLOW_ASSETS", assets())
        .output()
        .expect("frameflow runs")
}

/// Checks that a job reading a DIRECTORY source `cams` through `call`
/// (`DETECT(cams, ...)`) is refused before it starts, saying `expected`.
pub fn assert_refused(call: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("frames/lobby")).unwrap();
    let job = format!(
        "CREATE SOURCE cams FROM DIRECTORY 'frames';
         CREATE STREAM s AS SELECT * FROM {call};
         CREATE SINK o FROM s INTO FILE 'out/s.jsonl';"
    );
    let output = run_job(dir.path(), &job, &[]);
    let stderr = stderr(&output);
    assert!(!output.status.success(), "{call} ran");
    assert!(stderr.contains(expected), "{call}: {stderr}");
    assert!(!dir.path().join("out").exists(), "{call}: nothing was started");
}

/// `frameflow run job.sql` in `dir` on 2 workers with checkpoints every
/// 100 ms (when `durable`), output discarded, errors piped: for tests that
/// start, kill and restart a job.
pub fn frameflow(dir: &Path, durable: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_frameflow"));
    command
        .current_dir(dir)
        .args(["run", "job.sql", "--progress", "none", "--workers", "2", "--checkpoint-interval", "100ms"])
        .env("FRAMEFLOW_ASSETS", assets())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if durable {
        command.arg("--durable");
    }
    command
}

pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}"))).collect()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The image file at `path` as a frame of camera `cam`, decoded as the
/// engine decodes it (the media type from the file's extension).
pub fn decoded_frame(path: &Path) -> engine::model::DecodedFrame {
    use engine::registry::Decoder;
    let png = path.extension().is_some_and(|e| e == "png");
    let frame = engine::model::Frame {
        frame_id: path.to_string_lossy().into(),
        tenant: "t".into(),
        source_id: "cam".into(),
        seq: 0,
        event_time: 0,
        ingest_time: 0,
        media_type: if png { engine::model::MediaType::Png } else { engine::model::MediaType::Jpeg },
        bytes: std::fs::read(path).unwrap().into(),
        late: None,
        refused: None,
    };
    let pixels = operators::decode::FrameDecoder::default().decode(&frame).unwrap();
    engine::model::DecodedFrame { frame, pixels }
}

/// Waits (up to a minute) until something listens on `port`; `what` names
/// it in the failure.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} never listened");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits (up to a minute) until the file at `path` has `n` lines.
pub fn wait_for_lines(path: &Path, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(path).map_or(0, |t| t.lines().count()) < n && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A device token of `tenant` for every camera, valid for an hour, signed
/// with the secret in the file `secret`.
pub fn device_token(secret: &Path, tenant: &str) -> String {
    let claims = connectors::http::auth::Claims {
        tenant: tenant.into(),
        sources: vec!["*".into()],
        scope: "ingest".into(),
        exp: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600,
        nbf: None,
    };
    connectors::http::auth::mint(&claims, secret).unwrap()
}
