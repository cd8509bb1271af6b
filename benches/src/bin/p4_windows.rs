//! P4 windowed aggregation: a windowed count per (camera, label) over
//! detections from memory (no I/O in the timed part), in events/s on one
//! worker, beside DuckDB computing the same aggregate in batch over the same
//! rows on one thread (`benches/baselines/p4_windows.py`); and the time to
//! take in a batch of 10k new detections after 1M and after 100M detections
//! of history, which must not grow with history. That time is read off
//! the run: each 10-second window holds 100k detections, so the wall time
//! between consecutive windows closing, divided by ten, is the time per 10k
//! detections at that point of the history.
//!
//! Rows: 100 cameras × 10 labels, 10k detections per second of event time,
//! in event-time order; `TUMBLE(…, INTERVAL '10' SECOND)`, `count(*)`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use engine::metrics::Metrics;
use engine::model::{Detection, Record, Value};
use engine::plan::{
    AggregateFunction, AggregateSpec, Column, DetectionColumn, EmitMode, JobPlan, LatePolicy, SinkSpec, SourceRows,
    SourceSpec, ViewColumn, ViewSpec, WindowSpec,
};
use engine::registry::{Partition, Registry, Sink, SinkFactory, Source, SourceFactory, SourcePoll, SourceRow};
use engine::runtime::{RunConfig, run};
use engine::time::Millis;
use frameflow_benches::{figure, median, repo};
use operators::decode::FrameDecoder;

const CAMERAS: u64 = 100;
const LABELS: u64 = 10;
const EVENTS_PER_SECOND: u64 = 10_000;
const BASE_MS: Millis = 1_767_225_600_000;
/// Rows a poll hands out at most.
const BATCH: u64 = 10_000;

/// The i-th generated detection's camera, label and event time; the
/// Python baseline generates the same rows.
fn row(i: u64) -> (u64, u64, Millis) {
    (i % CAMERAS, (i / CAMERAS) % LABELS, BASE_MS + (i * 1000 / EVENTS_PER_SECOND) as Millis)
}

/// Generates detections `0..total` in order, a batch at a time.
struct GeneratedRows {
    next: u64,
    total: u64,
    cameras: Vec<Arc<str>>,
    labels: Vec<Arc<str>>,
}

impl Source for GeneratedRows {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, String> {
        if self.next >= self.total {
            return Ok(SourcePoll::Done);
        }
        self.emit((self.next + (max as u64).min(BATCH)).min(self.total))
    }

    fn watermark(&mut self) -> Option<Millis> {
        (self.next < self.total).then(|| row(self.next).2)
    }
}

impl GeneratedRows {
    fn emit(&mut self, end: u64) -> Result<SourcePoll, String> {
        let frame: Arc<str> = "generated".into();
        let operator: Arc<str> = "detect".into();
        let tenant: Arc<str> = "bench".into();
        let rows = (self.next..end)
            .map(|i| {
                let (camera, label, event_time) = row(i);
                SourceRow::Row(Detection {
                    frame_id: frame.clone(),
                    tenant: tenant.clone(),
                    source_id: self.cameras[camera as usize].clone(),
                    event_time,
                    operator: operator.clone(),
                    label: self.labels[label as usize].clone(),
                    confidence: 0.5,
                    x: 0.0,
                    y: 0.0,
                    w: 1.0,
                    h: 1.0,
                    track_id: None,
                    text: None,
                    attributes: BTreeMap::new(),
                })
            })
            .collect();
        self.next = end;
        Ok(SourcePoll::Detections(rows))
    }
}

struct Generator {
    total: u64,
}

impl SourceFactory for Generator {
    fn validate(&self, _: &SourceSpec) -> Result<(), String> {
        Ok(())
    }

    fn open(&self, _: &SourceSpec, partition: Partition) -> Result<Box<dyn Source>, String> {
        // One worker generates; the view's exchange spreads the work.
        let total = if partition.worker == 0 { self.total } else { 0 };
        Ok(Box::new(GeneratedRows {
            next: 0,
            total,
            cameras: (0..CAMERAS).map(|c| Arc::from(format!("cam{c}"))).collect(),
            labels: (0..LABELS).map(|l| Arc::from(format!("label{l}"))).collect(),
        }))
    }
}

/// Counts window rows and their total, and notes when each window closed.
#[derive(Clone, Default)]
struct Tally(Arc<Mutex<TallyState>>);

#[derive(Default)]
struct TallyState {
    rows: u64,
    counted: i64,
    closed: BTreeMap<Millis, Instant>,
}

