//! P6 backpressure and durability, on a job that detects objects in frames
//! pushed over HTTP (`--durable`: each frame journaled and synced before
//! its 202, checkpoints every second):
//!
//! - **goodput at 5× overload**: the most frames/s the job accepts (each
//!   accepted frame is processed) with 16 clients sending as fast as they
//!   are answered (waiting 20 ms after a 503), then with 5× that rate offered, open loop, by 32; the
//!   baseline is the first, the unloaded maximum. Peak RSS is printed
//!   beside.
//! - **ingest→sink latency** at half the maximum: from a frame's POST to
//!   its outcome row in the sink's file; the baseline is the same job
//!   without `--durable` (no journal, sinks writing rows as they come). A
//!   durable job's sinks write a tick once the watermark has passed it, so
//!   its latency includes the source's lateness (1 s here).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use connectors::http::auth::{Claims, mint};
use frameflow_benches::{assets, frame_files};

struct Job(Child, u16);

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, durable: bool) -> Job {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
    let _ = std::fs::remove_dir_all(dir.join(".frameflow"));
    let _ = std::fs::remove_dir_all(dir.join("out"));
    std::fs::write(
        dir.join("job.sql"),
        format!(
            "CREATE SOURCE cams FROM HTTP WITH (listen = '127.0.0.1:{port}', jwt_secret_file = 'secret',
               queue = 32, lateness = '1s', idle_timeout = '1s');
             CREATE STREAM found AS SELECT * FROM DETECT(cams, model => 'objects');
             CREATE SINK o FROM outcomes INTO FILE 'out/outcomes.jsonl';"
        ),
    )
    .expect("job written");
    let binary = std::env::current_exe().expect("this binary").with_file_name("frameflow");
    let mut command = Command::new(binary);
    command
        .current_dir(dir)
        .args(["run", "job.sql", "--progress", "none", "--max-in-flight", "16"])
        .env("FRAMEFLOW_ASSETS", assets())
        .stderr(Stdio::null());
    if durable {
        command.arg("--durable");
    }
    let child = command.spawn().expect("frameflow starts");
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    Job(child, port)
}

