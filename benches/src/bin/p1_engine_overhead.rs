//! P1 engine overhead: frames/s through the whole dataflow (source,
//! exchange, decode stage, vision operator, outcomes, sink, probe and
//! backpressure) beside a plain loop doing the same per-frame work over the
//! same frames, on one worker.
//!
//! The frames are the quickstart frames, decoded once before timing; both
//! sides get the pixels from the same cache, so neither decodes. Two
//! operators are measured:
//! - `no-op`: returns nothing and reads nothing, so the figure is the
//!   engine's bare per-frame cost against a loop that costs next to nothing;
//! - `pixel pass`: reads every pixel once (mean brightness), the least any
//!   real vision operator does to a frame.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use engine::metrics::Metrics;
use engine::model::{DecodedFrame, Frame, FrameOutcome, MediaType, Outcome, Pixels, Record};
use engine::plan::{JobPlan, LatePolicy, OUTCOMES, Options, SinkSpec, SourceRows, SourceSpec, StreamInput, StreamSpec};
use engine::registry::{
    Decoder, OperatorFactory, Partition, PreparedOperator, Registry, Sink, SinkFactory, Source, SourceFactory,
    SourcePoll, VisionOperator,
};
use engine::runtime::{RunConfig, run};
use engine::time::Millis;
use operators::decode::FrameDecoder;

const REPEATS: usize = 20;

/// Frames in memory, in event-time order per camera.
struct MemorySource {
    frames: VecDeque<Frame>,
}

impl Source for MemorySource {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, String> {
        if self.frames.is_empty() {
            return Ok(SourcePoll::Done);
        }
        let n = max.min(self.frames.len());
        Ok(SourcePoll::Frames(self.frames.drain(..n).collect()))
    }

    fn watermark(&mut self) -> Option<Millis> {
        self.frames.front().map(|f| f.event_time)
    }
}

struct MemorySourceFactory(Arc<Vec<Frame>>);

impl SourceFactory for MemorySourceFactory {
    fn validate(&self, _: &SourceSpec) -> Result<(), String> {
        Ok(())
    }

    fn open(&self, _: &SourceSpec, partition: Partition) -> Result<Box<dyn Source>, String> {
        let mine = self.0.iter().filter(|f| partition.owns(&f.source_id)).cloned().collect();
        Ok(Box::new(MemorySource { frames: mine }))
    }
}

/// Hands out the pixels decoded before timing.
struct CachedDecoder(HashMap<Arc<str>, Pixels>);

impl Decoder for CachedDecoder {
    fn decode(&self, frame: &Frame) -> Result<Pixels, String> {
        self.0.get(&frame.frame_id).cloned().ok_or_else(|| "not cached".to_owned())
    }
}

#[derive(Clone, Copy)]
enum Work {
    Noop,
    PixelPass,
}

impl VisionOperator for Work {
    fn process(&mut self, frame: &DecodedFrame) -> engine::registry::FrameResult {
        if let Work::PixelPass = self {
            let sum: u64 = frame.pixels.rgb.iter().map(|&b| u64::from(b)).sum();
            std::hint::black_box(sum);
        }
        Ok(Vec::new())
    }
}

impl PreparedOperator for Work {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String> {
        Ok(Box::new(*self))
    }
}

impl OperatorFactory for Work {
    fn prepare(&self, _: &Options) -> Result<Arc<dyn PreparedOperator>, String> {
        Ok(Arc::new(*self))
    }
}

struct CountingSink;

