//! P5 Kafka sink: rows/s from a job into a Kafka topic, beside the usual
//! Python producer (`benches/baselines/p5_kafka_sink.py`, confluent-kafka
//! on the same librdkafka) sending the same rows. The broker is tansu from
//! the set-up (in-memory storage), on this machine.
//!
//! The rows: 200 000 detections made by a GENERATOR job into a JSONL file
//! first. frameflow reads them (`DETECTIONS`) and writes them with the
//! KAFKA sink (at least once, each with its stable key), timed from start
//! to exit; the baseline parses each line and produces it, timed from its
//! first row to its last delivery.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use frameflow_benches::{assets, figure, median, repo};

const ROWS: usize = 200_000;

struct Broker(Child, u16);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn broker() -> Broker {
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a port");
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(assets().join("bin/tansu"))
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu starts (run scripts/fetch_assets.sh)");
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker(child, port)
}

fn create_topic(broker: &Broker, name: &str) {
    let status = Command::new(assets().join("bin/tansu"))
        .args(["topic", "create", name, "--partitions", "1", "--broker", &format!("tcp://127.0.0.1:{}", broker.1)])
        .stdout(Stdio::null())
        .status()
        .expect("tansu topic create");
    assert!(status.success());
}

/// The frameflow binary built beside this one.
fn binary() -> std::path::PathBuf {
    std::env::current_exe().expect("this binary").with_file_name("frameflow")
}

fn main() {
    let dir = tempfile::tempdir().expect("a folder");
    let job = |body: &str| {
        std::fs::write(dir.path().join("job.sql"), body).expect("job written");
        let started = Instant::now();
        let output = Command::new(binary())
            .current_dir(dir.path())
            .args(["run", "job.sql", "--progress", "none", "--workers", "1"])
            .output()
            .expect("frameflow runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        started.elapsed().as_secs_f64()
    };
    job(&format!(
        "CREATE SOURCE g FROM GENERATOR WITH (count = '{ROWS}', rate = '10000');
         CREATE STREAM s AS SELECT * FROM g;
         CREATE SINK f FROM s INTO FILE 'rows.jsonl';"
    ));
    let broker = broker();
    let brokers = format!("127.0.0.1:{}", broker.1);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..3 {
        create_topic(&broker, &format!("ours{round}"));
        create_topic(&broker, &format!("theirs{round}"));
        let seconds = job(&format!(
            "CREATE SOURCE d FROM DETECTIONS 'rows.jsonl';
             CREATE STREAM s AS SELECT * FROM d;
             CREATE SINK k FROM s INTO KAFKA 'ours{round}' WITH (brokers = '{brokers}');"
        ));
        ours.push(ROWS as f64 / seconds);
        let output = Command::new(assets().join("venv/bin/python"))
            .arg(repo().join("benches/baselines/p5_kafka_sink.py"))
            .args([&brokers, &format!("theirs{round}"), &dir.path().join("rows.jsonl").display().to_string()])
            .output()
            .expect("python runs");
        assert!(output.status.success(), "baseline: {}", String::from_utf8_lossy(&output.stderr));
        theirs.push(String::from_utf8_lossy(&output.stdout).trim().parse::<f64>().expect("rows/s"));
        println!("round {round}: frameflow {:.0} rows/s, baseline {:.0} rows/s", ours[round], theirs[round]);
    }
    println!("{}", figure("P5 Kafka sink", median(ours), median(theirs), "rows/s"));
}