impl Sink for Tally {
    fn write(&mut self, records: &[Record]) -> Result<(), String> {
        let mut tally = self.0.lock().map_err(|e| e.to_string())?;
        let now = Instant::now();
        for record in records {
            if let Record::View(row) = record
                && let (Some(Value::Int(n)), Some(Value::Time(start))) = (row.get("n"), row.get("window_start"))
            {
                tally.rows += 1;
                tally.counted += n;
                tally.closed.entry(*start).or_insert(now);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

impl SinkFactory for Tally {
    fn open(&self, _: &SinkSpec, _: engine::columnar::SchemaRef) -> Result<Box<dyn Sink>, String> {
        Ok(Box::new(self.clone()))
    }
}

struct Measured {
    events_per_second: f64,
    /// Wall time at which each window closed, in window order.
    closed: Vec<Instant>,
}

impl Measured {
    /// Mean ms per 10k detections while the windows in `windows` closed:
    /// a mean over ten windows, since differential merges its batches in
    /// bursts that a single window may or may not catch.
    fn ms_per_batch(&self, windows: std::ops::Range<usize>) -> f64 {
        let span = self.closed[windows.end].duration_since(self.closed[windows.start]).as_secs_f64() * 1e3;
        span / ((windows.end - windows.start) as f64 * 10.0)
    }
}

fn frameflow(total: u64) -> Measured {
    let tally = Tally::default();
    let mut registry = Registry::new(Arc::new(FrameDecoder::default()));
    registry.sources.insert("generator", Arc::new(Generator { total }));
    registry.sinks.insert("tally", Arc::new(tally.clone()));
    let plan = JobPlan {
        sources: vec![SourceSpec {
            name: "g".into(),
            rows: SourceRows::Detections,
            kind: "generator".into(),
            location: None,
            options: BTreeMap::new(),
            tenant: "bench".into(),
            lateness_ms: 0,
            late: LatePolicy::DeadLetter,
            screen: None,
        }],
        streams: Vec::new(),
        views: vec![ViewSpec {
            name: "counts".into(),
            input: "g".into(),
            filter: None,
            window: WindowSpec::Tumble { size_ms: 10_000 },
            input_schema: None,
            time: Column::EventTime,
            group_by: vec![Column::Detection(DetectionColumn::SourceId), Column::Detection(DetectionColumn::Label)],
            aggregates: vec![AggregateSpec { function: AggregateFunction::Count, column: None, distinct: false }],
            columns: vec![
                ViewColumn::Key { name: "source_id".into(), column: Column::Detection(DetectionColumn::SourceId) },
                ViewColumn::Key { name: "label".into(), column: Column::Detection(DetectionColumn::Label) },
                ViewColumn::WindowStart { name: "window_start".into() },
                ViewColumn::Aggregate { name: "n".into(), index: 0 },
            ],
            finish: None,
            emit: EmitMode::Final,
        }],
        sinks: vec![SinkSpec {
            name: "out".into(),
            input: "counts".into(),
            kind: "tally".into(),
            location: None,
            options: BTreeMap::new(),
        }],
        explain: Vec::new(),
    };
    // An in-flight budget of five batches: rows are small, and the source
    // runs in step with the aggregation from the start, so the time per
    // batch is the same early and late unless the aggregation slows.
    let config =
        RunConfig { workers: 1, tick_ms: 100, max_in_flight_frames: 5 * BATCH as usize, ..RunConfig::default() };
    let started = Instant::now();
    run(plan, &registry, &config, Arc::new(Metrics::default())).expect("job runs");
    let elapsed = started.elapsed().as_secs_f64();
    let tally = tally.0.lock().expect("tally");
    assert_eq!(tally.counted as u64, total, "every event counted once");
    assert_eq!(tally.rows as usize, tally.closed.len() * (CAMERAS * LABELS) as usize, "one row per group and window");
    Measured { events_per_second: total as f64 / elapsed, closed: tally.closed.values().copied().collect() }
}

fn duckdb(total: u64) -> f64 {
    let python = frameflow_benches::assets().join("venv/bin/python");
    let output = std::process::Command::new(python)
        .arg(repo().join("benches/baselines/p4_windows.py"))
        .arg(total.to_string())
        .output()
        .expect("python runs");
    assert!(output.status.success(), "baseline failed: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.split_whitespace().find_map(|w| w.strip_prefix("events_per_second=")).expect("rate").parse().expect("number")
}

fn main() {
    let total = 2_000_000;
    let ours = median((0..3).map(|_| frameflow(total).events_per_second).collect());
    let baseline = median((0..3).map(|_| duckdb(total)).collect());
    println!(
        "{total} detections, 1 worker / 1 DuckDB thread: frameflow {ours:.0} events/s, DuckDB {baseline:.0} events/s"
    );

    // 100M detections = 1000 windows of 100k; window k closes after (k+1)·100k.
    let long = frameflow(100_000_000);
    let after_1m = long.ms_per_batch(5..15);
    let after_100m = long.ms_per_batch(988..998);
    println!("per 10k detections: {after_1m:.1} ms after 1M of history, {after_100m:.1} ms after 100M");
    println!("{}", figure("P4 windowed count, 1 core", ours, baseline, "events/s"));
    println!(
        "P4 time per 10k detections, after 100M history vs after 1M: frameflow {after_100m:.1} ms, baseline {after_1m:.1} ms, ratio {:.2}x",
        after_100m / after_1m
    );
}
