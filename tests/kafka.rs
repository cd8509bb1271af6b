//! Kafka in and out against a real Kafka-protocol broker: tansu (from the
//! set-up, `assets/bin/tansu`), started here on a free port with in-memory
//! storage. Frames are produced with rdkafka as a device gateway would;
//! the job reads them, and its sink topics are read back with a
//! `read_committed` consumer.
//!
//! tansu 0.6 (memory storage) shows a `read_committed` consumer the rows of
//! aborted transactions too; the sink's own dedupe after a restart (by the
//! rows' keys) is what keeps each row once here.

#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

/// The outcome of every message a producer sent.
#[derive(Default)]
struct Delivered(std::sync::Mutex<Vec<Result<(), String>>>);

impl rdkafka::ClientContext for Delivered {}

impl rdkafka::producer::ProducerContext for Delivered {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, (): ()) {
        self.0.lock().unwrap().push(result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string()));
    }
}

struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    fn start() -> Broker {
        let tansu = common::assets().join("bin/tansu");
        assert!(tansu.is_file(), "no {}: run scripts/fetch_assets.sh", tansu.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&tansu)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        common::wait_for_port(port, "tansu");
        Broker { child, port }
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        let status = Command::new(common::assets().join("bin/tansu"))
            .args(["topic", "create", name, "--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "tansu topic create {name}");
    }

    /// Frames as messages: key the camera, value the JPEG, the capture time
    /// in an `event_time` header.
    fn produce(&self, topic: &str, frames: &[(String, PathBuf)]) {
        let producer: BaseProducer<Delivered> = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .create_with_context(Delivered::default())
            .unwrap();
        for (camera, path) in frames {
            let bytes = std::fs::read(path).unwrap();
            let at = event_time(path).to_string();
            let headers = OwnedHeaders::new().insert(Header { key: "event_time", value: Some(&at) });
            producer.send(BaseRecord::to(topic).key(camera).payload(&bytes).headers(headers)).unwrap();
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        let delivered = producer.context().0.lock().unwrap();
        assert_eq!(
            delivered.iter().filter(|r| r.is_ok()).count(),
            frames.len(),
            "every frame was produced: {delivered:?}"
        );
    }

    /// Every committed message of `topic`: key and JSON value.
    fn read(&self, topic: &str) -> Vec<(String, Value)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", "frameflow-test-reader")
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
        let mut assignment = TopicPartitionList::new();
        for partition in metadata.topics()[0].partitions() {
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).unwrap();
        }
        consumer.assign(&assignment).unwrap();
        // Until nothing more comes for two seconds.
        let mut rows = Vec::new();
        let mut last = Instant::now();
        while last.elapsed() < Duration::from_secs(2) {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.unwrap();
                let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
                rows.push((key, serde_json::from_slice(message.payload().unwrap()).unwrap()));
                last = Instant::now();
            }
        }
        rows
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn event_time(path: &Path) -> i64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

fn frames() -> Vec<(String, PathBuf)> {
    let mut all = Vec::new();
    for camera in ["market-a", "market-b"] {
        all.extend(common::camera_frames(camera).into_iter().take(50).map(|p| (camera.to_owned(), p)));
    }
    all.sort_by_key(|(camera, path)| (event_time(path), camera.clone()));
    all
}

fn job(brokers: &str, delivery: &str) -> String {
    format!(
        "CREATE SOURCE cams FROM KAFKA 'frames' WITH (brokers = '{brokers}', until = 'end', lateness = '1s');
         CREATE STREAM found AS SELECT * FROM DETECT(cams, model => 'objects', min_confidence => 0.3);
         CREATE VIEW counts AS
           SELECT source_id, label, window_start, count(*) AS n
           FROM TUMBLE(found, event_time, INTERVAL '2' SECOND)
           GROUP BY source_id, label, window_start;
         CREATE SINK d FROM found INTO FILE 'out/detections.jsonl';
         CREATE SINK c FROM counts INTO FILE 'out/counts.jsonl';
         CREATE SINK dk FROM found INTO KAFKA 'detections' WITH (brokers = '{brokers}', delivery = '{delivery}');
         CREATE SINK ck FROM counts INTO KAFKA 'counts' WITH (brokers = '{brokers}', delivery = '{delivery}');"
    )
}

fn sorted(values: impl IntoIterator<Item = Value>) -> Vec<String> {
    let mut lines: Vec<String> = values.into_iter().map(|v| v.to_string()).collect();
    lines.sort();
    lines
}

/// The two lists hold the same lines; on failure, how they differ.
fn assert_same(found: Vec<String>, expected: Vec<String>, what: &str) {
    if found == expected {
        return;
    }
    let missing: Vec<&String> = expected.iter().filter(|l| !found.contains(l)).take(3).collect();
    let extra: Vec<&String> = found.iter().filter(|l| !expected.contains(l)).take(3).collect();
    panic!("{what}: {} rows, expected {}; missing e.g. {missing:?}; extra e.g. {extra:?}", found.len(), expected.len());
}

fn set_up(delivery: &str) -> (Broker, tempfile::TempDir) {
    let broker = Broker::start();
    broker.create_topic("frames", 2);
    broker.create_topic("detections", 2);
    broker.create_topic("counts", 1);
    broker.produce("frames", &frames());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("job.sql"), job(&broker.brokers(), delivery)).unwrap();
    (broker, dir)
}

