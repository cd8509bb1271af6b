//! P5 HTTP ingest: frames pushed over HTTP by a second process (this one)
//! to `frameflow run` with an HTTP source, beside the usual Python
//! ingestion endpoint on the standard library
//! (`benches/baselines/p5_http_ingest.py`), which does the same checks at
//! the door. Two figures:
//!
//! - the most frames/s accepted (202), with 8 clients sending as fast as
//!   they are answered;
//! - latency p50 and p99 of the 202s at a fixed load of 100 frames/s.
//!
//! Each request is a new connection, as from many devices. Both decode every
//! accepted frame (frameflow in its dataflow, its job having no vision
//! stream; the baseline with OpenCV in a consumer thread), and both answer
//! 503 when their queue of 256 is full, so the most accepted is bounded by
//! decoding. On a 2-core machine the load generator, the server and its
//! decoding share the cores.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use connectors::http::auth::{Claims, mint};
use connectors::http::client::post;
use frameflow_benches::{figure, frame_files, repo};

const CLIENTS: usize = 8;

/// A server under test; stopped when dropped.
struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("an address").port()
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn frameflow(dir: &Path) -> Server {
    let port = free_port();
    let job = format!(
        "CREATE SOURCE phones FROM HTTP WITH (listen = '127.0.0.1:{port}', jwt_secret_file = 'secret', queue = 256);
         CREATE SINK dead FROM dead_letter INTO FILE 'out/dead.jsonl';"
    );
    std::fs::write(dir.join("job.sql"), job).expect("job written");
    let binary = std::env::current_exe().expect("this binary").with_file_name("frameflow");
    let child = Command::new(binary)
        .current_dir(dir)
        .args(["run", "job.sql", "--progress", "none", "--max-in-flight", "256"])
        .stderr(Stdio::null())
        .spawn()
        .expect("frameflow runs");
    wait_listening(port);
    Server(child, port)
}

fn python(dir: &Path) -> Server {
    let python = frameflow_benches::assets().join("venv/bin/python");
    let mut child = Command::new(python)
        .arg(repo().join("benches/baselines/p5_http_ingest.py"))
        .arg(dir.join("secret"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("a port");
    let port = line.trim().trim_start_matches("port=").parse().expect("port=N");
    wait_listening(port);
    Server(child, port)
}

/// Sends frames from `CLIENTS` threads for `seconds`: as fast as answered,
/// or, with `rate`, each at its slot of a fixed schedule. The frames/s
/// accepted and the latencies of the 202s.
fn load(port: u16, token: &str, frames: &[Vec<u8>], seconds: f64, rate: Option<f64>) -> (f64, Vec<Duration>) {
    let url = format!("http://127.0.0.1:{port}/v1/frames/cam1");
    let bearer = format!("Bearer {token}");
    let headers = [("Authorization", bearer.as_str()), ("Content-Type", "image/jpeg")];
    let latencies = Mutex::new(Vec::new());
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(seconds);
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let (url, headers, latencies) = (&url, &headers, &latencies);
            scope.spawn(move || {
                let mut i = client;
                loop {
                    if let Some(rate) = rate {
                        let slot = started + Duration::from_secs_f64(i as f64 / rate);
                        if slot >= end {
                            break;
                        }
                        if let Some(wait) = slot.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    } else if Instant::now() >= end {
                        break;
                    }
                    let sent = Instant::now();
                    let answer = post(url, headers, &frames[i % frames.len()]);
                    if matches!(answer, Ok(a) if a.status == 202) {
                        latencies.lock().expect("latencies").push(sent.elapsed());
                    }
                    i += CLIENTS;
                }
            });
        }
    });
    let latencies = latencies.into_inner().expect("latencies");
    (latencies.len() as f64 / started.elapsed().as_secs_f64(), latencies)
}

fn percentile(latencies: &mut [Duration], p: f64) -> f64 {
    latencies.sort();
    latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("secret"), "a benchmark secret, long enough for HS256").expect("secret");
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs() + 3600;
    let claims = Claims { tenant: "bench".into(), sources: vec!["*".into()], scope: "ingest".into(), exp, nbf: None };
    let token = mint(&claims, &dir.path().join("secret")).expect("a token");
    let frames: Vec<Vec<u8>> = frame_files()
        .iter()
        .take(60)
        .map(|(_, path): &(String, PathBuf)| std::fs::read(path).expect("a frame"))
        .collect();
    assert!(!frames.is_empty(), "no frames: run scripts/fetch_assets.sh");

    let mut results = Vec::new();
    for (name, server) in [("frameflow", frameflow(dir.path())), ("baseline", python(dir.path()))] {
        load(server.1, &token, &frames, 1.0, None); // warm-up
        let (max, _) = load(server.1, &token, &frames, 4.0, None);
        let (_, mut latencies) = load(server.1, &token, &frames, 5.0, Some(100.0));
        let (p50, p99) = (percentile(&mut latencies, 0.5), percentile(&mut latencies, 0.99));
        println!("{name}: {max:.0} frames/s at most; at 100 frames/s p50 {p50:.2} ms, p99 {p99:.2} ms");
        results.push((max, p50, p99));
    }
    let ((ours, ours50, ours99), (base, base50, base99)) = (results[0], results[1]);
    println!("{}", figure("P5 HTTP ingest, most frames/s accepted, 8 clients", ours, base, "frames/s"));
    // For latency lower is better: the ratio is the baseline's over ours.
    println!(
        "P5 HTTP ingest p50 latency at 100 frames/s: frameflow {ours50:.2} ms, baseline {base50:.2} ms, ratio {:.2}x",
        base50 / ours50
    );
    println!(
        "P5 HTTP ingest p99 latency at 100 frames/s: frameflow {ours99:.2} ms, baseline {base99:.2} ms, ratio {:.2}x",
        base99 / ours99
    );
}