impl Sink for CountingSink {
    fn write(&mut self, records: &[Record]) -> Result<(), String> {
        std::hint::black_box(records.len());
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

impl SinkFactory for CountingSink {
    fn open(&self, _: &SinkSpec, _: engine::columnar::SchemaRef) -> Result<Box<dyn Sink>, String> {
        Ok(Box::new(CountingSink))
    }
}

/// The quickstart frames, decoded, repeated `REPEATS` times with distinct
/// ids and increasing event times.
fn load_frames() -> (Vec<Frame>, HashMap<Arc<str>, Pixels>) {
    let decoder = FrameDecoder::default();
    let files = frameflow_benches::frame_files();
    assert!(!files.is_empty(), "no frames: run scripts/fetch_assets.sh");
    let mut frames = Vec::new();
    let mut pixels = HashMap::new();
    let span: Millis = 60_000;
    for round in 0..REPEATS {
        for (seq, (camera, path)) in files.iter().enumerate() {
            let bytes: Arc<[u8]> = std::fs::read(path).expect("frame").into();
            let frame = Frame {
                frame_id: format!("{round}-{seq}").into(),
                tenant: "bench".into(),
                source_id: camera.as_str().into(),
                seq: seq as u64,
                event_time: 1_767_225_600_000 + round as Millis * span + seq as Millis * 10,
                ingest_time: 0,
                media_type: MediaType::Jpeg,
                bytes,
                late: None,
                refused: None,
            };
            if round == 0 {
                pixels.insert(frame.frame_id.clone(), decoder.decode(&frame).expect("decodes"));
            } else {
                let first: Arc<str> = format!("0-{seq}").into();
                pixels.insert(frame.frame_id.clone(), pixels[&first].clone());
            }
            frames.push(frame);
        }
    }
    frames.sort_by_key(|f| f.event_time);
    (frames, pixels)
}

fn engine_fps(frames: &Arc<Vec<Frame>>, pixels: &HashMap<Arc<str>, Pixels>, work: Work) -> f64 {
    let mut registry = Registry::new(Arc::new(CachedDecoder(pixels.clone())));
    registry.sources.insert("memory", Arc::new(MemorySourceFactory(frames.clone())));
    registry.operators.insert("work", Arc::new(work));
    registry.sinks.insert("count", Arc::new(CountingSink));
    let plan = JobPlan {
        sources: vec![SourceSpec {
            name: "m".into(),
            rows: SourceRows::Frames,
            kind: "memory".into(),
            location: None,
            options: BTreeMap::new(),
            tenant: "bench".into(),
            lateness_ms: 0,
            late: LatePolicy::DeadLetter,
            screen: None,
        }],
        streams: vec![StreamSpec {
            name: "s".into(),
            input: StreamInput::Vision { operator: "work".into(), sources: vec!["m".into()], options: BTreeMap::new() },
            filter: None,
            projection: None,
            input_schema: None,
        }],
        views: Vec::new(),
        sinks: vec![SinkSpec {
            name: "o".into(),
            input: OUTCOMES.into(),
            kind: "count".into(),
            location: None,
            options: BTreeMap::new(),
        }],
        explain: Vec::new(),
    };
    let config = RunConfig { workers: 1, ..RunConfig::default() };
    let started = Instant::now();
    let summary = run(plan, &registry, &config, Arc::new(Metrics::default())).expect("job runs");
    assert_eq!(summary.metrics.streams[0].processed as usize, frames.len());
    frames.len() as f64 / started.elapsed().as_secs_f64()
}

/// The same per-frame work without the engine: fetch pixels, run the
/// operator, make the outcome row, hand it to the sink.
fn loop_fps(frames: &[Frame], pixels: &HashMap<Arc<str>, Pixels>, work: Work) -> f64 {
    let decoder = CachedDecoder(pixels.clone());
    // Called through the same trait objects the engine uses, so the two
    // sides run identical operator code.
    let mut operator: Box<dyn VisionOperator> = Box::new(work);
    let mut sink: Box<dyn Sink> = Box::new(CountingSink);
    let started = Instant::now();
    for frame in frames {
        let decoded = DecodedFrame { frame: frame.clone(), pixels: decoder.decode(frame).expect("cached") };
        let found = operator.process(&decoded).expect("runs");
        let outcome = FrameOutcome {
            frame_id: frame.frame_id.clone(),
            tenant: frame.tenant.clone(),
            source_id: frame.source_id.clone(),
            event_time: frame.event_time,
            outcome: Outcome::Processed,
            stage: "s".into(),
            reason: None,
            detections: found.len() as u32,
        };
        sink.write(&[Record::Outcome(outcome)]).expect("writes");
    }
    frames.len() as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let (frames, pixels) = load_frames();
    let frames = Arc::new(frames);
    println!("{} frames ({}x the quickstart frames), 1 worker, 3 runs each, medians", frames.len(), REPEATS);
    let mut lines = Vec::new();
    for (name, work) in [("no-op", Work::Noop), ("pixel pass", Work::PixelPass)] {
        let ours = frameflow_benches::median((0..3).map(|_| engine_fps(&frames, &pixels, work)).collect());
        let baseline = frameflow_benches::median((0..3).map(|_| loop_fps(&frames, &pixels, work)).collect());
        let per_frame_us = (1.0 / ours - 1.0 / baseline) * 1e6;
        println!("{name}: engine adds {per_frame_us:.1} µs per frame");
        lines.push(frameflow_benches::figure(
            &format!("P1 engine overhead, {name} operator"),
            ours,
            baseline,
            "frames/s",
        ));
    }
    for line in lines {
        println!("{line}");
    }
}
