//! The WEBHOOK sink against a local HTTP server that fails, rate-limits,
//! answers slowly and refuses a batch: every row arrives once or is
//! dead-lettered, and the limits hold.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::model::{Record, Value, ViewRow};
use engine::plan::SinkSpec;
use engine::registry::SinkFactory;
use frameflow_connectors::webhook::WebhookSinkFactory;

#[derive(Default)]
struct Seen {
    /// Rows taken (200), by label.
    taken: Mutex<Vec<String>>,
    /// When each request came, and its answer.
    requests: Mutex<Vec<(Instant, u16)>>,
    open: AtomicUsize,
    most_open: AtomicUsize,
}

/// Serves requests on its own threads: the 1st gets a 500, the 2nd a 429
/// asking for a second's pause, the 3rd is answered after 300 ms; a batch
/// with a row labelled `refuse` gets a 422; the rest a 200.
fn serve(seen: Arc<Seen>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let seen = seen.clone();
            std::thread::spawn(move || {
                let open = seen.open.fetch_add(1, Ordering::SeqCst) + 1;
                seen.most_open.fetch_max(open, Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = n.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let rows: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
                let number = {
                    let mut requests = seen.requests.lock().unwrap();
                    requests.push((Instant::now(), 0));
                    requests.len()
                };
                let status = match number {
                    1 => 500,
                    2 => 429,
                    _ if rows.iter().any(|r| r["label"] == "refuse") => 422,
                    _ => 200,
                };
                if number == 3 {
                    std::thread::sleep(Duration::from_millis(300));
                }
                if status == 200 {
                    seen.taken.lock().unwrap().extend(rows.iter().map(|r| r["label"].as_str().unwrap().to_owned()));
                }
                seen.requests.lock().unwrap()[number - 1].1 = status;
                let extra = if status == 429 { "Retry-After: 1\r\n" } else { "" };
                let answer = format!("HTTP/1.1 {status} X\r\n{extra}Content-Length: 2\r\nConnection: close\r\n\r\nno");
                seen.open.fetch_sub(1, Ordering::SeqCst);
                stream.write_all(answer.as_bytes()).unwrap();
            });
        }
    });
    port
}

fn row(label: &str) -> Record {
    Record::View(ViewRow { columns: vec!["label".into()].into(), values: vec![Value::Str(label.into())] })
}

#[test]
fn rows_arrive_once_through_failures_limits_and_refusals() {
    let seen = Arc::new(Seen::default());
    let port = serve(seen.clone());
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("rejected.jsonl");
    let spec = SinkSpec {
        name: "hook".into(),
        input: "v".into(),
        kind: "webhook".into(),
        location: Some(format!("http://127.0.0.1:{port}/hook")),
        options: [
            ("batch", "3"),
            ("concurrency", "2"),
            ("rate", "4"),
            ("timeout", "2s"),
            ("dead_letter", dead.to_str().unwrap()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    };
    let mut sink = WebhookSinkFactory.open(&spec, engine::columnar::detection_schema()).unwrap();
    let labels: Vec<String> = (0..12).map(|i| if i == 7 { "refuse".to_owned() } else { format!("row{i}") }).collect();
    let started = Instant::now();
    sink.write(&labels.iter().map(|l| row(l)).collect::<Vec<_>>()).unwrap();
    sink.flush().unwrap();
    let took = started.elapsed();

    // Every row arrived once, except the refused batch's, which are in the
    // dead-letter file with the status.
    let mut taken = seen.taken.lock().unwrap().clone();
    taken.sort();
    let refused: Vec<serde_json::Value> =
        std::fs::read_to_string(&dead).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(refused.len(), 3, "the batch of row 7");
    assert!(refused.iter().all(|r| r["status"] == 422), "{refused:?}");
    let mut expected: Vec<String> = labels.clone();
    expected.retain(|l| !refused.iter().any(|r| r["row"]["label"] == l.as_str()));
    expected.sort();
    assert_eq!(taken, expected);

    // The limits held: two requests at once at most, and the 500 and the
    // 429 were retried, the 429 no sooner than it asked. Six requests at
    // four a second cannot all go within the first second.
    assert!(seen.most_open.load(Ordering::SeqCst) <= 2);
    let requests = seen.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 6, "4 batches, 2 of them tried twice: {requests:?}");
    let after_429 = requests.iter().find(|(_, s)| *s == 429).unwrap().0;
    assert!(requests.iter().filter(|(t, _)| *t > after_429 + Duration::from_millis(999)).count() >= 1);
    assert!(took >= Duration::from_millis(500), "rate-limited: {took:?}");
}