#[test]
fn rows_through_kafka_equal_the_jsonl_sink_of_the_same_job() {
    let (broker, dir) = set_up("at_least_once");
    // A small in-flight budget, so that the source pauses its partitions
    // and resumes them many times.
    let output = common::frameflow(dir.path(), false).args(["--max-in-flight", "4"]).output().unwrap();
    let stderr = common::stderr(&output);
    assert!(output.status.success(), "{stderr}");
    let all = frames().len();
    assert!(
        stderr.contains(&format!(": {all} frames ({all} processed, 0 degraded")),
        "every frame was read once: {stderr}"
    );

    let detections = common::read_jsonl(&dir.path().join("out/detections.jsonl"));
    let counts = common::read_jsonl(&dir.path().join("out/counts.jsonl"));
    let outcomes: usize =
        detections.iter().map(|d| d["frame_id"].as_str().unwrap()).collect::<std::collections::BTreeSet<_>>().len();
    assert!(detections.len() > 100 && outcomes > 50, "the frames went through the detector");
    for (topic, jsonl) in [("detections", &detections), ("counts", &counts)] {
        let rows = broker.read(topic);
        let keys: std::collections::BTreeSet<&String> = rows.iter().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), rows.len(), "every {topic} row has a key of its own");
        assert_same(
            sorted(rows.into_iter().map(|(_, v)| v)),
            sorted(jsonl.iter().cloned()),
            &format!("{topic}: Kafka = JSONL"),
        );
    }
}

#[test]
fn a_job_killed_mid_stream_loses_nothing_and_repeats_nothing() {
    let (broker, dir) = set_up("exactly_once");
    // The reference: the same job, uninterrupted, into other files.
    let reference = dir.path().join("reference");
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::write(
        reference.join("job.sql"),
        job(&broker.brokers(), "at_least_once").replace("'detections'", "'d2'").replace("'counts'", "'c2'"),
    )
    .unwrap();
    broker.create_topic("d2", 1);
    broker.create_topic("c2", 1);
    let output = common::frameflow(&reference, false).output().unwrap();
    assert!(output.status.success(), "{}", common::stderr(&output));

    let mut kills = Vec::new();
    for round in 0..4 {
        let mut job = common::frameflow(dir.path(), true).spawn().unwrap();
        let after = Duration::from_millis(800 + 500 * round);
        kills.push(after.as_millis());
        std::thread::sleep(after);
        job.kill().unwrap();
        job.wait().unwrap();
    }
    eprintln!("killed after (ms): {kills:?}");
    let output = common::frameflow(dir.path(), true).output().unwrap();
    assert!(output.status.success(), "{}", common::stderr(&output));

    for name in ["detections", "counts"] {
        let expected = common::read_jsonl(&reference.join(format!("out/{name}.jsonl")));
        let found = common::read_jsonl(&dir.path().join(format!("out/{name}.jsonl")));
        assert_same(sorted(found), sorted(expected.iter().cloned()), &format!("{name}: the file has every row once"));
        let rows = broker.read(name);
        let keys: std::collections::BTreeSet<&String> = rows.iter().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), rows.len(), "{name}: no key twice");
        assert_same(
            sorted(rows.into_iter().map(|(_, v)| v)),
            sorted(expected),
            &format!("{name}: a read_committed consumer sees every row once"),
        );
    }
}
