//! Overload: clients push frames over HTTP many times faster than the
//! detector can take them. The job must take only what it can finish:
//! the rest is refused at once with 503, memory stays within its budget,
//! and every frame that got a 202 is processed, once.
//!
//! Rates and latencies are printed, not asserted: timing never decides a
//! test here.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The process's resident memory now, and at its peak, in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One POST as a device sends it (the project's own client): the status
/// (0: no answer) and the body.
fn post(port: u16, token: &str, camera: &str, at: i64, jpeg: &[u8]) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}/v1/frames/{camera}");
    let (auth, at) = (format!("Bearer {token}"), at.to_string());
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "image/jpeg"), ("X-Event-Time", at.as_str())];
    connectors::http::client::post(&url, &headers, jpeg).map_or((0, String::new()), |a| (a.status, a.body))
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p) as usize]
}

#[test]
fn under_overload_memory_stays_bounded_and_every_202_is_processed() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(dir.path().join("secret"), "a secret of the overload test, long enough").unwrap();
    std::fs::write(
        dir.path().join("job.sql"),
        format!(
            "CREATE SOURCE cams FROM HTTP WITH (listen = '127.0.0.1:{port}', jwt_secret_file = 'secret',
               queue = 16, lateness = '1h');
             CREATE STREAM found AS SELECT * FROM DETECT(cams, model => 'objects');
             CREATE SINK o FROM outcomes INTO FILE 'out/outcomes.jsonl';"
        ),
    )
    .unwrap();
    let budget: u64 = 16 << 20;
    let mut job = Command::new(env!("CARGO_BIN_EXE_frameflow"))
        .current_dir(dir.path())
        .args(["run", "job.sql", "--progress", "none", "--workers", "2"])
        .args(["--max-in-flight", "8", "--max-in-flight-bytes", &budget.to_string()])
        .env("FRAMEFLOW_ASSETS", common::assets())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for_port(port, "the HTTP source");
    let token = common::device_token(&dir.path().join("secret"), "t");
    let frames: Vec<Vec<u8>> =
        common::camera_frames("market-a").iter().take(40).map(|p| std::fs::read(p).unwrap()).collect();

    // Warm: one frame through, so the model is loaded before memory is
    // measured.
    let (status, _) = post(port, &token, "warm", 1_767_225_600_000, &frames[0]);
    assert_eq!(status, 202);
    common::wait_for_lines(&dir.path().join("out/outcomes.jsonl"), 1);
    let (settled, _) = rss(job.id());

    // Eight clients, each sending as fast as it is answered, for 6 s.
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (token, frames, accepted, refusals) =
                (token.clone(), frames.clone(), accepted.clone(), refusals.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while started.elapsed() < Duration::from_secs(6) {
                    let at = 1_767_225_600_000 + (c * 1_000_000 + i) as i64;
                    let sent = Instant::now();
                    let (status, body) = post(port, &token, &format!("cam{c}"), at, &frames[i % frames.len()]);
                    match status {
                        202 => {
                            let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
                            accepted.lock().unwrap().insert(answer["frame_id"].as_str().unwrap().to_owned());
                        }
                        503 => refusals.lock().unwrap().push(sent.elapsed().as_secs_f64()),
                        other => panic!("unexpected answer {other}: {body}"),
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let mut peak_during = 0;
    while started.elapsed() < Duration::from_secs(6) {
        peak_during = peak_during.max(rss(job.id()).0);
        std::thread::sleep(Duration::from_millis(50));
    }
    for client in clients {
        client.join().unwrap();
    }
    let (_, peak) = rss(job.id());
    Command::new("kill").args(["-TERM", &job.id().to_string()]).status().unwrap();
    let mut stderr = String::new();
    job.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(job.wait().unwrap().success(), "{stderr}");

    let accepted = accepted.lock().unwrap().clone();
    let refusals = refusals.lock().unwrap().clone();
    let outcomes = common::read_jsonl(&dir.path().join("out/outcomes.jsonl"));
    eprintln!(
        "overload: {} accepted ({:.1}/s), {} refused with 503 (p50 {:.1} ms, p99 {:.1} ms); RSS {} MiB settled, \
         {} MiB at peak (during the load {} MiB)",
        accepted.len(),
        accepted.len() as f64 / 6.0,
        refusals.len(),
        percentile(refusals.clone(), 0.5) * 1e3,
        percentile(refusals.clone(), 0.99) * 1e3,
        settled >> 20,
        peak >> 20,
        peak_during >> 20
    );
    assert!(refusals.len() > accepted.len(), "the load was more than the job could take");
    let processed: Vec<&str> =
        outcomes.iter().filter(|o| o["source_id"] != "warm").map(|o| o["frame_id"].as_str().unwrap()).collect();
    let unique: BTreeSet<String> = processed.iter().map(|s| s.to_string()).collect();
    assert_eq!(unique.len(), processed.len(), "no frame is processed twice");
    assert_eq!(unique, accepted, "every frame that got a 202 is processed");
    assert!(outcomes.iter().all(|o| o["outcome"] == "processed"), "none is rejected");
    // What is queued or in flight is bounded by the budget; decoded pixels
    // and the model's buffers by the frames in flight. Peak memory stays
    // within the settled size plus a few times the budget, however long
    // the overload lasts.
    assert!(peak < settled + 4 * budget, "peak RSS {} MiB, settled {} MiB", peak >> 20, settled >> 20);
}