/// One POST (the project's own client): the status (0: no answer) and the
/// frame id.
fn post(port: u16, token: &str, camera: &str, at: i64, jpeg: &[u8]) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}/v1/frames/{camera}");
    let (auth, at) = (format!("Bearer {token}"), at.to_string());
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "image/jpeg"), ("X-Event-Time", at.as_str())];
    let Ok(answer) = connectors::http::client::post(&url, &headers, jpeg) else { return (0, String::new()) };
    let id = answer.body.split("\"frame_id\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_owned();
    (answer.status, id)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Frames/s accepted over `seconds` with `rate` offered in all (0: each
/// client sends as soon as it is answered), and the peak RSS in MiB.
fn load(job: &Job, token: &str, frames: &[Vec<u8>], clients: usize, rate: f64, seconds: u64) -> (f64, u64) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let until = Duration::from_secs(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (token, frames, accepted, port) = (token.to_owned(), frames.to_vec(), accepted.clone(), job.1);
            std::thread::spawn(move || {
                let interval = if rate > 0.0 { Duration::from_secs_f64(clients as f64 / rate) } else { Duration::ZERO };
                let mut i = 0;
                while started.elapsed() < until {
                    let next = started + interval * i as u32;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let (status, _) = post(port, &token, &format!("cam{c}"), now_ms(), &frames[i % frames.len()]);
                    if status == 202 {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    } else if rate == 0.0 {
                        // As a device does on a 503; a client spinning on
                        // refusals would take the cores from the job.
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let mut peak = 0;
    while started.elapsed() < until {
        let status = std::fs::read_to_string(format!("/proc/{}/status", job.0.id())).unwrap_or_default();
        let rss = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1));
        peak = peak.max(rss.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) / 1024);
        std::thread::sleep(Duration::from_millis(50));
    }
    for thread in threads {
        let _ = thread.join();
    }
    (accepted.load(Ordering::Relaxed) as f64 / seconds as f64, peak)
}

/// POST to outcome-row latencies (ms) at `rate` frames/s for `seconds`.
fn latencies(dir: &Path, job: &Job, token: &str, frames: &[Vec<u8>], rate: f64, seconds: u64) -> Vec<f64> {
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let tail = {
        let (seen, done, path) = (seen.clone(), done.clone(), dir.join("out/outcomes.jsonl"));
        std::thread::spawn(move || {
            let mut reader = None;
            let mut line = String::new();
            while !done.load(Ordering::Relaxed) {
                if reader.is_none() {
                    reader = std::fs::File::open(&path).ok().map(BufReader::new);
                }
                let Some(r) = reader.as_mut() else { continue };
                line.clear();
                match r.read_line(&mut line) {
                    Ok(n) if n > 0 && line.ends_with('\n') => {
                        if let Some(id) = line.split("\"frame_id\":\"").nth(1).and_then(|r| r.split('"').next()) {
                            seen.lock().expect("lock").insert(id.to_owned(), Instant::now());
                        }
                    }
                    _ => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        })
    };
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        if let Some(wait) = (started + interval * i as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let at = Instant::now();
        let (status, id) = post(job.1, token, "cam0", now_ms(), &frames[i % frames.len()]);
        if status == 202 {
            sent.lock().expect("lock").insert(id, at);
        }
        i += 1;
    }
    std::thread::sleep(Duration::from_secs(3));
    done.store(true, Ordering::Relaxed);
    let _ = tail.join();
    let (sent, seen) = (sent.lock().expect("lock"), seen.lock().expect("lock"));
    sent.iter().filter_map(|(id, at)| Some(seen.get(id)?.duration_since(*at).as_secs_f64() * 1e3)).collect()
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(((values.len().max(1) - 1) as f64 * p) as usize).copied().unwrap_or(f64::NAN)
}

fn main() {
    let dir = tempfile::tempdir().expect("a folder");
    std::fs::write(dir.path().join("secret"), "the secret of the P6 benchmark, long enough").expect("secret");
    let claims = Claims {
        tenant: "bench".into(),
        sources: vec!["*".into()],
        scope: "ingest".into(),
        exp: (now_ms() / 1000 + 3600) as u64,
        nbf: None,
    };
    let token = mint(&claims, &dir.path().join("secret")).expect("token");
    let frames: Vec<Vec<u8>> =
        frame_files().into_iter().take(60).map(|(_, p)| std::fs::read(p).expect("frame")).collect();

    let job = start(dir.path(), true);
    let _ = load(&job, &token, &frames, 2, 0.0, 3); // warm up: the model loads
    // Closed loop: each client waits for its answer, and a 202 waits for
    // the journal's sync, so it takes many clients to keep the job busy.
    let (max, max_rss) = load(&job, &token, &frames, 16, 0.0, 10);
    let (overloaded, overload_rss) = load(&job, &token, &frames, 32, 5.0 * max, 10);
    println!(
        "unloaded maximum {max:.1} frames/s (RSS {max_rss} MiB); at 5x offered {overloaded:.1} frames/s (RSS {overload_rss} MiB)"
    );
    let mut durable = latencies(dir.path(), &job, &token, &frames, max / 2.0, 10);
    drop(job);
    let job = start(dir.path(), false);
    let _ = load(&job, &token, &frames, 2, 0.0, 3);
    let mut plain = latencies(dir.path(), &job, &token, &frames, max / 2.0, 10);
    drop(job);

    println!(
        "P6 goodput at 5x overload (vs the unloaded maximum): frameflow {overloaded:.1} frames/s, baseline {max:.1} frames/s, ratio {:.2}x",
        overloaded / max
    );
    // For latency lower is better: the ratio is the baseline's over ours.
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        let (ours, base) = (percentile(&mut durable, p), percentile(&mut plain, p));
        println!(
            "P6 ingest-to-sink latency {name} at half load, durable (vs not durable): frameflow {ours:.1} ms, baseline {base:.1} ms, ratio {:.2}x",
            base / ours
        );
    }
}
